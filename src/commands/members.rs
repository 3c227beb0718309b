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
    let members = vault.members();
    if args.json {
        let former: Vec<serde_json::Value> = vault
            .roster()
            .former()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.name.as_str(),
                    "fingerprint": f.fingerprint.to_string(),
                    "removed": f.removed,
                })
            })
            .collect();
        let doc = serde_json::json!({ "members": members, "former_members": former });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
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
    for m in &members {
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
    }
    let former = vault.roster().former();
    if !former.is_empty() {
        writeln!(out, "\nFormer members:")?;
        for f in former {
            writeln!(
                out,
                "  {:<width$}  {}  removed {}",
                f.name.as_str(),
                f.fingerprint,
                vault::text::escape(&f.removed)
            )?;
        }
    }
    Ok(())
}
