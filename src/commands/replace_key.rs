//! `vault replace-key NAME NEWKEYFILE [--compromised]`: a member moves to a new key (another
//! fingerprint). Everything they read is re-encrypted with fresh session keys; the old key is
//! kept as replaced so audit still names it.

use std::io::Write;

use vault::crypto::MemberKey;
use vault::store::MemberName;
use vault::text::{count, escape};
use vault::Error;

use crate::cli::{Global, ReplaceKeyArgs};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, open_for_change, say_not_reencrypted, vouch_for};

pub fn run(
    global: &Global,
    args: &ReplaceKeyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = MemberName::parse(&args.name)?;
    let file = args.key.display().to_string();
    let bytes =
        std::fs::read(&args.key).map_err(|e| Error::io("reading key file", &args.key, e))?;
    let key = MemberKey::parse_strict(&bytes).map_err(|problem| Error::KeyFile {
        file: file.clone(),
        problem,
    })?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let plan = vault.plan_replace(&name, &key, args.compromised)?;
    let old = vault.member_fingerprint(&name)?;
    let new = key.fingerprint();
    writeln!(err, "{name} moves to a new key, {file}:")?;
    writeln!(err, "  old key      {}", old.grouped())?;
    writeln!(err, "  new key      {}", new.grouped())?;
    for uid in key.user_ids() {
        writeln!(err, "  user id      {uid}")?;
    }
    let certified = vault.keys().get(&old).map(|o| key.certified_by(o));
    writeln!(
        err,
        "  certified    {}",
        match (certified, args.compromised) {
            (Some(true), false) => "by the old key (its owner vouched for the new key with it)",
            (Some(true), true) => {
                "by the old key, which proves nothing: whoever compromised it can certify too"
            }
            (Some(false), _) => "NOT by the old key: check the new fingerprint with them in person",
            (None, _) => "cannot tell: the old key is not in .public-keys/",
        }
    )?;
    writeln!(err, "  will read    {}", plan.changed_gpg_ids().join(", "))?;
    let question = format!(
        "Is this {name}'s new key? (compare the fingerprint with {name} in person or by phone)"
    );
    let needs = "replace-key needs confirmation: check the fingerprint with the member, then pass --fingerprint FPR (or --yes)";
    if !vouch_for(global, new, args.fingerprint.as_deref(), (&question, needs))? {
        writeln!(err, "Nothing changed.")?;
        return Ok(());
    }
    // The new key is vouched for by this command: the operator checked its fingerprint.
    let outcome = carry_out(&vault, global, plan, Some(new), err)?;
    writeln!(
        out,
        "{name} now uses key {} instead of {}; commit {}. {} re-encrypted with fresh session keys.",
        new.grouped(),
        old.grouped(),
        outcome.commit.short(),
        count(outcome.reencrypted + outcome.rewrapped, "entry", "entries")
    )?;
    if args.compromised {
        if outcome.exposed.is_empty() {
            writeln!(out, "The old key could read no entry: nothing to rotate.")?;
        } else {
            writeln!(
                out,
                "\nThe old key was compromised: whoever holds it can decrypt the old versions of \
                 these entries in git history.\nRotate them (`vault rotate` walks you through changing each credential at its service):"
            )?;
            for e in &outcome.exposed {
                writeln!(out, "  {}", escape(e))?;
            }
        }
    }
    say_not_reencrypted(&outcome, "so the old key may still read it now", out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
