//! The only module that imports sequoia-openpgp.
//!
//! It validates certificates, reads who a message is encrypted to (its PKESK packets) without
//! decrypting it, unlocks session keys with the operator's secret key, re-wraps a session key for
//! new recipients, and decrypts and encrypts entries. Everything it writes is what GnuPG 2.2 and
//! pass read: v4 keys, one PKESK per recipient encryption subkey, SEIPD v1, AES-256, no
//! compression (see STORE-FORMAT.md).

use std::borrow::Cow;
use std::fmt;
use std::io::{Read, Write};
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{KeyPair, Password, SessionKey};
use openpgp::packet::{key, Key, Packet, PKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::parse::Parse;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{
    DataFormat, Features, KeyFlags, PublicKeyAlgorithm, RevocationStatus, SymmetricAlgorithm,
};
use zeroize::Zeroizing;

use crate::error::KeyProblem;
use crate::secret::Secret;

mod agent;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// A v4 OpenPGP fingerprint: 20 bytes, written as 40 upper-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 20]);

/// A v4 key id: the low 8 bytes of a key's fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let digits: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02X}"))
}

impl Fingerprint {
    /// Parses 40 hex digits (spaces and a `0x` prefix allowed).
    pub fn parse(s: &str) -> Option<Self> {
        parse_hex(s).map(Fingerprint)
    }

    pub fn key_id(&self) -> KeyId {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[12..]);
        KeyId(id)
    }

    /// Groups of four digits, as GnuPG shows them for comparison by people.
    pub fn grouped(&self) -> String {
        let hex = self.to_string();
        let groups: Vec<&str> = (0..10).map(|i| &hex[i * 4..i * 4 + 4]).collect();
        format!("{}  {}", groups[..5].join(" "), groups[5..].join(" "))
    }

    /// The first two groups: enough to recognise a key in a commit subject.
    pub fn short(&self) -> String {
        let hex = self.to_string();
        format!("{} {} …", &hex[0..4], &hex[4..8])
    }

    fn from_openpgp(fp: &openpgp::Fingerprint) -> Option<Self> {
        let bytes = fp.as_bytes();
        (bytes.len() == 20).then(|| {
            let mut out = [0u8; 20];
            out.copy_from_slice(bytes);
            Fingerprint(out)
        })
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl KeyId {
    /// Parses 16 hex digits (a `0x` prefix allowed).
    pub fn parse(s: &str) -> Option<Self> {
        parse_hex(s).map(KeyId)
    }

    fn from_openpgp(id: &openpgp::KeyID) -> Option<Self> {
        let bytes = id.as_bytes();
        (bytes.len() == 8).then(|| {
            let mut out = [0u8; 8];
            out.copy_from_slice(bytes);
            KeyId(out)
        })
    }

    fn from_handle(h: &openpgp::KeyHandle) -> Option<Self> {
        Self::from_openpgp(&openpgp::KeyID::from(h))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

pub use crate::text::format_time;

type PublicKey = Key<key::PublicParts, key::UnspecifiedRole>;

/// A member's public certificate, parsed and checked once per run.
#[derive(Clone)]
pub struct MemberKey {
    cert: Cert,
    fingerprint: Fingerprint,
    user_ids: Vec<String>,
    emails: Vec<String>,
    /// The alive, non-revoked, encryption-capable keys under the standard policy, now.
    encryption: Vec<PublicKey>,
    /// Ids of every key in the certificate, usable or not: to recognise old ciphertexts.
    all_key_ids: Vec<KeyId>,
    /// Fingerprints of every key in the certificate (primary and subkeys).
    all_fingerprints: Vec<Fingerprint>,
    expiry: Option<SystemTime>,
    problem: Option<KeyProblem>,
    /// The certificate as vault writes it: checked at parse time that it can be written back.
    armored: Vec<u8>,
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

fn parse_single_cert(bytes: &[u8]) -> Result<Cert, KeyProblem> {
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

fn encryption_flags() -> KeyFlags {
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
        let all_fingerprints = cert
            .keys()
            .filter_map(|ka| Fingerprint::from_openpgp(&ka.key().fingerprint()))
            .collect();
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
        self.expiry = vc.primary_key().key_expiration_time();
        if let RevocationStatus::Revoked(_) = vc.revocation_status() {
            return Err(KeyProblem::Revoked);
        }
        if vc.alive().is_err() {
            let when = self.expiry.map(format_time).unwrap_or_else(|| "?".into());
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
            return Err(KeyProblem::NoEncryptionSubkey);
        }
        Ok(())
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
    fn signing_key(&self) -> Option<PublicKey> {
        let vc = self.cert.with_policy(&POLICY, None).ok()?;
        let ka = vc.keys().alive().revoked(false).for_signing().next()?;
        Some(ka.key().clone().role_into_unspecified())
    }

    /// Every key id of the certificate, including unusable ones.
    /// Whether `fpr` is the fingerprint of this certificate's primary key or of one of its
    /// subkeys: GnuPG takes either as naming the certificate (`gpg -r SUBKEY-FPR` without `!`).
    pub fn has_fingerprint(&self, fpr: Fingerprint) -> bool {
        self.all_fingerprints.contains(&fpr)
    }

    pub fn all_key_ids(&self) -> &[KeyId] {
        &self.all_key_ids
    }

    /// Whether the primary key or a subkey has this id.
    pub fn has_key_id(&self, id: KeyId) -> bool {
        self.all_key_ids.contains(&id)
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

    /// The public certificate, ASCII-armored (what `.public-keys/<FINGERPRINT>` holds).
    pub fn armored(&self) -> &[u8] {
        &self.armored
    }
}

fn root_cause(e: &anyhow::Error) -> String {
    e.chain()
        .last()
        .map(|c| c.to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Where a message's encrypted data starts, and who its session key is wrapped for.
pub struct Envelope<'a> {
    bytes: Cow<'a, [u8]>,
    pkesks: Vec<PKESK>,
    skesks: usize,
    data_start: usize,
    seipd_v1: bool,
}

/// A PKESK's recipient: a key id, or `None` for an anonymous ("wildcard") recipient.
pub type Reader = Option<KeyId>;

struct Header {
    tag: u8,
    header_len: usize,
    /// `None` for a partial (streamed) or indeterminate body length.
    body_len: Option<usize>,
}

fn read_header(buf: &[u8]) -> Result<Header, String> {
    let first = *buf.first().ok_or("truncated packet header")?;
    if first & 0x80 == 0 {
        return Err(format!("invalid packet header byte 0x{first:02x}"));
    }
    let byte = |i: usize| buf.get(i).copied().ok_or("truncated packet header");
    if first & 0x40 != 0 {
        let tag = first & 0x3f;
        let l0 = byte(1)? as usize;
        Ok(match l0 {
            0..=191 => Header {
                tag,
                header_len: 2,
                body_len: Some(l0),
            },
            192..=223 => Header {
                tag,
                header_len: 3,
                body_len: Some(((l0 - 192) << 8) + byte(2)? as usize + 192),
            },
            255 => {
                let mut n = 0usize;
                for i in 2..6 {
                    n = (n << 8) | byte(i)? as usize;
                }
                Header {
                    tag,
                    header_len: 6,
                    body_len: Some(n),
                }
            }
            _ => Header {
                tag,
                header_len: 1,
                body_len: None,
            },
        })
    } else {
        let tag = (first >> 2) & 0x0f;
        let len_bytes = match first & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => {
                return Ok(Header {
                    tag,
                    header_len: 1,
                    body_len: None,
                })
            }
        };
        let mut n = 0usize;
        for i in 0..len_bytes {
            n = (n << 8) | byte(1 + i)? as usize;
        }
        Ok(Header {
            tag,
            header_len: 1 + len_bytes,
            body_len: Some(n),
        })
    }
}

/// Checks that a data packet (new format, possibly with partial body lengths) ends exactly at
/// the end of `buf`.
fn check_data_extent(buf: &[u8], header: &Header) -> Result<(), String> {
    let truncated = || "the encrypted data is truncated".to_string();
    let trailing = || "there is trailing data after the encrypted data".to_string();
    match header.body_len {
        Some(n) => match buf.len().cmp(&(header.header_len + n)) {
            std::cmp::Ordering::Less => Err(truncated()),
            std::cmp::Ordering::Greater => Err(trailing()),
            std::cmp::Ordering::Equal => Ok(()),
        },
        None if buf[0] & 0x40 == 0 => Ok(()), // old-format indeterminate: runs to the end
        None => {
            // New-format partial lengths: the first length octet is at buf[1].
            let mut pos = 1;
            loop {
                let l0 = *buf.get(pos).ok_or_else(truncated)? as usize;
                let (len, octets, last) = match l0 {
                    0..=191 => (l0, 1, true),
                    192..=223 => {
                        let l1 = *buf.get(pos + 1).ok_or_else(truncated)? as usize;
                        (((l0 - 192) << 8) + l1 + 192, 2, true)
                    }
                    255 => {
                        let b = buf.get(pos + 1..pos + 5).ok_or_else(truncated)?;
                        (
                            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize,
                            5,
                            true,
                        )
                    }
                    _ => (1usize << (l0 & 0x1f), 1, false),
                };
                pos += octets + len;
                if last {
                    return match buf.len().cmp(&pos) {
                        std::cmp::Ordering::Less => Err(truncated()),
                        std::cmp::Ordering::Greater => Err(trailing()),
                        std::cmp::Ordering::Equal => Ok(()),
                    };
                }
                if pos > buf.len() {
                    return Err(truncated());
                }
            }
        }
    }
}

const ARMOR_MESSAGE: &[u8] = b"-----BEGIN PGP MESSAGE-----";

impl<'a> Envelope<'a> {
    /// Reads the packets in front of a message's encrypted data. Nothing is decrypted; the result
    /// says who the session key is wrapped for. Fails, with a reason for people, on anything that
    /// is not a well-formed public-key encrypted OpenPGP message.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let bytes: Cow<'a, [u8]> = if bytes.starts_with(ARMOR_MESSAGE) {
            let mut reader = openpgp::armor::Reader::from_bytes(
                bytes,
                openpgp::armor::ReaderMode::Tolerant(Some(openpgp::armor::Kind::Message)),
            );
            let mut out = Vec::new();
            reader
                .read_to_end(&mut out)
                .map_err(|e| format!("invalid ASCII armor: {e}"))?;
            Cow::Owned(out)
        } else {
            Cow::Borrowed(bytes)
        };
        if bytes.is_empty() {
            return Err("the file is empty".into());
        }
        let mut pkesks = Vec::new();
        let mut skesks = 0;
        let mut pos = 0;
        loop {
            if pos >= bytes.len() {
                return Err("there is no encrypted data after the session keys".into());
            }
            let h = read_header(&bytes[pos..])?;
            match h.tag {
                1 | 3 | 10 => {
                    let len = h
                        .body_len
                        .ok_or("a session key packet has an invalid length")?;
                    let end = pos + h.header_len + len;
                    if end > bytes.len() {
                        return Err("a session key packet is truncated".into());
                    }
                    if h.tag == 1 {
                        match Packet::from_bytes(&bytes[pos..end]) {
                            Ok(Packet::PKESK(p)) => pkesks.push(p),
                            Ok(_) => return Err("an unsupported session key packet".into()),
                            Err(e) => return Err(format!("an invalid session key packet: {e}")),
                        }
                    } else if h.tag == 3 {
                        skesks += 1;
                    }
                    pos = end;
                }
                9 | 18 | 20 => {
                    check_data_extent(&bytes[pos..], &h)?;
                    let seipd_v1 =
                        h.tag == 18 && bytes.get(pos + h.header_len).copied() == Some(1);
                    return Ok(Envelope {
                        bytes,
                        pkesks,
                        skesks,
                        data_start: pos,
                        seipd_v1,
                    });
                }
                tag => {
                    return Err(format!(
                        "it is not an encrypted OpenPGP message (packet tag {tag} where encrypted data was expected)"
                    ))
                }
            }
        }
    }

    /// Who the session key is wrapped for: one item per PKESK, `None` for a wildcard recipient.
    pub fn readers(&self) -> Vec<Reader> {
        self.pkesks
            .iter()
            .map(|p| p.recipient().as_ref().and_then(KeyId::from_handle))
            .collect()
    }

    /// Number of password-encrypted session keys (pass never writes these).
    pub fn password_session_keys(&self) -> usize {
        self.skesks
    }

    /// Whether the data is a SEIPD v1 packet, the only kind GnuPG 2.2 reads and vault keeps.
    pub fn is_seipd_v1(&self) -> bool {
        self.seipd_v1
    }
}

/// The operator's secret keys: what decrypts the entries during a re-encryption.
#[derive(Clone)]
pub struct Identity {
    fingerprint: Fingerprint,
    user_id: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// Secret keys from a key file, in memory; each worker thread has its own copy.
    File {
        keys: Vec<(KeyId, KeyPair)>,
        /// An alive, signing-capable secret key: signs vault's commits and `.gpg-id.sig`.
        signer: Option<KeyPair>,
    },
    /// Secret keys held by gpg-agent, reached through one shared session.
    Agent {
        session: std::sync::Arc<std::sync::Mutex<agent::Session>>,
        keys: Vec<(KeyId, PublicKey)>,
        signer: Option<PublicKey>,
        on_card: bool,
    },
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .field(
                "backend",
                &match self.backend {
                    Backend::File { .. } => "key file",
                    Backend::Agent { .. } => "gpg-agent",
                },
            )
            .finish_non_exhaustive()
    }
}

/// Why an identity could not be loaded.
#[derive(Debug)]
pub enum IdentityError {
    Key(KeyProblem),
    NoSecretKey,
    WrongPassphrase,
    Passphrase(crate::error::Error),
}

/// A session key unlocked with the operator's key, with its symmetric algorithm.
pub struct Unlocked {
    algo: SymmetricAlgorithm,
    key: SessionKey,
}

impl Identity {
    /// Loads a secret key file (armored or binary). `passphrase` is asked at most once, and only
    /// if a secret key is encrypted.
    pub fn from_bytes(
        bytes: &[u8],
        passphrase: &mut dyn FnMut() -> crate::error::Result<Secret>,
    ) -> Result<Self, IdentityError> {
        let cert = parse_single_cert(bytes).map_err(IdentityError::Key)?;
        let fingerprint = Fingerprint::from_openpgp(&cert.fingerprint()).ok_or(
            IdentityError::Key(KeyProblem::NotV4(cert.primary_key().key().version())),
        )?;
        let user_id = cert
            .userids()
            .next()
            .map(|u| crate::text::escape(&String::from_utf8_lossy(u.userid().value())).into_owned())
            .unwrap_or_default();
        let mut password: Option<Password> = None;
        let mut keys = Vec::new();
        let signing: Vec<KeyId> = cert
            .with_policy(&POLICY, None)
            .map(|vc| {
                vc.keys()
                    .secret()
                    .alive()
                    .revoked(false)
                    .for_signing()
                    .filter_map(|ka| KeyId::from_openpgp(&ka.key().keyid()))
                    .collect()
            })
            .unwrap_or_default();
        let mut signer = None;
        for ka in cert.keys().secret() {
            let key = ka.key().clone().role_into_unspecified();
            let Some(id) = KeyId::from_openpgp(&key.keyid()) else {
                continue;
            };
            let key = if key.has_unencrypted_secret() {
                key
            } else {
                if password.is_none() {
                    let secret = passphrase().map_err(IdentityError::Passphrase)?;
                    password = Some(Password::from(secret.expose()));
                }
                key.decrypt_secret(password.as_ref().expect("set above"))
                    .map_err(|_| IdentityError::WrongPassphrase)?
            };
            if let Ok(pair) = key.into_keypair() {
                if signer.is_none() && signing.contains(&id) {
                    signer = Some(pair.clone());
                }
                keys.push((id, pair));
            }
        }
        if keys.is_empty() {
            return Err(IdentityError::NoSecretKey);
        }
        Ok(Identity {
            fingerprint,
            user_id,
            backend: Backend::File { keys, signer },
        })
    }

    /// The operator as the user's gpg-agent knows them (`$GNUPGHOME`, else `~/.gnupg`): the
    /// member whose encryption subkey the agent holds. Without `interactive` the agent never asks
    /// for a passphrase; `passphrase` is given to it through loopback.
    ///
    /// # Errors
    /// A message naming the members' fingerprints looked for, or the agent's problem.
    pub fn from_agent(
        members: &[&MemberKey],
        interactive: bool,
        passphrase: Option<&Secret>,
    ) -> Result<Self, String> {
        agent::find_operator(members, interactive, passphrase)
    }

    /// Whether the operator's key is on a smartcard (each decryption may need a touch).
    pub fn on_card(&self) -> bool {
        matches!(self.backend, Backend::Agent { on_card: true, .. })
    }

    /// What gpg-agent last said when an operation failed, if the agent is in use.
    pub fn agent_error(&self) -> Option<String> {
        match &self.backend {
            Backend::Agent { session, .. } => session.lock().ok()?.last_error.clone(),
            Backend::File { .. } => None,
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Whether `handle` (upper-case hex, as [`signature_issuers`] gives it: a fingerprint or a key
    /// id) names this identity's primary key or its signing key. This is pass's test of a
    /// `.gpg-id.sig` signer against `PASSWORD_STORE_SIGNING_KEY`, which accepts either.
    pub fn signs_as(&self, handle: &str) -> bool {
        let signer = match &self.backend {
            Backend::File { signer, .. } => signer.as_ref().map(|p| p.public().clone()),
            Backend::Agent { signer, .. } => signer.clone(),
        };
        let mut names = vec![
            self.fingerprint.to_string(),
            self.fingerprint.key_id().to_string(),
        ];
        if let Some(k) = signer {
            names.push(k.fingerprint().to_hex());
            names.push(k.keyid().to_hex());
        }
        let handle = handle.to_ascii_uppercase();
        names.contains(&handle)
    }

    /// Whether this identity can sign (has an alive signing-capable secret key).
    pub fn can_sign(&self) -> bool {
        match &self.backend {
            Backend::File { signer, .. } => signer.is_some(),
            Backend::Agent { signer, .. } => signer.is_some(),
        }
    }

    /// A detached signature over `data`: ASCII-armored (for git commits) or binary (for pass's
    /// `.gpg-id.sig`).
    pub fn sign_detached(&self, data: &[u8], armored: bool) -> Result<Vec<u8>, String> {
        let missing = "the operator key has no usable signing key";
        match &self.backend {
            Backend::File { signer, .. } => {
                sign_with(signer.clone().ok_or(missing)?, data, armored)
            }
            Backend::Agent {
                session, signer, ..
            } => {
                let key = signer.as_ref().ok_or(missing)?;
                let pair = session
                    .lock()
                    .map_err(|_| "the gpg-agent session is unusable".to_string())?
                    .signer(key)?;
                sign_with(pair, data, armored)
            }
        }
    }

    /// Unwraps the session key from the PKESK addressed to one of our keys (wildcard PKESKs are
    /// tried with every key). `None` if the message is not encrypted to us.
    pub fn unlock(&mut self, env: &Envelope) -> Option<Unlocked> {
        for pkesk in &env.pkesks {
            let target = pkesk.recipient().as_ref().and_then(KeyId::from_handle);
            let unlocked = match &mut self.backend {
                Backend::File { keys, .. } => keys
                    .iter_mut()
                    .filter(|(id, _)| target.is_none_or(|t| t == *id))
                    .find_map(|(_, pair)| pkesk.decrypt(pair, None)),
                Backend::Agent { session, keys, .. } => keys
                    .iter()
                    .filter(|(id, _)| target.is_none_or(|t| t == *id))
                    .find_map(|(_, public)| {
                        let mut d = agent::AgentDecryptor { session, public };
                        pkesk.decrypt(&mut d, None)
                    }),
            };
            if let Some((Some(algo), key)) = unlocked {
                return Some(Unlocked { algo, key });
            }
        }
        None
    }
}

/// Makes a detached signature with any signer (a key pair in memory, or gpg-agent's).
fn sign_with<S>(signer: S, data: &[u8], armored: bool) -> Result<Vec<u8>, String>
where
    S: openpgp::crypto::Signer + Send + Sync,
{
    let mut out = Vec::new();
    let run = |out: &mut Vec<u8>| -> openpgp::Result<()> {
        let mut message = Message::new(out);
        if armored {
            message = openpgp::serialize::stream::Armorer::new(message)
                .kind(openpgp::armor::Kind::Signature)
                .build()?;
        }
        let mut signer = openpgp::serialize::stream::Signer::new(message, signer)?
            .detached()
            .build()?;
        signer.write_all(data)?;
        signer.finalize()?;
        Ok(())
    };
    run(&mut out).map_err(|e| root_cause(&e))?;
    Ok(out)
}

struct SignatureHelper<'c> {
    certs: &'c [&'c MemberKey],
    good: Option<Fingerprint>,
}

impl VerificationHelper for SignatureHelper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(self.certs.iter().map(|k| k.cert.clone()).collect())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        for layer in structure.into_iter() {
            if let openpgp::parse::stream::MessageLayer::SignatureGroup { results } = layer {
                if let Some(good) = results.into_iter().flatten().next() {
                    self.good = Fingerprint::from_openpgp(&good.ka.cert().fingerprint());
                    return Ok(());
                }
            }
        }
        Err(anyhow::anyhow!("no valid signature by a known key"))
    }
}

/// Who made the signatures in `signature` (a detached signature, armored or binary), by the
/// issuer fingerprints and key ids their packets name (RFC 9580 §5.2.3.12 and §5.2.3.35), as
/// upper-case hex, without checking them. Empty when nothing parses.
pub fn signature_issuers(signature: &[u8]) -> Vec<String> {
    let Ok(pile) = openpgp::PacketPile::from_bytes(signature) else {
        return Vec::new();
    };
    let mut out: Vec<String> = pile
        .descendants()
        .filter_map(|p| match p {
            openpgp::Packet::Signature(sig) => Some(sig.get_issuers()),
            _ => None,
        })
        .flatten()
        .map(|h| h.to_hex())
        .collect();
    out.dedup();
    out
}

/// Checks a detached signature (armored or binary) over `data` against `certs`: the fingerprint
/// of the certificate that made a valid signature, or `None`.
pub fn verify_detached(signature: &[u8], data: &[u8], certs: &[&MemberKey]) -> Option<Fingerprint> {
    let helper = SignatureHelper { certs, good: None };
    let mut verifier = openpgp::parse::stream::DetachedVerifierBuilder::from_bytes(signature)
        .ok()?
        .with_policy(&POLICY, None, helper)
        .ok()?;
    verifier.verify_bytes(data).ok()?;
    verifier.into_helper().good
}

/// A recipient's encryption keys, ready to wrap session keys for.
pub struct Recipients<'k> {
    keys: Vec<&'k PublicKey>,
}

impl<'k> Recipients<'k> {
    pub fn new(members: &[&'k MemberKey]) -> Self {
        Recipients {
            keys: members.iter().flat_map(|m| m.encryption.iter()).collect(),
        }
    }

    pub fn key_ids(&self) -> Vec<KeyId> {
        self.keys
            .iter()
            .filter_map(|k| KeyId::from_openpgp(&k.keyid()))
            .collect()
    }

    /// Keeps only the keys with these ids.
    pub fn only(&self, ids: &[KeyId]) -> Recipients<'k> {
        Recipients {
            keys: self
                .keys
                .iter()
                .copied()
                .filter(|k| KeyId::from_openpgp(&k.keyid()).is_some_and(|id| ids.contains(&id)))
                .collect(),
        }
    }
}

/// Keeps a message's encrypted data and its PKESKs byte for byte, and adds a PKESK for each of
/// `add` with the same session key.
pub fn add_readers(
    env: &Envelope,
    unlocked: &Unlocked,
    add: &Recipients,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(env.bytes.len() + 200 * add.keys.len());
    out.extend_from_slice(&env.bytes[..env.data_start]);
    for key in &add.keys {
        let pkesk =
            openpgp::packet::pkesk::PKESK3::for_recipient(unlocked.algo, &unlocked.key, *key)
                .map_err(|e| format!("wrapping the session key for {}: {e}", key.keyid()))?;
        Packet::from(PKESK::from(pkesk))
            .serialize(&mut out)
            .map_err(|e| e.to_string())?;
    }
    out.extend_from_slice(&env.bytes[env.data_start..]);
    Ok(out)
}

struct SessionKeyHelper<'u>(&'u Unlocked);

impl VerificationHelper for SessionKeyHelper<'_> {
    fn get_certs(&mut self, _ids: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }
    fn check(&mut self, _structure: MessageStructure) -> openpgp::Result<()> {
        Ok(()) // Entries are not signed by pass; signatures, if any, are not vault's concern.
    }
}

impl DecryptionHelper for SessionKeyHelper<'_> {
    fn decrypt(
        &mut self,
        _pkesks: &[PKESK],
        _skesks: &[openpgp::packet::SKESK],
        _sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        if decrypt(Some(self.0.algo), &self.0.key) {
            Ok(None)
        } else {
            Err(anyhow::anyhow!("the session key does not decrypt the data"))
        }
    }
}

/// Reads all of `r` into zeroizing memory without leaving copies behind when the buffer grows.
fn read_zeroizing(mut r: impl Read, hint: usize) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; hint.max(256)]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            let mut bigger = Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger; // the old buffer is zeroed as it drops
        }
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len); // truncate does not reallocate; the tail is zeroed on drop with the rest
    Ok(buf)
}

/// Decrypts a whole entry in memory with an unlocked session key.
pub fn decrypt(env: &Envelope, unlocked: &Unlocked) -> Result<Secret, String> {
    let decryptor = DecryptorBuilder::from_bytes(&env.bytes[..])
        .map_err(|e| root_cause(&e))?
        .with_policy(&POLICY, None, SessionKeyHelper(unlocked))
        .map_err(|e| root_cause(&e))?;
    let plain = read_zeroizing(decryptor, env.bytes.len()).map_err(|e| e.to_string())?;
    Ok(Secret::new(plain))
}

/// Encrypts `plain` with a fresh session key to every key in `to`: binary, SEIPD v1, AES-256,
/// no compression, one PKESK per key.
pub fn encrypt(plain: &Secret, to: &Recipients) -> Result<Vec<u8>, String> {
    let seipdv1 = Features::empty().set_seipdv1();
    let recipients: Vec<Recipient> = to
        .keys
        .iter()
        .map(|k| Recipient::new(seipdv1.clone(), openpgp::KeyHandle::from(k.keyid()), *k))
        .collect();
    let mut out = Vec::with_capacity(plain.len() + 64 + 200 * recipients.len());
    let run = |out: &mut Vec<u8>| -> openpgp::Result<()> {
        let message = Message::new(out);
        let message = Encryptor::for_recipients(message, recipients)
            .symmetric_algo(SymmetricAlgorithm::AES256)
            .build()?;
        let mut literal = LiteralWriter::new(message)
            .format(DataFormat::Binary)
            .build()?;
        literal.write_all(plain.expose())?;
        literal.finalize()?;
        Ok(())
    };
    run(&mut out).map_err(|e| root_cause(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(uid: &str) -> (MemberKey, Identity) {
        let (cert, _) = CertBuilder::general_purpose(Some(uid))
            .set_profile(openpgp::Profile::RFC4880)
            .unwrap()
            .set_cipher_suite(CipherSuite::Cv25519)
            .generate()
            .unwrap();
        let public = cert
            .clone()
            .strip_secret_key_material()
            .armored()
            .to_vec()
            .unwrap();
        let secret = cert.as_tsk().to_vec().unwrap();
        let mk = MemberKey::parse_strict(&public).unwrap();
        let id = Identity::from_bytes(&secret, &mut || unreachable!()).unwrap();
        (mk, id)
    }

    #[test]
    fn sign_and_verify() {
        let (alice, alice_id) = generate("Alice <alice@example.org>");
        let (bob, _) = generate("Bob <bob@example.org>");
        let sig = alice_id.sign_detached(b"tree 123\n", true).unwrap();
        assert!(sig.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert_eq!(
            verify_detached(&sig, b"tree 123\n", &[&bob, &alice]),
            Some(alice.fingerprint())
        );
        assert_eq!(verify_detached(&sig, b"tree 124\n", &[&alice]), None);
        assert_eq!(verify_detached(&sig, b"tree 123\n", &[&bob]), None);
    }

    #[test]
    fn fingerprint_parsing() {
        let f = Fingerprint::parse("0x3aa5 c343 0000 0000 0000  0000 0000 0000 0000 00ff").unwrap();
        assert_eq!(f.to_string(), "3AA5C343000000000000000000000000000000FF");
        assert_eq!(f.key_id().to_string(), "00000000000000FF");
        assert!(Fingerprint::parse("3AA5").is_none());
        assert!(Fingerprint::parse(&"G".repeat(40)).is_none());
    }

    #[test]
    fn encrypt_add_reader_decrypt() {
        let (alice, mut alice_id) = generate("Alice <alice@example.org>");
        let (bob, mut bob_id) = generate("Bob <bob@example.org>");
        let plain = Secret::from("hunter2\nuser: root\n".to_string());
        let ct = encrypt(&plain, &Recipients::new(&[&alice])).unwrap();
        let env = Envelope::parse(&ct).unwrap();
        assert!(env.is_seipd_v1());
        assert_eq!(env.readers().len(), 1);
        assert!(bob_id.unlock(&env).is_none());
        let sk = alice_id.unlock(&env).unwrap();
        let ct2 = add_readers(&env, &sk, &Recipients::new(&[&bob])).unwrap();
        let env2 = Envelope::parse(&ct2).unwrap();
        assert_eq!(env2.readers().len(), 2);
        let sk2 = bob_id.unlock(&env2).unwrap();
        assert_eq!(decrypt(&env2, &sk2).unwrap().expose(), plain.expose());
    }

    #[test]
    fn envelope_rejects_garbage_and_truncation() {
        let (alice, _) = generate("Alice <alice@example.org>");
        let ct = encrypt(&Secret::from("x".to_string()), &Recipients::new(&[&alice])).unwrap();
        assert!(Envelope::parse(&ct[..ct.len() - 3]).is_err());
        assert!(Envelope::parse(b"").is_err());
        assert!(Envelope::parse(b"hello world").is_err());
        let mut longer = ct.clone();
        longer.push(0);
        assert!(Envelope::parse(&longer).is_err());
    }

    #[test]
    fn secret_key_file_is_refused_as_member_key() {
        let (cert, _) = CertBuilder::general_purpose(Some("x <x@example.org>"))
            .generate()
            .unwrap();
        let secret = cert.as_tsk().to_vec().unwrap();
        assert_eq!(
            MemberKey::parse(&secret).unwrap_err(),
            KeyProblem::SecretMaterial
        );
    }
}
