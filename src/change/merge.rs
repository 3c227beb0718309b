//! Merging diverged histories (`vault sync`): vault decides every path both sides changed by
//! what it means, never by its bytes:
//! - a `.gpg-id`: both sides' additions and removals apply ([`merge_gpg_id`]);
//! - `.members.toml`: three-way by fingerprint, a former member stays former ([`Roster::merge`]);
//! - `.public-keys/FPR`: the two certificates merged (sequoia);
//! - any of these deleted on one side and changed on the other: a conflict;
//! - an entry: decrypted in memory (never written anywhere): re-encrypted on one side (same
//!   plaintext as the merge base) and changed on the other, the change; the same plaintext on
//!   both, either; changed differently on both, a conflict, unless `--ours`/`--theirs` says;
//! - `.gpg-id.sig`: ours, signed again with the merged `.gpg-id` by the change that completes
//!   the merge;
//! - anything else both sides changed: a conflict.
//!
//! The result is a draft ([`crate::git::Repo::merge_trees`]); [`Snapshot::plan_merge`] plans
//! the signed commit that completes it, with every entry encrypted to exactly its merged
//! `.gpg-id`.

use std::collections::BTreeSet;

use super::*;
use crate::crypto::{self, Envelope, Identity, MemberKey};
use crate::error::{Error, Result};
use crate::git::{BlobId, BothChanged, CommitId, Resolution};
use crate::secret::Secret;
use crate::snapshot::Snapshot;
use crate::store::roster::Roster;
use crate::store::{entry_name, merge_gpg_id, show_folder, MEMBERS, PUBLIC_KEYS, README};

/// How to settle entries both sides changed differently: take ours (`--ours ENTRY`) or theirs
/// (`--theirs ENTRY`), by entry name.
#[derive(Debug, Default, Clone)]
pub struct Settle {
    pub ours: BTreeSet<String>,
    pub theirs: BTreeSet<String>,
    /// Every entry both sides changed differently keeps the upstream's version under its name,
    /// and this clone's as `NAME.conflict-<HEAD's short id>`.
    pub keep_both: bool,
}

impl Snapshot {
    /// Merges `theirs` into HEAD as a draft commit (unsigned, no ref moved), deciding every
    /// path both sides changed as the module documentation says; `identity` decrypts the
    /// entries both sides changed.
    ///
    /// # Errors
    /// [`Error::MergeConflicts`] naming every path that cannot be merged and why (nothing is
    /// written but unreferenced objects); git errors.
    pub fn merge_draft(
        &self,
        theirs: CommitId,
        identity: Option<&Identity>,
        settle: &Settle,
        message: &str,
    ) -> Result<CommitId> {
        let repo = &self.repo;
        let base = repo.merge_base(self.head, theirs).ok_or_else(|| {
            Error::git_msg(
                "merging the upstream",
                "it shares no history with this clone",
            )
        })?;
        let mut identity = identity.cloned();
        let draft = repo.merge_trees((base, self.head, theirs), message, |both| {
            self.resolve(both, identity.as_mut(), settle)
        })?;
        draft.map_err(Error::MergeConflicts)
    }

    fn resolve(
        &self,
        both: &BothChanged,
        identity: Option<&mut Identity>,
        settle: &Settle,
    ) -> Result<Resolution> {
        let repo = &self.repo;
        let read = |b: Option<BlobId>| b.map(|b| repo.read(b)).transpose();
        let path = both.path.as_str();
        let file = |text: Vec<u8>| Ok(Resolution::Take(Some(repo.write_blob(&text)?)));
        let membership = path == ".gpg-id"
            || path.ends_with("/.gpg-id")
            || path == MEMBERS
            || path.starts_with(&format!("{PUBLIC_KEYS}/"));
        if membership && (both.ours.is_none() || both.theirs.is_none()) {
            // Which side meant it is not vault's to guess: a folder given up on one side and
            // widened on the other, a key removed here and updated there.
            return Ok(Resolution::Conflict(
                "deleted on one side and changed on the other".into(),
            ));
        }
        if path == ".gpg-id" || path.ends_with("/.gpg-id") {
            let [b, o, t] = [both.base, both.ours, both.theirs].map(&read);
            let text = merge_gpg_id(
                &b?.unwrap_or_default(),
                &o?.unwrap_or_default(),
                &t?.unwrap_or_default(),
            );
            return file(text.into_bytes());
        }
        if path == MEMBERS {
            let roster = |x: Option<BlobId>| -> Result<Roster> {
                Ok(match read(x)? {
                    Some(bytes) => Roster::parse(&bytes)?,
                    None => Roster::default(),
                })
            };
            let merged = Roster::merge(
                &roster(both.base)?,
                &roster(both.ours)?,
                &roster(both.theirs)?,
            );
            return file(merged.render().into_bytes());
        }
        if path.starts_with(&format!("{PUBLIC_KEYS}/")) {
            let (Some(o), Some(t)) = (read(both.ours)?, read(both.theirs)?) else {
                return Ok(Resolution::Conflict(
                    "deleted on one side and changed on the other".into(),
                ));
            };
            let key = |bytes: &[u8]| {
                MemberKey::parse(bytes).map_err(|problem| Error::KeyFile {
                    file: path.to_string(),
                    problem,
                })
            };
            let merged = key(&o)?
                .merge(&key(&t)?)
                .map_err(|problem| Error::KeyFile {
                    file: path.to_string(),
                    problem,
                })?;
            return file(merged.armored().to_vec());
        }
        if path.ends_with(".gpg-id.sig") {
            return Ok(Resolution::Take(both.ours));
        }
        if path == README {
            // vault's README on both sides: the merge commit writes it anew for the merged store.
            let generated = |b| -> Result<bool> {
                Ok(read(b)?.is_some_and(|t| crate::readme::is_generated(&t)))
            };
            if generated(both.ours)? && generated(both.theirs)? {
                return Ok(Resolution::Take(both.ours));
            }
        }
        let Some(name) = entry_name(path) else {
            return Ok(Resolution::Conflict(
                "changed on both sides, and vault does not merge this kind of file".into(),
            ));
        };
        if settle.ours.contains(name) {
            return Ok(Resolution::Take(both.ours));
        }
        if settle.theirs.contains(name) {
            return Ok(Resolution::Take(both.theirs));
        }
        let Some(identity) = identity else {
            return Err(Error::NoIdentity);
        };
        let mut plain = |b: Option<BlobId>| -> Result<Option<Option<Secret>>> {
            let Some(b) = b else {
                return Ok(Some(None)); // absent on that side
            };
            let bytes = repo.read(b)?;
            let Ok(env) = Envelope::parse(&bytes) else {
                return Ok(None);
            };
            Ok(identity
                .unlock(&env)
                .and_then(|u| crypto::decrypt(&env, &u).ok())
                .map(Some))
        };
        let (b, o, t) = (plain(both.base)?, plain(both.ours)?, plain(both.theirs)?);
        let same = |x: &Option<Secret>, y: &Option<Secret>| match (x, y) {
            (Some(x), Some(y)) => x.expose() == y.expose(),
            (None, None) => true,
            _ => false,
        };
        Ok(match (b, o, t) {
            (_, Some(o), Some(t)) if same(&o, &t) => Resolution::Take(both.ours),
            (Some(b), Some(o), _) if same(&b, &o) => Resolution::Take(both.theirs),
            (Some(b), _, Some(t)) if same(&b, &t) => Resolution::Take(both.ours),
            (_, None, _) | (_, _, None) => Resolution::Conflict(
                "changed on both sides, and your key cannot decrypt one of them to tell whether \
                 only its readers changed"
                    .into(),
            ),
            _ => match (settle.keep_both, both.ours, both.theirs) {
                (true, Some(ours), Some(theirs)) => Resolution::Both {
                    keep: theirs,
                    also: (format!("{name}.conflict-{}.gpg", self.head.short()), ours),
                },
                _ => Resolution::Conflict("changed differently on both sides".into()),
            },
        })
    }

    /// Plans the signed commit that completes the draft merge this snapshot was loaded at
    /// ([`Snapshot::at_draft`]): every entry encrypted to exactly its merged `.gpg-id`, each
    /// `.gpg-id` the merge changed (compared with `ours`, HEAD) written and signed again where
    /// the store signs them. Entries a former member could read are reported to rotate.
    pub fn plan_merge(&self, ours: CommitId, upstream: &str) -> Result<Plan> {
        let mut plan = self.plan_repair();
        let before = crate::store::Layout::new(self.repo.files(ours)?);
        plan.changed = self
            .layout
            .gpg_ids
            .iter()
            .filter(|(folder, blob)| before.gpg_ids.get(*folder) != Some(*blob))
            .map(|(folder, _)| folder.clone())
            .filter(|folder| self.recipients.contains_key(folder))
            .collect();
        plan.action = "merge";
        plan.subject = format!("Merge {upstream}");
        plan.body = format!(
            "Merged by vault sync; every entry is encrypted to exactly its .gpg-id{}.",
            if plan.changed.is_empty() {
                String::new()
            } else {
                format!(
                    " (the merge changed {})",
                    plan.changed
                        .iter()
                        .map(|f| show_folder(f))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        plan.trailers = vec![("Vault-Action".into(), "merge".into())];
        plan.replaces = Some(self.head);
        Ok(plan)
    }
}
