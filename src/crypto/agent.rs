//! Decrypting and signing with the member's own GnuPG secret key, through gpg-agent
//! (sequoia-gpg-agent): no `gpg` process and no exported secret key. One agent connection and one
//! tokio runtime serve the whole run. Each decryption is one write (`SETKEY`, `SETKEYDESC`,
//! `PKDECRYPT` and the ciphertext) and one round trip, and one thread keeps several in flight
//! ([`Session::pkdecrypt_each`]) while other threads do the rest of the work.
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

/// Requests in flight on the connection at most (see [`Session::pkdecrypt_each`]): enough to
/// keep the agent busy while vault reads an answer, few enough that neither direction's socket
/// buffer can fill while vault writes and does not read (sequoia-gpg-agent's client reads only
/// once a write is done): a request is under 5 KiB, as gpg-agent takes ciphertexts of up to
/// 4096 bytes, and an answer smaller, so 16 stay far below Linux's default buffer of a Unix
/// socket (over 200 KiB).
const PIPELINE: usize = 16;

/// One `PKDECRYPT`: the operator's key, the ciphertext as sequoia asks the key's decryptor
/// for it, and the plaintext's length if known (as [`Decryptor::decrypt`] takes them).
#[derive(Clone)]
pub(super) struct Request {
    pub(super) key: PublicKey,
    pub(super) ciphertext: mpi::Ciphertext,
    pub(super) plaintext_len: Option<usize>,
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

    /// Whether the connection broke while answers were still due: it is not used again.
    pub(super) fn lost(&self) -> bool {
        self.out_of_step
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

    /// One `PKDECRYPT` (GnuPG's agent protocol): [`Session::pkdecrypt_each`] with one request.
    fn pkdecrypt(&mut self, request: Request) -> openpgp::Result<SessionKey> {
        let mut result = None;
        self.pkdecrypt_each(
            std::iter::once(request),
            |r| Some(r.clone()),
            |_, answer| {
                result = Some(answer);
                None
            },
        );
        result.unwrap_or_else(|| Err(anyhow::anyhow!("gpg-agent: no answer")))
    }

    /// `PKDECRYPT`s for `jobs`, in order, on the one connection, with up to [`PIPELINE`]
    /// requests in flight, so that the agent, which does one at a time, never waits for vault
    /// between two. `request` says what to ask for a job (`None`: nothing, the job is answered
    /// at once with an error); `answer` gets each job with the agent's answer, in the order
    /// they were sent, and may give the job back to be sent again (another key to try).
    ///
    /// Each request is one write: `SETKEY`, `SETKEYDESC`, `PKDECRYPT` and the ciphertext as
    /// the answer to the `INQUIRE CIPHERTEXT` that gpg-agent's `PKDECRYPT` always makes first
    /// (GnuPG's agent/command.c): one round trip per request, and none between requests. With
    /// a passphrase given through loopback, the agent may inquire for it after the ciphertext,
    /// and would read a queued request instead: one request at a time. When the agent may ask
    /// for a passphrase with pinentry, one at a time too until a decryption succeeds, so that
    /// a cancelled prompt is not followed by the queued ones.
    ///
    /// A connection that fails (or answers out of step) fails every job still waiting, and
    /// is not used again.
    pub(super) fn pkdecrypt_each<J>(
        &mut self,
        jobs: impl IntoIterator<Item = J>,
        mut request: impl FnMut(&J) -> Option<Request>,
        mut answer: impl FnMut(J, openpgp::Result<SessionKey>) -> Option<J>,
    ) {
        let mut jobs = jobs.into_iter();
        let mut again: std::collections::VecDeque<J> = Default::default();
        let mut in_flight: std::collections::VecDeque<(J, Request)> = Default::default();
        let mut unlocked = !self.interactive;
        loop {
            let depth = match (&self.loopback, unlocked) {
                (None, true) => PIPELINE,
                _ => 1,
            };
            let mut out = Vec::new();
            while in_flight.len() < depth {
                let Some(job) = again.pop_front().or_else(|| jobs.next()) else {
                    break;
                };
                let built = match (self.out_of_step, request(&job)) {
                    (true, _) => Err(anyhow::anyhow!(
                        "gpg-agent: the connection lost its place after an earlier error"
                    )),
                    (false, None) => Err(anyhow::anyhow!("no key of the operator's to ask for")),
                    (false, Some(r)) => self.request_bytes(&r).map(|bytes| (r, bytes)),
                };
                match built {
                    Ok((r, bytes)) => {
                        out.extend_from_slice(&bytes);
                        in_flight.push_back((job, r));
                    }
                    Err(e) => again.extend(answer(job, Err(e))),
                }
            }
            let Some((job, r)) = in_flight.pop_front() else {
                if again.is_empty() {
                    return;
                }
                continue;
            };
            let result = self.send_and_read(out, &r, in_flight.is_empty());
            unlocked |= result.is_ok();
            again.extend(answer(job, result));
        }
    }

    /// One request's bytes (see [`Session::pkdecrypt_each`]).
    fn request_bytes(&self, r: &Request) -> openpgp::Result<Vec<u8>> {
        let grip = Keygrip::of(r.key.mpis())?;
        let prompt = format!(
            "vault needs to decrypt the team's password store entries with your key {}.",
            r.key.keyid()
        );
        let mut ciphertext = Vec::new();
        Sexp::try_from(&r.ciphertext)?.serialize(&mut ciphertext)?;
        let mut bytes =
            format!("SETKEY {grip}\nSETKEYDESC {}\nPKDECRYPT\n", escape(&prompt)).into_bytes();
        bytes.extend_from_slice(&data_lines(&ciphertext));
        Ok(bytes)
    }

    /// Writes `out` (requests to queue, possibly none), then reads the answers to the oldest
    /// request in flight, `r`, and makes its session key. `alone`: no other request is queued
    /// behind it, so an inquiry may be answered.
    fn send_and_read(
        &mut self,
        out: Vec<u8>,
        r: &Request,
        alone: bool,
    ) -> openpgp::Result<SessionKey> {
        if self.out_of_step {
            return Err(anyhow::anyhow!(
                "gpg-agent: the connection lost its place after an earlier error"
            ));
        }
        let agent = &mut self.agent;
        let loopback = &self.loopback;
        let out_of_step = &mut self.out_of_step;
        let answer = self.rt.block_on(async {
            // Until every answer to this request was read, the connection is out of step.
            *out_of_step = true;
            if !out.is_empty() {
                agent.send(out)?;
            }
            // The stream of answers pauses (`None`) after each OK, ERR or INQUIRE, and ends
            // (`None` for ever) when the agent closes the connection: a pause with none of
            // those before it is the end.
            let closed = || anyhow::anyhow!("gpg-agent closed the connection");
            // The answers to SETKEY and SETKEYDESC: an OK or an error each.
            let mut failure = None;
            for _ in 0..2 {
                let mut answered = false;
                while let Some(response) = agent.next().await {
                    match response? {
                        Response::Ok { .. } => answered = true,
                        Response::Error { message, .. } => {
                            answered = true;
                            failure
                                .get_or_insert(message.unwrap_or_else(|| "unknown error".into()));
                        }
                        _ => {}
                    }
                }
                if !answered {
                    return Err(closed());
                }
            }
            let (mut padding, mut inquired, mut ended) = (true, false, false);
            let mut data = zeroize::Zeroizing::new(Vec::new());
            while !ended {
                let mut answered = false;
                while let Some(response) = agent.next().await {
                    let response = response?;
                    answered |= matches!(
                        response,
                        Response::Ok { .. } | Response::Error { .. } | Response::Inquire { .. }
                    );
                    match response {
                        Response::Comment { .. } => {}
                        Response::Ok { .. } => ended = true,
                        Response::Error { message, .. } => {
                            ended = true;
                            failure
                                .get_or_insert(message.unwrap_or_else(|| "unknown error".into()));
                        }
                        Response::Status { keyword, message } => {
                            if keyword == "PADDING" {
                                padding = message != "0";
                            }
                        }
                        Response::Data { partial } => data.extend_from_slice(&partial),
                        Response::Inquire { keyword, .. } => match (keyword.as_str(), loopback) {
                            // Sent with the request.
                            ("CIPHERTEXT", _) if !inquired => inquired = true,
                            ("PASSPHRASE", Some(p)) if alone => p.map(|p| agent.data(p))?,
                            // Not something we answer: end the inquiry.
                            (_, _) if alone => agent.send("END")?,
                            // The agent would read the queued requests as the answer.
                            (k, _) => anyhow::bail!("gpg-agent asked for {k} with requests queued"),
                        },
                    }
                }
                if !answered {
                    return Err(closed());
                }
            }
            if !inquired {
                anyhow::bail!("gpg-agent answered PKDECRYPT without asking for the ciphertext");
            }
            // Every answer was read: the connection is in step whatever the outcome.
            *out_of_step = false;
            if let Some(message) = failure {
                anyhow::bail!("gpg-agent: {message}");
            }
            if data.last() == Some(&0) {
                let l = data.len();
                data.truncate(l - 1);
            }
            Ok((data, padding))
        });
        // What the agent said, or a broken connection, explains a failed change (a locked key,
        // no pinentry); a session key that does not unwrap (another member's PKESK tried for
        // a hidden recipient) is not the agent's doing.
        let (data, padding) = answer.inspect_err(|e| self.last_error = Some(e.to_string()))?;
        Sexp::from_bytes(&data[..])?.finish_decryption(
            &r.key,
            &r.ciphertext,
            r.plaintext_len,
            padding,
        )
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

/// `data` as an inquiry's answer: `D` lines, `%`, CR and LF percent-escaped, then `END`
/// (the Assuan protocol, as libassuan reads it).
fn data_lines(data: &[u8]) -> Vec<u8> {
    const MAX_LINE: usize = 1000 - 3;
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut line = 0;
    for &b in data {
        if line == 0 {
            out.extend_from_slice(b"D ");
            line = 2;
        }
        if matches!(b, b'%' | b'\n' | b'\r') {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
            line += 3;
        } else {
            out.push(b);
            line += 1;
        }
        if line >= MAX_LINE - 3 {
            out.push(b'\n');
            line = 0;
        }
    }
    if line != 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(b"END\n");
    out
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
            .pkdecrypt(Request {
                key: self.public.clone(),
                ciphertext: ciphertext.clone(),
                plaintext_len,
            })
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

#[cfg(test)]
mod tests {
    use super::data_lines;

    #[test]
    fn inquiry_data_is_escaped_and_split_as_libassuan_reads_it() {
        assert_eq!(data_lines(b"(7:enc-val)"), b"D (7:enc-val)\nEND\n");
        assert_eq!(data_lines(b"a%b\nc\rd"), b"D a%25b%0Ac%0Dd\nEND\n");
        assert_eq!(data_lines(b""), b"END\n");
        // A long ciphertext (RSA-4096 and up) goes on several lines, none over 1000 bytes.
        let long = vec![b'%'; 700];
        let out = data_lines(&long);
        let lines: Vec<&[u8]> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert!(lines.len() > 2, "{} lines", lines.len());
        assert!(lines.iter().all(|l| l.len() < 1000));
        assert_eq!(lines.last().unwrap(), b"END");
        let unescaped: usize = lines[..lines.len() - 1]
            .iter()
            .map(|l| l.strip_prefix(b"D ").unwrap().len() / 3)
            .sum();
        assert_eq!(unescaped, 700);
    }
}
