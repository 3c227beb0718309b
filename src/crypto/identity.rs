//! The operator's secret keys (a key file, or gpg-agent): unlocking session keys, signing, and
//! verifying detached signatures.

use std::fmt;
use std::io::Write;

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::{KeyPair, Password, SessionKey};
use openpgp::parse::stream::{MessageStructure, VerificationHelper};
use openpgp::parse::Parse;
use openpgp::serialize::stream::Message;
use openpgp::types::SymmetricAlgorithm;

use crate::error::KeyProblem;
use crate::secret::Secret;

use super::*;

/// The operator's secret keys: what decrypts the entries during a re-encryption.
#[derive(Clone)]
pub struct Identity {
    pub(super) fingerprint: Fingerprint,
    pub(super) user_id: String,
    pub(super) backend: Backend,
}

#[derive(Clone)]
pub(super) enum Backend {
    /// Secret keys from a key file, in memory; each worker thread has its own copy.
    File {
        /// Each decryption key, with its CRT form if it is RSA (see [`super::rsa`]).
        keys: Vec<(KeyId, KeyPair, Option<super::rsa::RsaCrt>)>,
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
    pub(super) algo: SymmetricAlgorithm,
    pub(super) key: SessionKey,
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
                let crt = super::rsa::RsaCrt::of(&pair);
                keys.push((id, pair, crt));
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
    ) -> Result<Self, CryptoError> {
        agent::find_operator(members, interactive, passphrase)
    }

    /// Whether the operator's key is on a smartcard (each decryption may need a touch).
    pub fn on_card(&self) -> bool {
        matches!(self.backend, Backend::Agent { on_card: true, .. })
    }

    /// Whether the connection to gpg-agent broke during the run (the agent died, or was
    /// restarted, while vault waited for an answer): nothing more can be asked of it.
    pub fn agent_lost(&self) -> bool {
        match &self.backend {
            Backend::Agent { session, .. } => session.lock().map_or(true, |s| s.lost()),
            Backend::File { .. } => false,
        }
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
    pub fn sign_detached(&self, data: &[u8], armored: bool) -> Result<Vec<u8>, CryptoError> {
        let missing = CryptoError::Unusable("the operator key has no usable signing key");
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
                    .map_err(|_| CryptoError::Agent("the gpg-agent session is unusable".into()))?
                    .signer(key)?;
                sign_with(pair, data, armored)
            }
        }
    }

    /// Decrypts the OpenPGP message `bytes` (an entry) in zeroizing memory: parse, unlock the
    /// session key ([`Identity::unlock`]), decrypt. `Ok(None)` if it is not encrypted to us.
    ///
    /// # Errors
    /// A message that does not parse or whose data does not decrypt (integrity check).
    pub fn open(&mut self, bytes: &[u8]) -> Result<Option<crate::secret::Secret>, CryptoError> {
        let env = Envelope::parse(bytes)?;
        match self.unlock(&env) {
            Some(unlocked) => super::decrypt(&env, &unlocked).map(Some),
            None => Ok(None),
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
                    .filter(|(id, ..)| target.is_none_or(|t| t == *id))
                    .find_map(|(_, pair, crt)| match crt {
                        Some(crt) => pkesk.decrypt(crt, None),
                        None => pkesk.decrypt(pair, None),
                    }),
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

impl Identity {
    /// Whether this operator's private-key operations are done one at a time outside vault
    /// (gpg-agent does one at a time however many connections ask, docs/performance.md):
    /// then [`Identity::unlock_in_order`], which keeps the agent busy, is the way to unlock
    /// many messages; with a key file, [`Identity::unlock`] on every core is.
    pub fn is_serial(&self) -> bool {
        matches!(self.backend, Backend::Agent { .. })
    }

    /// Unlocks the session keys of `messages` as [`Identity::unlock`] does for each, calling
    /// `done` with each message's tag, the message and its session key (`None`: not
    /// encrypted to us) as they come: in order, except that a message whose first key to try
    /// fails comes later. Through gpg-agent, several requests are in flight on the one
    /// connection ([`agent::Session::pkdecrypt_each`]); with a key file, one after another.
    /// `messages` is read as requests go out, so it may be slow to make.
    pub fn unlock_in_order<'m, T>(
        &mut self,
        messages: impl IntoIterator<Item = (T, Envelope<'m>)>,
        mut done: impl FnMut(T, Envelope<'m>, Option<Unlocked>),
    ) {
        let Backend::Agent { session, keys, .. } = &self.backend else {
            for (tag, env) in messages {
                let unlocked = self.unlock(&env);
                done(tag, env, unlocked);
            }
            return;
        };
        /// A message, the (PKESK, key) pairs to try in [`Identity::unlock`]'s order, and the
        /// next one.
        struct Job<'m, T> {
            tag: T,
            env: Envelope<'m>,
            tries: Vec<(usize, usize)>,
            next: usize,
        }
        let mut session = match session.lock() {
            Ok(s) => s,
            Err(_) => {
                // A worker panicked with the session: nothing can be asked of it.
                messages.into_iter().for_each(|(t, e)| done(t, e, None));
                return;
            }
        };
        let jobs = messages.into_iter().map(|(tag, env)| {
            let tries = env
                .pkesks
                .iter()
                .enumerate()
                .flat_map(|(p, pkesk)| {
                    let target = pkesk.recipient().as_ref().and_then(KeyId::from_handle);
                    keys.iter()
                        .enumerate()
                        .filter(move |(_, (id, _))| target.is_none_or(|t| t == *id))
                        .map(move |(k, _)| (p, k))
                })
                .collect();
            Job {
                tag,
                env,
                tries,
                next: 0,
            }
        });
        session.pkdecrypt_each(
            jobs,
            |job| {
                let (p, k) = *job.tries.get(job.next)?;
                let mut record = Record {
                    key: keys[k].1.clone(),
                    request: None,
                };
                let _ = job.env.pkesks[p].decrypt(&mut record, None);
                record.request
            },
            |mut job, answer| {
                let Some(&(p, k)) = job.tries.get(job.next) else {
                    // None of the operator's keys is among its readers.
                    done(job.tag, job.env, None);
                    return None;
                };
                let unlocked = answer.ok().and_then(|key| {
                    let mut replay = Replay {
                        key: keys[k].1.clone(),
                        answer: Some(key),
                    };
                    job.env.pkesks[p].decrypt(&mut replay, None)
                });
                match unlocked {
                    Some((Some(algo), key)) => done(job.tag, job.env, Some(Unlocked { algo, key })),
                    _ if job.next + 1 < job.tries.len() => {
                        job.next += 1;
                        return Some(job);
                    }
                    _ => done(job.tag, job.env, None),
                }
                None
            },
        );
    }
}

/// The first of a decryptor's two passes in [`Identity::unlock_in_order`]: records what sequoia
/// asks the key to decrypt (the PKESK's ciphertext as its algorithm hands it over, RFC 9580
/// §5.1), and refuses.
struct Record {
    key: PublicKey,
    request: Option<agent::Request>,
}

impl openpgp::crypto::Decryptor for Record {
    fn public(&self) -> &PublicKey {
        &self.key
    }

    fn decrypt(
        &mut self,
        ciphertext: &openpgp::crypto::mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        self.request = Some(agent::Request {
            key: self.key.clone(),
            ciphertext: ciphertext.clone(),
            plaintext_len,
        });
        Err(anyhow::anyhow!("recorded, not decrypted"))
    }
}

/// The second pass: gives the agent's answer to the recorded request, once.
struct Replay {
    key: PublicKey,
    answer: Option<SessionKey>,
}

impl openpgp::crypto::Decryptor for Replay {
    fn public(&self) -> &PublicKey {
        &self.key
    }

    fn decrypt(
        &mut self,
        _ciphertext: &openpgp::crypto::mpi::Ciphertext,
        _plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        self.answer
            .take()
            .ok_or_else(|| anyhow::anyhow!("asked twice"))
    }
}

/// Makes a detached signature with any signer (a key pair in memory, or gpg-agent's).
pub(super) fn sign_with<S>(signer: S, data: &[u8], armored: bool) -> Result<Vec<u8>, CryptoError>
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
    run(&mut out).map_err(|e| CryptoError::openpgp("", e))?;
    Ok(out)
}

pub(super) struct SignatureHelper<'c> {
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
