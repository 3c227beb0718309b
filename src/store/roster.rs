//! `.members.toml`: the names people type, mapped to fingerprints, and the record of former
//! members (so an audit still recognises their keys in old ciphertexts). Who can read a folder is
//! decided by the `.gpg-id` files alone; this file never duplicates it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::crypto::Fingerprint;
use crate::error::{Error, Result};
use crate::store::{MemberName, MEMBERS};

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    members: BTreeMap<String, String>,
    #[serde(default, rename = "former", skip_serializing_if = "Vec::is_empty")]
    former: Vec<FormerFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    replaced: Vec<ReplacedFile>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ReplacedFile {
    name: String,
    fingerprint: String,
    encryption_keys: Vec<String>,
    replaced: String,
    #[serde(default)]
    compromised: bool,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct FormerFile {
    name: String,
    fingerprint: String,
    encryption_keys: Vec<String>,
    removed: String,
}

/// Someone who was a member: kept so their key ids can be recognised in history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Former {
    pub name: MemberName,
    pub fingerprint: Fingerprint,
    /// Upper-case hex key ids of the encryption subkeys they had.
    pub encryption_keys: Vec<String>,
    /// RFC 3339 time of removal.
    pub removed: String,
}

/// A key a member used before `vault replace-key` moved them to a new one: kept so audit still
/// recognises it in old ciphertexts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// The member it belonged to (who may since have left, or been renamed).
    pub name: MemberName,
    pub fingerprint: Fingerprint,
    /// Upper-case hex key ids of its subkeys.
    pub encryption_keys: Vec<String>,
    /// RFC 3339 time of the replacement.
    pub replaced: String,
    /// Whether the member said the key was compromised: what it could read must be rotated.
    pub compromised: bool,
}

/// The parsed `.members.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    members: BTreeMap<MemberName, Fingerprint>,
    former: Vec<Former>,
    replaced: Vec<Replaced>,
}

impl Roster {
    /// # Errors
    /// [`Error::Roster`] for a syntax error, an invalid name or fingerprint, or a duplicate.
    pub fn parse(bytes: &[u8]) -> Result<Roster> {
        let bad = |problem: String| Error::BadFile {
            file: MEMBERS.into(),
            problem,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string().trim().to_string()))?;
        let mut roster = Roster::default();
        let mut seen = BTreeSet::new();
        for (name, fpr) in file.members {
            let name = MemberName::parse(&name).map_err(|e| bad(e.to_string()))?;
            let fpr = Fingerprint::parse(&fpr)
                .ok_or_else(|| bad(format!("member {name}: {fpr:?} is not a full fingerprint")))?;
            if !seen.insert(fpr) {
                return Err(bad(format!("fingerprint {fpr} is listed for two members")));
            }
            roster.members.insert(name, fpr);
        }
        for f in file.former {
            let name = MemberName::parse(&f.name).map_err(|e| bad(e.to_string()))?;
            let fingerprint = Fingerprint::parse(&f.fingerprint).ok_or_else(|| {
                bad(format!(
                    "former member {name}: {:?} is not a full fingerprint",
                    f.fingerprint
                ))
            })?;
            roster.former.push(Former {
                name,
                fingerprint,
                encryption_keys: f.encryption_keys,
                removed: f.removed,
            });
        }
        for r in file.replaced {
            let name = MemberName::parse(&r.name).map_err(|e| bad(e.to_string()))?;
            let fingerprint = Fingerprint::parse(&r.fingerprint).ok_or_else(|| {
                bad(format!(
                    "replaced key of {name}: {:?} is not a full fingerprint",
                    r.fingerprint
                ))
            })?;
            if roster.name_of(fingerprint).is_some() {
                return Err(bad(format!(
                    "fingerprint {fingerprint} is both a member's key and a replaced key"
                )));
            }
            roster.replaced.push(Replaced {
                name,
                fingerprint,
                encryption_keys: r.encryption_keys,
                replaced: r.replaced,
                compromised: r.compromised,
            });
        }
        Ok(roster)
    }

    pub fn render(&self) -> String {
        let file = File {
            members: self
                .members
                .iter()
                .map(|(n, f)| (n.to_string(), f.to_string()))
                .collect(),
            former: self
                .former
                .iter()
                .map(|f| FormerFile {
                    name: f.name.to_string(),
                    fingerprint: f.fingerprint.to_string(),
                    encryption_keys: f.encryption_keys.clone(),
                    removed: f.removed.clone(),
                })
                .collect(),
            replaced: self
                .replaced
                .iter()
                .map(|r| ReplacedFile {
                    name: r.name.to_string(),
                    fingerprint: r.fingerprint.to_string(),
                    encryption_keys: r.encryption_keys.clone(),
                    replaced: r.replaced.clone(),
                    compromised: r.compromised,
                })
                .collect(),
        };
        let body = toml::to_string(&file).expect("the roster always serialises");
        format!(
            "# Managed by vault: member names -> OpenPGP fingerprints, and former members.\n\
             # Who can read what is decided by the .gpg-id files, not by this file.\n\n{body}"
        )
    }

    pub fn members(&self) -> impl Iterator<Item = (&MemberName, &Fingerprint)> {
        self.members.iter()
    }

    pub fn former(&self) -> &[Former] {
        &self.former
    }

    /// Keys members used before `vault replace-key`.
    pub fn replaced(&self) -> &[Replaced] {
        &self.replaced
    }

    /// Moves member `name` to the key `new` (`vault replace-key`), keeping the old key as
    /// replaced (with `old_subkeys`, its subkey ids, and the time `when`).
    ///
    /// # Errors
    /// [`Error::MemberExists`] if `new` is another member's, a former member's or a replaced key.
    pub fn replace_key(
        &mut self,
        name: &MemberName,
        new: Fingerprint,
        (old_subkeys, when, compromised): (Vec<String>, String, bool),
    ) -> Result<()> {
        if let Some(other) = self.name_of(new) {
            return Err(Error::MemberExists(format!(
                "key {new} already belongs to member {other}"
            )));
        }
        let used = self.former.iter().map(|f| (&f.name, f.fingerprint));
        let used = used.chain(self.replaced.iter().map(|r| (&r.name, r.fingerprint)));
        if let Some((who, _)) = used.into_iter().find(|(_, f)| *f == new) {
            return Err(Error::MemberExists(format!(
                "key {new} was {who}'s and may not be used again"
            )));
        }
        if let Some(old) = self.members.insert(name.clone(), new) {
            self.replaced.push(Replaced {
                name: name.clone(),
                fingerprint: old,
                encryption_keys: old_subkeys,
                replaced: when,
                compromised,
            });
        }
        Ok(())
    }

    /// Records member `name`'s subkey `fingerprint` (key id `id`) as compromised at `when`
    /// (`vault update-member` with a hard revocation): kept with the replaced keys, so audit
    /// treats what it could read as read by an outsider.
    pub fn retire_subkey(
        &mut self,
        name: &MemberName,
        fingerprint: Fingerprint,
        id: String,
        when: String,
    ) {
        if !self.replaced.iter().any(|r| r.fingerprint == fingerprint) {
            self.replaced.push(Replaced {
                name: name.clone(),
                fingerprint,
                encryption_keys: vec![id],
                replaced: when,
                compromised: true,
            });
        }
    }

    pub fn fingerprint(&self, name: &MemberName) -> Option<Fingerprint> {
        self.members.get(name).copied()
    }

    pub fn name_of(&self, fpr: Fingerprint) -> Option<&MemberName> {
        self.members
            .iter()
            .find(|(_, f)| **f == fpr)
            .map(|(n, _)| n)
    }

    /// # Errors
    /// [`Error::MemberExists`] if the name or the fingerprint is taken.
    pub fn add(&mut self, name: MemberName, fpr: Fingerprint) -> Result<()> {
        if let Some(existing) = self.members.get(&name) {
            return Err(Error::MemberExists(format!(
                "there is already a member named {name} ({existing})"
            )));
        }
        if let Some(other) = self.name_of(fpr) {
            return Err(Error::MemberExists(format!(
                "key {fpr} already belongs to member {other}"
            )));
        }
        // A former member's name or key stays theirs: audit names them by it in old ciphertexts
        // (and treats what that key read as read by an outsider).
        if let Some(f) = self.former.iter().find(|f| f.name == name) {
            return Err(Error::MemberExists(format!(
                "{name} is the name of a former member (removed {}); give the new member another name",
                crate::text::escape(&f.removed)
            )));
        }
        let used = self.former.iter().map(|f| (&f.name, f.fingerprint));
        let used = used.chain(self.replaced.iter().map(|r| (&r.name, r.fingerprint)));
        if let Some((who, _)) = used.into_iter().find(|(_, f)| *f == fpr) {
            return Err(Error::MemberExists(format!(
                "key {fpr} was {who}'s and may not be used again: someone who comes back comes \
                 back with a new key"
            )));
        }
        self.members.insert(name, fpr);
        Ok(())
    }

    /// The three-way merge of `.members.toml` when both sides of a git merge changed it, by
    /// fingerprint: a member either side added is in (under the name that side gave, ours first
    /// when both did), a member either side retired is out, and a former member stays former
    /// (one record per fingerprint, ours first).
    pub fn merge(base: &Roster, ours: &Roster, theirs: &Roster) -> Roster {
        let former_fprs: std::collections::BTreeSet<Fingerprint> = ours
            .former
            .iter()
            .chain(&theirs.former)
            .map(|f| f.fingerprint)
            .chain(
                ours.replaced
                    .iter()
                    .chain(&theirs.replaced)
                    .map(|r| r.fingerprint),
            )
            .collect();
        let in_base = |f: &Fingerprint| base.members.values().any(|b| b == f);
        let kept = |side: &Roster, f: &Fingerprint| side.members.values().any(|s| s == f);
        let mut out = Roster::default();
        for (name, fpr) in ours.members.iter().chain(&theirs.members) {
            let removed_by_a_side = in_base(fpr) && (!kept(ours, fpr) || !kept(theirs, fpr));
            if former_fprs.contains(fpr) || removed_by_a_side || out.name_of(*fpr).is_some() {
                continue;
            }
            if !out.members.contains_key(name) {
                out.members.insert(name.clone(), *fpr);
            }
        }
        for f in ours.former.iter().chain(&theirs.former) {
            if !out.former.iter().any(|o| o.fingerprint == f.fingerprint) {
                out.former.push(f.clone());
            }
        }
        for r in ours.replaced.iter().chain(&theirs.replaced) {
            if !out.replaced.iter().any(|o| o.fingerprint == r.fingerprint) {
                out.replaced.push(r.clone());
            }
        }
        out
    }

    /// Moves a member to the former members.
    pub fn retire(&mut self, name: &MemberName, encryption_keys: Vec<String>, removed: String) {
        if let Some(fingerprint) = self.members.remove(name) {
            self.former.push(Former {
                name: name.clone(),
                fingerprint,
                encryption_keys,
                removed,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3AA5C34371567BD2E1A4A2A5D2E6B2F3A1B2C3D4";

    #[test]
    fn round_trip() {
        let mut r = Roster::default();
        r.add(
            MemberName::parse("nick").unwrap(),
            Fingerprint::parse(A).unwrap(),
        )
        .unwrap();
        r.retire(
            &MemberName::parse("nick").unwrap(),
            vec!["1234567890ABCDEF".into()],
            "2026-11-24T10:00:00Z".into(),
        );
        let again = Roster::parse(r.render().as_bytes()).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn a_replaced_key_is_kept_never_reused_and_stays_out_in_a_merge() {
        const B: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
        let (a, b) = (
            Fingerprint::parse(A).unwrap(),
            Fingerprint::parse(B).unwrap(),
        );
        let will = MemberName::parse("will").unwrap();
        let mut base = Roster::default();
        base.add(will.clone(), a).unwrap();
        let mut ours = base.clone();
        let when = "2026-11-30T04:00:00Z".to_string();
        ours.replace_key(
            &will,
            b,
            (vec!["1234567890ABCDEF".into()], when.clone(), true),
        )
        .unwrap();
        assert_eq!(ours.fingerprint(&will), Some(b));
        assert_eq!(ours.replaced()[0].fingerprint, a);
        assert!(ours.replaced()[0].compromised);
        assert_eq!(Roster::parse(ours.render().as_bytes()).unwrap(), ours);
        // The old key cannot come back, under any name.
        let err = ours
            .clone()
            .replace_key(&will, a, (vec![], when, false))
            .unwrap_err();
        assert!(err.to_string().contains("may not be used again"), "{err}");
        // The other side of a merge still has the old key: the merge keeps the new one only.
        let merged = Roster::merge(&base, &ours, &base);
        assert_eq!(merged.fingerprint(&will), Some(b));
        assert_eq!(merged.name_of(a), None);
        assert_eq!(merged.replaced().len(), 1);
    }

    #[test]
    fn rejects_duplicates_and_bad_names() {
        let dup = format!("[members]\nnick = \"{A}\"\nnoah = \"{A}\"\n");
        assert!(Roster::parse(dup.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("two members"));
        let dup_name = format!("[members]\nnick = \"{A}\"\nnick = \"{A}\"\n");
        assert!(Roster::parse(dup_name.as_bytes()).is_err());
        let slash = format!("[members]\n\"a/b\" = \"{A}\"\n");
        assert!(Roster::parse(slash.as_bytes()).is_err());
        assert!(Roster::parse(b"[members\n").is_err());
    }
}
