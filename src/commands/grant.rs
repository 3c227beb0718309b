//! `vault grant NAME --folder DIR`: an existing member reads one more folder. (`vault revoke` is
//! `remove-member --folder`.)

use std::io::Write;

use vault::store::{parse_folder, show_folder, MemberName};

use crate::cli::{FolderAccessArgs, Global};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, now_readable, open_for_change, say_not_reencrypted};

pub fn run(
    global: &Global,
    args: &FolderAccessArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = MemberName::parse(&args.name)?;
    let folder = parse_folder(&args.folder)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    vault.check_folder(&folder, args.create)?;
    let plan = vault.plan_grant(&name, folder.clone())?;
    let fpr = vault.member_fingerprint(&name)?;
    let uid = vault
        .keys()
        .get(&fpr)
        .and_then(|k| k.user_ids().first().cloned())
        .unwrap_or_default();
    writeln!(
        err,
        "Granting {name} ({}, {uid}) {} (writes {}).",
        fpr.grouped(),
        show_folder(&folder),
        plan.changed_gpg_ids().join(", ")
    )?;
    let outcome = carry_out(&vault, global, plan, None, err)?;
    writeln!(
        out,
        "{name} now reads {}; commit {}. {}",
        show_folder(&folder),
        outcome.commit.short(),
        now_readable(&outcome, name.as_str())
    )?;
    say_not_reencrypted(&outcome, &format!("so {name} cannot read it yet"), out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
