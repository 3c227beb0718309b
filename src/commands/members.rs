//! `vault members`: who is a member, with which key, reading which folders.

use std::io::Write;

use crate::cli::{Global, MembersArgs};
use crate::commands::open;

pub fn run(
    global: &Global,
    args: &MembersArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open(global, err)?;
    let report = vault.members_report(args.expiry.within());
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let members = &report.members;
    let width = members
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(
        out,
        "{:<width$}  {:<40}  {:<20}  FOLDERS",
        "NAME", "FINGERPRINT", "EXPIRES"
    )?;
    for m in members {
        let expires = m.expires.clone().unwrap_or_else(|| "never".into());
        writeln!(
            out,
            "{:<width$}  {:<40}  {:<20}  {}",
            m.name,
            m.fingerprint,
            expires,
            if m.folders.is_empty() {
                "-".to_string()
            } else {
                m.folders.join(" ")
            }
        )?;
        if let Some(p) = &m.problem {
            writeln!(out, "{:<width$}  ! {p}", "")?;
        }
        if let Some(w) = &m.warning {
            writeln!(out, "{:<width$}  ! {w}", "")?;
        }
    }
    if !report.replaced_keys.is_empty() {
        writeln!(out, "\nReplaced keys:")?;
        for r in &report.replaced_keys {
            writeln!(
                out,
                "  {:<width$}  {}  replaced {}{}",
                r.name,
                r.fingerprint,
                r.replaced,
                if r.compromised { " (compromised)" } else { "" }
            )?;
        }
    }
    if !report.former_members.is_empty() {
        writeln!(out, "\nFormer members:")?;
        for f in &report.former_members {
            writeln!(
                out,
                "  {:<width$}  {}  removed {}",
                f.name, f.fingerprint, f.removed
            )?;
        }
    }
    Ok(())
}
