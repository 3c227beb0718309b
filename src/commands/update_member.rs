//! `vault update-member NAME KEYFILE|--from-gpg`: take a member's renewed or extended
//! certificate (same fingerprint), show what changed, re-encrypt exactly what must, one commit.

use std::io::Write;

use vault::crypto::MemberKey;
use vault::store::{MemberName, Recipient};
use vault::text::{count, escape};
use vault::{keyring, Error};

use crate::cli::{Global, UpdateMemberArgs};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, open_for_change, say_not_reencrypted};

pub fn run(
    global: &Global,
    args: &UpdateMemberArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = MemberName::parse(&args.name)?;
    let (file, bytes) = match &args.key {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io("reading key file", path, e))?;
            (path.display().to_string(), bytes)
        }
        None => {
            let fpr = vault.member_fingerprint(&name)?;
            let bytes = keyring::export(&Recipient::Fingerprint(fpr))
                .map_err(|e| anyhow::anyhow!("taking {name}'s key from GnuPG: {e}"))?;
            if bytes.is_empty() {
                anyhow::bail!(
                    "your GnuPG keyring has no key {fpr} for {name}: import their updated key \
                     (`gpg --import FILE`) or give the file: `vault update-member {name} FILE`"
                );
            }
            (format!("your GnuPG keyring ({fpr})"), bytes)
        }
    };
    let key = MemberKey::parse(&bytes).map_err(|problem| Error::KeyFile {
        file: file.clone(),
        problem,
    })?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let Some((plan, changes)) = vault.plan_update(&name, &key)? else {
        writeln!(
            out,
            "The key from {} adds nothing to {name}'s key in the store: nothing changed.",
            escape(&file)
        )?;
        return Ok(());
    };
    writeln!(
        err,
        "Updating {name}'s key {}:",
        key.fingerprint().grouped()
    )?;
    for change in &changes {
        writeln!(err, "  {change}")?;
    }
    let outcome = carry_out(&vault, global, plan, None, err)?;
    writeln!(
        out,
        "Updated {name}'s key; commit {}. {} re-wrapped for a new subkey, {} re-encrypted with \
         fresh session keys, {} already right.",
        outcome.commit.short(),
        count(outcome.rewrapped, "entry", "entries"),
        outcome.reencrypted,
        outcome.unchanged
    )?;
    if !outcome.exposed.is_empty() {
        writeln!(
            out,
            "\nA subkey of {name}'s was revoked as compromised (or without a reason): whoever holds \
             it can decrypt these entries' old versions in git history.\nRotate them (`vault \
             rotate` walks you through changing each credential at its service):"
        )?;
        for e in &outcome.exposed {
            writeln!(out, "  {}", escape(e))?;
        }
    }
    say_not_reencrypted(&outcome, "so it keeps its old readers", out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
