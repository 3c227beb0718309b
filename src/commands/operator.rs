//! The operator: whose secret key decrypts and signs for this run (a key file, or the member
//! key gpg-agent holds), and the passphrase that unlocks it.

use std::io::Write;

use vault::crypto::{Identity, IdentityError};
use vault::secret::Secret;
use vault::snapshot::Snapshot;
use vault::Error;

use crate::cli::Global;
use crate::ui;

/// `--passphrase-file`'s first line, if given.
fn passphrase_file(global: &Global) -> vault::Result<Option<Secret>> {
    let Some(pf) = &global.passphrase_file else {
        return Ok(None);
    };
    let text = zeroize::Zeroizing::new(
        std::fs::read(pf).map_err(|e| Error::io("reading passphrase file", pf, e))?,
    );
    let line = text.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(Secret::new(zeroize::Zeroizing::new(line.to_vec()))))
}

/// The operator: the secret key file of `--identity` / `$VAULT_IDENTITY`, or else (given the
/// store's members) the member whose secret key the user's gpg-agent holds.
pub fn identity(
    global: &Global,
    members_of: Option<&Snapshot>,
) -> anyhow::Result<Option<Identity>> {
    let Some(path) = &global.identity else {
        let Some(vault) = members_of else {
            return Ok(None);
        };
        let members: Vec<&vault::crypto::MemberKey> = vault
            .roster()
            .members()
            .filter_map(|(_, f)| vault.keys().get(f))
            .collect();
        let interactive = ui::interactive() && !global.yes;
        let passphrase = passphrase_file(global)?;
        return Identity::from_agent(&members, interactive, passphrase.as_ref())
            .map(Some)
            .map_err(|problem| {
                Error::Identity {
                    file: "(none given: asked gpg-agent)".into(),
                    problem: problem.to_string(),
                }
                .into()
            });
    };
    key_file(global, path, "reading operator key").map(Some)
}

/// A secret key file (`--identity`, `--signing-key`), asking for its passphrase on the terminal
/// or reading it from `--passphrase-file`.
pub(super) fn key_file(
    global: &Global,
    path: &std::path::Path,
    what: &'static str,
) -> anyhow::Result<Identity> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(what, path, e))?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let mut ask = || -> vault::Result<Secret> {
        if let Some(p) = passphrase_file(global)? {
            return Ok(p);
        }
        if global.yes || !ui::interactive() {
            return Err(Error::Identity {
                file: file.clone(),
                problem: "it is passphrase-protected and there is no terminal to ask on".into(),
            });
        }
        ui::passphrase(&format!("Passphrase for {file}")).map_err(|e| Error::Identity {
            file: file.clone(),
            problem: e.to_string(),
        })
    };
    match Identity::from_bytes(&bytes, &mut ask) {
        Ok(id) => Ok(id),
        Err(IdentityError::Passphrase(e)) => Err(e.into()),
        Err(IdentityError::Key(p)) => Err(Error::Identity {
            file,
            problem: p.to_string(),
        }
        .into()),
        Err(IdentityError::NoSecretKey) => Err(Error::Identity {
            file,
            problem: "it holds no secret key (is it a public key?)".into(),
        }
        .into()),
        Err(IdentityError::WrongPassphrase) => Err(Error::Identity {
            file,
            problem: "the passphrase is wrong".into(),
        }
        .into()),
    }
}

/// Warns before a long run with a card-held key.
pub fn warn_card(
    identity: Option<&Identity>,
    entries: usize,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    if identity.is_some_and(|i| i.on_card()) && entries > 1 {
        writeln!(
            err,
            "note: your key is on a smartcard: each of up to {} may need a touch or a PIN",
            vault::text::count(entries, "entry", "entries")
        )?;
    }
    Ok(())
}
