//! `vault remove-member NAME`: re-encrypt without them, one commit, then say what to rotate.

use std::io::Write;

use vault::store::{parse_folder, MemberName};
use vault::text::count;

use crate::cli::{Global, RemoveMemberArgs};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out, open_for_change, say_not_reencrypted};
use crate::ui;

pub fn run(
    global: &Global,
    args: &RemoveMemberArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let name = MemberName::parse(&args.name)?;
    let folder = args.folder.as_deref().map(parse_folder).transpose()?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    if let Some(f) = &folder {
        vault.check_folder(f, args.create)?;
    }
    let plan = vault.plan_remove(&name, folder.clone())?;
    if args.only_a_folder && plan.retires(&name) {
        anyhow::bail!(
            "{name} reads nothing but {}: revoking it would remove {name} from the store. To do \
             that, run `vault remove-member {name}`; nothing was changed",
            vault::store::show_folder(folder.as_deref().unwrap_or(""))
        );
    }
    let fpr = vault.roster().fingerprint(&name).expect("planned above");
    writeln!(
        err,
        "Removing {name} ({}) from {}.",
        fpr.grouped(),
        plan.changed_gpg_ids().join(", ")
    )?;
    let yes = ui::confirm(
        global.yes,
        &format!("Remove {name} and re-encrypt what they could read?"),
        "remove-member needs confirmation: pass --yes",
    )?;
    if !yes {
        writeln!(err, "Nothing changed.")?;
        return Ok(());
    }
    let outcome = carry_out(&vault, global, plan, None, err)?;
    writeln!(
        out,
        "Removed {name} from {}; commit {}. {} re-encrypted with fresh session keys.",
        outcome.changed_gpg_ids.join(", "),
        outcome.commit.short(),
        count(outcome.reencrypted + outcome.rewrapped, "entry", "entries")
    )?;
    if outcome.exposed.is_empty() {
        writeln!(out, "{name} could read no entry: nothing to rotate.")?;
    } else {
        writeln!(
            out,
            "\n{name} could read {}, and can still decrypt their old versions in git history.\nRotate them (`vault rotate` walks you through changing each credential at its service):",
            if outcome.exposed.len() == 1 {
                "this entry".to_string()
            } else {
                format!("these {} entries", outcome.exposed.len())
            }
        )?;
        for e in &outcome.exposed {
            writeln!(out, "  {}", vault::text::escape(e))?;
        }
    }
    say_not_reencrypted(&outcome, &format!("and {name} may still read it now"), out)?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
