//! Decrypting and signing with the member's own GnuPG secret key, through gpg-agent
//! (sequoia-gpg-agent): no `gpg` process and no exported secret key. One agent connection and one
//! tokio runtime serve the whole run; workers take turns on it for the session keys and do the
//! rest of the work in parallel. Each decryption pipelines `SETKEY`, `SETKEYDESC` and
//! `PKDECRYPT` in one write: two round trips instead of four.
//!
//! More connections do not help: gpg-agent serves each on its own thread, but its threads are
//! nPth's, which run one at a time outside blocking I/O, so the agent's private-key operations
//! are serialized however many connections ask (measured, docs/performance.md: with two
//! connections the agent used 0.9 cores, and run times did not change).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sequoia_gpg_agent as gpg_agent;

use gpg_agent::assuan::{escape, Response};
use gpg_agent::sequoia_ipc::sexp::Sexp;
use gpg_agent::sequoia_ipc::Keygrip;
use gpg_agent::{Agent, PinentryMode};

use super::{openpgp, Backend, CryptoError, Identity, KeyId, MemberKey, PublicKey};
use crate::secret::Secret;
use openpgp::crypto::{mpi, Decryptor, Password, SessionKey};

/// One connection to gpg-agent for the whole run.
pub(super) struct Session {
    rt: tokio::runtime::Runtime,
    agent: Agent,
    socket: PathBuf,
    loopback: Option<Password>,
    interactive: bool,
    /// Set while a request's answers are being read: an error that stops reading leaves it set,
    /// and the connection is not used again (the next answer would be the old request's).
    out_of_step: bool,
    /// The agent's last error, to explain a failed decryption.
    pub(super) last_error: Option<String>,
}

fn agent_err(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Agent(e.to_string())
}

impl Session {
    /// Connects (starting the agent if needed) to the agent of `$GNUPGHOME` / `~/.gnupg`.
    /// Without `interactive`, the agent is told never to ask for a passphrase: it fails
    /// at once if the key is locked. With `passphrase`, it is given through loopback.
    pub(super) fn connect(
        interactive: bool,
        passphrase: Option<&Secret>,
    ) -> Result<Session, CryptoError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(agent_err)?;
        let ctx = gpg_agent::gnupg::Context::new().map_err(agent_err)?;
        let socket = ctx.socket("agent").map_err(agent_err)?.to_path_buf();
        let mut agent = rt.block_on(Agent::connect(&ctx)).map_err(agent_err)?;
        let mut options = Vec::new();
        if interactive {
            if let Ok(tty) = std::env::var("GPG_TTY") {
                options.push(format!("OPTION ttyname={tty}"));
            } else if let Some(tty) = stdin_tty() {
                options.push(format!("OPTION ttyname={tty}"));
            }
            if let Ok(term) = std::env::var("TERM") {
                options.push(format!("OPTION ttytype={term}"));
            }
            if let Ok(display) = std::env::var("DISPLAY") {
                options.push(format!("OPTION display={display}"));
            }
        }
        let loopback = passphrase.map(|p| Password::from(p.expose()));
        let mode = if loopback.is_some() {
            PinentryMode::Loopback
        } else if interactive {
            PinentryMode::Ask
        } else {
            PinentryMode::Error
        };
        options.push(format!("OPTION pinentry-mode={}", mode.as_str()));
        rt.block_on(async {
            for o in &options {
                agent.send_simple(o).await.map_err(agent_err)?;
            }
            Ok::<(), CryptoError>(())
        })?;
        Ok(Session {
            rt,
            agent,
            socket,
            loopback,
            interactive,
            out_of_step: false,
            last_error: None,
        })
    }

    pub(super) fn has_key(&mut self, key: &PublicKey) -> bool {
        let agent = &mut self.agent;
        self.rt.block_on(agent.has_key(key)).unwrap_or(false)
    }

    /// Whether the key lives on a smartcard (each operation may need a touch).
    pub(super) fn on_card(&mut self, key: &PublicKey) -> bool {
        let Ok(grip) = Keygrip::of(key.mpis()) else {
            return false;
        };
        let agent = &mut self.agent;
        self.rt
            .block_on(agent.key_info(&grip))
            .map(|i| i.keytype() == gpg_agent::keyinfo::KeyType::Smartcard)
            .unwrap_or(false)
    }

    /// One `PKDECRYPT` (GnuPG's agent protocol): `SETKEY`, `SETKEYDESC` and `PKDECRYPT` go out
    /// in one write, and their answers are read in order; the ciphertext is sent when the agent
    /// asks for it (`INQUIRE CIPHERTEXT`), the passphrase too with loopback.
    fn pkdecrypt(
        &mut self,
        key: &PublicKey,
        ciphertext: &mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        let grip = Keygrip::of(key.mpis())?;
        let prompt = format!(
            "vault needs to decrypt the team's password store entries with your key {}.",
            key.keyid()
        );
        if self.out_of_step {
            return Err(anyhow::anyhow!(
                "gpg-agent: the connection lost its place after an earlier error"
            ));
        }
        // Everything that can fail before the agent answers is done first, so an error never
        // leaves answers unread on the connection.
        let mut ciphertext_sexp = Vec::new();
        Sexp::try_from(ciphertext)?.serialize(&mut ciphertext_sexp)?;
        let agent = &mut self.agent;
        let loopback = &self.loopback;
        let out_of_step = &mut self.out_of_step;
        let result: openpgp::Result<SessionKey> = self.rt.block_on(async {
            *out_of_step = true;
            agent.send(format!(
                "SETKEY {grip}\nSETKEYDESC {}\nPKDECRYPT",
                escape(&prompt)
            ))?;
            // The answers to SETKEY and SETKEYDESC: an OK or an error each.
            let mut failure = None;
            for _ in 0..2 {
                while let Some(response) = agent.next().await {
                    if let Response::Error { message, .. } = response? {
                        failure.get_or_insert(message.unwrap_or_else(|| "unknown error".into()));
                    }
                }
            }
            let mut padding = true;
            let mut data = zeroize::Zeroizing::new(Vec::new());
            while let Some(response) = agent.next().await {
                match response? {
                    Response::Ok { .. } | Response::Comment { .. } => {}
                    Response::Inquire { keyword, .. } => match (keyword.as_str(), loopback) {
                        ("PASSPHRASE", Some(p)) => {
                            p.map(|p| agent.data(p))?;
                            agent.next().await;
                        }
                        ("CIPHERTEXT", _) => {
                            agent.data(&ciphertext_sexp)?;
                            agent.next().await;
                        }
                        _ => {
                            // Not something we answer: end the inquiry.
                            agent.send("END")?;
                            agent.next().await;
                        }
                    },
                    Response::Status { keyword, message } => {
                        if keyword == "PADDING" {
                            padding = message != "0";
                        }
                    }
                    Response::Error { message, .. } => {
                        failure.get_or_insert(message.unwrap_or_else(|| "unknown error".into()));
                    }
                    Response::Data { partial } => data.extend_from_slice(&partial),
                }
            }
            // Every answer was read: the connection is in step whatever the outcome.
            *out_of_step = false;
            if let Some(message) = failure {
                return Err(anyhow::anyhow!("gpg-agent: {message}"));
            }
            if data.last() == Some(&0) {
                let l = data.len();
                data.truncate(l - 1);
            }
            Sexp::from_bytes(&data[..])?.finish_decryption(key, ciphertext, plaintext_len, padding)
        });
        if let Err(e) = &result {
            self.last_error = Some(e.to_string());
        }
        result
    }

    /// A signer for a key held by the agent (sequoia-gpg-agent's own key pair: signing happens
    /// once per run, so its own short connection is fine).
    pub(super) fn signer(&self, key: &PublicKey) -> Result<gpg_agent::KeyPair, CryptoError> {
        let mut pair = gpg_agent::KeyPair::new_for_socket(&self.socket, key).map_err(agent_err)?;
        if let Some(p) = &self.loopback {
            pair = pair.with_password(p.clone());
        } else if !self.interactive {
            pair = pair.suppress_pinentry();
        }
        Ok(pair)
    }
}

fn stdin_tty() -> Option<String> {
    let name = rustix::termios::ttyname(std::io::stdin(), Vec::new()).ok()?;
    Some(name.to_string_lossy().into_owned())
}

/// A decryptor that asks the shared agent session.
pub(super) struct AgentDecryptor<'s> {
    pub(super) session: &'s Mutex<Session>,
    pub(super) public: &'s PublicKey,
}

impl Decryptor for AgentDecryptor<'_> {
    fn public(&self) -> &PublicKey {
        self.public
    }

    fn decrypt(
        &mut self,
        ciphertext: &mpi::Ciphertext,
        plaintext_len: Option<usize>,
    ) -> openpgp::Result<SessionKey> {
        self.session
            .lock()
            .map_err(|_| anyhow::anyhow!("the gpg-agent session is unusable"))?
            .pkdecrypt(self.public, ciphertext, plaintext_len)
    }
}

/// Finds which member's encryption subkeys the agent holds: that member is the operator.
///
/// # Errors
/// A message listing the fingerprints looked for, or the connection problem.
pub(super) fn find_operator(
    members: &[&MemberKey],
    interactive: bool,
    passphrase: Option<&Secret>,
) -> Result<Identity, CryptoError> {
    let mut session = Session::connect(interactive, passphrase)
        .map_err(|e| CryptoError::Agent(format!("cannot talk to gpg-agent: {e}")))?;
    for m in members {
        let candidates: Vec<PublicKey> = m
            .cert
            .keys()
            .subkeys()
            .map(|ka| ka.key().clone().role_into_unspecified())
            .chain(m.encryption.iter().cloned())
            .collect();
        let mut decryption = Vec::new();
        let mut on_card = false;
        for k in &candidates {
            let Some(id) = KeyId::from_openpgp(&k.keyid()) else {
                continue;
            };
            if decryption.iter().any(|(i, _)| *i == id) {
                continue;
            }
            if k.pk_algo().for_encryption() && session.has_key(k) {
                on_card |= session.on_card(k);
                decryption.push((id, k.clone()));
            }
        }
        if decryption.is_empty() {
            continue;
        }
        let signing = m.signing_key().filter(|k| session.has_key(k));
        return Ok(Identity {
            fingerprint: m.fingerprint(),
            user_id: m.user_ids().first().cloned().unwrap_or_default(),
            backend: Backend::Agent {
                session: Arc::new(Mutex::new(session)),
                keys: decryption,
                signer: signing,
                on_card,
            },
        });
    }
    let looked: Vec<String> = members
        .iter()
        .map(|m| m.fingerprint().to_string())
        .collect();
    Err(CryptoError::Agent(format!(
        "gpg-agent holds the secret key of none of the members; looked for the encryption subkeys of {}",
        looked.join(", ")
    )))
}
