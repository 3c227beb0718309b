//! The only module that imports sequoia-openpgp.
//!
//! It validates certificates, reads who a message is encrypted to (its PKESK packets) without
//! decrypting it, unlocks session keys with the operator's secret key, re-wraps a session key for
//! new recipients, and decrypts and encrypts entries. Everything it writes is what GnuPG 2.2 and
//! pass read: v4 keys, one PKESK per recipient encryption subkey, SEIPD v1, AES-256, no
//! compression (see STORE-FORMAT.md).

use sequoia_openpgp as openpgp;

use openpgp::policy::StandardPolicy;

mod agent;

static POLICY: StandardPolicy<'static> = StandardPolicy::new();
mod cert;
mod identity;
mod message;
mod rsa;

pub use crate::ids::{Fingerprint, KeyId};
pub use cert::{KeyChange, MemberKey, Revocation, Subkey};
pub use identity::{signature_issuers, verify_detached, Identity, IdentityError, Unlocked};
pub use message::{add_readers, decrypt, encrypt, Envelope, Reader, Recipients};

pub use crate::text::format_time;

/// Why an OpenPGP operation failed. `Display` is the reason for people (for sequoia's errors,
/// the innermost cause, which names the problem); `source()` keeps sequoia's whole chain.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The bytes do not follow the packet grammar (RFC 9580 §4.2, §5.1, §5.13) the way vault
    /// reads it: how.
    #[error("{0}")]
    Malformed(String),
    /// The operator's key lacks what the operation needs.
    #[error("{0}")]
    Unusable(&'static str),
    /// gpg-agent could not be reached or refused: what it said.
    #[error("{0}")]
    Agent(String),
    /// sequoia refused while doing `what`.
    #[error("{what}{}{}", if what.is_empty() { "" } else { ": " }, innermost(&**cause))]
    Openpgp {
        what: String,
        #[source]
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl CryptoError {
    /// sequoia's error `e`, met while doing `what` (empty: the error says it all).
    pub(crate) fn openpgp(what: impl Into<String>, e: anyhow::Error) -> CryptoError {
        CryptoError::Openpgp {
            what: what.into(),
            cause: e.into(),
        }
    }
}

/// The last error in a chain of causes: the one that names the actual problem.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

use cert::{parse_single_cert, PublicKey};
use identity::Backend;

// Conversions from sequoia's identifiers (kept here: the only module that imports sequoia).
impl Fingerprint {
    pub(crate) fn from_openpgp(fp: &openpgp::Fingerprint) -> Option<Self> {
        let bytes: [u8; 20] = fp.as_bytes().try_into().ok()?;
        Some(Fingerprint::from_bytes(bytes))
    }
}

impl KeyId {
    pub(crate) fn from_openpgp(id: &openpgp::KeyID) -> Option<Self> {
        let bytes: [u8; 8] = id.as_bytes().try_into().ok()?;
        Some(KeyId::from_bytes(bytes))
    }

    pub(crate) fn from_handle(h: &openpgp::KeyHandle) -> Option<Self> {
        Self::from_openpgp(&openpgp::KeyID::from(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KeyProblem;
    use crate::secret::Secret;
    use openpgp::cert::prelude::*;
    use openpgp::serialize::SerializeInto;

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
        // A PKESK sequoia cannot read (an unknown version), framed correctly.
        let mut unknown = ct.clone();
        assert_eq!((unknown[0], unknown[2]), (0xc1, 3), "a v3 PKESK first");
        unknown[2] = 9;
        assert!(Envelope::parse(&unknown).is_err());
        assert!(Envelope::readers_of(&unknown).is_err());
    }

    #[test]
    fn readers_from_the_packet_headers_are_the_parsed_readers() {
        let (alice, _) = generate("Alice <alice@example.org>");
        let (bob, _) = generate("Bob <bob@example.org>");
        let ct = encrypt(
            &Secret::from("x".to_string()),
            &Recipients::new(&[&alice, &bob]),
        )
        .unwrap();
        let parsed = |b: &[u8]| Envelope::parse(b).map(|e| e.readers());
        assert_eq!(Envelope::readers_of(&ct).unwrap(), parsed(&ct).unwrap());
        assert_eq!(Envelope::readers_of(&ct).unwrap().len(), 2);
        // The first PKESK made anonymous (`gpg --throw-keyids`): a zero key ID.
        let mut hidden = ct.clone();
        // sequoia writes a new-format header with a one-octet length (RFC 9580 §4.2).
        assert_eq!((hidden[0], hidden[2]), (0xc1, 3), "a v3 PKESK first");
        hidden[3..11].fill(0);
        let readers = Envelope::readers_of(&hidden).unwrap();
        assert_eq!(readers, parsed(&hidden).unwrap());
        assert_eq!(readers[0], None);
        // Armored, as some clients write entries.
        let mut armored = Vec::new();
        {
            let mut w =
                openpgp::armor::Writer::new(&mut armored, openpgp::armor::Kind::Message).unwrap();
            std::io::Write::write_all(&mut w, &ct).unwrap();
            w.finalize().unwrap();
        }
        assert_eq!(
            Envelope::readers_of(&armored).unwrap(),
            parsed(&ct).unwrap()
        );
        // What parse refuses, this refuses.
        for bad in [&ct[..ct.len() - 3], b"", b"hello world", &ct[..7]] {
            assert!(Envelope::readers_of(bad).is_err());
            assert!(Envelope::parse(bad).is_err());
        }
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
