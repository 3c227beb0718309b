//! Who one entry's ciphertext is for, by name, and what is wrong with that: read from its PKESK
//! packets (RFC 9580 §5.1), compared with its `.gpg-id`. Nothing is decrypted.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::crypto::{CryptoError, Envelope, KeyId};
use crate::git::{BlobId, Objects};
use crate::snapshot::Snapshot;
use crate::store::roster::Roster;

/// A recipient of a PKESK, named.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Who {
    Member(String),
    Former(String),
    Unknown(KeyId),
    /// A PKESK with the wildcard key id (`gpg --throw-keyids`).
    Anonymous,
}

impl Who {
    pub fn label(&self) -> String {
        match self {
            Who::Member(n) | Who::Former(n) => n.clone(),
            Who::Unknown(id) => format!("unknown ({id})"),
            Who::Anonymous => "anonymous recipient".into(),
        }
    }
}

/// Every key id vault can put a name to.
#[derive(Default)]
pub(super) struct Names {
    who: HashMap<KeyId, Who>,
    /// Former members' primary and encryption key ids -> their names.
    pub former: HashMap<KeyId, String>,
    /// Members' key ids that can no longer be encrypted to (revoked or expired subkeys), when
    /// the member has current ones -> the member.
    stale: HashMap<KeyId, String>,
}

impl Names {
    /// The names of a store's members (every key id of their certificates) and former members
    /// (from `.members.toml`).
    pub fn of(vault: &Snapshot) -> Names {
        let mut names = Names::default();
        for (id, name) in former_ids(vault.roster()) {
            names.former_member(id, &name);
        }
        // A key a member replaced without it being compromised is theirs, no longer current.
        for r in vault.roster().replaced().iter().filter(|r| !r.compromised) {
            let ids = r.encryption_keys.iter().filter_map(|k| KeyId::parse(k));
            for id in ids.chain([r.fingerprint.key_id()]) {
                names.member(id, &format!("{}'s old key", r.name), false);
            }
        }
        for (fpr, key) in vault.keys() {
            let current = key.encryption_key_ids();
            let name = vault.display_name(*fpr);
            for id in key.all_key_ids() {
                names.member(*id, &name, current.is_empty() || current.contains(id));
            }
        }
        names
    }

    /// Names `id` as a member's key; `current` says whether it can still be encrypted to.
    pub fn member(&mut self, id: KeyId, name: &str, current: bool) {
        self.who.insert(id, Who::Member(name.to_string()));
        if !current {
            self.stale.insert(id, name.to_string());
        }
    }

    /// Names `id` as a former member's key.
    pub fn former_member(&mut self, id: KeyId, name: &str) {
        self.who.insert(id, Who::Former(name.to_string()));
        self.former.insert(id, name.to_string());
    }
}

/// The key ids whose readers must be treated as outsiders, with a name for each: former members'
/// (their primary and encryption key ids, from `.members.toml`), and keys a member replaced
/// because they were compromised (anyone may hold those). Whatever they could read in history
/// must be rotated.
pub fn former_ids(roster: &Roster) -> HashMap<KeyId, String> {
    let mut ids = HashMap::new();
    for f in roster.former() {
        let keys = f.encryption_keys.iter().filter_map(|k| KeyId::parse(k));
        for id in keys.chain([f.fingerprint.key_id()]) {
            ids.insert(id, f.name.to_string());
        }
    }
    for r in roster.replaced().iter().filter(|r| r.compromised) {
        let keys = r.encryption_keys.iter().filter_map(|k| KeyId::parse(k));
        for id in keys.chain([r.fingerprint.key_id()]) {
            ids.insert(id, format!("{}'s compromised old key", r.name));
        }
    }
    ids
}

/// What one ciphertext's packets say: the PKESK recipients (`None`: hidden), the number of
/// password-based session keys (SKESK), and whether the data is SEIPD v1.
pub(super) struct Packets {
    pub recipients: Vec<Option<KeyId>>,
    pub password_keys: usize,
    pub seipd_v1: bool,
}

/// A parsed entry: a git error, or the OpenPGP parser's complaint, or its packets.
pub(super) type Parsed = crate::Result<std::result::Result<Packets, CryptoError>>;

/// Reads and parses one entry's blob (on any worker thread).
pub(super) fn parse(objects: &crate::Result<Objects>, blob: BlobId) -> Parsed {
    let bytes = Objects::opened(objects)?.read(blob)?;
    Ok(Envelope::parse(&bytes).map(|env| Packets {
        recipients: env.readers(),
        password_keys: env.password_session_keys(),
        seipd_v1: env.is_seipd_v1(),
    }))
}

/// The verdict on one entry.
pub(super) struct Verdict {
    pub readers: BTreeSet<Who>,
    pub problems: Vec<String>,
}

/// Judges one entry from its packets: who reads it, and every way that differs from what its
/// `.gpg-id` says (`expected`, by name; `gpg_id` its path, `None` when no `.gpg-id` governs it).
pub(super) fn judge(
    names: &Names,
    parsed: Parsed,
    expected: &[String],
    gpg_id: Option<&str>,
) -> Verdict {
    let mut problems = Vec::new();
    let mut readers = BTreeSet::new();
    // Members, and whether a PKESK is for one of their current encryption subkeys.
    let mut current_reader: BTreeMap<String, bool> = BTreeMap::new();
    let mut readable = false;
    match parsed {
        Ok(Ok(packets)) => {
            readable = true;
            for id in packets.recipients.iter().flatten() {
                if let Some(Who::Member(n)) = names.who.get(id) {
                    *current_reader.entry(n.clone()).or_default() |= !names.stale.contains_key(id);
                }
            }
            readers.extend(packets.recipients.into_iter().map(|r| match r {
                Some(id) => names.who.get(&id).cloned().unwrap_or(Who::Unknown(id)),
                None => Who::Anonymous,
            }));
            if packets.password_keys > 0 {
                problems.push("it can also be decrypted with a password".into());
            }
            if !packets.seipd_v1 {
                problems.push(
                    "its encrypted data is not SEIPD v1: GnuPG 2.2 and pass may not read it".into(),
                );
            }
        }
        Ok(Err(why)) => problems.push(format!("not a readable OpenPGP message: {why}")),
        Err(err) => problems.push(format!("cannot be read from git: {}", err.with_causes())),
    }
    let shown = gpg_id.unwrap_or(".gpg-id");
    if gpg_id.is_none() {
        problems.push("it is outside any .gpg-id".into());
    }
    for r in &readers {
        match r {
            Who::Former(n) => problems.push(format!("former member {n} can read it")),
            Who::Unknown(id) => problems.push(format!("it is encrypted to an unknown key {id}")),
            Who::Anonymous => problems.push(
                "its recipients are hidden (written with gpg --throw-keyids): vault cannot tell \
                 who can read it"
                    .into(),
            ),
            Who::Member(n) if gpg_id.is_some() && !expected.contains(n) => {
                problems.push(format!("{n} can read it but is not in {shown}"))
            }
            Who::Member(_) => {}
        }
    }
    for (n, _) in current_reader.iter().filter(|(_, now)| !**now) {
        problems.push(format!(
            "{n} can read it only through a revoked or expired subkey, not with their current key"
        ));
    }
    // With a hidden recipient, who cannot read it is unknown, not known to be anyone.
    if readable && !readers.contains(&Who::Anonymous) {
        for n in expected {
            if !readers.contains(&Who::Member(n.clone())) {
                problems.push(format!("{n} is in {shown} but cannot read it"));
            }
        }
    }
    Verdict { readers, problems }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> KeyId {
        KeyId::parse(hex).unwrap()
    }

    fn names() -> Names {
        let mut n = Names::default();
        n.member(id("AAAAAAAAAAAAAAAA"), "alice", true);
        n.member(id("BBBBBBBBBBBBBBBB"), "bob", true);
        n.member(id("B0B0B0B0B0B0B0B0"), "bob", false);
        n.former_member(id("CCCCCCCCCCCCCCCC"), "carol");
        n
    }

    fn packets(ids: &[Option<&str>]) -> Parsed {
        Ok(Ok(Packets {
            recipients: ids.iter().map(|i| i.map(id)).collect(),
            password_keys: 0,
            seipd_v1: true,
        }))
    }

    fn expected(who: &[&str]) -> Vec<String> {
        who.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn an_entry_read_by_exactly_its_gpg_id_has_no_problem() {
        let v = judge(
            &names(),
            packets(&[Some("AAAAAAAAAAAAAAAA"), Some("BBBBBBBBBBBBBBBB")]),
            &expected(&["alice", "bob"]),
            Some(".gpg-id"),
        );
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        let labels: Vec<String> = v.readers.iter().map(Who::label).collect();
        assert_eq!(labels, ["alice", "bob"]);
    }

    #[test]
    fn every_difference_from_the_gpg_id_is_named() {
        let v = judge(
            &names(),
            packets(&[
                Some("AAAAAAAAAAAAAAAA"),
                Some("CCCCCCCCCCCCCCCC"),
                Some("1234567890ABCDEF"),
            ]),
            &expected(&["bob"]),
            Some("ops/.gpg-id"),
        );
        assert_eq!(
            v.problems,
            [
                "alice can read it but is not in ops/.gpg-id",
                "former member carol can read it",
                "it is encrypted to an unknown key 1234567890ABCDEF",
                "bob is in ops/.gpg-id but cannot read it",
            ]
        );
    }

    #[test]
    fn a_reader_only_through_a_stale_subkey_is_flagged() {
        let v = judge(
            &names(),
            packets(&[Some("B0B0B0B0B0B0B0B0")]),
            &expected(&["bob"]),
            Some(".gpg-id"),
        );
        assert_eq!(
            v.problems,
            ["bob can read it only through a revoked or expired subkey, not with their current key"]
        );
        // With the current subkey as well, bob reads it fine.
        let v = judge(
            &names(),
            packets(&[Some("B0B0B0B0B0B0B0B0"), Some("BBBBBBBBBBBBBBBB")]),
            &expected(&["bob"]),
            Some(".gpg-id"),
        );
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    #[test]
    fn hidden_recipients_mean_unknown_readers_not_missing_ones() {
        let v = judge(
            &names(),
            packets(&[None]),
            &expected(&["alice"]),
            Some(".gpg-id"),
        );
        assert_eq!(v.problems.len(), 1);
        assert!(v.problems[0].starts_with("its recipients are hidden"));
    }

    #[test]
    fn unreadable_and_ungoverned_entries() {
        let v = judge(
            &names(),
            Ok(Err(CryptoError::Malformed("truncated".into()))),
            &[],
            None,
        );
        assert_eq!(
            v.problems,
            [
                "not a readable OpenPGP message: truncated",
                "it is outside any .gpg-id"
            ]
        );
        let v = judge(
            &names(),
            Ok(Ok(Packets {
                recipients: vec![Some(id("AAAAAAAAAAAAAAAA"))],
                password_keys: 1,
                seipd_v1: false,
            })),
            &expected(&["alice"]),
            Some(".gpg-id"),
        );
        assert_eq!(v.problems.len(), 2);
        assert!(v.problems[0].contains("password") && v.problems[1].contains("SEIPD v1"));
    }
}
