//! Member certificates: parsed once, validated under the standard policy, user ids escaped.

use std::fmt;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::packet::{key, Key};
use openpgp::parse::Parse;
use openpgp::serialize::SerializeInto;
use openpgp::types::{KeyFlags, PublicKeyAlgorithm, RevocationStatus};

use crate::error::KeyProblem;

use super::*;

pub(super) type PublicKey = Key<key::PublicParts, key::UnspecifiedRole>;

/// A member's public certificate, parsed and checked once per run.
#[derive(Clone)]
pub struct MemberKey {
    pub(super) cert: Cert,
    pub(super) fingerprint: Fingerprint,
    pub(super) user_ids: Vec<String>,
    pub(super) emails: Vec<String>,
    /// The alive, non-revoked, encryption-capable keys under the standard policy, now.
    pub(super) encryption: Vec<PublicKey>,
    /// Ids of every key in the certificate, usable or not: to recognise old ciphertexts.
    pub(super) all_key_ids: Vec<KeyId>,
    /// Fingerprints of the primary key and of the subkeys the certificate validly binds.
    pub(super) all_fingerprints: Vec<Fingerprint>,
    pub(super) expiry: Option<SystemTime>,
    pub(super) problem: Option<KeyProblem>,
    /// The certificate as vault writes it: checked at parse time that it can be written back.
    pub(super) armored: Vec<u8>,
}

impl fmt::Debug for MemberKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberKey")
            .field("fingerprint", &self.fingerprint)
            .field("user_ids", &self.user_ids)
            .field("problem", &self.problem)
            .finish()
    }
}

pub(super) fn parse_single_cert(bytes: &[u8]) -> Result<Cert, KeyProblem> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(KeyProblem::Empty);
    }
    let parser =
        CertParser::from_bytes(bytes).map_err(|e| KeyProblem::NotOpenPgp(e.to_string()))?;
    let mut certs = Vec::new();
    for cert in parser {
        certs.push(cert.map_err(|e| KeyProblem::NotOpenPgp(e.to_string()))?);
    }
    match certs.len() {
        0 => Err(KeyProblem::NotOpenPgp("no certificate found".into())),
        1 => Ok(certs.pop().expect("one")),
        n => Err(KeyProblem::Several(n)),
    }
}

pub(super) fn encryption_flags() -> KeyFlags {
    KeyFlags::empty()
        .set_storage_encryption()
        .set_transport_encryption()
}

impl MemberKey {
    /// Parses a public certificate and records whether it can be encrypted to now. Fails only if
    /// the bytes are not exactly one public OpenPGP certificate.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyProblem> {
        let cert = parse_single_cert(bytes)?;
        if cert.is_tsk() {
            return Err(KeyProblem::SecretMaterial);
        }
        let fingerprint = Fingerprint::from_openpgp(&cert.fingerprint())
            .ok_or(KeyProblem::NotV4(cert.primary_key().key().version()))?;
        // Only subkeys this certificate validly binds (under the standard policy) name it: anyone
        // can append someone else's key packet to a certificate they publish.
        let all_fingerprints = match cert.with_policy(&POLICY, None) {
            Ok(vc) => vc
                .keys()
                .filter_map(|ka| Fingerprint::from_openpgp(&ka.key().fingerprint()))
                .collect(),
            Err(_) => vec![fingerprint],
        };
        let all_key_ids = cert
            .keys()
            .filter_map(|ka| KeyId::from_openpgp(&ka.key().keyid()))
            .collect();
        // User ids are whatever the key's owner (or anyone with push access) wrote: escaped once,
        // here, so no newline or escape sequence in one reaches a terminal or a commit message.
        let user_ids: Vec<String> = cert
            .userids()
            .map(|u| crate::text::escape(&String::from_utf8_lossy(u.userid().value())).into_owned())
            .collect();
        let emails = cert
            .userids()
            .filter_map(|u| u.userid().email_normalized().ok().flatten())
            .collect();

        // A certificate that parses but cannot be written back (e.g. a signature subpacket of an
        // unknown kind) is refused here, not found out when it is stored.
        let armored = cert.armored().to_vec().map_err(|e| {
            KeyProblem::NotOpenPgp(format!("it cannot be written back: {}", root_cause(&e)))
        })?;
        let mut key = MemberKey {
            armored,
            cert,
            fingerprint,
            user_ids,
            emails,
            encryption: Vec::new(),
            all_key_ids,
            all_fingerprints,
            expiry: None,
            problem: None,
        };
        key.problem = key.check().err();
        Ok(key)
    }

    /// Parses every certificate in `bytes` (a keyring export), each as [`MemberKey::parse`].
    pub fn parse_many(bytes: &[u8]) -> Result<Vec<Self>, KeyProblem> {
        let parser =
            CertParser::from_bytes(bytes).map_err(|e| KeyProblem::NotOpenPgp(e.to_string()))?;
        let mut out = Vec::new();
        for cert in parser {
            let cert = cert.map_err(|e| KeyProblem::NotOpenPgp(e.to_string()))?;
            let bytes = cert
                .strip_secret_key_material()
                .to_vec()
                .map_err(|e| KeyProblem::NotOpenPgp(e.to_string()))?;
            out.push(Self::parse(&bytes)?);
        }
        Ok(out)
    }

    /// Ids of the subkeys (usable or not): what a former member's PKESKs are addressed to.
    pub fn subkey_ids(&self) -> Vec<KeyId> {
        self.cert
            .keys()
            .subkeys()
            .filter_map(|ka| KeyId::from_openpgp(&ka.key().keyid()))
            .collect()
    }

    /// Parses a key file for a new member: exactly one public v4 certificate, valid under the
    /// standard policy, not revoked or expired, with an encryption-capable subkey.
    pub fn parse_strict(bytes: &[u8]) -> Result<Self, KeyProblem> {
        let key = Self::parse(bytes)?;
        match key.problem.clone() {
            Some(p) => Err(p),
            None => Ok(key),
        }
    }

    fn check(&mut self) -> Result<(), KeyProblem> {
        if let Some(k) = self.cert.keys().find(|k| k.key().version() != 4) {
            return Err(KeyProblem::NotV4(k.key().version()));
        }
        let vc = self
            .cert
            .with_policy(&POLICY, None)
            .map_err(|e| KeyProblem::Policy(root_cause(&e)))?;
        let primary_expiry = vc.primary_key().key_expiration_time();
        // Computed first, from the binding signatures alone, so it does not change with the
        // clock (the README shows it).
        self.expiry = effective_expiry(primary_expiry, &self.subkeys());
        if let RevocationStatus::Revoked(_) = vc.revocation_status() {
            return Err(KeyProblem::Revoked);
        }
        if vc.alive().is_err() {
            let when = primary_expiry
                .map(format_time)
                .unwrap_or_else(|| "?".into());
            return Err(KeyProblem::Expired(when));
        }
        self.encryption = vc
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .key_flags(encryption_flags())
            .map(|ka| ka.key().clone().role_into_unspecified())
            .collect();
        if self.encryption.is_empty() {
            // Encryption subkeys that only expired: the owner can extend them.
            let expired = self
                .subkeys()
                .into_iter()
                .filter(|k| k.encrypts && k.revoked.is_none())
                .filter_map(|k| k.expiry)
                .max();
            return Err(match expired {
                Some(when) => KeyProblem::SubkeysExpired(format_time(when)),
                None => KeyProblem::NoEncryptionSubkey,
            });
        }
        Ok(())
    }

    /// The subkeys this certificate validly binds under the standard policy (RFC 9580 §5.2.1:
    /// subkey binding signatures; revocations §5.2.3.31), as they stand now, revoked and expired
    /// ones included.
    pub fn subkeys(&self) -> Vec<Subkey> {
        let Ok(vc) = self.cert.with_policy(&POLICY, None) else {
            return Vec::new();
        };
        vc.keys()
            .subkeys()
            .filter_map(|ka| {
                let revoked = match ka.revocation_status() {
                    RevocationStatus::Revoked(sigs) => {
                        // No reason at all counts as the worst (GnuPG's and RFC 9580
                        // §5.2.3.31's reading: a hard revocation); any hard one makes it hard.
                        let is_hard = |s: &openpgp::packet::Signature| {
                            s.reason_for_revocation().is_none_or(|(r, _)| {
                                r.revocation_type() == openpgp::types::RevocationType::Hard
                            })
                        };
                        let hard = sigs.iter().any(|s| is_hard(s));
                        let shown = sigs.iter().find(|s| is_hard(s)).or(sigs.first());
                        let reason = shown.and_then(|s| s.reason_for_revocation());
                        Some(Revocation {
                            hard,
                            reason: match reason {
                                Some((r, text)) if !text.is_empty() => format!(
                                    "{r}: {}",
                                    crate::text::escape(&String::from_utf8_lossy(text))
                                ),
                                Some((r, _)) => r.to_string(),
                                None => "no reason given".into(),
                            },
                        })
                    }
                    _ => None,
                };
                Some(Subkey {
                    id: KeyId::from_openpgp(&ka.key().keyid())?,
                    fingerprint: Fingerprint::from_openpgp(&ka.key().fingerprint())?,
                    encrypts: ka.has_any_key_flag(encryption_flags()),
                    expiry: ka.key_expiration_time(),
                    revoked,
                })
            })
            .collect()
    }

    /// What changed from `old` (an earlier copy of the same certificate) to this one: the
    /// expiry, encryption subkeys added, revoked, expired or extended, user ids added. Empty
    /// when nothing that matters to the readers of the store changed.
    pub fn changes_since(&self, old: &MemberKey) -> Vec<KeyChange> {
        let mut changes = Vec::new();
        if self.expiry != old.expiry {
            changes.push(KeyChange::Expiry {
                old: old.expiry,
                new: self.expiry,
            });
        }
        let before = old.subkeys();
        let now = SystemTime::now();
        for k in self.subkeys().into_iter().filter(|k| k.encrypts) {
            match before.iter().find(|b| b.id == k.id) {
                None => changes.push(KeyChange::SubkeyAdded(k)),
                // Revoked now, or revoked again as compromised (soft before, hard now).
                Some(b)
                    if k.revoked.is_some()
                        && (b.revoked.is_none()
                            || k.revoked.as_ref().is_some_and(|r| r.hard)
                                && !b.revoked.as_ref().is_some_and(|r| r.hard)) =>
                {
                    changes.push(KeyChange::SubkeyRevoked(k))
                }
                Some(b) if b.expiry != k.expiry && k.revoked.is_none() => {
                    if k.expiry.is_some_and(|e| e <= now) {
                        changes.push(KeyChange::SubkeyExpired(k));
                    } else {
                        changes.push(KeyChange::SubkeyExtended(k));
                    }
                }
                Some(_) => {}
            }
        }
        for uid in &self.user_ids {
            if !old.user_ids.contains(uid) {
                changes.push(KeyChange::UserIdAdded(uid.clone()));
            }
        }
        changes
    }

    /// Whether `certifier`'s primary key (or a certification-capable subkey) made a valid
    /// certification (RFC 9580 §5.2.1, types 0x10-0x13) of one of this certificate's user ids:
    /// whether the owner of the old key vouched for this one with it.
    pub fn certified_by(&self, certifier: &MemberKey) -> bool {
        let primary = self.cert.primary_key().key();
        // Only keys the certifier's certificate validly binds for certification (anyone can
        // append an unbound key packet to a certificate in the store).
        let Ok(vc) = certifier.cert.with_policy(&POLICY, None) else {
            return false;
        };
        let signers: Vec<PublicKey> = vc
            .keys()
            .for_certification()
            .map(|ka| ka.key().clone().role_into_unspecified())
            .collect();
        self.cert.userids().any(|ua| {
            ua.certifications().any(|sig| {
                signers
                    .iter()
                    .any(|k| sig.verify_userid_binding(k, primary, ua.userid()).is_ok())
            })
        })
    }

    /// The fingerprints of the encryption subkeys the owner can still extend (not revoked):
    /// what `gpg --quick-set-expire FPR 1y SUBKEY-FPR…` must name, since GnuPG's `'*'` skips
    /// subkeys that already expired (measured with GnuPG 2.2.40, OPENPGP-NOTES.md).
    pub fn renewable_subkeys(&self) -> Vec<Fingerprint> {
        self.subkeys()
            .into_iter()
            .filter(|k| k.encrypts && k.revoked.is_none())
            .map(|k| k.fingerprint)
            .collect()
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The certificate's user ids, escaped for display ([`crate::text::escape`]): safe to print
    /// and to put in a commit message.
    pub fn user_ids(&self) -> &[String] {
        &self.user_ids
    }

    /// Normalised (lower-case) e-mail addresses of the user ids.
    pub fn emails(&self) -> &[String] {
        &self.emails
    }

    /// When the member can no longer be encrypted to: the primary key's expiry or the last
    /// usable encryption subkey's, whichever comes first (None: never).
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expiry
    }

    /// Why this key cannot be encrypted to now, if it cannot.
    pub fn problem(&self) -> Option<&KeyProblem> {
        self.problem.as_ref()
    }

    /// The key ids every entry for this member must be encrypted to (pass's check compares these).
    pub fn encryption_key_ids(&self) -> Vec<KeyId> {
        self.encryption
            .iter()
            .filter_map(|k| KeyId::from_openpgp(&k.keyid()))
            .collect()
    }

    /// The alive signing-capable key (to sign through gpg-agent).
    pub(super) fn signing_key(&self) -> Option<PublicKey> {
        let vc = self.cert.with_policy(&POLICY, None).ok()?;
        let ka = vc.keys().alive().revoked(false).for_signing().next()?;
        Some(ka.key().clone().role_into_unspecified())
    }

    /// Whether `fpr` is the fingerprint of this certificate's primary key or of a subkey it
    /// validly binds: GnuPG takes either as naming the certificate (`gpg -r SUBKEY-FPR` without
    /// `!`).
    pub fn has_fingerprint(&self, fpr: Fingerprint) -> bool {
        self.all_fingerprints.contains(&fpr)
    }

    /// Whether `id` is the key id of this certificate's primary key or of a subkey it validly
    /// binds.
    pub fn has_bound_key_id(&self, id: KeyId) -> bool {
        self.all_fingerprints.iter().any(|f| f.key_id() == id)
    }

    /// Ids of every key in the certificate, usable or not: to recognise old ciphertexts.
    pub fn all_key_ids(&self) -> &[KeyId] {
        &self.all_key_ids
    }

    /// Weak algorithms: RSA/DSA/ElGamal under 2048 bits, and DSA and ElGamal at any size.
    pub fn weakness(&self) -> Option<String> {
        for ka in self.cert.keys() {
            let key = ka.key();
            let bits = key.mpis().bits();
            #[allow(deprecated)]
            let weak = match key.pk_algo() {
                PublicKeyAlgorithm::RSAEncryptSign
                | PublicKeyAlgorithm::RSAEncrypt
                | PublicKeyAlgorithm::RSASign => bits.is_some_and(|b| b < 2048),
                PublicKeyAlgorithm::DSA | PublicKeyAlgorithm::ElGamalEncrypt => true,
                PublicKeyAlgorithm::ElGamalEncryptSign => true,
                _ => false,
            };
            if weak {
                return Some(format!(
                    "{} {}",
                    key.pk_algo(),
                    bits.map(|b| format!("{b} bits")).unwrap_or_default()
                ));
            }
        }
        None
    }

    /// This certificate merged with `other`, another copy of the same certificate (both sides
    /// of a merge updated it: a renewed expiry here, a new subkey there): every packet of both,
    /// as sequoia's `Cert::merge_public` keeps them (RFC 9580 §10.1 for what a certificate is).
    ///
    /// # Errors
    /// [`KeyProblem::NotOpenPgp`] if they are different certificates (different primary keys).
    pub fn merge(&self, other: &MemberKey) -> Result<MemberKey, KeyProblem> {
        let merged = self
            .cert
            .clone()
            .merge_public(other.cert.clone())
            .map_err(|e| KeyProblem::NotOpenPgp(root_cause(&e)))?;
        let armored = merged
            .armored()
            .to_vec()
            .map_err(|e| KeyProblem::NotOpenPgp(root_cause(&e)))?;
        MemberKey::parse(&armored)
    }

    /// The public certificate, ASCII-armored (what `.public-keys/<FINGERPRINT>` holds).
    pub fn armored(&self) -> &[u8] {
        &self.armored
    }
}

/// When a member can no longer be encrypted to: the primary key's expiry, or the moment the
/// last usable encryption subkey expires, whichever comes first (None: never).
fn effective_expiry(primary: Option<SystemTime>, subkeys: &[Subkey]) -> Option<SystemTime> {
    let usable: Vec<&Subkey> = subkeys
        .iter()
        .filter(|k| k.encrypts && k.revoked.is_none())
        .collect();
    let subkeys = if usable.iter().any(|k| k.expiry.is_none()) {
        None
    } else {
        usable.iter().filter_map(|k| k.expiry).max()
    };
    match (primary, subkeys) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One subkey of a member's certificate (see [`MemberKey::subkeys`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subkey {
    pub id: KeyId,
    pub fingerprint: Fingerprint,
    /// Whether its key flags allow encryption (RFC 9580 §5.2.3.29: 0x04 or 0x08).
    pub encrypts: bool,
    /// When it expires (its binding signature's key expiration time), if ever.
    pub expiry: Option<SystemTime>,
    pub revoked: Option<Revocation>,
}

/// A subkey's revocation (RFC 9580 §5.2.3.31).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// Key compromised, or no reason, or one vault does not know: what it could read must be
    /// treated as read by someone else (rotate). Superseded or retired: not.
    pub hard: bool,
    /// The reason for people, escaped.
    pub reason: String,
}

/// One change of a member's certificate, as [`MemberKey::changes_since`] finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// When the member can no longer be encrypted to (see [`MemberKey::expiry`]).
    Expiry {
        old: Option<SystemTime>,
        new: Option<SystemTime>,
    },
    SubkeyAdded(Subkey),
    SubkeyRevoked(Subkey),
    SubkeyExpired(Subkey),
    SubkeyExtended(Subkey),
    UserIdAdded(String),
}

impl fmt::Display for KeyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = |t: &Option<SystemTime>| t.map(format_time).unwrap_or_else(|| "never".into());
        match self {
            KeyChange::Expiry { old, new } => {
                write!(f, "expires      {} -> {}", date(old), date(new))
            }
            KeyChange::SubkeyAdded(k) => write!(
                f,
                "subkey       {} added (encryption, expires {})",
                k.fingerprint.grouped(),
                date(&k.expiry)
            ),
            KeyChange::SubkeyRevoked(k) => write!(
                f,
                "subkey       {} revoked ({})",
                k.fingerprint.grouped(),
                k.revoked.as_ref().map(|r| r.reason.as_str()).unwrap_or("")
            ),
            KeyChange::SubkeyExpired(k) => write!(
                f,
                "subkey       {} expired on {}",
                k.fingerprint.grouped(),
                date(&k.expiry)
            ),
            KeyChange::SubkeyExtended(k) => write!(
                f,
                "subkey       {} now expires {}",
                k.fingerprint.grouped(),
                date(&k.expiry)
            ),
            KeyChange::UserIdAdded(u) => write!(f, "user id      {u} added"),
        }
    }
}

pub(super) fn root_cause(e: &anyhow::Error) -> String {
    e.chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}
