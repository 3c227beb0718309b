//! `vault audit`: every credential, who can actually read it, and what needs attention, read from
//! the ciphertexts (PKESK packets) and the git history. Nothing is decrypted; no secret key needed.
//!
//! The history is walked once, newest first, along the first parent. For each entry, every
//! version since its content last changed (commits that only re-encrypt do not count) shares the
//! current plaintext; if any of those versions was encrypted to a former member, the entry must be
//! rotated because of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::crypto::{Envelope, Fingerprint, KeyId};
use crate::error::Result;
use crate::git::{trailers, Changes, CommitInfo, Objects};
use crate::snapshot::Snapshot;
use crate::store::{entry_name, gpg_id_path, show_folder, Layout, MemberName};
use crate::text::{escape, format_time, format_unix};

/// The whole report; this is the `--json` document (see docs/audit-json.md).
#[derive(Debug, Serialize)]
pub struct Audit {
    pub entries: Vec<EntryReport>,
    pub members: Vec<MemberReport>,
    pub former_members: Vec<FormerReport>,
    /// Problems of the store itself: unresolvable `.gpg-id` lines, files vault cannot read
    /// (links out of the store or to nothing, submodules, names that are not UTF-8), committed
    /// files named like vault's temporaries.
    pub store_problems: Vec<String>,
    /// Symbolic links inside the store, which pass follows: `LINK -> TARGET`. Not problems, but
    /// shown, since a link makes one file serve under two names.
    pub links: Vec<String>,
    pub summary: Summary,
}

#[derive(Debug, Serialize)]
pub struct EntryReport {
    pub name: String,
    /// The entry's folder (`/` for the root).
    pub folder: String,
    /// The `.gpg-id` that governs it, if any.
    pub gpg_id: Option<String>,
    /// Who the file is encrypted to, by name, from its PKESK packets.
    pub readers: Vec<String>,
    /// Who its `.gpg-id` says should read it.
    pub expected: Vec<String>,
    pub problems: Vec<String>,
    /// Former members who could decrypt a version with the current content.
    pub rotate: Vec<String>,
    pub last_changed: Option<LastChanged>,
}

#[derive(Debug, Serialize, Clone)]
pub struct LastChanged {
    pub commit: String,
    pub author: String,
    /// RFC 3339.
    pub date: String,
}

#[derive(Debug, Serialize)]
pub struct MemberReport {
    pub name: String,
    pub fingerprint: String,
    pub folders: Vec<String>,
    /// Entries encrypted to this member now (from the ciphertexts).
    pub entries_readable: usize,
    pub expires: Option<String>,
    pub warnings: Vec<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct FormerReport {
    pub name: String,
    pub fingerprint: String,
    pub removed: String,
    pub entries_to_rotate: usize,
}

#[derive(Debug, Serialize, Default)]
pub struct Summary {
    pub entries: usize,
    pub folders: usize,
    pub members: usize,
    pub problems: usize,
    pub warnings: usize,
    pub entries_to_rotate: usize,
}

impl Audit {
    /// Whether anything needs attention (problems or entries to rotate).
    pub fn needs_attention(&self) -> bool {
        self.summary.problems > 0 || self.summary.entries_to_rotate > 0
    }
}

/// What to report on.
#[derive(Default)]
pub struct Filter {
    /// Only the entries this member can read now, and only this member.
    pub member: Option<MemberName>,
    /// Only entries in this folder (and below).
    pub folder: Option<String>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Member(String),
    Former(String),
    Unknown(KeyId),
    Anonymous,
}

impl Who {
    fn label(&self) -> String {
        match self {
            Who::Member(n) | Who::Former(n) => n.clone(),
            Who::Unknown(id) => format!("unknown ({id})"),
            Who::Anonymous => "anonymous recipient".into(),
        }
    }
}

/// Whether a commit only re-encrypted (same plaintexts, new recipients): vault's own (its
/// `Vault-Action` trailer, read from the trailer block by git's rules only), pass's and gopass's
/// re-encryption commits (by their subject lines).
pub fn is_reencryption(message: &str) -> bool {
    let vault = trailers(message).iter().any(|(k, v)| {
        k == "Vault-Action" && matches!(v.as_str(), "add-member" | "remove-member" | "reencrypt")
    });
    let subject = message.lines().next().unwrap_or("");
    vault
        || subject.starts_with("Reencrypt password store using new GPG id")
        || subject.contains("Re-encrypt Store for Recipient")
        || subject.contains("Re-encrypted Store for Recipient")
}

const SOON: Duration = Duration::from_secs(30 * 24 * 3600);

/// Builds the audit of a store's HEAD.
///
/// # Errors
/// Git errors reading objects or history.
pub fn audit(vault: &Snapshot, filter: &Filter) -> Result<Audit> {
    let layout = vault.layout();
    let objects = Objects::open(vault.root())?;

    // Key id -> who.
    let mut who: HashMap<KeyId, Who> = HashMap::new();
    let mut former_ids: HashMap<KeyId, String> = HashMap::new();
    for f in vault.roster().former() {
        let mut ids: Vec<KeyId> = f
            .encryption_keys
            .iter()
            .filter_map(|k| KeyId::parse(k))
            .collect();
        ids.push(f.fingerprint.key_id());
        for id in ids {
            who.insert(id, Who::Former(f.name.to_string()));
            former_ids.insert(id, f.name.to_string());
        }
    }
    // Key ids of members' keys that can no longer be encrypted to (revoked or expired
    // subkeys) -> the member, when the member has current ones: an entry they read only through
    // such a key is one they cannot read with their current key.
    let mut stale: HashMap<KeyId, String> = HashMap::new();
    for (fpr, key) in vault.keys() {
        let current = key.encryption_key_ids();
        for id in key.all_key_ids() {
            who.insert(*id, Who::Member(vault.display_name(*fpr)));
            if !current.is_empty() && !current.contains(id) {
                stale.insert(*id, vault.display_name(*fpr));
            }
        }
    }
    let name_of = |fpr: &Fingerprint| vault.display_name(*fpr);

    // Which entries are in the report.
    let in_folder = |path: &str| match &filter.folder {
        None => true,
        Some(f) if f.is_empty() => true,
        Some(f) => path.starts_with(&format!("{f}/")),
    };
    let mut reports = Vec::new();
    let mut paths: HashMap<String, usize> = HashMap::new();
    let mut readable: BTreeMap<String, usize> = BTreeMap::new();
    // Reading and parsing the ciphertexts is the bulk of the work: spread it over the cores.
    type Parsed = std::result::Result<
        std::result::Result<(Vec<Option<KeyId>>, usize, bool), String>,
        crate::Error,
    >;
    let selected: Vec<&crate::store::Entry> = layout
        .entries
        .iter()
        .filter(|e| in_folder(&e.path))
        .collect();
    let root = vault.root();
    let parsed: Vec<Parsed> = {
        use rayon::prelude::*;
        selected
            .par_iter()
            .map_init(
                || Objects::open(root),
                |objects, e| {
                    let objects = Objects::opened(objects)?;
                    objects.read(e.blob).map(|b| {
                        Envelope::parse(&b).map(|env| {
                            (
                                env.readers(),
                                env.password_session_keys(),
                                env.is_seipd_v1(),
                            )
                        })
                    })
                },
            )
            .collect()
    };
    for (e, parsed) in selected.into_iter().zip(parsed) {
        let expected_fprs = e
            .governed_by
            .as_ref()
            .map(|g| vault.recipients()[g].clone())
            .unwrap_or_default();
        let expected: Vec<String> = expected_fprs.iter().map(name_of).collect();
        let mut problems = Vec::new();
        let mut readers: BTreeSet<Who> = BTreeSet::new();
        // Members, and whether a PKESK is for one of their current encryption subkeys.
        let mut current_reader: BTreeMap<String, bool> = BTreeMap::new();
        match parsed {
            Ok(Ok((ids, skesks, v1))) => {
                for id in ids.iter().flatten() {
                    if let Some(Who::Member(n)) = who.get(id) {
                        let now = current_reader.entry(n.clone()).or_default();
                        *now |= !stale.contains_key(id);
                    }
                }
                for r in ids {
                    readers.insert(match r {
                        Some(id) => who.get(&id).cloned().unwrap_or(Who::Unknown(id)),
                        None => Who::Anonymous,
                    });
                }
                if skesks > 0 {
                    problems.push("it can also be decrypted with a password".into());
                }
                if !v1 {
                    problems.push(
                        "its encrypted data is not SEIPD v1: GnuPG 2.2 and pass may not read it"
                            .into(),
                    );
                }
            }
            Ok(Err(why)) => problems.push(format!("not a readable OpenPGP message: {why}")),
            Err(err) => problems.push(format!("cannot be read from git: {err}")),
        }
        if e.governed_by.is_none() {
            problems.push("it is outside any .gpg-id".into());
        }
        let gpg_id = e
            .governed_by
            .as_deref()
            .map(|g| escape(&gpg_id_path(g)).into_owned());
        for r in &readers {
            match r {
                Who::Former(n) => problems.push(format!("former member {n} can read it")),
                Who::Unknown(id) => {
                    problems.push(format!("it is encrypted to an unknown key {id}"))
                }
                Who::Anonymous => problems.push(
                    "its recipients are hidden (written with gpg --throw-keyids): vault cannot \
                     tell who can read it"
                        .into(),
                ),
                Who::Member(n) if e.governed_by.is_some() && !expected.contains(n) => problems
                    .push(format!(
                        "{n} can read it but is not in {}",
                        gpg_id.as_deref().unwrap_or(".gpg-id")
                    )),
                Who::Member(_) => {}
            }
        }
        for (n, _) in current_reader.iter().filter(|(_, now)| !**now) {
            problems.push(format!(
                "{n} can read it only through a revoked or expired subkey, not with their current key"
            ));
        }
        let reader_names: Vec<String> = readers.iter().map(Who::label).collect();
        let parsed = problems
            .iter()
            .all(|p| !p.starts_with("not a readable") && !p.starts_with("cannot be read"));
        // With a hidden recipient, who cannot read it is unknown, not known to be anyone.
        let hidden = readers.contains(&Who::Anonymous);
        for n in expected.iter().filter(|_| parsed && !hidden) {
            if !readers.contains(&Who::Member(n.clone())) {
                problems.push(format!(
                    "{n} is in {} but cannot read it",
                    gpg_id.as_deref().unwrap_or(".gpg-id")
                ));
            }
        }
        if let Some(m) = &filter.member {
            if !readers.contains(&Who::Member(m.to_string())) {
                continue;
            }
        }
        for r in &readers {
            if let Who::Member(n) = r {
                *readable.entry(n.clone()).or_default() += 1;
            }
        }
        paths.insert(e.path.clone(), reports.len());
        reports.push(EntryReport {
            name: e.name.clone(),
            folder: show_folder(Layout::folder_of(&e.path)),
            gpg_id,
            readers: reader_names,
            expected,
            problems,
            rotate: Vec::new(),
            last_changed: None,
        });
    }

    history(vault, &objects, &paths, &former_ids, &mut reports)?;

    // Members.
    let member_filter = filter.member.as_ref().map(|m| m.to_string());
    let mut members = Vec::new();
    let mut fprs: Vec<(String, Fingerprint)> = vault
        .roster()
        .members()
        .map(|(n, f)| (n.to_string(), *f))
        .collect();
    fprs.extend(
        vault
            .unnamed_recipients()
            .into_iter()
            .map(|f| (f.to_string(), f)),
    );
    let now = SystemTime::now();
    for (name, fpr) in fprs {
        if member_filter.as_ref().is_some_and(|m| *m != name) {
            continue;
        }
        let key = vault.keys().get(&fpr);
        let mut warnings = Vec::new();
        let mut problems = Vec::new();
        match key {
            None => problems.push("its key is missing from .public-keys/".into()),
            Some(k) => {
                if let Some(p) = k.problem() {
                    problems.push(format!("its key: {p}"));
                } else if let Some(exp) = k.expiry() {
                    if exp < now + SOON {
                        warnings.push(format!("its key expires on {}", format_time(exp)));
                    }
                }
                if let Some(w) = k.weakness() {
                    problems.push(format!("weak key: {w}"));
                }
            }
        }
        members.push(MemberReport {
            entries_readable: readable.get(&name).copied().unwrap_or(0),
            folders: vault.folders_of(fpr),
            name,
            fingerprint: fpr.to_string(),
            expires: key.and_then(|k| k.expiry()).map(format_time),
            warnings,
            problems,
        });
    }

    let former_members: Vec<FormerReport> = vault
        .roster()
        .former()
        .iter()
        .map(|f| FormerReport {
            name: f.name.to_string(),
            fingerprint: f.fingerprint.to_string(),
            removed: f.removed.clone(),
            entries_to_rotate: reports
                .iter()
                .filter(|r| r.rotate.iter().any(|n| n == f.name.as_str()))
                .count(),
        })
        .collect();

    let mut store_problems: Vec<String> = vault
        .gpg_id_problems()
        .iter()
        .map(|e| e.to_string())
        .collect();
    if let Some(what) = vault.in_progress() {
        store_problems.push(format!(
            "{what} is in progress in the repository (read at HEAD {}): finish or abort it; vault \
             changes nothing until then",
            vault.head().short()
        ));
    }
    // pass hands each line of a `.gpg-id` to `gpg -r`, carriage return and all: a file written
    // on Windows reads fine here but stops pass from encrypting.
    for (folder, blob) in &layout.gpg_ids {
        if layout.gpg_id_links.contains_key(folder) {
            continue; // reported at the file it leads to
        }
        if objects.read(*blob).is_ok_and(|b| b.contains(&b'\r')) {
            store_problems.push(format!(
                "{} has Windows (CRLF) line ends: pass passes the carriage return to gpg and \
                 cannot encrypt with it; the next vault change to it writes LF (or run \
                 `sed -i 's/\\r$//'` on it and commit)",
                escape(&gpg_id_path(folder))
            ));
        }
    }
    for s in &layout.skipped {
        store_problems.push(format!(
            "{}: {}; vault cannot read it",
            escape(&s.path),
            s.why
        ));
    }
    for f in &layout.foreign {
        store_problems.push(format!("{}: {}", escape(&f.path), f.why));
    }
    for t in &layout.temporaries {
        store_problems.push(format!(
            "{} is named like vault's own temporaries, which are never committed: every change \
             refuses until it is removed (`git rm`)",
            escape(t)
        ));
    }
    let links = layout
        .links
        .iter()
        .map(|(from, to)| format!("{} -> {}", escape(from), escape(to)))
        .collect();

    let summary = Summary {
        entries: reports.len(),
        folders: reports
            .iter()
            .map(|r| &r.folder)
            .collect::<BTreeSet<_>>()
            .len(),
        members: members.len(),
        problems: reports.iter().map(|r| r.problems.len()).sum::<usize>()
            + members.iter().map(|m| m.problems.len()).sum::<usize>()
            + store_problems.len(),
        warnings: members.iter().map(|m| m.warnings.len()).sum(),
        entries_to_rotate: reports.iter().filter(|r| !r.rotate.is_empty()).count(),
    };
    Ok(Audit {
        entries: reports,
        members,
        former_members,
        store_problems,
        links,
        summary,
    })
}

/// Fills `last_changed` and `rotate` with one walk of the history.
fn history(
    vault: &Snapshot,
    objects: &Objects,
    paths: &HashMap<String, usize>,
    former_ids: &HashMap<KeyId, String>,
    reports: &mut [EntryReport],
) -> Result<()> {
    let mut open: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    if open.is_empty() {
        return Ok(());
    }
    let mut rotate: Vec<BTreeSet<String>> = vec![BTreeSet::new(); reports.len()];
    let mut visit = |commit: &CommitInfo, changes: &Changes| -> Result<bool> {
        let reencryption = is_reencryption(&commit.message);
        for (path, blob) in changes {
            if !open.contains(path.as_str()) {
                continue;
            }
            let i = paths[path];
            if let Some(blob) = blob {
                if !former_ids.is_empty() {
                    // A version with the current content: who could decrypt it?
                    if let Ok(Ok(env)) = objects
                        .read(*blob)
                        .map(|b| Envelope::parse(&b).map(|e| e.readers()))
                    {
                        for id in env.into_iter().flatten() {
                            if let Some(name) = former_ids.get(&id) {
                                rotate[i].insert(name.clone());
                            }
                        }
                    }
                }
            }
            if !reencryption {
                reports[i].last_changed = Some(LastChanged {
                    commit: commit.id.short(),
                    author: commit.author.clone(),
                    date: format_unix(commit.time),
                });
                open.remove(path.as_str());
            }
        }
        Ok(!open.is_empty())
    };
    vault.repo().walk_changes(
        vault.head(),
        &|p| entry_name(p).is_some() && paths.contains_key(p),
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
