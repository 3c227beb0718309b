//! The one walk of history that audit makes: when each entry's content last changed, and which
//! former members could decrypt a version with its current content (those must be rotated).

use std::collections::{BTreeSet, HashMap};

use super::{EntryReport, LastChanged};
use crate::crypto::{Envelope, KeyId};
use crate::error::Result;
use crate::git::{trailers, BlobId, CommitInfo, Met, Objects};
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

/// A version of an entry a former member could read whose content has changed since: whether
/// its password changed too is for `vault audit --decrypt` to check ([`super::verify_changed`]).
#[derive(Debug, Clone)]
pub(super) struct Unverified {
    /// Index of the entry in the reports.
    pub entry: usize,
    /// The former member (or compromised key), as named in `rotate`.
    pub who: String,
    /// The old version they could read.
    pub blob: BlobId,
}

/// Fills `last_changed`, `rotate` (a former member could read a version with the current
/// content: renames and re-encryptions keep it) and `changed_since` (they could read only
/// older content) with one walk of the history; returns the old versions behind each
/// `changed_since`, for `--decrypt` to compare passwords.
pub(super) fn history(
    vault: &Snapshot,
    objects: &Objects,
    paths: &HashMap<String, usize>,
    former_ids: &HashMap<KeyId, String>,
    reports: &mut [EntryReport],
) -> Result<Vec<Unverified>> {
    let followed: BTreeSet<String> = paths
        .keys()
        .filter(|p| entry_name(p).is_some())
        .cloned()
        .collect();
    if followed.is_empty() {
        return Ok(Vec::new());
    }
    let mut rotate: Vec<BTreeSet<String>> = vec![BTreeSet::new(); reports.len()];
    let mut older: Vec<Unverified> = Vec::new();
    let mut visit = |met: Met| -> Result<()> {
        match met {
            // Who could decrypt this version?
            Met::Version {
                path, blob, same, ..
            } if !former_ids.is_empty() => {
                if let Ok(Ok(readers)) = objects.read(blob).map(|b| Envelope::readers_of(&b)) {
                    // A hidden recipient (`gpg --throw-keyids`) could be any of them.
                    let hidden = readers.iter().any(Option::is_none);
                    let mut who: BTreeSet<&String> = readers
                        .iter()
                        .flatten()
                        .filter_map(|id| former_ids.get(id))
                        .collect();
                    if hidden {
                        who.extend(former_ids.values());
                    }
                    for name in who {
                        if same {
                            rotate[paths[path]].insert(name.clone());
                        } else {
                            older.push(Unverified {
                                entry: paths[path],
                                who: name.clone(),
                                blob,
                            });
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
        &renamed_from,
        &mut visit,
    )?;
    older.retain(|u| !rotate[u.entry].contains(&u.who));
    for (i, (r, set)) in reports.iter_mut().zip(rotate).enumerate() {
        r.rotate = set.into_iter().collect();
        let mut since: Vec<String> = older
            .iter()
            .filter(|u| u.entry == i)
            .map(|u| u.who.clone())
            .collect();
        since.sort();
        since.dedup();
        r.changed_since = since;
    }
    Ok(older)
}

/// The paths a commit renamed or copied to `path` (an entry file, `web/shop.gpg`), as its message
/// says: vault's `Vault-Action: mv` or `cp` with `Vault-Entry: FROM` and `Vault-Entry: TO`
/// trailers, or pass's `Rename FROM to TO.` and `Copy FROM to TO.` subjects. Candidates, for the
/// walk to keep the one the parent has: a name may hold " to ", and pass moves FROM into TO
/// when TO is a folder, with or without a trailing `/`. An entry moved along with its folder
/// maps by its place in the folder. Renames and copies that kept the ciphertext the walk finds
/// by the blob (see [`crate::git::Repo::walk_versions`]).
pub fn renamed_from(commit: &CommitInfo, path: &str) -> Vec<String> {
    let Some(name) = entry_name(path) else {
        return Vec::new();
    };
    let t = trailers(&commit.message);
    let vault_move = t
        .iter()
        .any(|(k, v)| k == "Vault-Action" && (v == "mv" || v == "cp"));
    let pairs: Vec<(String, String)> = if vault_move {
        let e: Vec<&String> = t
            .iter()
            .filter(|(k, _)| k == "Vault-Entry")
            .map(|(_, v)| v)
            .collect();
        match e.as_slice() {
            [from, to] => vec![(from.to_string(), to.to_string())],
            _ => Vec::new(),
        }
    } else {
        // "Rename FROM to TO." / "Copy FROM to TO.": every split at " to " is a candidate.
        let subject = commit.message.lines().next().unwrap_or("");
        let Some(words) = subject
            .strip_prefix("Rename ")
            .or_else(|| subject.strip_prefix("Copy "))
            .and_then(|w| w.strip_suffix('.'))
        else {
            return Vec::new();
        };
        words
            .match_indices(" to ")
            .map(|(at, _)| (words[..at].to_string(), words[at + 4..].to_string()))
            .collect()
    };
    let mut out = Vec::new();
    for (from, to) in pairs {
        let from = from.trim_end_matches('/');
        let to = to.trim_end_matches('/');
        let last = from.rsplit('/').next().unwrap_or(from);
        let into = if to.is_empty() {
            last.to_string()
        } else {
            format!("{to}/{last}")
        };
        // FROM renamed to TO, or moved into the folder TO; an entry, or everything in a folder.
        for dest in [to.to_string(), into] {
            if dest.is_empty() {
                continue;
            }
            if name == dest {
                out.push(format!("{from}.gpg"));
            } else if let Some(rest) = name.strip_prefix(&format!("{dest}/")) {
                out.push(format!("{from}/{rest}.gpg"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(message: &str) -> CommitInfo {
        CommitInfo {
            id: crate::git::CommitId::parse(&"0".repeat(40)).unwrap(),
            author: String::new(),
            time: 0,
            message: message.into(),
        }
    }

    #[test]
    fn renames_are_read_from_pass_and_vault_messages() {
        let has = |c: &CommitInfo, path: &str, want: &str| {
            renamed_from(c, path).iter().any(|p| p == want)
        };
        let pass = commit("Rename web/shop to ops/shop.\n");
        assert!(has(&pass, "ops/shop.gpg", "web/shop.gpg"));
        assert!(renamed_from(&pass, "ops/other.gpg").is_empty());
        let into = commit("Rename bank to archive/.\n");
        assert!(has(&into, "archive/bank.gpg", "bank.gpg"));
        // pass moves into an existing folder without the slash too.
        let into = commit("Rename web/shop to ops.\n");
        assert!(has(&into, "ops/shop.gpg", "web/shop.gpg"));
        let folder = commit("Rename web to www.\n");
        assert!(has(&folder, "www/shop.gpg", "web/shop.gpg"));
        let odd = commit("Rename a to b to c.\n");
        assert!(has(&odd, "c.gpg", "a to b.gpg"));
        let copy = commit("Copy bank to bank2.\n");
        assert!(has(&copy, "bank2.gpg", "bank.gpg"));
        let vault = commit(
            "Rename x to y/.\n\nVault-Action: mv\nVault-Entry: web/shop\nVault-Entry: ops/shop\n",
        );
        assert!(has(&vault, "ops/shop.gpg", "web/shop.gpg"));
        assert!(renamed_from(&commit("Edit password for x using vi.\n"), "x.gpg").is_empty());
    }

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
