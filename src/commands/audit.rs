//! `vault audit`: every credential, who can read it, and what needs attention.

use std::io::Write;

use unicode_width::UnicodeWidthStr;
use vault::audit::{audit, Audit, Filter};
use vault::snapshot::Snapshot;
use vault::store::{parse_folder, MemberName};
use vault::text::{count, day_of, escape};
use vault::Error;

use crate::cli::{AuditArgs, Global};
use crate::commands::{report_recovery, store_path};
use crate::ui::Paint;

/// Exit code when the audit found something that needs attention.
pub const ATTENTION: u8 = 3;

/// Runs the audit; returns whether something needs attention.
pub fn run(
    global: &Global,
    args: &AuditArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    let (vault, recovery) = Snapshot::open_lenient(&store_path(global)?)?;
    report_recovery(recovery, err)?;
    let member = args.member.as_deref().map(MemberName::parse).transpose()?;
    if let Some(m) = &member {
        if vault.roster().fingerprint(m).is_none() {
            return Err(Error::UnknownMember(m.to_string()).into());
        }
    }
    let filter = Filter {
        member,
        folder: args.folder.as_deref().map(parse_folder).transpose()?,
        expiry_warning: args.expiry.within(),
        max_age: args.max_age,
    };
    let mut identity = match args.decrypt {
        true => {
            Some(crate::commands::identity(global, Some(&vault))?.ok_or(vault::Error::NoIdentity)?)
        }
        false => None,
    };
    let report = audit(&vault, &filter, identity.as_mut())?;
    // The process ends after the report: freeing libgit2's object cache one object at a time
    // was 9% of an audit of a long history (issue 18). The store holds no secret; the
    // operator's keys (`identity`) are dropped, and zeroized, as usual.
    std::mem::forget(vault);
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_text(&report, &Paint::for_stdout(), out)?;
    }
    Ok(report.needs_attention())
}

/// `s` padded with spaces to `width` terminal columns (as `unicode-width` counts them: a CJK
/// character takes two, a combining mark none; `{:<N}` would count characters).
fn pad(s: &str, width: usize) -> String {
    let fill = width.saturating_sub(UnicodeWidthStr::width(s));
    format!("{s}{}", " ".repeat(fill))
}

fn print_text(a: &Audit, p: &Paint, out: &mut dyn Write) -> anyhow::Result<()> {
    let width = a
        .entries
        .iter()
        .map(|e| UnicodeWidthStr::width(&*escape(e.name.rsplit('/').next().unwrap_or(&e.name))))
        .max()
        .unwrap_or(5)
        .max(5);
    let mut folder = None;
    for e in &a.entries {
        if folder.as_ref() != Some(&e.folder) {
            let expected = if e.expected.is_empty() {
                "nobody".to_string()
            } else {
                e.expected.join(", ")
            };
            let gpg_id = e.gpg_id.clone().unwrap_or_else(|| "no .gpg-id".into());
            writeln!(
                out,
                "{}  {}",
                p.bold(&e.folder),
                p.dim(&format!("({gpg_id}: {expected})"))
            )?;
            folder = Some(e.folder.clone());
        }
        let short = escape(e.name.rsplit('/').next().unwrap_or(&e.name));
        let changed = e
            .last_changed
            .as_ref()
            .map(|c| format!("changed {} by {}", day_of(&c.date), c.author))
            .unwrap_or_default();
        writeln!(
            out,
            "  {}  {:<32}  {}",
            pad(&short, width),
            e.readers.join(", "),
            p.dim(&changed)
        )?;
        for problem in &e.problems {
            writeln!(out, "  {:<width$}  {}", "", p.red(&format!("! {problem}")))?;
        }
        if !e.rotate.is_empty() {
            writeln!(
                out,
                "  {:<width$}  {}",
                "",
                p.yellow(&format!(
                    "↻ rotate: {} could read this password",
                    e.rotate.join(", ")
                ))
            )?;
        }
        if !e.changed_since.is_empty() {
            writeln!(
                out,
                "  {:<width$}  {}",
                "",
                p.dim(&format!(
                    "changed since {} could read it, not verified (`vault audit --decrypt` checks the password changed)",
                    e.changed_since.join(", ")
                ))
            )?;
        }
    }
    if !a.not_decrypted.is_empty() {
        writeln!(
            out,
            "\n{} (not encrypted to you): {}",
            p.bold("Passwords not checked by --decrypt"),
            a.not_decrypted.join(", ")
        )?;
    }
    if !a.store_problems.is_empty() || !a.links.is_empty() {
        writeln!(out, "\n{}", p.bold("Store"))?;
        for s in &a.store_problems {
            writeln!(out, "  {}", p.red(&format!("! {s}")))?;
        }
        for l in &a.links {
            writeln!(
                out,
                "  {}",
                p.dim(&format!("link {l} (pass follows it; so does vault)"))
            )?;
        }
    }
    writeln!(out, "\n{}", p.bold("Members"))?;
    let nw = a
        .members
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    for m in &a.members {
        let expires = m.expires.as_deref().map(day_of).unwrap_or("never");
        writeln!(
            out,
            "  {:<nw$}  {}  {:>4} {}  expires {:<10}  {}",
            m.name,
            m.fingerprint,
            m.entries_readable,
            if m.entries_readable == 1 {
                "entry  "
            } else {
                "entries"
            },
            expires,
            m.folders.join(" ")
        )?;
        for w in &m.warnings {
            writeln!(out, "  {:<nw$}  {}", "", p.yellow(&format!("~ {w}")))?;
        }
        for pr in &m.problems {
            writeln!(out, "  {:<nw$}  {}", "", p.red(&format!("! {pr}")))?;
        }
    }
    if !a.former_members.is_empty() {
        writeln!(out, "\n{}", p.bold("Former members"))?;
        for f in &a.former_members {
            writeln!(
                out,
                "  {:<nw$}  {}  removed {}  {} to rotate",
                f.name,
                f.fingerprint,
                escape(&f.removed),
                count(f.entries_to_rotate, "entry", "entries")
            )?;
        }
    }
    let s = &a.summary;
    let line = format!(
        "{} in {}, {}: {}, {}, {} to rotate",
        count(s.entries, "entry", "entries"),
        count(s.folders, "folder", "folders"),
        count(s.members, "member", "members"),
        count(s.problems, "problem", "problems"),
        count(s.warnings, "warning", "warnings"),
        count(s.entries_to_rotate, "entry", "entries")
    );
    writeln!(
        out,
        "\n{}",
        if a.needs_attention() {
            p.red(&line)
        } else {
            line
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pad;

    #[test]
    fn columns_are_padded_by_terminal_width() {
        assert_eq!(pad("日本", 6), "日本  ");
        assert_eq!(pad("bank", 6), "bank  ");
        assert_eq!(pad("longer-than", 4), "longer-than");
    }
}
