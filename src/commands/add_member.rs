//! `vault add-member KEYFILE`: validate a key, confirm its fingerprint, re-encrypt, one commit.

use std::io::Write;

use vault::crypto::MemberKey;
use vault::store::{parse_folder, show_folder, MemberName};
use vault::Error;

use crate::cli::{AddMemberArgs, Global};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{
    carry_out, init::stem_name, now_readable, open_for_change, say_not_reencrypted, vouch_for,
};

pub fn run(
    global: &Global,
    args: &AddMemberArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let file = args.key.display().to_string();
    let bytes =
        std::fs::read(&args.key).map_err(|e| Error::io("reading key file", &args.key, e))?;
    let key = MemberKey::parse_strict(&bytes).map_err(|problem| Error::KeyFile {
        file: file.clone(),
        problem,
    })?;
    let name = match &args.name {
        Some(n) => MemberName::parse(n)?,
        None => stem_name(&args.key)?,
    };
    let folder = args.folder.as_deref().map(parse_folder).transpose()?;
    // The input is good: now the change is made on the upstream's latest state.
    let (vault, upstream) = catch_up(vault, global, err)?;
    if let Some(f) = &folder {
        vault.check_folder(f, args.create)?;
    }
    let plan = vault.plan_add(&key, name.clone(), folder.clone())?;

    let fpr = key.fingerprint();
    writeln!(err, "New member {name}, key {file}:")?;
    writeln!(err, "  fingerprint  {}", fpr.grouped())?;
    for uid in key.user_ids() {
        writeln!(err, "  user id      {uid}")?;
    }
    writeln!(
        err,
        "  will read    {} (writes {})",
        show_folder(folder.as_deref().unwrap_or("")),
        plan.changed_gpg_ids().join(", ")
    )?;
    let question = format!(
        "Is this {name}'s key? (compare the fingerprint with {name} in person or by phone)"
    );
    let needs = "add-member needs confirmation: check the fingerprint with the new member, then pass --fingerprint FPR (or --yes)";
    if !vouch_for(global, fpr, args.fingerprint.as_deref(), (&question, needs))? {
        writeln!(err, "Nothing changed.")?;
        return Ok(());
    }

    // The new member is vouched for by this very command (the operator checked the fingerprint).
    let outcome = carry_out(&vault, global, plan, Some(fpr), err)?;
    writeln!(
        out,
        "Added {name} ({}) to {}; commit {}.",
        fpr.grouped(),
        outcome.changed_gpg_ids.join(", "),
        outcome.commit.short()
    )?;
    writeln!(out, "{}", now_readable(&outcome, name.as_str()))?;
    say_not_reencrypted(&outcome, &format!("so {name} cannot read it yet"), out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
