//! Planning a change: who reads which folder afterwards, which `.gpg-id` files change, the
//! commit message. Pure: nothing is read beyond the snapshot, nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::crypto::{KeyId, MemberKey};
use crate::error::{Error, Result};
use crate::snapshot::*;
use crate::store::{gpg_id_path, show_folder, Folder, Layout, MemberName, PUBLIC_KEYS};

impl Snapshot {
    /// Checks a folder given with `--folder`: it must hold an entry or a `.gpg-id` of its own,
    /// unless `create` (a mistyped `--folder finanse` would otherwise get a `.gpg-id` and a
    /// commit of its own).
    ///
    /// # Errors
    /// [`Error::NoSuchFolder`] with the nearest existing folder's name, if one is close.
    pub fn check_folder(&self, folder: &str, create: bool) -> Result<()> {
        let known = |f: &str| {
            self.layout.gpg_ids.contains_key(f)
                || self.layout.broken_gpg_ids.contains_key(f)
                || self
                    .layout
                    .entries
                    .iter()
                    .any(|e| e.path.strip_prefix(f).is_some_and(|r| r.starts_with('/')))
        };
        if create || folder.is_empty() || known(folder) {
            return Ok(());
        }
        let mut folders: BTreeSet<&str> = self.layout.gpg_ids.keys().map(String::as_str).collect();
        for e in &self.layout.entries {
            let mut f = Layout::folder_of(&e.path);
            while !f.is_empty() {
                folders.insert(f);
                f = Layout::folder_of(f);
            }
        }
        let nearest = folders
            .into_iter()
            .filter(|f| !f.is_empty())
            .map(|f| (strsim::damerau_levenshtein(f, folder), f))
            .filter(|(d, f)| *d <= 2.max(f.len() / 4))
            .min()
            .map(|(_, f)| show_folder(f));
        Err(Error::NoSuchFolder {
            folder: show_folder(folder),
            nearest,
        })
    }

    /// Plans adding `key` as member `name` to the root `.gpg-id`, or to `folder`'s (created from
    /// the recipients it inherits, plus the new one).
    ///
    /// # Errors
    /// [`Error::MemberExists`] if the name or the key is taken (by a member or a former one);
    /// [`Error::NoRootGpgId`] if there is no `.gpg-id` to add to.
    pub fn plan_add(
        &self,
        key: &MemberKey,
        name: MemberName,
        folder: Option<Folder>,
    ) -> Result<Plan> {
        let fpr = key.fingerprint();
        let mut roster = self.roster.clone();
        roster.add(name.clone(), fpr)?;
        let folder = folder.unwrap_or_default();
        let mut recipients = self.recipients.clone();
        let current = match recipients.get(&folder) {
            Some(r) => r.clone(),
            None => match self.layout.governing(&folder) {
                Some(g) => recipients[&g].clone(),
                None if folder.is_empty() => return Err(Error::NoRootGpgId),
                None => Vec::new(),
            },
        };
        let mut new = current;
        if !new.contains(&fpr) {
            new.push(fpr);
        }
        recipients.insert(folder.clone(), new);
        let uid = key.user_ids().first().cloned().unwrap_or_default();
        Ok(Plan {
            action: "add-member",
            subject: format!("Add member {name} ({})", fpr.short()),
            body: format!("{name} ({uid}) can now read {}.", show_folder(&folder)),
            trailers: vec![
                ("Vault-Action".into(), "add-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
                ("Vault-Folder".into(), show_folder(&folder)),
            ],
            recipients,
            changed: BTreeSet::from([folder]),
            key_writes: vec![(format!("{PUBLIC_KEYS}/{fpr}"), key.armored().to_vec())],
            key_deletes: Vec::new(),
            roster,
            removed_key_ids: Vec::new(),
            added: Some(key.clone()),
            pass_signing_keys: Vec::new(),
            gpg_id_signer: None,
            links: BTreeMap::new(),
        }
        .with_links(&self.layout))
    }

    /// Plans removing member `name` from every `.gpg-id` that lists them, or only from `folder`
    /// (creating its `.gpg-id` from the inherited recipients if it has none). A member left in no
    /// `.gpg-id` loses their `.public-keys` file and becomes a former member.
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::NotRecipient`], and [`Error::WouldEmpty`] when a
    /// `.gpg-id` would be left with nobody.
    pub fn plan_remove(&self, name: &MemberName, folder: Option<Folder>) -> Result<Plan> {
        let fpr = self
            .roster
            .fingerprint(name)
            .ok_or_else(|| Error::UnknownMember(name.to_string()))?;
        let mut recipients = self.recipients.clone();
        let targets: Vec<Folder> = match &folder {
            None => recipients
                .iter()
                .filter(|(_, r)| r.contains(&fpr))
                .map(|(f, _)| f.clone())
                .collect(),
            Some(f) => {
                let governing = self.layout.governing(f);
                match governing {
                    Some(g) if recipients[&g].contains(&fpr) => {
                        if &g != f {
                            let inherited = recipients[&g].clone();
                            recipients.insert(f.clone(), inherited);
                        }
                        vec![f.clone()]
                    }
                    _ => {
                        return Err(Error::NotRecipient {
                            member: name.to_string(),
                            folder: show_folder(f),
                        })
                    }
                }
            }
        };
        for f in &targets {
            let list = recipients
                .get_mut(f)
                .expect("target folders have recipients");
            list.retain(|r| *r != fpr);
            if list.is_empty() {
                return Err(Error::WouldEmpty {
                    member: name.to_string(),
                    file: gpg_id_path(f),
                });
            }
        }
        let still_member = recipients.values().any(|r| r.contains(&fpr));
        let mut roster = self.roster.clone();
        let key = self.keys.get(&fpr);
        let removed_key_ids: Vec<KeyId> = key
            .map(|k| k.all_key_ids().to_vec())
            .unwrap_or_else(|| vec![fpr.key_id()]);
        let (key_deletes, scope) = if still_member {
            (
                Vec::new(),
                targets
                    .iter()
                    .map(|f| show_folder(f))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        } else {
            let subkeys = key
                .map(|k| k.subkey_ids().iter().map(|i| i.to_string()).collect())
                .unwrap_or_default();
            roster.retire(name, subkeys, now());
            let deletes = if self.keys.contains_key(&fpr) {
                vec![format!("{PUBLIC_KEYS}/{fpr}")]
            } else {
                Vec::new()
            };
            (deletes, "the whole store".to_string())
        };
        Ok(Plan {
            action: "remove-member",
            subject: if still_member {
                format!("Remove member {name} ({}) from {scope}", fpr.short())
            } else {
                format!("Remove member {name} ({})", fpr.short())
            },
            body: format!(
                "{name} can no longer read {scope}; what they could read was re-encrypted with fresh session keys.\n\
                 They can still decrypt the old versions in git history: rotate those credentials."
            ),
            trailers: vec![
                ("Vault-Action".into(), "remove-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
            ],
            recipients,
            changed: targets.into_iter().collect(),
            key_writes: Vec::new(),
            key_deletes,
            roster,
            removed_key_ids,
            added: None,
            pass_signing_keys: Vec::new(),
            gpg_id_signer: None,
            links: BTreeMap::new(),
        }
        .with_links(&self.layout))
    }
}
