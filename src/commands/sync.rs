//! `vault sync`: fetch the branch's upstream, check every incoming commit with the rules of
//! `vault verify`, integrate it (a fast-forward), encrypt every entry to exactly its `.gpg-id`
//! again (what plain pass users pushed with stale recipients), and push.

use std::io::Write;

use serde::Serialize;

use vault::audit::{audit, Filter};
use vault::change::Settle;
use vault::git::{CommitId, CommitInfo, Standing, Upstream};
use vault::snapshot::Snapshot;
use vault::text::{count, escape, format_unix};
use vault::trust::{trust_at, verify, Verification};
use vault::Error;

use crate::cli::{Global, SyncArgs};
use crate::commands::{
    advance_anchor, anchor, carry_out, identity, open_for_change, sign_gpg_ids, warn_card,
    with_monitor,
};

/// How often a push that lost the race to someone else's is retried (fetch, integrate, push).
const TRIES: usize = 3;

/// What sync did; with `--json`, this document.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// The upstream, as `REMOTE/BRANCH`.
    pub upstream: String,
    /// The commits that came in, oldest first.
    pub incoming: Vec<Incoming>,
    /// The commit the branch was fast-forwarded to, if it was.
    pub fast_forwarded: Option<String>,
    /// The signed merge commit, if this clone and the upstream had diverged.
    pub merged: Option<Repaired>,
    /// The repair commit, if entries had to be re-encrypted.
    pub repaired: Option<Repaired>,
    /// The commit pushed, if anything was.
    pub pushed: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Incoming {
    pub commit: String,
    /// Escaped: anyone can commit any name.
    pub author: String,
    /// RFC 3339.
    pub date: String,
    /// The first line of the message, escaped.
    pub subject: String,
    /// The files it changed (escaped; at most four, then `N more`).
    pub changed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Repaired {
    pub commit: String,
    pub rewrapped: usize,
    pub reencrypted: usize,
    /// Entries a former member could read until the repair: rotate them.
    pub rotate: Vec<String>,
    /// What could not be re-encrypted, one sentence each.
    pub not_reencrypted: Vec<String>,
}

pub fn run(
    global: &Global,
    args: &SyncArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut report = SyncReport::default();
    let mut vault = open_for_change(global, err)?;
    for _ in 0..TRIES {
        vault = integrate(vault, global, args, &mut report, err)?;
        if global.no_push {
            return print(&report, args.json, out);
        }
        let repo = vault.repo();
        let upstream = repo.upstream(args.remote.as_deref())?;
        let theirs = repo.tracking_commit(&upstream);
        if theirs == Some(vault.head()) {
            return print(&report, args.json, out);
        }
        refuse_exposed(&vault, args.force)?;
        if repo.push(&upstream)? {
            report.pushed = Some(vault.head().short());
            return print(&report, args.json, out);
        }
        writeln!(err, "The upstream moved while syncing; fetching again.")?;
    }
    Err(Error::PushRaced(TRIES).into())
}

/// For a command that changes the store: when the branch has an upstream, fetches it and
/// fast-forwards to it (checking what comes in, as sync does), so that the change is made on
/// the latest state. Returns the store at the new HEAD and the upstream to push to.
///
/// # Errors
/// As [`run`]'s integration: an incoming unvouched addition, diverged histories, git failures.
pub fn catch_up(
    vault: Snapshot,
    global: &Global,
    err: &mut dyn Write,
) -> anyhow::Result<(Snapshot, Option<Upstream>)> {
    catch_up_accepting(vault, global, None, err)
}

/// [`catch_up`], letting in the violations of the commit `accepting` (short id) names: the
/// one `vault verify --accept` is about to settle.
pub fn catch_up_accepting(
    vault: Snapshot,
    global: &Global,
    accepting: Option<&str>,
    err: &mut dyn Write,
) -> anyhow::Result<(Snapshot, Option<Upstream>)> {
    let upstream = match vault.repo().upstream(None) {
        Ok(u) => u,
        Err(Error::NoUpstream(_)) => return Ok((vault, None)),
        Err(e) => return Err(e.into()),
    };
    let mut report = SyncReport {
        upstream: short_name(&upstream),
        ..SyncReport::default()
    };
    let vault =
        fetch_and_fast_forward(vault, global, &upstream, accepting, &mut report, err)?.current()?;
    if let Some(to) = &report.fast_forwarded {
        writeln!(
            err,
            "Fast-forwarded to {to} ({} from {}) before the change.",
            count(report.incoming.len(), "new commit", "new commits"),
            report.upstream
        )?;
    }
    Ok((vault, Some(upstream)))
}

/// After a command's commit: pushes it to `upstream` (none: the branch has no upstream),
/// unless `--no-push`, and says so on `out`.
pub fn publish(
    repo: &vault::git::Repo,
    upstream: Option<&Upstream>,
    global: &Global,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let Some(upstream) = upstream else {
        return Ok(());
    };
    let name = short_name(upstream);
    if global.no_push {
        writeln!(out, "Not pushed (--no-push): `vault sync` pushes it.")?;
    } else if repo.push(upstream)? {
        writeln!(out, "Pushed to {name}.")?;
    } else {
        writeln!(
            out,
            "Not pushed: {name} moved meanwhile. The commit is here; run `vault sync`."
        )?;
    }
    Ok(())
}

/// `REMOTE/BRANCH`.
fn short_name(upstream: &Upstream) -> String {
    upstream
        .tracking
        .strip_prefix("refs/remotes/")
        .unwrap_or(&upstream.tracking)
        .to_string()
}

/// Fetches, checks and integrates the upstream (a fast-forward, or a signed merge when both
/// sides changed), then repairs; returns the store at the new HEAD (the lock still held).
fn integrate(
    vault: Snapshot,
    global: &Global,
    args: &SyncArgs,
    report: &mut SyncReport,
    err: &mut dyn Write,
) -> anyhow::Result<Snapshot> {
    let upstream = vault.repo().upstream(args.remote.as_deref())?;
    report.upstream = short_name(&upstream);
    let vault = match fetch_and_fast_forward(vault, global, &upstream, None, report, err)? {
        Fetched::Current(vault) => vault,
        Fetched::Diverged {
            vault,
            theirs,
            base,
        } => merge(vault, global, args, (base, theirs), report, err)?,
    };
    repair(vault, global, report, err)
}

/// Both this clone and the upstream changed: checks the upstream's side with verify's rules
/// from this clone's trust at the merge base, merges as vault decides ([`Snapshot::merge_draft`]),
/// and completes it in one signed merge commit with every entry encrypted to exactly its
/// merged `.gpg-id`. Nothing is encrypted to a recipient unvouched on its own side.
fn merge(
    vault: Snapshot,
    global: &Global,
    args: &SyncArgs,
    (base, theirs): (CommitId, CommitId),
    report: &mut SyncReport,
    err: &mut dyn Write,
) -> anyhow::Result<Snapshot> {
    let repo = vault.repo();
    let head = vault.head();
    let anchor = anchor(&vault, global, err)?;
    let ours = verify(repo, &anchor, head)?;
    // Their side is judged from this clone's trust at the merge base, less anyone this side
    // has stopped trusting since (a member removed here cannot vouch over there).
    let mut at_base = trust_at(repo, &anchor, base)?;
    at_base.trusted.retain(|f| ours.trusted.contains(f));
    let theirs_checked = verify(repo, &at_base, theirs)?;
    let incoming = repo.incoming(head, theirs)?;
    check_incoming(&incoming, &theirs_checked, None)?;
    report.incoming = incoming
        .iter()
        .map(|c| Incoming::of(repo, c))
        .collect::<anyhow::Result<_>>()?;
    let identity = identity(global, Some(&vault))?;
    let settle = Settle {
        ours: args.ours.iter().cloned().collect(),
        theirs: args.theirs.iter().cloned().collect(),
        keep_both: args.keep_both,
    };
    let draft = vault.merge_draft(
        theirs,
        identity.as_ref(),
        &settle,
        &format!("Merge {}", report.upstream),
    )?;
    let merged = vault.at_draft(draft)?;
    let mut plan = merged.plan_merge(head, &report.upstream)?;
    sign_gpg_ids(global, &mut plan)?;
    let after = plan.recipients_after();
    // The merged tree is judged as it is, not side by side: each recipient it resolves to
    // must be trusted on one side (a line the merge resolves differently from both sides,
    // through a certificate one side replaced, is caught here).
    let unvouched: Vec<(String, String)> = after
        .iter()
        .filter(|f| !ours.trusted.contains(f) && !theirs_checked.trusted.contains(f))
        .map(|f| {
            let added = ours
                .unverified
                .get(&f.to_string())
                .or(theirs_checked.unverified.get(&f.to_string()))
                .map(|c| format!("added in commit {}", c.chars().take(10).collect::<String>()))
                .unwrap_or_else(|| "added by the merge".into());
            (f.to_string(), added)
        })
        .collect();
    if !unvouched.is_empty() && !global.trust_unverified {
        return Err(Error::Unverified(unvouched).into());
    }
    let total = merged.layout().entries.len();
    warn_card(identity.as_ref(), total, err)?;
    let outcome = with_monitor(total, "merging", |m| {
        merged.execute(plan, identity.as_ref(), m)
    })?;
    advance_anchor(merged.repo(), &anchor, outcome.commit)?;
    report.merged = Some(Repaired {
        commit: outcome.commit.short(),
        rewrapped: outcome.rewrapped,
        reencrypted: outcome.reencrypted,
        rotate: outcome.exposed.clone(),
        not_reencrypted: outcome.not_reencrypted.clone(),
    });
    Ok(merged.reload()?)
}

/// Refuses incoming commits that add anyone nobody trusted vouched for, or change a member's
/// certificate without a trusted signature (a certificate rolled back to before a subkey's
/// revocation would be encrypted to again) — except the commit `accepting` (full id) names,
/// about to be accepted.
fn check_incoming(
    incoming: &[CommitInfo],
    checked: &Verification,
    accepting: Option<&str>,
) -> anyhow::Result<()> {
    let new: Vec<String> = incoming.iter().map(|c| c.id.to_string()).collect();
    let key_changes = checked
        .warnings
        .iter()
        .filter(|f| f.change.starts_with("changes key "));
    let bad = checked
        .violations
        .iter()
        .chain(key_changes)
        .filter(|f| accepting != Some(f.id.as_str()))
        .find(|f| new.contains(&f.id));
    match bad {
        Some(bad) => Err(Error::IncomingViolation {
            commit: bad.commit.clone(),
            author: bad.author.clone(),
            change: bad.change.clone(),
        }
        .into()),
        None => Ok(()),
    }
}

impl Incoming {
    /// The commit for people: id, author, date, subject, and the files it changed (against
    /// its first parent; at most four named).
    fn of(repo: &vault::git::Repo, c: &CommitInfo) -> anyhow::Result<Incoming> {
        let parents = repo.parents(c.id)?;
        let changed = match parents.first() {
            Some(p) => repo.changed_paths(c.id, *p)?,
            None => Vec::new(),
        };
        let mut files: Vec<String> = changed
            .iter()
            .take(4)
            .map(|(p, _)| escape(p).into_owned())
            .collect();
        if changed.len() > 4 {
            files.push(format!("{} more", changed.len() - 4));
        }
        Ok(Incoming {
            commit: c.id.short(),
            author: c.author.clone(),
            date: format_unix(c.time),
            subject: escape(c.message.lines().next().unwrap_or("")).into_owned(),
            changed: files,
        })
    }
}

/// Fetches `upstream` and, when the branch is behind it, checks and fast-forwards.
fn fetch_and_fast_forward(
    vault: Snapshot,
    global: &Global,
    upstream: &Upstream,
    accepting: Option<&str>,
    report: &mut SyncReport,
    err: &mut dyn Write,
) -> anyhow::Result<Fetched> {
    let repo = vault.repo();
    repo.fetch(upstream)?;
    let head = vault.head();
    Ok(match repo.tracking_commit(upstream) {
        None => Fetched::Current(vault), // no such remote branch yet: the push creates it
        Some(theirs) => match repo.standing(head, theirs)? {
            Standing::UpToDate | Standing::Ahead => Fetched::Current(vault),
            Standing::Behind => {
                Fetched::Current(fast_forward(vault, global, theirs, accepting, report, err)?)
            }
            Standing::Diverged { base } => Fetched::Diverged {
                vault,
                theirs,
                base,
            },
        },
    })
}

/// Where fetching left the branch.
enum Fetched {
    /// Up to date with the upstream (or ahead of it): the store, the lock still held.
    Current(Snapshot),
    /// Both sides have commits since `base`.
    Diverged {
        vault: Snapshot,
        theirs: CommitId,
        base: CommitId,
    },
}

impl Fetched {
    /// For a command that does not merge: diverged histories are an error naming both sides.
    fn current(self) -> anyhow::Result<Snapshot> {
        match self {
            Fetched::Current(vault) => Ok(vault),
            Fetched::Diverged {
                vault,
                theirs,
                base,
            } => {
                let repo = vault.repo();
                let ours = repo.incoming(theirs, vault.head())?.len();
                let incoming = repo.incoming(vault.head(), theirs)?.len();
                Err(Error::Diverged {
                    base: base.short(),
                    ours: count(ours, "commit", "commits"),
                    theirs: count(incoming, "commit", "commits"),
                }
                .into())
            }
        }
    }
}

/// Checks the incoming commits with `vault verify`'s rules from this clone's anchor, and moves
/// the branch to `theirs` only if no incoming commit adds anyone nobody trusted vouched for.
fn fast_forward(
    vault: Snapshot,
    global: &Global,
    theirs: CommitId,
    accepting: Option<&str>,
    report: &mut SyncReport,
    err: &mut dyn Write,
) -> anyhow::Result<Snapshot> {
    let repo = vault.repo();
    let incoming = repo.incoming(vault.head(), theirs)?;
    let anchor = anchor(&vault, global, err)?;
    let v = verify(repo, &anchor, theirs)?;
    check_incoming(&incoming, &v, accepting)?;
    report.incoming = incoming
        .iter()
        .map(|c| Incoming::of(repo, c))
        .collect::<anyhow::Result<_>>()?;
    repo.fast_forward(theirs, "sync")?;
    report.fast_forwarded = Some(theirs.short());
    advance_anchor(repo, &anchor, theirs)?;
    Ok(vault.reload()?)
}

/// Encrypts every entry to exactly its `.gpg-id` again, if any is not (one signed commit).
fn repair(
    vault: Snapshot,
    global: &Global,
    report: &mut SyncReport,
    err: &mut dyn Write,
) -> anyhow::Result<Snapshot> {
    let plan = vault.plan_repair();
    let (wrong, _) = vault.unrepaired(&plan)?;
    if wrong.is_empty() {
        if !vault.readme_stale()? {
            return Ok(vault);
        }
        writeln!(err, "README.md is out of date: refreshing it.")?;
    } else {
        writeln!(
            err,
            "{} not encrypted to exactly {} .gpg-id: repairing.",
            count(wrong.len(), "entry is", "entries are"),
            if wrong.len() == 1 { "its" } else { "their" }
        )?;
    }
    let outcome = carry_out(&vault, global, plan, None, err)?;
    report.repaired = Some(Repaired {
        commit: outcome.commit.short(),
        rewrapped: outcome.rewrapped,
        reencrypted: outcome.reencrypted,
        rotate: outcome.exposed.clone(),
        not_reencrypted: outcome.not_reencrypted.clone(),
    });
    Ok(vault.reload()?)
}

/// Refuses to push a HEAD where a former member can still read an entry (what vault could not
/// re-encrypt), unless `force`.
fn refuse_exposed(vault: &Snapshot, force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let report = audit(vault, &Filter::default(), None)?;
    let exposed: Vec<&str> = report
        .entries
        .iter()
        .filter(|e| e.problems.iter().any(|p| p.starts_with("former member")))
        .map(|e| e.name.as_str())
        .collect();
    if exposed.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "not pushed: a former member can still read {} ({}): see `vault audit`; push anyway \
         with --force",
        count(exposed.len(), "entry", "entries"),
        exposed
            .iter()
            .map(|e| escape(e).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn print(report: &SyncReport, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        return Ok(());
    }
    if report.incoming.is_empty() {
        writeln!(out, "Nothing new from {}.", report.upstream)?;
    } else {
        writeln!(
            out,
            "From {}: {}.",
            report.upstream,
            count(report.incoming.len(), "new commit", "new commits")
        )?;
        for c in &report.incoming {
            writeln!(
                out,
                "  {} {} {}: {} ({})",
                c.commit,
                vault::text::day_of(&c.date),
                c.author,
                c.subject,
                c.changed.join(", ")
            )?;
        }
    }
    if let Some(to) = &report.fast_forwarded {
        writeln!(out, "Fast-forwarded to {to}.")?;
    }
    if let Some(m) = &report.merged {
        writeln!(
            out,
            "Merged in one signed commit {} ({} gained readers, {} re-encrypted with fresh \
             session keys).",
            m.commit, m.rewrapped, m.reencrypted
        )?;
        say_rotate(m, out)?;
    }
    if let Some(r) = &report.repaired {
        if r.rewrapped + r.reencrypted == 0 {
            writeln!(out, "Refreshed README.md; commit {}.", r.commit)?;
        } else {
            writeln!(
                out,
                "Repaired {} ({} gained readers, {} re-encrypted with fresh session keys); commit {}.",
                count(r.rewrapped + r.reencrypted, "entry", "entries"),
                r.rewrapped,
                r.reencrypted,
                r.commit
            )?;
        }
        say_rotate(r, out)?;
    }
    match &report.pushed {
        Some(c) => writeln!(out, "Pushed {c} to {}.", report.upstream)?,
        None => writeln!(out, "Nothing pushed.")?,
    }
    Ok(())
}

/// What a merge or repair leaves to do: entries to rotate, and what it could not re-encrypt.
fn say_rotate(r: &Repaired, out: &mut dyn Write) -> anyhow::Result<()> {
    if !r.rotate.is_empty() {
        writeln!(
            out,
            "A former member could read {} until now. Rotate (`vault rotate` walks you through \
             changing each credential at its service):",
            count(r.rotate.len(), "entry", "entries")
        )?;
        for e in &r.rotate {
            writeln!(out, "  {}", escape(e))?;
        }
    }
    for what in &r.not_reencrypted {
        writeln!(out, "  not re-encrypted: {what}")?;
    }
    Ok(())
}
