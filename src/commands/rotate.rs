//! `vault rotate [ENTRY…] [--member NAME] [--yes]`: the walk after someone left. For each entry
//! `vault audit` says to rotate (or each one named): its other lines (login, url …) so the
//! person can change the credential at the service, a new password (generated, or typed), and,
//! once they confirm it is changed there, the entry recorded with every other line kept byte
//! for byte. One commit (`Vault-Action: rotate`) for the walk; audit's flags clear. `--yes`
//! rotates them all with generated passwords and prints no secret.

use std::io::Write;

use zeroize::Zeroizing;

use vault::secret::Secret;
use vault::store::{parse_entry, MemberName};
use vault::text::{count, escape};
use vault::Error;

use crate::cli::{Global, RotateArgs};
use crate::commands::entries::{alphabet, generate_password, operator, password_length};
use crate::commands::sync::{catch_up, publish};
use crate::commands::{carry_out_checked, check_trust, open_for_change};
use crate::ui;

pub fn run(
    global: &Global,
    args: &RotateArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let length = password_length(args.length)?;
    let (vault, upstream) = catch_up(vault, global, err)?;
    let walk: Vec<String> = if args.entries.is_empty() {
        let rotate = vault::audit::rotation(&vault, vault.roster())?;
        let member = args.member.as_deref().map(MemberName::parse).transpose()?;
        if let Some(m) = &member {
            if !vault.roster().former().iter().any(|f| f.name == *m) {
                if vault.roster().fingerprint(m).is_some() {
                    anyhow::bail!(
                        "{m} is a current member: --member names a former member, whose entries \
                         are to rotate (`vault members` lists them)"
                    );
                }
                return Err(Error::UnknownMember(m.to_string()).into());
            }
        }
        rotate
            .into_iter()
            .filter(|(_, who)| {
                member
                    .as_ref()
                    .is_none_or(|m| who.iter().any(|w| w == m.as_str()))
            })
            .map(|(name, _)| name)
            .collect()
    } else {
        let mut names = Vec::new();
        for n in &args.entries {
            let name = parse_entry(n)?;
            if vault.entry(&name).is_none() {
                return Err(vault
                    .plan_rm(&name, false)
                    .expect_err("not an entry: no such entry, or a folder")
                    .into());
            }
            names.push(name);
        }
        names
    };
    if walk.is_empty() {
        writeln!(out, "Nothing to rotate.")?;
        return Ok(());
    }
    if !global.yes && !ui::interactive() {
        return Err(Error::Usage(
            "rotate walks the entries with you on a terminal; give --yes to rotate them all with generated passwords".into(),
        )
        .into());
    }
    // Everything that could stop the commit is done before anyone changes a password at a
    // service: every entry decrypted, and the recipients checked (trust, usable keys).
    let mut identity = operator(global, &vault)?;
    let mut old: Vec<(String, Secret)> = Vec::new();
    for name in &walk {
        let entry = vault.entry(name).expect("checked above");
        old.push((name.clone(), vault.decrypt_entry(entry, &mut identity)?));
    }
    let recipients = vault.recipients().values().flatten().copied().collect();
    let trusted = check_trust(&vault, global, &recipients, err)?;
    vault.check_content(&vault.plan_rotate(old.clone()))?;
    writeln!(
        err,
        "{} to rotate: {}",
        count(walk.len(), "entry", "entries"),
        walk.iter()
            .map(|n| escape(n))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let mut rotated: Vec<(String, Secret)> = Vec::new();
    // Ctrl-C (or a prompt that fails) stops the walk, but what was already confirmed as changed
    // at its service is still recorded below.
    ui::begin_change();
    let mut stopped: Option<anyhow::Error> = None;
    for (name, old) in &old {
        let rest: &[u8] = match old.expose().iter().position(|b| *b == b'\n') {
            Some(at) => &old.expose()[at + 1..],
            None => &[],
        };
        let password = if global.yes {
            generate_password(length, &alphabet(true))?
        } else {
            match ask(name, rest, length, err) {
                Ok(Some(p)) if !ui::interrupted() => p,
                Ok(None) if !ui::interrupted() => continue,
                Ok(_) => {
                    stopped = Some(vault::Error::Interrupted.into());
                    break;
                }
                Err(e) => {
                    stopped = Some(e);
                    break;
                }
            }
        };
        // Room for everything up front: a growing buffer would leave copies behind.
        let mut content = Zeroizing::new(Vec::with_capacity(password.len() + 1 + rest.len()));
        content.extend_from_slice(&password);
        content.push(b'\n');
        content.extend_from_slice(rest);
        rotated.push((name.clone(), Secret::new(content)));
    }
    if stopped.is_some() && !rotated.is_empty() {
        writeln!(
            err,
            "\nThe walk stopped; recording the {} confirmed so far.",
            count(rotated.len(), "entry", "entries")
        )?;
    }
    ui::clear_interrupted();
    if rotated.is_empty() {
        if let Some(e) = stopped {
            return Err(e);
        }
        writeln!(out, "Nothing rotated: nothing changed.")?;
        return Ok(());
    }
    let names: Vec<String> = rotated
        .iter()
        .map(|(n, _)| escape(n).into_owned())
        .collect();
    // If the commit fails now, the passwords already changed at their services must not be
    // lost: on a terminal (they were shown or typed there) they are shown again to store.
    let unsaved: Vec<(String, Secret)> = if global.yes {
        Vec::new()
    } else {
        rotated.clone()
    };
    let plan = vault.plan_rotate(rotated);
    let outcome = match carry_out_checked(&vault, global, plan, trusted, err) {
        Ok(o) => o,
        Err(e) => {
            if !unsaved.is_empty() {
                writeln!(
                    err,
                    "NOT SAVED. The new passwords you set at the services, to store once the \
                     problem below is fixed (`vault edit ENTRY`: replace the first line):"
                )?;
                for (name, content) in &unsaved {
                    let first = content
                        .expose()
                        .split(|b| *b == b'\n')
                        .next()
                        .unwrap_or(&[]);
                    writeln!(
                        err,
                        "  {}: {}",
                        escape(name),
                        String::from_utf8_lossy(first)
                    )?;
                }
            }
            return Err(e);
        }
    };
    writeln!(
        out,
        "Rotated {}; commit {}:",
        count(names.len(), "entry", "entries"),
        outcome.commit.short()
    )?;
    for n in &names {
        writeln!(out, "  {n}")?;
    }
    if global.yes {
        writeln!(
            out,
            "Set each new password at its service now (`vault show ENTRY` prints it)."
        )?;
    }
    publish(vault.repo(), upstream.as_ref(), global, out)?;
    match stopped {
        Some(e) => {
            Err(e.context("the walk stopped before its end; run `vault rotate` again for the rest"))
        }
        None => Ok(()),
    }
}

/// One step of the walk on a terminal: the entry's other lines, a new password (generated and
/// shown, or typed twice), and whether the person changed it at the service. None: skipped.
fn ask(
    name: &str,
    rest: &[u8],
    length: usize,
    err: &mut dyn Write,
) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
    writeln!(err, "\n{}", escape(name))?;
    if rest.is_empty() {
        writeln!(err, "  (no other lines)")?;
    }
    for line in String::from_utf8_lossy(rest).lines() {
        writeln!(err, "  {}", escape(line))?;
    }
    let generate = ui::confirm(
        false,
        "Generate a new password? (no: type one)",
        "rotate needs a terminal",
    )?;
    let password = if generate {
        let p = generate_password(length, &alphabet(true))?;
        writeln!(err, "  new password: {}", String::from_utf8_lossy(&p))?;
        p
    } else {
        let typed = ui::new_secret("New password", "Retype the new password")?;
        Zeroizing::new(typed.expose().to_vec())
    };
    let done = ui::confirm(
        false,
        &format!(
            "Changed at the service? Record the new password for {}?",
            escape(name)
        ),
        "rotate needs a terminal",
    )?;
    if !done {
        writeln!(err, "  skipped: {} keeps its password", escape(name))?;
        return Ok(None);
    }
    Ok(Some(password))
}
