//! `vault repair`: every entry encrypted to exactly its nearest `.gpg-id`, in one signed commit;
//! what a former member could read is listed to rotate.

use std::io::Write;

use vault::text::{count, escape};
use vault::Error;

use crate::cli::Global;
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, open_for_change, say_not_reencrypted};

/// Runs the repair. Refuses, as every change does, to encrypt to a recipient `vault verify`
/// does not vouch for.
pub fn run(global: &Global, out: &mut dyn Write, err: &mut dyn Write) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let plan = vault.plan_repair();
    // Decided from the ciphertexts alone: with nothing to repair, no secret key is needed.
    let outcome = match vault
        .unrepaired(&plan)
        .map_err(anyhow::Error::from)
        .and_then(|(wrong, not_reencrypted)| {
            if wrong.is_empty() && !vault.readme_stale()? {
                return Err(Error::NothingToRepair { not_reencrypted }.into());
            }
            carry_out(&vault, global, plan, None, err)
        }) {
        Ok(outcome) => outcome,
        Err(e) => {
            let Some(Error::NothingToRepair { not_reencrypted }) = e.downcast_ref::<Error>() else {
                return Err(e);
            };
            writeln!(
                out,
                "Nothing to repair: every entry is encrypted to exactly its .gpg-id."
            )?;
            for what in not_reencrypted {
                writeln!(out, "  not repaired: {what}")?;
            }
            return Ok(());
        }
    };
    if outcome.rewrapped + outcome.reencrypted == 0 {
        writeln!(
            out,
            "Every entry is encrypted to exactly its .gpg-id; refreshed README.md, commit {}.",
            outcome.commit.short()
        )?;
    } else {
        writeln!(
            out,
            "Repaired {}: {} gained readers, {} re-encrypted with fresh session keys; commit {}.",
            count(outcome.rewrapped + outcome.reencrypted, "entry", "entries"),
            outcome.rewrapped,
            outcome.reencrypted,
            outcome.commit.short()
        )?;
    }
    if !outcome.exposed.is_empty() {
        writeln!(
            out,
            "\nA former member could read {} until now. Rotate {} (`vault rotate` walks you \
             through changing each credential at its service):",
            count(outcome.exposed.len(), "entry", "entries"),
            if outcome.exposed.len() == 1 {
                "it"
            } else {
                "them"
            }
        )?;
        for e in &outcome.exposed {
            writeln!(out, "  {}", escape(e))?;
        }
    }
    say_not_reencrypted(&outcome, "and whoever could read it may still read it", out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
