//! The one walk of history that audit makes: when each entry's content last changed, and which
//! former members could decrypt a version with its current content (those must be rotated).

use std::collections::{BTreeSet, HashMap};

use super::{EntryReport, LastChanged};
use crate::crypto::{Envelope, KeyId};
use crate::error::Result;
use crate::git::{trailers, CommitInfo, Met, Objects};
use crate::snapshot::Snapshot;
use crate::store::entry_name;
use crate::text::format_unix;

/// Whether a commit only re-encrypted (same plaintexts, new recipients): vault's own (its
/// `Vault-Action` trailer, read from the trailer block by git's rules only), pass's and gopass's
/// re-encryption commits (by their subject lines).
pub fn is_reencryption(message: &str) -> bool {
    let vault = trailers(message).iter().any(|(k, v)| {
        k == "Vault-Action"
            && matches!(
                v.as_str(),
                "add-member"
                    | "remove-member"
                    | "update-member"
                    | "replace-key"
                    | "grant"
                    | "reencrypt"
                    | "repair"
                    | "merge"
            )
    });
    let subject = message.lines().next().unwrap_or("");
    vault
        || subject.starts_with("Reencrypt password store using new GPG id")
        || subject.contains("Re-encrypt Store for Recipient")
        || subject.contains("Re-encrypted Store for Recipient")
}

/// Fills `last_changed` and `rotate` with one walk of the history.
pub(super) fn history(
    vault: &Snapshot,
    objects: &Objects,
    paths: &HashMap<String, usize>,
    former_ids: &HashMap<KeyId, String>,
    reports: &mut [EntryReport],
) -> Result<()> {
    let followed: BTreeSet<String> = paths
        .keys()
        .filter(|p| entry_name(p).is_some())
        .cloned()
        .collect();
    if followed.is_empty() {
        return Ok(());
    }
    let mut rotate: Vec<BTreeSet<String>> = vec![BTreeSet::new(); reports.len()];
    let mut visit = |met: Met| -> Result<()> {
        match met {
            // A version with the current content: who could decrypt it?
            Met::Version { path, blob, .. } if !former_ids.is_empty() => {
                if let Ok(Ok(readers)) = objects
                    .read(blob)
                    .map(|b| Envelope::parse(&b).map(|e| e.readers()))
                {
                    for id in readers.into_iter().flatten() {
                        if let Some(name) = former_ids.get(&id) {
                            rotate[paths[path]].insert(name.clone());
                        }
                    }
                }
            }
            Met::Version { .. } => {}
            Met::Changed { path, commit } => {
                let report = &mut reports[paths[path]];
                // The newest content change along any line of history.
                if report.last_changed.is_none() {
                    report.last_changed = Some(LastChanged {
                        commit: commit.id.short(),
                        author: commit.author.clone(),
                        date: format_unix(commit.time),
                    });
                }
            }
        }
        Ok(())
    };
    vault.repo().walk_versions(
        vault.head(),
        &followed,
        &|c: &CommitInfo| is_reencryption(&c.message),
        &mut visit,
    )?;
    for (r, set) in reports.iter_mut().zip(rotate) {
        r.rotate = set.into_iter().collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reencryption_commits() {
        assert!(is_reencryption(
            "Reencrypt password store using new GPG id ABC.\n"
        ));
        assert!(is_reencryption(
            "Add member x\n\nbody\n\nVault-Action: add-member\n"
        ));
        assert!(is_reencryption("Re-encrypted Store for Recipient x\n"));
        assert!(!is_reencryption("Edit password for x using vim.\n"));
        assert!(!is_reencryption("Adopt\n\nVault-Action: init\n"));
    }
}
