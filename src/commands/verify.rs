//! `vault verify`: was every change of who can read made by a trusted member?

use std::io::Write;

use vault::trust::{verify, Finding, Reanchored};

use vault::git::Standing;
use vault::Error;

use crate::cli::{Global, VerifyArgs};
use crate::commands::sync::{catch_up_accepting, publish};
use crate::commands::{advance_anchor, anchor, identity, open, open_for_change};
use crate::ui;

/// Runs the verification; returns whether there are violations.
pub fn run(
    global: &Global,
    args: &VerifyArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<bool> {
    if let Some(commit) = &args.accept {
        return accept(global, commit, out, err).map(|()| false);
    }
    let vault = open(global, err)?;
    let anchor = anchor(&vault, global, err)?;
    anchor.save(vault.repo())?;
    let v = verify(vault.repo(), &anchor, vault.head())?;
    let since = match &v.reanchored {
        Some(r) => {
            r.anchor.save(vault.repo())?;
            say_reanchored(r, err)?;
            r.anchor.commit
        }
        None => anchor.commit,
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(!v.violations.is_empty());
    }
    let show = |out: &mut dyn Write, mark: &str, f: &Finding| -> std::io::Result<()> {
        let by = f
            .vouched_by
            .as_deref()
            .map(|v| format!(" (signed by {v})"))
            .unwrap_or_default();
        writeln!(
            out,
            "{mark} {} {} {}: {}{by}",
            f.commit, f.date, f.author, f.change
        )
    };
    writeln!(
        out,
        "Checked {} since the trusted commit {}.",
        vault::text::count(v.checked, "membership change", "membership changes"),
        since.short()
    )?;
    for f in &v.vouched {
        show(out, "ok  ", f)?;
    }
    for f in &v.warnings {
        show(out, "warn", f)?;
    }
    for f in &v.violations {
        show(out, "BAD ", f)?;
    }
    if v.violations.is_empty() {
        writeln!(out, "Every addition was vouched for by a trusted member.")?;
    } else {
        writeln!(
            out,
            "{}: vault will not encrypt to an unvouched recipient. Ask who made each BAD \
             commit; if it is right, a trusted member runs `vault verify --accept COMMIT`, \
             otherwise remove what it added.",
            vault::text::count(v.violations.len(), "violation", "violations")
        )?;
    }
    Ok(!v.violations.is_empty())
}

/// Tells people that trust moved back to where the old trusted commit and HEAD meet.
pub fn say_reanchored(r: &Reanchored, err: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        err,
        "note: this clone's trusted commit {} is no longer in the store's history (a reset, a \
         rebase or an amended commit): trust now starts at {}, where the two histories meet, \
         with the members trusted before who were recipients there; every change since is \
         checked again.",
        r.from, r.to
    )
}

/// `vault verify --accept COMMIT`: the operator, a trusted member, vouches for what COMMIT
/// added, in a signed commit every clone's verify honours; pushed like any change.
fn accept(
    global: &Global,
    spec: &str,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let vault = open_for_change(global, err)?;
    let repo = vault.repo();
    // The commit may be upstream only (sync refused it): judge it where it is, without moving
    // HEAD until the operator is known to be trusted and has confirmed.
    let upstream = match repo.upstream(None) {
        Ok(u) => {
            repo.fetch(&u)?;
            Some(u)
        }
        Err(Error::NoUpstream(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let commit = repo.resolve_commit(spec)?;
    let head = vault.head();
    let target = match upstream.as_ref().and_then(|u| repo.tracking_commit(u)) {
        Some(theirs) => match repo.standing(head, theirs)? {
            Standing::Behind => theirs,
            Standing::Diverged { .. } => anyhow::bail!(
                "this clone has commits the upstream does not have, and sync refuses the upstream \
                 until its change is accepted: accept it from a clone that is not ahead, then sync"
            ),
            Standing::UpToDate | Standing::Ahead => head,
        },
        None => head,
    };
    let anchor = anchor(&vault, global, err)?;
    let v = verify(repo, &anchor, target)?;
    let changes: Vec<String> = v
        .violations
        .iter()
        .filter(|f| f.id == commit.to_string())
        .map(|f| format!("{} ({}, {})", f.change, f.author, f.date))
        .collect();
    if changes.is_empty() {
        return Err(Error::NothingToAccept(commit.short()).into());
    }
    let operator = identity(global, Some(&vault))?.ok_or(Error::NoIdentity)?;
    if !v.trusted.contains(&operator.fingerprint()) {
        anyhow::bail!(
            "your key {} is not a member this clone trusts: only a trusted member can accept a \
             change",
            operator.fingerprint()
        );
    }
    writeln!(err, "Accepting the changes of commit {}:", commit.short())?;
    for c in &changes {
        writeln!(err, "  {c}")?;
    }
    let yes = ui::confirm(
        global.yes,
        "Vouch for these changes for the whole team?",
        "accepting needs confirmation: pass --yes",
    )?;
    if !yes {
        writeln!(err, "Nothing changed.")?;
        return Ok(());
    }
    // Now the upstream comes in: its one unvouched commit is the one being accepted.
    let (vault, upstream) = catch_up_accepting(vault, global, Some(&commit.to_string()), err)?;
    let accepted = vault.accept(commit, &changes, &operator)?;
    advance_anchor(vault.repo(), &anchor, accepted)?;
    writeln!(
        out,
        "Accepted the changes of commit {}; commit {}.",
        commit.short(),
        accepted.short()
    )?;
    publish(vault.repo(), upstream.as_ref(), global, out)
}
