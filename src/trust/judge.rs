//! The judge of one commit that changed who can read: which additions were vouched for, which
//! were not, and which removals and edits nobody trusted signed. Pure: the walk in
//! [`super::verify`] reads the states and the signatures, the judge only decides.

use std::collections::{BTreeMap, BTreeSet};

use super::state::State;
use super::{Finding, Verification};
use crate::crypto::{Fingerprint, MemberKey};
use crate::git::trailers;
use crate::store::{gpg_id_path, MEMBERS, PUBLIC_KEYS};
use crate::text::escape;

/// Who is trusted while the walk goes on, and where unvouched recipients came in.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Recipients (fingerprints, as text) trusted to read and to vouch for others.
    pub trusted: BTreeSet<String>,
    /// Unvouched recipient -> the full id of the commit that first added it.
    pub added_by: BTreeMap<String, String>,
    /// Full ids of commits whose changes a trusted member accepted (`vault verify --accept`):
    /// their violations are settled. Full ids: a short one can be ground to collide.
    pub accepted: BTreeSet<String>,
}

/// Who vouched for a commit: a trusted member's signature on the commit itself, and, per folder,
/// a `.gpg-id.sig` by one (pass's signing, `PASSWORD_STORE_SIGNING_KEY`).
#[derive(Debug, Default)]
pub(super) struct Vouchers {
    pub signer: Option<Fingerprint>,
    /// Folder -> the trusted key whose `.gpg-id.sig` verifies that folder's `.gpg-id`.
    pub folders: BTreeMap<String, Fingerprint>,
}

/// The commit being judged, as findings name it.
pub(super) struct Stamp<'a> {
    /// Full commit id (hex): what acceptances and the ledger match on.
    pub id: String,
    /// Short commit id, for people.
    pub commit: String,
    pub author: String,
    /// RFC 3339.
    pub date: String,
    pub message: &'a str,
}

impl Stamp<'_> {
    fn finding(&self, change: String, vouched_by: Option<String>) -> Finding {
        Finding {
            commit: self.commit.clone(),
            id: self.id.clone(),
            author: self.author.clone(),
            date: self.date.clone(),
            change,
            vouched_by,
            subject: None,
        }
    }
}

/// Judges one commit, going from `prev` (its first parent) to `state`, and records the findings
/// in `out` and the new trust in `ledger`:
/// - an added recipient or `.public-keys/` file needs a voucher, else it is a violation (an
///   already trusted member given one more folder is only a warning);
/// - a signed `vault add-member` commit vouches for its `Vault-Member` even if the recipient was
///   there before (added earlier by hand);
/// - removals and edits of keys or `.members.toml` that nobody trusted signed are warnings;
/// - a member who leaves every `.gpg-id` is no longer trusted.
pub(super) fn judge(
    out: &mut Verification,
    ledger: &mut Ledger,
    commit: &Stamp,
    (prev, state): (&State, &State),
    vouchers: &Vouchers,
) {
    let name_of = |f: Fingerprint| {
        prev.keys
            .get(&f)
            .or(state.keys.get(&f))
            .and_then(|k| k.user_ids().first().cloned())
            .unwrap_or_else(|| f.to_string())
    };
    let signer = vouchers.signer;

    // A signed `vault verify --accept COMMIT`: what COMMIT added is vouched for.
    if let Some(v) = signer {
        for accepted in accepted_commits(commit.message) {
            let short: String = accepted.chars().take(10).collect();
            let now = state.recipients();
            let added: Vec<String> = ledger
                .added_by
                .iter()
                .filter(|(_, c)| **c == accepted)
                .map(|(r, _)| r.clone())
                .collect();
            for r in added {
                ledger.added_by.remove(&r);
                if now.contains(r.as_str()) {
                    ledger.trusted.insert(r);
                }
            }
            out.vouched.push(commit.finding(
                format!("accepts the changes of commit {short}"),
                Some(name_of(v)),
            ));
            ledger.accepted.insert(accepted);
        }
    }
    if let (Some(v), Some(fpr)) = (signer, vouched_member(commit.message)) {
        if !ledger.trusted.contains(&fpr) && state.recipients().contains(fpr.as_str()) {
            out.vouched.push(commit.finding(
                format!("vouches for {}", describe(&fpr, &state.keys)),
                Some(name_of(v)),
            ));
            ledger.added_by.remove(&fpr);
            ledger.trusted.insert(fpr);
        }
    }
    for (folder, r) in state.pairs.difference(&prev.pairs) {
        let voucher = signer.or_else(|| vouchers.folders.get(folder).copied());
        let what = format!(
            "adds {} to {}",
            describe(r, &state.keys),
            shown_gpg_id(folder)
        );
        match voucher {
            Some(v) => {
                ledger.trusted.insert(r.clone());
                out.vouched.push(commit.finding(what, Some(name_of(v))));
            }
            // Someone this clone already trusts, given one more folder without a signature:
            // nobody new can read, but the folder is wider than its signers decided.
            None if ledger.trusted.contains(r) => out.warnings.push(commit.finding(
                format!("{what} without a trusted signature (already a trusted member)"),
                None,
            )),
            None => {
                ledger
                    .added_by
                    .entry(r.clone())
                    .or_insert_with(|| commit.id.clone());
                out.violations.push(Finding {
                    subject: Some(r.clone()),
                    ..commit.finding(what, None)
                });
            }
        }
    }
    if signer.is_none() {
        unsigned_changes(out, commit, prev, state);
    }
    // A member who leaves every .gpg-id is no longer trusted to vouch.
    let now = state.recipients();
    ledger.trusted.retain(|t| now.contains(t.as_str()));
}

/// What a commit nobody trusted signed changed besides additions of recipients: new key files
/// (violations), removed recipients and keys, changed keys, an edited `.members.toml` (warnings).
fn unsigned_changes(out: &mut Verification, commit: &Stamp, prev: &State, state: &State) {
    for path in state.key_files.keys() {
        if !prev.key_files.contains_key(path) {
            out.violations.push(Finding {
                subject: Some(path.clone()),
                ..commit.finding(format!("adds key {PUBLIC_KEYS}/{}", escape(path)), None)
            });
        }
    }
    let mut warn = |what: String| {
        out.warnings
            .push(commit.finding(format!("{what} without a trusted signature"), None))
    };
    for (folder, r) in prev.pairs.difference(&state.pairs) {
        warn(format!(
            "removes {} from {}",
            describe(r, &prev.keys),
            shown_gpg_id(folder)
        ));
    }
    for path in prev.key_files.keys() {
        if !state.key_files.contains_key(path) {
            warn(format!("removes key {PUBLIC_KEYS}/{}", escape(path)));
        }
    }
    for (path, blob) in &state.key_files {
        if prev.key_files.get(path).is_some_and(|old| old != blob) {
            warn(format!("changes key {PUBLIC_KEYS}/{}", escape(path)));
        }
    }
    if state.members != prev.members {
        warn(format!("edits {MEMBERS}"));
    }
}

/// The fingerprint in a `vault add-member` commit's `Vault-Member: name <FPR>` trailer. Only the
/// message's trailer block counts, parsed by git's rules ([`trailers`]), and only when it holds
/// exactly one `Vault-Action: add-member` and exactly one `Vault-Member`: a line that merely looks
/// like a trailer elsewhere (in a body that quotes a user id, say) never vouches for anyone.
pub(super) fn vouched_member(message: &str) -> Option<String> {
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

/// The commits a `vault verify --accept` commit accepts: the values of its `Vault-Accept`
/// trailers (full hex ids), when its trailer block says `Vault-Action: accept` (git's rules,
/// [`trailers`]). Empty for any other commit.
pub(super) fn accepted_commits(message: &str) -> Vec<String> {
    let trailers = trailers(message);
    if !trailers
        .iter()
        .any(|(k, v)| k == "Vault-Action" && v == "accept")
    {
        return Vec::new();
    }
    trailers
        .into_iter()
        .filter(|(k, v)| {
            k == "Vault-Accept" && v.len() == 40 && v.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|(_, v)| v.to_ascii_lowercase())
        .collect()
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
pub(super) fn shown_gpg_id(folder: &str) -> String {
    escape(&gpg_id_path(folder)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::BlobId;

    const CAROL: &str = "C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0C0";
    const MALLORY: &str = "BADBADBADBADBADBADBADBADBADBADBADBADBAD0";

    const ALICE: &str = "A11CEA11CEA11CEA11CEA11CEA11CEA11CEA11CE";

    fn fpr(hex: &str) -> Fingerprint {
        Fingerprint::parse(hex).unwrap()
    }

    /// A state where each (folder, recipient) pair reads, with these `.public-keys/` files.
    fn state(pairs: &[(&str, &str)], key_files: &[&str]) -> State {
        State {
            pairs: pairs
                .iter()
                .map(|(f, r)| (f.to_string(), r.to_string()))
                .collect(),
            key_files: key_files
                .iter()
                .map(|k| (k.to_string(), BlobId::hash(k.as_bytes())))
                .collect(),
            ..State::default()
        }
    }

    fn stamp(message: &str) -> Stamp<'_> {
        Stamp {
            id: format!("0123456789{}", "a".repeat(30)),
            commit: "0123456789".into(),
            author: "someone".into(),
            date: "2026-11-30T00:00:00Z".into(),
            message,
        }
    }

    fn trusting(who: &[&str]) -> Ledger {
        Ledger {
            trusted: who.iter().map(|w| w.to_string()).collect(),
            ..Ledger::default()
        }
    }

    fn signed_by(f: &str) -> Vouchers {
        Vouchers {
            signer: Some(fpr(f)),
            ..Vouchers::default()
        }
    }

    #[test]
    fn an_unsigned_addition_is_a_violation_until_vouched_for() {
        let (prev, next) = (
            state(&[("", ALICE)], &[]),
            state(&[("", ALICE), ("", MALLORY)], &[]),
        );
        let mut out = Verification::default();
        let mut ledger = trusting(&[ALICE]);
        judge(
            &mut out,
            &mut ledger,
            &stamp("x"),
            (&prev, &next),
            &Vouchers::default(),
        );
        assert_eq!(out.violations.len(), 1);
        assert_eq!(out.violations[0].subject.as_deref(), Some(MALLORY));
        assert!(out.violations[0]
            .change
            .starts_with(&format!("adds {MALLORY} to .gpg-id")));
        assert_eq!(
            ledger.added_by[MALLORY],
            format!("0123456789{}", "a".repeat(30))
        );
        assert!(!ledger.trusted.contains(MALLORY));
    }

    #[test]
    fn a_trusted_signature_vouches_for_every_addition() {
        let (prev, next) = (
            state(&[("", ALICE)], &[]),
            state(&[("", ALICE), ("ops", CAROL)], &["c.asc"]),
        );
        let mut out = Verification::default();
        let mut ledger = trusting(&[ALICE]);
        judge(
            &mut out,
            &mut ledger,
            &stamp("x"),
            (&prev, &next),
            &signed_by(ALICE),
        );
        assert!(out.violations.is_empty() && out.warnings.is_empty());
        assert_eq!(out.vouched.len(), 1);
        assert_eq!(out.vouched[0].vouched_by.as_deref(), Some(ALICE));
        assert!(ledger.trusted.contains(CAROL));
    }

    #[test]
    fn a_folder_signature_vouches_only_for_its_folder() {
        let prev = state(&[("", ALICE)], &[]);
        let next = state(&[("", ALICE), ("", CAROL), ("ops", MALLORY)], &[]);
        let vouchers = Vouchers {
            signer: None,
            folders: [(String::new(), fpr(ALICE))].into(),
        };
        let mut out = Verification::default();
        let mut ledger = trusting(&[ALICE]);
        judge(
            &mut out,
            &mut ledger,
            &stamp("x"),
            (&prev, &next),
            &vouchers,
        );
        assert_eq!(out.vouched.len(), 1);
        assert_eq!(out.violations.len(), 1);
        assert_eq!(out.violations[0].subject.as_deref(), Some(MALLORY));
    }

    #[test]
    fn a_trusted_member_given_a_folder_unsigned_is_a_warning() {
        let (prev, next) = (
            state(&[("", ALICE)], &[]),
            state(&[("", ALICE), ("ops", ALICE)], &[]),
        );
        let mut out = Verification::default();
        judge(
            &mut out,
            &mut trusting(&[ALICE]),
            &stamp("x"),
            (&prev, &next),
            &Vouchers::default(),
        );
        assert!(out.violations.is_empty());
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].change.contains("already a trusted member"));
    }

    #[test]
    fn unsigned_removals_and_key_changes_warn_and_leavers_lose_trust() {
        let prev = state(&[("", ALICE), ("", CAROL)], &["a.asc", "c.asc"]);
        let mut next = state(&[("", ALICE)], &["a.asc", "m.asc"]);
        next.key_files
            .insert("a.asc".into(), BlobId::hash(b"renewed"));
        next.members = Some(BlobId::hash(b"edited"));
        let mut out = Verification::default();
        let mut ledger = trusting(&[ALICE, CAROL]);
        judge(
            &mut out,
            &mut ledger,
            &stamp("x"),
            (&prev, &next),
            &Vouchers::default(),
        );
        let changes: Vec<&str> = out.warnings.iter().map(|w| w.change.as_str()).collect();
        assert_eq!(
            changes,
            [
                format!("removes {CAROL} from .gpg-id without a trusted signature"),
                "removes key .public-keys/c.asc without a trusted signature".into(),
                "changes key .public-keys/a.asc without a trusted signature".into(),
                "edits .members.toml without a trusted signature".into(),
            ]
        );
        assert_eq!(out.violations.len(), 1, "the new key file");
        assert_eq!(out.violations[0].change, "adds key .public-keys/m.asc");
        assert_eq!(ledger.trusted, [ALICE.to_string()].into());
    }

    #[test]
    fn a_signed_add_member_vouches_for_a_recipient_added_earlier_by_hand() {
        let both = state(&[("", ALICE), ("", CAROL)], &[]);
        let message = format!(
            "Add member carol\n\nVault-Action: add-member\nVault-Member: carol <{CAROL}>\n"
        );
        let mut out = Verification::default();
        let mut ledger = trusting(&[ALICE]);
        ledger.added_by.insert(CAROL.into(), "fedcba9876".into());
        judge(
            &mut out,
            &mut ledger,
            &stamp(&message),
            (&both, &both),
            &signed_by(ALICE),
        );
        assert_eq!(out.vouched.len(), 1);
        assert!(out.vouched[0].change.starts_with("vouches for"));
        assert!(ledger.trusted.contains(CAROL) && ledger.added_by.is_empty());
        // The same message unsigned vouches for nobody.
        let mut ledger = trusting(&[ALICE]);
        judge(
            &mut Verification::default(),
            &mut ledger,
            &stamp(&message),
            (&both, &both),
            &Vouchers::default(),
        );
        assert!(!ledger.trusted.contains(CAROL));
    }

    #[test]
    fn a_signed_acceptance_settles_the_accepted_commit_only() {
        let both = state(&[("", ALICE), ("", MALLORY)], &[]);
        let mut ledger = trusting(&[ALICE]);
        let full = format!("0123456789{}", "a".repeat(30));
        ledger.added_by.insert(MALLORY.into(), full.clone());
        let message = format!("Accept\n\nVault-Action: accept\nVault-Accept: {full}\n");
        assert_eq!(accepted_commits(&message), std::slice::from_ref(&full));
        // Unsigned, it is nothing.
        let mut out = Verification::default();
        judge(
            &mut out,
            &mut ledger,
            &stamp(&message),
            (&both, &both),
            &Vouchers::default(),
        );
        assert!(ledger.accepted.is_empty() && !ledger.trusted.contains(MALLORY));
        // Signed by a trusted member, what that commit added is trusted from now on.
        judge(
            &mut out,
            &mut ledger,
            &stamp(&message),
            (&both, &both),
            &signed_by(ALICE),
        );
        assert!(ledger.trusted.contains(MALLORY));
        assert_eq!(ledger.accepted, [full.clone()].into());
        assert_eq!(out.vouched.len(), 1);
        // Only a well-formed trailer in a `Vault-Action: accept` commit counts.
        assert!(accepted_commits(&format!("x\n\nVault-Accept: {full}\n")).is_empty());
        assert!(accepted_commits("x\n\nVault-Action: accept\nVault-Accept: HEAD\n").is_empty());
    }

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
