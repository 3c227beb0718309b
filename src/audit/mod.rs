//! `vault audit`: every credential, who can actually read it, and what needs attention, read from
//! the ciphertexts (PKESK packets) and the git history. Nothing is decrypted and no secret key is
//! needed, unless `--decrypt` asks for it.
//!
//! The history is walked once, newest first, through every parent, following each entry under
//! every name it had (renames by pass, git or vault). A former member (or a compromised key) who
//! could decrypt a version whose content is still the current one (re-encryptions and renames
//! keep it) means the entry must be rotated. One who could decrypt only older content leaves it
//! "changed since, not verified": `--decrypt` compares the passwords (first lines) in memory and
//! decides, and also looks for empty, weak and reused passwords.

mod history;
mod readers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use history::history;
pub use history::is_reencryption;
pub use readers::former_ids;
use readers::{judge, parse, Names, Parsed, Verdict, Who};

use crate::error::Result;
use crate::git::Objects;
use crate::snapshot::{expiry_warning, ReadmeStatus, Snapshot};
use crate::store::roster::Roster;
use crate::store::{gpg_id_path, show_folder, Entry, Layout, MemberName};
use crate::text::{escape, format_time};

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
    /// With `--decrypt`: entries the operator could not decrypt, so their passwords were not
    /// checked (escaped names).
    pub not_decrypted: Vec<String>,
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
    /// Former members who could decrypt a version with the current content (renames and
    /// re-encryptions keep it).
    pub rotate: Vec<String>,
    /// Former members who could decrypt only older content of it: the content changed since,
    /// but whether the password (its first line) did is not verified (`--decrypt` does).
    pub changed_since: Vec<String>,
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
    /// Warn of member keys that expire within this time.
    pub expiry_warning: Duration,
    /// Entries whose content has not changed for longer than this are a problem (`--max-age`).
    pub max_age: Option<Duration>,
}

/// Builds the audit of a store's HEAD: the entries (in parallel, from their packets), one walk
/// of history for rotation and last changes, then members, former members and store problems.
///
/// # Errors
/// Git errors reading objects or history.
pub fn audit(
    vault: &Snapshot,
    filter: &Filter,
    mut decrypt: Option<&mut crate::crypto::Identity>,
) -> Result<Audit> {
    let objects = Objects::open(vault.root())?;
    let names = Names::of(vault);
    let Entries {
        mut entries,
        paths,
        readable,
    } = entry_reports(vault, &names, filter);
    let unverified = history(vault, &objects, &paths, &names.former, &mut entries)?;
    // What the README shows is the rotation rule without decryption (any clone can tell).
    let readme_rotate: BTreeMap<String, Vec<String>> = entries
        .iter()
        .filter(|r| !r.rotate.is_empty())
        .map(|r| (r.name.clone(), r.rotate.clone()))
        .collect();
    let mut not_decrypted = Vec::new();
    if let Some(identity) = &mut decrypt {
        verify_changed(vault, &objects, identity, unverified, &mut entries)?;
        not_decrypted = hygiene(vault, &objects, identity, &mut entries);
    }
    if let Some(max) = filter.max_age {
        too_old(&mut entries, max);
    }
    let members = member_reports(vault, filter, &readable);
    let former_members = vault
        .roster()
        .former()
        .iter()
        .map(|f| FormerReport {
            name: f.name.to_string(),
            fingerprint: f.fingerprint.to_string(),
            removed: f.removed.clone(),
            entries_to_rotate: entries
                .iter()
                .filter(|r| r.rotate.iter().any(|n| n == f.name.as_str()))
                .count(),
        })
        .collect();
    let mut store_problems = store_problems(vault, &objects);
    if filter.member.is_none()
        && filter.folder.is_none()
        && vault.readme_status(&readme_rotate)? == ReadmeStatus::Stale
    {
        store_problems.push(
            "README.md (generated by vault) is out of date: `vault readme` refreshes it".into(),
        );
    }
    let links = vault
        .layout()
        .links
        .iter()
        .map(|(from, to)| format!("{} -> {}", escape(from), escape(to)))
        .collect();
    let summary = Summary {
        entries: entries.len(),
        folders: entries
            .iter()
            .map(|r| &r.folder)
            .collect::<BTreeSet<_>>()
            .len(),
        members: members.len(),
        problems: entries.iter().map(|r| r.problems.len()).sum::<usize>()
            + members.iter().map(|m| m.problems.len()).sum::<usize>()
            + store_problems.len(),
        warnings: members.iter().map(|m| m.warnings.len()).sum::<usize>()
            + entries
                .iter()
                .filter(|r| !r.changed_since.is_empty())
                .count(),
        entries_to_rotate: entries.iter().filter(|r| !r.rotate.is_empty()).count(),
    };
    Ok(Audit {
        entries,
        members,
        former_members,
        store_problems,
        links,
        not_decrypted,
        summary,
    })
}

/// `vault audit --decrypt`: for each entry whose content changed since a former member could
/// read an older version, decrypts both in memory and compares their passwords (first lines).
/// The same password: rotate (a notes-only edit, or the same password written again); another:
/// rotated, the flag goes. Decrypted text is compared and dropped (zeroized), never shown.
///
/// # Errors
/// Git errors reading the versions. A version the operator cannot decrypt stays unverified.
fn verify_changed(
    vault: &Snapshot,
    objects: &Objects,
    identity: &mut crate::crypto::Identity,
    unverified: Vec<history::Unverified>,
    entries: &mut [EntryReport],
) -> Result<()> {
    let mut password = |blob| first_line(objects, identity, blob);
    let current = current_blobs(vault);
    let mut now: HashMap<usize, Option<crate::secret::Secret>> = HashMap::new();
    // (entry, former member) -> (some old version has the same password, some could not be
    // decrypted).
    let mut decided: HashMap<(usize, String), (bool, bool)> = HashMap::new();
    for u in unverified {
        let Some(head) = current.get(entries[u.entry].name.as_str()).copied() else {
            continue;
        };
        let head = now.entry(u.entry).or_insert_with(|| password(head));
        let verdict = decided.entry((u.entry, u.who)).or_default();
        match (head.as_ref(), password(u.blob)) {
            (Some(head), Some(old)) => verdict.0 |= head.expose() == old.expose(),
            _ => verdict.1 = true, // stays "changed since, not verified"
        }
    }
    for ((entry, who), (same, unknown)) in decided {
        let r = &mut entries[entry];
        if same {
            r.changed_since.retain(|w| *w != who);
            if !r.rotate.contains(&who) {
                r.rotate.push(who);
                r.rotate.sort();
            }
        } else if !unknown {
            r.changed_since.retain(|w| *w != who);
        }
    }
    Ok(())
}

/// Each entry's blob at HEAD, by name.
fn current_blobs(vault: &Snapshot) -> HashMap<&str, crate::git::BlobId> {
    vault
        .layout()
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.blob))
        .collect()
}

/// The first line of the entry version `blob`, decrypted in memory, if the operator can.
fn first_line(
    objects: &Objects,
    identity: &mut crate::crypto::Identity,
    blob: crate::git::BlobId,
) -> Option<crate::secret::Secret> {
    let plain = identity.open(&objects.read(blob).ok()?).ok()??;
    let first = plain.expose().split(|b| *b == b'\n').next().unwrap_or(&[]);
    Some(crate::secret::Secret::new(zeroize::Zeroizing::new(
        first.to_vec(),
    )))
}

/// `--decrypt`'s look at the passwords (first lines) of the reported entries, in memory: empty,
/// weak (zxcvbn score 2 of 4 or less, the entry's own name counted as a guess), or the same in
/// several entries. Findings name entries only, never a secret. Returns the entries it could not
/// decrypt.
fn hygiene(
    vault: &Snapshot,
    objects: &Objects,
    identity: &mut crate::crypto::Identity,
    entries: &mut [EntryReport],
) -> Vec<String> {
    let current = current_blobs(vault);
    let mut passwords: Vec<(usize, crate::secret::Secret)> = Vec::new();
    let mut not_decrypted = Vec::new();
    for (i, r) in entries.iter_mut().enumerate() {
        let Some(p) = current
            .get(r.name.as_str())
            .and_then(|b| first_line(objects, identity, *b))
        else {
            not_decrypted.push(escape(&r.name).into_owned());
            continue;
        };
        if p.is_empty() {
            r.problems.push("its password (first line) is empty".into());
        } else {
            let text = String::from_utf8_lossy(p.expose());
            let hints: Vec<&str> = r.name.split('/').collect();
            let score = zxcvbn::zxcvbn(&text, &hints).score() as u8;
            if score <= 2 {
                r.problems.push(format!(
                    "weak password (zxcvbn score {score} of 4): generate one with `vault generate --in-place`"
                ));
            }
        }
        passwords.push((i, p));
    }
    // The same password in several entries: sorted, equal ones are neighbours.
    passwords.sort_by(|a, b| a.1.expose().cmp(b.1.expose()));
    for group in passwords.chunk_by(|a, b| a.1.expose() == b.1.expose()) {
        if group.len() < 2 || group[0].1.is_empty() {
            continue;
        }
        for (i, _) in group {
            let others: Vec<String> = group
                .iter()
                .filter(|(j, _)| j != i)
                .map(|(j, _)| escape(&entries[*j].name).into_owned())
                .collect();
            entries[*i]
                .problems
                .push(format!("same password as {}", others.join(", ")));
        }
    }
    not_decrypted
}

/// `--max-age`: entries whose content last changed longer than `max` ago.
fn too_old(entries: &mut [EntryReport], max: Duration) {
    let now = chrono::Utc::now();
    for r in entries {
        let Some(changed) = r
            .last_changed
            .as_ref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c.date).ok())
        else {
            continue;
        };
        let age = now.signed_duration_since(changed);
        if age.num_seconds() > max.as_secs() as i64 {
            r.problems.push(format!(
                "unchanged for {} days (more than --max-age {} days)",
                age.num_days(),
                max.as_secs() / 86_400
            ));
        }
    }
}

/// The entries of `vault` to rotate if its former members were those of `roster` (a change
/// about to retire someone passes the roster it will commit): entry name -> who could decrypt a
/// version with its current content. The same rule and walk as [`audit`]'s.
///
/// # Errors
/// Git errors reading objects or history.
pub fn rotation(vault: &Snapshot, roster: &Roster) -> Result<BTreeMap<String, Vec<String>>> {
    let former = former_ids(roster);
    if former.is_empty() {
        return Ok(BTreeMap::new()); // nobody left: nothing to walk history for
    }
    let objects = Objects::open(vault.root())?;
    let entries = &vault.layout().entries;
    let mut reports: Vec<EntryReport> = entries
        .iter()
        .map(|e| EntryReport {
            name: e.name.clone(),
            folder: String::new(),
            gpg_id: None,
            readers: Vec::new(),
            expected: Vec::new(),
            problems: Vec::new(),
            rotate: Vec::new(),
            changed_since: Vec::new(),
            last_changed: None,
        })
        .collect();
    let paths = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    history(vault, &objects, &paths, &former, &mut reports)?;
    Ok(reports
        .into_iter()
        .filter(|r| !r.rotate.is_empty())
        .map(|r| (r.name, r.rotate))
        .collect())
}

/// The entries in the report, before the history walk.
struct Entries {
    entries: Vec<EntryReport>,
    /// File path -> index in `entries`.
    paths: HashMap<String, usize>,
    /// Member name -> how many reported entries they read.
    readable: BTreeMap<String, usize>,
}

/// The report of every entry the filter selects (without history yet). Reading and parsing the
/// ciphertexts is the bulk of the work: it is spread over the cores.
fn entry_reports(vault: &Snapshot, names: &Names, filter: &Filter) -> Entries {
    use rayon::prelude::*;
    let in_folder = |path: &str| match filter.folder.as_deref() {
        None | Some("") => true,
        Some(f) => path.starts_with(&format!("{f}/")),
    };
    let selected: Vec<&Entry> = vault
        .layout()
        .entries
        .iter()
        .filter(|e| in_folder(&e.path))
        .collect();
    let root = vault.root();
    let parsed: Vec<Parsed> = selected
        .par_iter()
        .map_init(|| Objects::open(root), |objects, e| parse(objects, e.blob))
        .collect();
    let mut reports = Vec::new();
    let mut paths = HashMap::new();
    let mut readable: BTreeMap<String, usize> = BTreeMap::new();
    for (e, parsed) in selected.into_iter().zip(parsed) {
        let expected: Vec<String> = e
            .governed_by
            .as_ref()
            .map(|g| vault.recipients()[g].as_slice())
            .unwrap_or_default()
            .iter()
            .map(|f| vault.display_name(*f))
            .collect();
        let gpg_id = e
            .governed_by
            .as_deref()
            .map(|g| escape(&gpg_id_path(g)).into_owned());
        let Verdict { readers, problems } = judge(names, parsed, &expected, gpg_id.as_deref());
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
            readers: readers.iter().map(Who::label).collect(),
            expected,
            problems,
            rotate: Vec::new(),
            changed_since: Vec::new(),
            last_changed: None,
        });
    }
    Entries {
        entries: reports,
        paths,
        readable,
    }
}

/// Members (named ones, then recipients with no name) with their folders, key expiry and key
/// problems; `readable` is how many reported entries each one reads.
fn member_reports(
    vault: &Snapshot,
    filter: &Filter,
    readable: &BTreeMap<String, usize>,
) -> Vec<MemberReport> {
    let named = vault.roster().members().map(|(n, f)| (n.to_string(), *f));
    let unnamed = vault
        .unnamed_recipients()
        .into_iter()
        .map(|f| (f.to_string(), f));
    let wanted = filter.member.as_ref().map(|m| m.to_string());
    named
        .chain(unnamed)
        .filter(|(name, _)| wanted.as_ref().is_none_or(|m| m == name))
        .map(|(name, fpr)| {
            let key = vault.keys().get(&fpr);
            let mut warnings = Vec::new();
            let mut problems = Vec::new();
            match key {
                None => problems.push("its key is missing from .public-keys/".into()),
                Some(k) => {
                    if let Some(p) = k.problem() {
                        problems.push(format!("its key: {p}"));
                    } else if let Some(w) = expiry_warning(k, &name, filter.expiry_warning) {
                        warnings.push(w);
                    }
                    if let Some(w) = k.weakness() {
                        problems.push(format!("weak key: {w}"));
                    }
                }
            }
            MemberReport {
                entries_readable: readable.get(&name).copied().unwrap_or(0),
                folders: vault.folders_of(fpr),
                name,
                fingerprint: fpr.to_string(),
                expires: key.and_then(|k| k.expiry()).map(format_time),
                warnings,
                problems,
            }
        })
        .collect()
}

/// Problems of the store itself: unusable `.gpg-id` files, an operation in progress, files vault
/// cannot read or does not own.
fn store_problems(vault: &Snapshot, objects: &Objects) -> Vec<String> {
    let layout = vault.layout();
    let mut problems: Vec<String> = vault
        .gpg_id_problems()
        .iter()
        .map(|e| e.to_string())
        .collect();
    if let Some(what) = vault.in_progress() {
        problems.push(format!(
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
            problems.push(format!(
                "{} has Windows (CRLF) line ends: pass passes the carriage return to gpg and \
                 cannot encrypt with it; the next vault change to it writes LF (or run \
                 `sed -i 's/\\r$//'` on it and commit)",
                escape(&gpg_id_path(folder))
            ));
        }
    }
    for s in &layout.skipped {
        problems.push(format!(
            "{}: {}; vault cannot read it",
            escape(&s.path),
            s.why
        ));
    }
    for f in &layout.foreign {
        problems.push(format!("{}: {}", escape(&f.path), f.why));
    }
    for t in &layout.temporaries {
        problems.push(format!(
            "{} is named like vault's own temporaries, which are never committed: every change \
             refuses until it is removed (`git rm`)",
            escape(t)
        ));
    }
    problems
}
