//! Planning a change: who reads which folder afterwards, which `.gpg-id` files change, the
//! commit message. Pure: nothing is read beyond the snapshot, nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::crypto::{KeyChange, KeyId, MemberKey};
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
        let recipients = with_recipient(&self.recipients, &self.layout, &folder, fpr)?;
        let uid = key.user_ids().first().cloned().unwrap_or_default();
        Ok(Plan {
            subject: format!("Add member {name} ({})", fpr.short()),
            body: format!("{name} ({uid}) can now read {}.", show_folder(&folder)),
            trailers: vec![
                ("Vault-Action".into(), "add-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
                ("Vault-Folder".into(), show_folder(&folder)),
            ],
            changed: BTreeSet::from([folder]),
            key_writes: vec![(format!("{PUBLIC_KEYS}/{fpr}"), key.armored().to_vec())],
            added: Some(key.clone()),
            ..Plan::unchanged("add-member", recipients, roster)
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
        let fpr = self.member_fingerprint(name)?;
        let (recipients, targets) =
            without_recipient(&self.recipients, &self.layout, fpr, folder.as_ref(), name)?;
        let still_member = recipients.values().any(|r| r.contains(&fpr));
        let mut roster = self.roster.clone();
        let key = self.keys.get(&fpr);
        let removed_key_ids: Vec<KeyId> = key
            .map(|k| k.all_key_ids().to_vec())
            .unwrap_or_else(|| vec![fpr.key_id()]);
        let (deletes, scope) = if still_member {
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
            changed: targets.into_iter().collect(),
            deletes,
            removed_key_ids,
            ..Plan::unchanged("remove-member", recipients, roster)
        }
        .with_links(&self.layout))
    }
}

impl Snapshot {
    /// The fingerprint of member `name`.
    ///
    /// # Errors
    /// [`Error::FormerMember`] (when they were removed, and by whom: the author of the newest
    /// `vault remove-member` commit whose `Vault-Member` trailer names them), and
    /// [`Error::UnknownMember`].
    pub fn member_fingerprint(&self, name: &MemberName) -> Result<Fingerprint> {
        if let Some(fpr) = self.roster.fingerprint(name) {
            return Ok(fpr);
        }
        let Some(f) = self.roster.former().iter().find(|f| f.name == *name) else {
            return Err(Error::UnknownMember(name.to_string()));
        };
        let member = format!("{} <{}>", f.name, f.fingerprint);
        let removal = |c: &crate::git::CommitInfo| {
            let t = crate::git::trailers(&c.message);
            let has = |k: &str, v: &str| t.iter().any(|(tk, tv)| tk == k && tv == v);
            has("Vault-Action", "remove-member") && has("Vault-Member", &member)
        };
        // Only a signed commit says who: anyone can write trailers into an unsigned one.
        let removal =
            |c: &crate::git::CommitInfo| removal(c) && self.repo.signature(c.id).is_some();
        let by = self
            .repo
            .find_in_history(self.head, &removal)
            .ok()
            .flatten()
            .map(|c| format!("{} in commit {}", c.author, c.id.short()));
        let ids: Vec<KeyId> = f
            .encryption_keys
            .iter()
            .filter_map(|k| KeyId::parse(k))
            .chain([f.fingerprint.key_id()])
            .collect();
        Err(Error::FormerMember {
            name: name.to_string(),
            removed: crate::text::escape(&f.removed).into_owned(),
            by,
            still_readable: self.readable_by(&ids).len(),
        })
    }

    /// Plans `vault update-member`: `key` (the same certificate as member `name`'s, renewed,
    /// extended, with a new or revoked subkey) merged into the stored one as sequoia merges
    /// certificates. Entries of the folders they read are checked against the merged
    /// certificate: a new encryption subkey gets PKESKs added (data kept), an entry still
    /// encrypted to a revoked or expired subkey gets a fresh session key. Entries a subkey whose
    /// revocation is hard (key compromised, or no reason: RFC 9580 §5.2.3.31) could read are
    /// listed to rotate. Returns None when `key` adds nothing to the stored certificate, else
    /// the plan and what changed.
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::FormerMember`]; [`Error::OtherKey`] for another
    /// fingerprint (that is `vault replace-key`); [`Error::MemberKey`] when even the merged
    /// certificate cannot be encrypted to (still expired, revoked, no encryption subkey).
    pub fn plan_update(
        &self,
        name: &MemberName,
        key: &MemberKey,
    ) -> Result<Option<(Plan, Vec<KeyChange>)>> {
        let fpr = self.member_fingerprint(name)?;
        if key.fingerprint() != fpr {
            return Err(Error::OtherKey {
                member: name.to_string(),
                expected: fpr.to_string(),
                actual: key.fingerprint().to_string(),
            });
        }
        let unusable = |k: &MemberKey, problem: crate::error::KeyProblem| Error::MemberKey {
            member: name.to_string(),
            fingerprint: fpr.to_string(),
            problem,
            renewable: k
                .renewable_subkeys()
                .iter()
                .map(|f| f.to_string())
                .collect(),
        };
        let (merged, changes) = match self.keys.get(&fpr) {
            Some(old) => {
                let merged = old.merge(key).map_err(|p| unusable(old, p))?;
                if merged.armored() == old.armored() {
                    return Ok(None);
                }
                let changes = merged.changes_since(old);
                (merged, changes)
            }
            None => (key.clone(), Vec::new()),
        };
        if let Some(problem) = merged.problem() {
            return Err(unusable(&merged, problem.clone()));
        }
        // A certificate that binds another member's key (or a former or replaced one) as a
        // subkey is not this member's alone.
        let others = self
            .roster
            .members()
            .filter(|(_, f)| **f != fpr)
            .map(|(n, f)| (n.to_string(), *f))
            .chain(
                self.roster
                    .former()
                    .iter()
                    .map(|f| (f.name.to_string(), f.fingerprint)),
            )
            .chain(
                self.roster
                    .replaced()
                    .iter()
                    .map(|r| (r.name.to_string(), r.fingerprint)),
            );
        for (owner, other) in others {
            if merged.has_fingerprint(other) {
                return Err(Error::MemberExists(format!(
                    "the key given for {name} binds key {other}, which is {owner}'s"
                )));
            }
        }
        // A user id with another member's e-mail would make that address ambiguous for pass
        // and gpg (`.gpg-id` lines may name members by e-mail).
        for email in merged.emails() {
            let owner = self.roster.members().find(|(_, f)| {
                **f != fpr && self.keys.get(f).is_some_and(|k| k.emails().contains(email))
            });
            if let Some((owner, _)) = owner {
                return Err(Error::TakenEmail {
                    member: name.to_string(),
                    email: crate::text::escape(email).into_owned(),
                    owner: owner.to_string(),
                });
            }
        }
        let compromised: Vec<&crate::crypto::Subkey> = changes
            .iter()
            .filter_map(|c| match c {
                KeyChange::SubkeyRevoked(k) if k.revoked.as_ref().is_some_and(|r| r.hard) => {
                    Some(k)
                }
                _ => None,
            })
            .collect();
        // Recorded as compromised keys of the member, so audit's rotation (and the README)
        // flag what they could read in history too.
        let mut roster = self.roster.clone();
        for k in &compromised {
            roster.retire_subkey(name, k.fingerprint, k.id.to_string(), now());
        }
        let compromised: Vec<KeyId> = compromised.iter().map(|k| k.id).collect();
        let body: String = changes.iter().map(|c| format!("{c}\n")).collect();
        let plan = Plan {
            subject: format!("Update member {name}'s key ({})", fpr.short()),
            body: if body.is_empty() {
                "The certificate changed; who can read what did not.".into()
            } else {
                body
            },
            trailers: vec![
                ("Vault-Action".into(), "update-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
            ],
            reread: self
                .recipients
                .iter()
                .filter(|(_, r)| r.contains(&fpr))
                .map(|(f, _)| f.clone())
                .collect(),
            key_writes: vec![(format!("{PUBLIC_KEYS}/{fpr}"), merged.armored().to_vec())],
            added: Some(merged),
            removed_key_ids: compromised,
            ..Plan::unchanged("update-member", self.recipients.clone(), roster)
        };
        Ok(Some((plan, changes)))
    }

    /// Plans `vault replace-key`: member `name` moves to `key` (another fingerprint). Every
    /// `.gpg-id` that lists their old key lists the new one instead; everything they read gets a
    /// fresh session key (the old key is no longer a reader); the old key is kept in
    /// `.members.toml` as replaced, so audit still names it. When `compromised`, what the old
    /// key could read is listed to rotate.
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::FormerMember`]; [`Error::SameKey`] for the same
    /// fingerprint (that is `vault update-member`); [`Error::MemberExists`] for a key that is or
    /// was someone's.
    pub fn plan_replace(
        &self,
        name: &MemberName,
        key: &MemberKey,
        compromised: bool,
    ) -> Result<Plan> {
        let old = self.member_fingerprint(name)?;
        let new = key.fingerprint();
        if new == old {
            return Err(Error::SameKey(name.to_string()));
        }
        let old_key = self.keys.get(&old);
        let subkeys = old_key
            .map(|k| k.subkey_ids().iter().map(|i| i.to_string()).collect())
            .unwrap_or_default();
        let mut roster = self.roster.clone();
        roster.replace_key(name, new, (subkeys, now(), compromised))?;
        let mut recipients = self.recipients.clone();
        let mut changed = BTreeSet::new();
        for (folder, list) in recipients.iter_mut() {
            if let Some(at) = list.iter().position(|r| *r == old) {
                list[at] = new;
                changed.insert(folder.clone());
            }
        }
        let removed_key_ids = match (compromised, old_key) {
            (false, _) => Vec::new(),
            (true, Some(k)) => k.all_key_ids().to_vec(),
            (true, None) => vec![old.key_id()],
        };
        Ok(Plan {
            subject: format!(
                "Replace member {name}'s key ({} -> {})",
                old.short(),
                new.short()
            ),
            body: format!(
                "{name} now reads with key {new}; what they read was re-encrypted with fresh \
                 session keys.{}",
                if compromised {
                    "\nThe old key was compromised: rotate what it could read."
                } else {
                    ""
                }
            ),
            trailers: vec![
                ("Vault-Action".into(), "replace-key".into()),
                ("Vault-Member".into(), format!("{name} <{new}>")),
                ("Vault-Replaces".into(), old.to_string()),
            ],
            changed,
            key_writes: vec![(format!("{PUBLIC_KEYS}/{new}"), key.armored().to_vec())],
            deletes: if old_key.is_some() {
                vec![format!("{PUBLIC_KEYS}/{old}")]
            } else {
                Vec::new()
            },
            added: Some(key.clone()),
            removed_key_ids,
            ..Plan::unchanged("replace-key", recipients, roster)
        }
        .with_links(&self.layout))
    }

    /// Plans `vault grant`: member `name` reads `folder` too (its `.gpg-id` is created from the
    /// recipients it inherits if it has none). Entries there get PKESKs for them; their data is
    /// kept.
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::FormerMember`]; [`Error::AlreadyReads`] if they read
    /// it already.
    pub fn plan_grant(&self, name: &MemberName, folder: Folder) -> Result<Plan> {
        let fpr = self.member_fingerprint(name)?;
        let readers = match self.recipients.get(&folder) {
            Some(r) => Some(r),
            None => self.layout.governing(&folder).map(|g| &self.recipients[&g]),
        };
        if readers.is_some_and(|r| r.contains(&fpr)) {
            return Err(Error::AlreadyReads {
                member: name.to_string(),
                folder: show_folder(&folder),
            });
        }
        let recipients = with_recipient(&self.recipients, &self.layout, &folder, fpr)?;
        Ok(Plan {
            subject: format!("Grant {name} ({}) {}", fpr.short(), show_folder(&folder)),
            body: format!("{name} can now read {} too.", show_folder(&folder)),
            trailers: vec![
                ("Vault-Action".into(), "grant".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
                ("Vault-Folder".into(), show_folder(&folder)),
            ],
            changed: BTreeSet::from([folder]),
            ..Plan::unchanged("grant", recipients, self.roster.clone())
        }
        .with_links(&self.layout))
    }

    /// Plans `vault readme`: one commit that creates (or refreshes) the store's generated
    /// `README.md`; nothing else changes.
    ///
    /// # Errors
    /// [`Error::HandWrittenReadme`] when `README.md` is not vault's: it is never touched.
    pub fn plan_readme(&self) -> Result<Plan> {
        if self
            .readme_bytes()?
            .is_some_and(|b| !crate::readme::is_generated(&b))
        {
            return Err(Error::HandWrittenReadme);
        }
        Ok(Plan {
            subject: "Describe the store in README.md".into(),
            body: "vault generated README.md: what the store is, how to get access and work with \
                   it, the members and the credentials (names and readers only)."
                .into(),
            trailers: vec![("Vault-Action".into(), "readme".into())],
            create_readme: true,
            ..Plan::unchanged("readme", self.recipients.clone(), self.roster.clone())
        })
    }

    /// Plans `vault repair`: every entry encrypted to exactly the recipients of its nearest
    /// `.gpg-id` (PKESKs added where readers only joined, a fresh session key where anyone else
    /// can read it), no `.gpg-id` changed. Entries a former member can read are reported to
    /// rotate.
    pub fn plan_repair(&self) -> Plan {
        let removed_key_ids = self
            .roster
            .former()
            .iter()
            .flat_map(|f| {
                let subkeys = f.encryption_keys.iter().filter_map(|k| KeyId::parse(k));
                subkeys.chain([f.fingerprint.key_id()])
            })
            .collect();
        Plan {
            subject: "Repair: encrypt every entry to its .gpg-id".into(),
            body: "Entries whose readers differed from their .gpg-id were re-encrypted (fresh \
                   session keys where someone else could read them)."
                .into(),
            trailers: vec![("Vault-Action".into(), "repair".into())],
            removed_key_ids,
            every_entry: true,
            ..Plan::unchanged("repair", self.recipients.clone(), self.roster.clone())
        }
    }
}

/// Folder -> who reads it (the fingerprints its `.gpg-id` resolves to).
type Readers = BTreeMap<Folder, Vec<Fingerprint>>;

/// Who reads each folder once `fpr` reads `folder`: the folder's recipients (or, when it has no
/// `.gpg-id`, those it inherits, as pass reads the nearest one) plus `fpr`.
///
/// # Errors
/// [`Error::NoRootGpgId`] when adding to the root of a store without a root `.gpg-id`.
fn with_recipient(
    recipients: &Readers,
    layout: &Layout,
    folder: &Folder,
    fpr: Fingerprint,
) -> Result<Readers> {
    let mut after = recipients.clone();
    let mut list = match recipients.get(folder) {
        Some(r) => r.clone(),
        None => match layout.governing(folder) {
            Some(g) => recipients[&g].clone(),
            None if folder.is_empty() => return Err(Error::NoRootGpgId),
            None => Vec::new(),
        },
    };
    if !list.contains(&fpr) {
        list.push(fpr);
    }
    after.insert(folder.clone(), list);
    Ok(after)
}

/// Who reads each folder once `fpr` (member `name`) is removed from every `.gpg-id` that lists
/// them, or only from `folder` (which gets a `.gpg-id` of its own from what it inherits); and the
/// folders whose `.gpg-id` changes.
///
/// # Errors
/// [`Error::NotRecipient`] if `folder` is not read by them; [`Error::WouldEmpty`] if a `.gpg-id`
/// would be left with nobody.
fn without_recipient(
    recipients: &Readers,
    layout: &Layout,
    fpr: Fingerprint,
    folder: Option<&Folder>,
    name: &MemberName,
) -> Result<(Readers, Vec<Folder>)> {
    let mut after = recipients.clone();
    let targets: Vec<Folder> = match folder {
        None => recipients
            .iter()
            .filter(|(_, r)| r.contains(&fpr))
            .map(|(f, _)| f.clone())
            .collect(),
        Some(f) => match layout.governing(f) {
            Some(g) if recipients[&g].contains(&fpr) => {
                if &g != f {
                    after.insert(f.clone(), recipients[&g].clone());
                }
                vec![f.clone()]
            }
            _ => {
                return Err(Error::NotRecipient {
                    member: name.to_string(),
                    folder: show_folder(f),
                })
            }
        },
    };
    for f in &targets {
        let list = after.get_mut(f).expect("target folders have recipients");
        list.retain(|r| *r != fpr);
        if list.is_empty() {
            return Err(Error::WouldEmpty {
                member: name.to_string(),
                file: gpg_id_path(f),
            });
        }
    }
    Ok((after, targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::{BlobId, FileKind, TreeFile};

    fn fpr(c: char) -> Fingerprint {
        Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
    }

    /// A store with a root `.gpg-id` (a, b), `ops/.gpg-id` (a), and entries below both.
    fn store() -> (BTreeMap<Folder, Vec<Fingerprint>>, Layout) {
        let file = |path: &str| TreeFile {
            path: path.into(),
            utf8: true,
            blob: BlobId::hash(path.as_bytes()),
            kind: FileKind::Regular,
            link: None,
        };
        let layout = Layout::new(
            [
                ".gpg-id",
                "web.gpg",
                "ops/.gpg-id",
                "ops/db.gpg",
                "ops/dns/zone.gpg",
                "hr/pay.gpg",
            ]
            .into_iter()
            .map(file)
            .collect(),
        );
        let recipients = BTreeMap::from([
            (String::new(), vec![fpr('A'), fpr('B')]),
            ("ops".to_string(), vec![fpr('A')]),
        ]);
        (recipients, layout)
    }

    fn name(n: &str) -> MemberName {
        MemberName::parse(n).unwrap()
    }

    #[test]
    fn adding_to_a_folder_without_a_gpg_id_starts_from_what_it_inherits() {
        let (recipients, layout) = store();
        let after = with_recipient(&recipients, &layout, &"hr".into(), fpr('C')).unwrap();
        assert_eq!(after["hr"], [fpr('A'), fpr('B'), fpr('C')]);
        assert_eq!(after[""], recipients[""], "the root is unchanged");
        let after = with_recipient(&recipients, &layout, &"ops/dns".into(), fpr('C')).unwrap();
        assert_eq!(after["ops/dns"], [fpr('A'), fpr('C')]);
        // Already a reader: the list stays as it is (no duplicate line).
        let after = with_recipient(&recipients, &layout, &"ops".into(), fpr('A')).unwrap();
        assert_eq!(after["ops"], [fpr('A')]);
    }

    #[test]
    fn adding_to_the_root_needs_a_root_gpg_id() {
        let (mut recipients, _) = store();
        recipients.remove("");
        let layout = Layout::new(Vec::new());
        assert!(matches!(
            with_recipient(&recipients, &layout, &String::new(), fpr('C')),
            Err(Error::NoRootGpgId)
        ));
    }

    #[test]
    fn removing_everywhere_changes_every_gpg_id_that_lists_them() {
        let (recipients, layout) = store();
        let (after, targets) =
            without_recipient(&recipients, &layout, fpr('B'), None, &name("bob")).unwrap();
        assert_eq!(targets, [String::new()]);
        assert_eq!(after[""], [fpr('A')]);
        // The last reader of a folder cannot go: the folder would be unreadable.
        let Err(Error::WouldEmpty { member, file }) =
            without_recipient(&recipients, &layout, fpr('A'), None, &name("alice"))
        else {
            panic!("alice is ops/'s only reader");
        };
        assert_eq!((member.as_str(), file.as_str()), ("alice", "ops/.gpg-id"));
    }

    #[test]
    fn removing_from_one_folder_gives_it_a_gpg_id_of_its_own() {
        let (recipients, layout) = store();
        let (after, targets) = without_recipient(
            &recipients,
            &layout,
            fpr('B'),
            Some(&"hr".into()),
            &name("bob"),
        )
        .unwrap();
        assert_eq!(targets, ["hr"]);
        assert_eq!(after["hr"], [fpr('A')]);
        assert_eq!(after[""], [fpr('A'), fpr('B')], "bob still reads the root");
        // A folder they do not read.
        let err = without_recipient(
            &recipients,
            &layout,
            fpr('B'),
            Some(&"ops".into()),
            &name("bob"),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotRecipient { .. }), "{err}");
    }
}
