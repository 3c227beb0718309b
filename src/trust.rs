//! Who may change who can read the store: the per-clone trust anchor and `vault verify`.
//!
//! Anyone who can push to the team's remote can add a key to `.gpg-id`; the next honest
//! re-encryption would then hand them every credential. So each clone pins, locally (in
//! `.git/vault-anchor`, never in the repository), a commit and the fingerprints the user trusted
//! at that commit. From there, every commit on the first-parent line to HEAD that changes who can
//! read (`.gpg-id` files, `.public-keys/`, `.members.toml`) is checked: an addition must be
//! vouched for — the commit signed by a key that was a trusted member in its parent, or (stores
//! using pass's signing) a `.gpg-id.sig` by such a key. Trusted members who leave every `.gpg-id`
//! stop being trusted, so a removed member cannot vouch for anything later.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::crypto::{verify_detached, Fingerprint, MemberKey};
use crate::error::{Error, Result};
use crate::git::{trailers, write_file_durably, BlobId, CommitId, Repo};
use crate::snapshot::matching;
use crate::store::{
    gpg_id_path, is_membership_file, parse_gpg_id, Layout, Spec, MEMBERS, PUBLIC_KEYS,
};
use crate::text::{escape, format_unix};

const ANCHOR_FILE: &str = "vault-anchor";

/// The commit and the fingerprints this clone trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub commit: CommitId,
    pub trusted: BTreeSet<Fingerprint>,
}

#[derive(Serialize, Deserialize)]
struct AnchorFile {
    commit: String,
    trusted: Vec<String>,
}

fn anchor_path(repo: &Repo) -> PathBuf {
    repo.git_dir().join(ANCHOR_FILE)
}

impl Anchor {
    /// This clone's anchor, if one was set.
    ///
    /// # Errors
    /// [`Error::Roster`] if the file is unreadable (naming it).
    pub fn load(repo: &Repo) -> Result<Option<Anchor>> {
        let path = anchor_path(repo);
        let _ = fs::remove_file(path.with_extension("tmp")); // a save cut short
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let bad = |problem: &str| Error::BadFile {
            file: path.display().to_string(),
            problem: problem.into(),
        };
        let file: AnchorFile =
            toml::from_str(&text).map_err(|_| bad("it is not a valid trust anchor"))?;
        let commit =
            CommitId::parse(&file.commit).ok_or_else(|| bad("its commit id is invalid"))?;
        let trusted = file
            .trusted
            .iter()
            .map(|f| Fingerprint::parse(f).ok_or_else(|| bad("a fingerprint is invalid")))
            .collect::<Result<_>>()?;
        Ok(Some(Anchor { commit, trusted }))
    }

    /// Saves this clone's anchor durably (`.git/vault-anchor`, see
    /// [`crate::git::write_file_durably`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, repo: &Repo) -> Result<()> {
        let file = AnchorFile {
            commit: self.commit.to_string(),
            trusted: self.trusted.iter().map(|f| f.to_string()).collect(),
        };
        let text = format!(
            "# vault's trust anchor for this clone (local, not part of the store).\n{}",
            toml::to_string(&file).expect("the anchor always serialises")
        );
        write_file_durably(&anchor_path(repo), text.as_bytes())
    }
}

/// One change of who can read, found by [`verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub commit: String,
    pub author: String,
    pub date: String,
    /// What the commit changed, for people.
    pub change: String,
    /// Who vouched for it (signer or `.gpg-id.sig` key), if anyone trusted did.
    pub vouched_by: Option<String>,
    /// The recipient an unvouched addition concerns (to clear it if vouched for later).
    #[serde(skip)]
    subject: Option<String>,
}

/// The outcome of [`verify`].
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Unvouched additions of recipients or keys, bad `.gpg-id.sig` files, a broken chain.
    pub violations: Vec<Finding>,
    /// Unvouched removals and edits.
    pub warnings: Vec<Finding>,
    /// Additions vouched for by a trusted member.
    pub vouched: Vec<Finding>,
    /// Commits that changed who can read, and were checked.
    pub checked: usize,
    /// Recipients at HEAD whose addition was not vouched for, with the commit that added them.
    pub unverified: BTreeMap<String, String>,
    /// Fingerprints trusted at HEAD.
    #[serde(skip)]
    pub trusted: BTreeSet<Fingerprint>,
}

/// Who reads what at one commit.
struct State {
    /// (folder, recipient): recipient is a fingerprint, or `line: TEXT` for an unresolved line.
    pairs: BTreeSet<(String, String)>,
    keys: BTreeMap<Fingerprint, MemberKey>,
    key_files: BTreeMap<String, BlobId>,
    members: Option<BlobId>,
    gpg_ids: BTreeMap<String, BlobId>,
    signatures: BTreeMap<String, BlobId>,
}

impl State {
    fn recipients(&self) -> BTreeSet<&str> {
        self.pairs.iter().map(|(_, r)| r.as_str()).collect()
    }
}

struct Reader<'r> {
    repo: &'r Repo,
    keys: HashMap<BlobId, Option<MemberKey>>,
}

impl Reader<'_> {
    fn state(&mut self, commit: CommitId) -> Result<State> {
        let layout = Layout::new(self.repo.files(commit)?);
        let mut keys = BTreeMap::new();
        for blob in layout.public_keys.values() {
            if !self.keys.contains_key(blob) {
                let parsed = MemberKey::parse(&self.repo.read(*blob)?).ok();
                self.keys.insert(*blob, parsed);
            }
            if let Some(Some(k)) = self.keys.get(blob) {
                keys.insert(k.fingerprint(), k.clone());
            }
        }
        let mut pairs = BTreeSet::new();
        for (folder, blob) in &layout.gpg_ids {
            let file = gpg_id_path(folder);
            let bytes = self.repo.read(*blob)?;
            match parse_gpg_id(&file, &bytes) {
                Ok(lines) => {
                    for line in lines {
                        let who = match (matching(&line.spec, keys.values()), &line.spec) {
                            (Ok(one), _) => one.to_string(),
                            (Err(_), Spec::Fingerprint(f)) => f.to_string(),
                            _ => format!("line: {}", line.text),
                        };
                        pairs.insert((folder.clone(), who));
                    }
                }
                Err(_) => {
                    pairs.insert((folder.clone(), format!("unreadable {file}")));
                }
            }
        }
        Ok(State {
            pairs,
            keys,
            key_files: layout.public_keys,
            members: layout.members,
            gpg_ids: layout.gpg_ids,
            signatures: layout.signatures,
        })
    }
}

/// The fingerprint in a `vault add-member` commit's `Vault-Member: name <FPR>` trailer. Only the
/// message's trailer block counts, parsed by git's rules ([`trailers`]), and only when it holds
/// exactly one `Vault-Action: add-member` and exactly one `Vault-Member`: a line that merely looks
/// like a trailer elsewhere (in a body that quotes a user id, say) never vouches for anyone.
fn vouched_member(message: &str) -> Option<String> {
    let trailers = trailers(message);
    let values = |key: &str| -> Vec<&str> {
        trailers
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    if values("Vault-Action") != ["add-member"] {
        return None;
    }
    let [member] = values("Vault-Member")[..] else {
        return None;
    };
    let fpr = member.rsplit_once('<')?.1.strip_suffix('>')?;
    Fingerprint::parse(fpr).map(|f| f.to_string())
}

/// A recipient for people: its fingerprint and first user id (escaped), or the `.gpg-id` text.
fn describe(r: &str, keys: &BTreeMap<Fingerprint, MemberKey>) -> String {
    match Fingerprint::parse(r).and_then(|f| keys.get(&f)) {
        Some(k) => format!(
            "{r} ({})",
            k.user_ids()
                .first()
                .map(String::as_str)
                .unwrap_or("no user id")
        ),
        None => escape(r).into_owned(),
    }
}

/// A `.gpg-id` path for people (folder names come from the tree).
fn shown_gpg_id(folder: &str) -> String {
    escape(&gpg_id_path(folder)).into_owned()
}

/// Checks every membership change from the anchor to `head` (see the module documentation).
///
/// # Errors
/// Git errors reading history.
pub fn verify(repo: &Repo, anchor: &Anchor, head: CommitId) -> Result<Verification> {
    let mut out = Verification {
        trusted: anchor.trusted.clone(),
        ..Default::default()
    };
    let Some(chain) = repo.chain(anchor.commit, head)? else {
        out.violations.push(Finding {
            commit: head.short(),
            author: String::new(),
            date: String::new(),
            change: format!(
                "HEAD does not descend from the trusted commit {} (history was rewritten, or this is another store)",
                anchor.commit.short()
            ),
            vouched_by: None,
            subject: None,
        });
        return Ok(out);
    };
    let mut reader = Reader {
        repo,
        keys: HashMap::new(),
    };
    let mut prev = reader.state(anchor.commit)?;
    let mut trusted: BTreeSet<String> = anchor.trusted.iter().map(|f| f.to_string()).collect();
    let mut added_by: BTreeMap<String, String> = BTreeMap::new();

    for (info, parent) in &chain {
        // A symbolic link anywhere can change which `.gpg-id` a folder reads (pass follows
        // them, and so does vault): such a commit is checked too.
        if !repo
            .changed_paths(info.id, *parent)?
            .iter()
            .any(|(p, is_link)| *is_link || is_membership_file(p))
        {
            continue;
        }
        let state = reader.state(info.id)?;
        out.checked += 1;
        let finding = |change: String, vouched_by: Option<String>| Finding {
            commit: info.id.short(),
            author: info.author.clone(),
            date: format_unix(info.time),
            change,
            vouched_by,
            subject: None,
        };

        // Who vouches: a trusted member's signature on the commit ...
        let mut certs: Vec<&MemberKey> = Vec::new();
        for t in &trusted {
            if let Some(f) = Fingerprint::parse(t) {
                if let Some(k) = prev.keys.get(&f).or(state.keys.get(&f)) {
                    certs.push(k);
                }
            }
        }
        let signer = repo
            .signature(info.id)
            .and_then(|(sig, data)| verify_detached(&sig, &data, &certs));
        // ... or, per folder, a .gpg-id.sig by one.
        let sig_voucher = |folder: &str| -> Option<Fingerprint> {
            let path = format!("{}.sig", gpg_id_path(folder));
            let sig = repo.read(*state.signatures.get(&path)?).ok()?;
            let data = repo.read(*state.gpg_ids.get(folder)?).ok()?;
            verify_detached(&sig, &data, &certs)
        };
        let name_of = |f: Fingerprint| {
            prev.keys
                .get(&f)
                .or(state.keys.get(&f))
                .and_then(|k| k.user_ids().first().cloned())
                .unwrap_or_else(|| f.to_string())
        };

        // A signed `vault add-member` commit vouches for its member even if the recipient was
        // already there (added earlier by hand, unvouched).
        if let Some(v) = signer {
            if let Some(fpr) = vouched_member(&info.message) {
                if !trusted.contains(&fpr) && state.recipients().contains(fpr.as_str()) {
                    out.vouched.push(finding(
                        format!("vouches for {}", describe(&fpr, &state.keys)),
                        Some(name_of(v)),
                    ));
                    trusted.insert(fpr.clone());
                    added_by.remove(&fpr);
                }
            }
        }
        let added: Vec<&(String, String)> = state.pairs.difference(&prev.pairs).collect();
        let removed: Vec<&(String, String)> = prev.pairs.difference(&state.pairs).collect();
        for (folder, r) in &added {
            let voucher = signer.or_else(|| sig_voucher(folder));
            let what = format!(
                "adds {} to {}",
                describe(r, &state.keys),
                shown_gpg_id(folder)
            );
            match voucher {
                Some(v) => {
                    trusted.insert(r.clone());
                    out.vouched.push(finding(what, Some(name_of(v))));
                }
                // Someone this clone already trusts, given one more folder without a signature:
                // nobody new can read, but the folder is wider than its signers decided.
                None if trusted.contains(r) => out.warnings.push(finding(
                    format!("{what} without a trusted signature (already a trusted member)"),
                    None,
                )),
                None => {
                    added_by.entry(r.clone()).or_insert_with(|| info.id.short());
                    out.violations.push(Finding {
                        subject: Some(r.clone()),
                        ..finding(what, None)
                    });
                }
            }
        }
        for path in state
            .key_files
            .keys()
            .filter(|k| !prev.key_files.contains_key(*k))
        {
            if signer.is_none() {
                out.violations.push(Finding {
                    subject: Some(path.clone()),
                    ..finding(format!("adds key {PUBLIC_KEYS}/{}", escape(path)), None)
                });
            }
        }
        if signer.is_none() {
            for (folder, r) in &removed {
                out.warnings.push(finding(
                    format!(
                        "removes {} from {} without a trusted signature",
                        describe(r, &prev.keys),
                        shown_gpg_id(folder)
                    ),
                    None,
                ));
            }
            for path in prev
                .key_files
                .keys()
                .filter(|k| !state.key_files.contains_key(*k))
            {
                out.warnings.push(finding(
                    format!(
                        "removes key {PUBLIC_KEYS}/{} without a trusted signature",
                        escape(path)
                    ),
                    None,
                ));
            }
            let changed_keys = state
                .key_files
                .iter()
                .filter(|(k, b)| prev.key_files.get(*k).is_some_and(|old| old != *b));
            for (path, _) in changed_keys {
                out.warnings.push(finding(
                    format!(
                        "changes key {PUBLIC_KEYS}/{} without a trusted signature",
                        escape(path)
                    ),
                    None,
                ));
            }
            if state.members != prev.members {
                out.warnings.push(finding(
                    format!("edits {MEMBERS} without a trusted signature"),
                    None,
                ));
            }
        }
        // A member who leaves every .gpg-id is no longer trusted to vouch.
        let now: BTreeSet<&str> = state.recipients();
        trusted.retain(|t| now.contains(t.as_str()));
        prev = state;
    }

    // pass's signed recipients must verify against a trusted member at HEAD.
    let certs: Vec<&MemberKey> = trusted
        .iter()
        .filter_map(|t| Fingerprint::parse(t).and_then(|f| prev.keys.get(&f)))
        .collect();
    for (path, sig) in &prev.signatures {
        let folder = path
            .strip_suffix(".gpg-id.sig")
            .map(|f| f.strip_suffix('/').unwrap_or(f))
            .unwrap_or(path);
        let ok = prev
            .gpg_ids
            .get(folder)
            .and_then(|g| verify_detached(&repo.read(*sig).ok()?, &repo.read(*g).ok()?, &certs))
            .is_some();
        if !ok {
            out.violations.push(Finding {
                commit: head.short(),
                author: String::new(),
                date: String::new(),
                change: format!(
                    "{} is not a valid signature of {} by a trusted member",
                    escape(path),
                    shown_gpg_id(folder)
                ),
                vouched_by: None,
                subject: None,
            });
        }
    }

    // An addition vouched for later (a trusted member re-added the key) is no longer a violation.
    let (cleared, violations): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut out.violations)
        .into_iter()
        .partition(|f| f.subject.as_ref().is_some_and(|r| trusted.contains(r)));
    out.violations = violations;
    out.warnings.extend(cleared.into_iter().map(|f| Finding {
        change: format!("{} (vouched for by a trusted member later)", f.change),
        ..f
    }));

    for r in prev.recipients() {
        if !trusted.contains(r) {
            let commit = added_by
                .get(r)
                .cloned()
                .unwrap_or_else(|| anchor.commit.short());
            out.unverified.insert(r.to_string(), commit);
        }
    }
    out.trusted = trusted
        .iter()
        .filter_map(|t| Fingerprint::parse(t))
        .collect();
    Ok(out)
}

/// The anchor for a clone that has none yet: HEAD, trusting every recipient at HEAD.
///
/// # Errors
/// Git errors.
pub fn anchor_at(repo: &Repo, head: CommitId) -> Result<Anchor> {
    let mut reader = Reader {
        repo,
        keys: HashMap::new(),
    };
    let state = reader.state(head)?;
    Ok(Anchor {
        commit: head,
        trusted: state
            .recipients()
            .into_iter()
            .filter_map(Fingerprint::parse)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0";
    const MALLORY: &str = "BADBADBADBADBADBADBADBADBADBADBADBADBAD0";

    #[test]
    fn only_the_trailer_block_vouches() {
        let honest = format!(
            "Add member carol (C0C0 …)\n\ncarol can now read /.\n\n\
             Vault-Action: add-member\nVault-Member: carol <{CAROL}>\nVault-Folder: /\n"
        );
        assert_eq!(vouched_member(&honest).as_deref(), Some(CAROL));
        // A user id that smuggled a line into the body (as before escaping) vouches for nobody.
        let forged = format!(
            "Add member carol (C0C0 …)\n\ncarol (Carol\nVault-Member: mallory <{MALLORY}>\n) \
             can now read /.\n\nVault-Action: add-member\nVault-Member: carol <{CAROL}>\n"
        );
        assert_eq!(vouched_member(&forged).as_deref(), Some(CAROL));
        let two = format!(
            "Add\n\nVault-Action: add-member\nVault-Member: mallory <{MALLORY}>\n\
             Vault-Member: carol <{CAROL}>\n"
        );
        assert_eq!(vouched_member(&two), None);
        let not_add =
            format!("Remove\n\nVault-Action: remove-member\nVault-Member: carol <{CAROL}>\n");
        assert_eq!(vouched_member(&not_add), None);
        let in_body = format!("Notes\n\nVault-Action: add-member\nVault-Member: m <{MALLORY}>\n\nSigned-off-by: x <x@y>\n");
        assert_eq!(vouched_member(&in_body), None);
    }
}
