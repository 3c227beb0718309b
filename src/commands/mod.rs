//! One module per subcommand; the only code that composes the library's parts with the UI.
//! This file holds the pipeline they share: opening the store (to read, or under the lock to
//! change it), the trust check and anchor, and carrying out a plan under a progress bar; the
//! operator's identity is `operator.rs`.

pub mod add_member;
pub mod audit;
pub mod clip;
pub mod entries;
pub mod grant;
pub mod hooks;
pub mod import_keys;
pub mod init;
pub mod members;
mod operator;
pub mod readme;
pub mod remove_member;
pub mod repair;
pub mod replace_key;
pub mod rotate;
pub mod sync;
pub mod update_member;
pub mod verify;

use operator::key_file;
pub use operator::{identity, warn_card};

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use vault::change::Monitor;
use vault::git::Recovery;
use vault::git::Repo;
use vault::snapshot::Snapshot;
use vault::trust::{anchor_at, verify, Anchor};
use vault::Error;

use crate::cli::Global;
use crate::ui;

/// `--store`, else `$PASSWORD_STORE_DIR`, else `~/.password-store`.
pub fn store_path(global: &Global) -> anyhow::Result<PathBuf> {
    if let Some(s) = &global.store {
        return Ok(s.clone());
    }
    if let Some(s) = std::env::var_os("PASSWORD_STORE_DIR").filter(|s| !s.is_empty()) {
        return Ok(PathBuf::from(s));
    }
    let home = std::env::var_os("HOME")
        .context("neither --store, $PASSWORD_STORE_DIR nor $HOME is set")?;
    Ok(PathBuf::from(home).join(".password-store"))
}

/// Opens the store to read it, saying on `err` what was done about an interrupted earlier change.
pub fn open(global: &Global, err: &mut dyn Write) -> anyhow::Result<Snapshot> {
    let (vault, recovery) = Snapshot::open(&store_path(global)?)?;
    report_recovery(recovery, err)?;
    Ok(vault)
}

/// Opens the store to change it: holds the store's lock (see [`lock_wait`]) until the returned
/// value is dropped, and checks that a change may start ([`Snapshot::check_ready`]).
pub fn open_for_change(global: &Global, err: &mut dyn Write) -> anyhow::Result<Snapshot> {
    let (vault, recovery) = Snapshot::open_for_change(&store_path(global)?, lock_wait()?)?;
    report_recovery(recovery, err)?;
    vault.check_ready()?;
    Ok(vault)
}

/// How long a writing command waits for another vault command that is changing the same store:
/// `$VAULT_LOCK_WAIT` seconds, else 5.
pub fn lock_wait() -> anyhow::Result<std::time::Duration> {
    match std::env::var("VAULT_LOCK_WAIT") {
        Err(_) => Ok(std::time::Duration::from_secs(5)),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 86_400.0)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "VAULT_LOCK_WAIT={:?}: give a number of seconds (0 to 86400)",
                    vault::text::escape(&v)
                ))
                .into()
            }),
    }
}

pub fn report_recovery(recovery: Option<Recovery>, err: &mut dyn Write) -> anyhow::Result<()> {
    match recovery {
        Some(Recovery::Finished { action, commit }) => writeln!(
            err,
            "note: an interrupted {action} had already been committed ({commit}); its files are now in place"
        )?,
        Some(Recovery::RolledBack { action }) => writeln!(
            err,
            "note: an interrupted {action} had not been committed; it was undone and the store is as before it"
        )?,
        None => {}
    }
    Ok(())
}

/// Names what a membership change could not re-encrypt ([`vault::change::Outcome`]), and what
/// that means for the member (`consequence`, e.g. "and nick may still read it now").
pub fn say_not_reencrypted(
    outcome: &vault::change::Outcome,
    consequence: &str,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if outcome.not_reencrypted.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nvault could not re-encrypt what follows, {consequence}:"
    )?;
    for n in &outcome.not_reencrypted {
        writeln!(out, "  {n}")?;
    }
    Ok(())
}

/// Runs `f` with a progress bar and Ctrl-C caught.
pub fn with_monitor<T>(total: usize, what: &str, f: impl FnOnce(&Monitor) -> T) -> T {
    ui::begin_change();
    let bar = ui::progress(total, what);
    let progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let monitor = Monitor {
        progress: &progress,
        interrupted: &ui::interrupted,
    };
    let out = f(&monitor);
    bar.finish_and_clear();
    out
}

/// This clone's trust anchor; on first use, asks the user to trust the members at HEAD. A new
/// anchor is not saved here: a change saves its successor when it succeeds, `vault verify` saves
/// it at once.
pub fn anchor(vault: &Snapshot, global: &Global, err: &mut dyn Write) -> anyhow::Result<Anchor> {
    if let Some(a) = Anchor::load(vault.repo())? {
        return Ok(a);
    }
    // Mid-rebase, HEAD is a commit that may never reach the branch: no anchor on it.
    if let Some(what) = vault.in_progress() {
        return Err(Error::InProgress(what).into());
    }
    let a = anchor_at(vault.repo(), vault.head())?;
    writeln!(
        err,
        "This clone has no trust anchor yet. vault would trust these keys, the recipients at commit {}:",
        vault.head().short()
    )?;
    for f in &a.trusted {
        let uid = vault
            .keys()
            .get(f)
            .and_then(|k| k.user_ids().first().cloned())
            .unwrap_or_default();
        writeln!(err, "  {}  {}  {uid}", vault.display_name(*f), f.grouped())?;
    }
    let yes = ui::confirm(
        global.yes,
        "Do you trust these keys (compare the fingerprints with the team)?",
        "this clone has no trust anchor: run `vault verify` on a terminal to confirm the members' fingerprints (or pass --yes)",
    )?;
    if !yes {
        anyhow::bail!("no trust anchor: nothing was changed");
    }
    Ok(a)
}

/// Verifies the history and refuses recipients nobody trusted vouched for (unless overridden).
///
/// Returns the anchor to advance from once the change is committed: this clone's trust carried
/// to HEAD when the history up to HEAD holds no violation (so [`advance_anchor`] then judges
/// only the new commit, and a change walks the history once, issue 18), else the clone's
/// anchor itself (the walk is then repeated in full, so a violation before HEAD still keeps
/// the anchor where it is).
pub fn check_trust(
    vault: &Snapshot,
    global: &Global,
    after: &std::collections::BTreeSet<vault::crypto::Fingerprint>,
    err: &mut dyn Write,
) -> anyhow::Result<Anchor> {
    let mut anchor = anchor(vault, global, err)?;
    let v = verify(vault.repo(), &anchor, vault.head())?;
    if let Some(r) = &v.reanchored {
        r.anchor.save(vault.repo())?;
        verify::say_reanchored(r, err)?;
        anchor = r.anchor.clone();
    }
    // Every recipient after the change must be one this clone trusts now: not merely absent
    // from the unvouched additions (a key named in .members.toml that reads nothing yet, say,
    // was never judged at all).
    let bad: Vec<(String, String)> = after
        .iter()
        .filter(|f| !v.trusted.contains(f))
        .map(|f| {
            let r = f.to_string();
            let whence = match v.unverified.get(&r) {
                Some(c) => format!("added in commit {}", c.chars().take(10).collect::<String>()),
                None => "never vouched for by a trusted member".into(),
            };
            match vault.roster().name_of(*f) {
                Some(name) => (format!("{name} ({r})"), whence),
                None => (r, whence),
            }
        })
        .collect();
    if !bad.is_empty() {
        if !global.trust_unverified {
            return Err(Error::Unverified(bad).into());
        }
        writeln!(
            err,
            "WARNING: --trust-unverified: encrypting to recipients nobody trusted vouched for:"
        )?;
        for (r, c) in &bad {
            writeln!(err, "WARNING:   {r}, {c}")?;
        }
    }
    if v.violations.is_empty() {
        anchor = Anchor {
            commit: vault.head(),
            trusted: v.trusted,
        };
    }
    Ok(anchor)
}

/// After a change vault made and signed, moves this clone's anchor to the new HEAD.
pub fn advance_anchor(
    repo: &Repo,
    anchor: &Anchor,
    head: vault::git::CommitId,
) -> anyhow::Result<()> {
    let v = verify(repo, anchor, head)?;
    if v.violations.is_empty() {
        Anchor {
            commit: head,
            trusted: v.trusted,
        }
        .save(repo)?;
    }
    Ok(())
}

/// pass's `PASSWORD_STORE_SIGNING_KEY`: the fingerprints allowed to sign `.gpg-id` files.
pub fn pass_signing_keys() -> anyhow::Result<Vec<vault::crypto::Fingerprint>> {
    let Ok(value) = std::env::var("PASSWORD_STORE_SIGNING_KEY") else {
        return Ok(Vec::new());
    };
    value
        .split_whitespace()
        .map(|f| {
            vault::crypto::Fingerprint::parse(f)
                .ok_or_else(|| Error::BadSigningKeyVar(vault::text::escape(f).into_owned()).into())
        })
        .collect()
}

/// Sets up `plan` to sign the `.gpg-id` files it writes as the team's pass expects
/// (`PASSWORD_STORE_SIGNING_KEY`, `--signing-key`).
pub fn sign_gpg_ids(global: &Global, plan: &mut vault::change::Plan) -> anyhow::Result<()> {
    let gpg_id_signer = match &global.signing_key {
        Some(path) => Some(key_file(global, path, "reading signing key")?),
        None => None,
    };
    plan.sign_gpg_ids_for_pass(pass_signing_keys()?, gpg_id_signer);
    Ok(())
}

/// Carries out a planned membership change: the trust check (`vouched`, the key this command
/// itself vouches for, is exempt), then [`carry_out_checked`].
pub fn carry_out(
    vault: &Snapshot,
    global: &Global,
    plan: vault::change::Plan,
    vouched: Option<vault::crypto::Fingerprint>,
    err: &mut dyn Write,
) -> anyhow::Result<vault::change::Outcome> {
    let mut others = plan.recipients_after();
    if let Some(f) = vouched {
        others.remove(&f);
    }
    let anchor = check_trust(vault, global, &others, err)?;
    carry_out_checked(vault, global, plan, anchor, err)
}

/// Carries out a planned change whose recipients [`check_trust`] already judged on this same
/// snapshot, giving `anchor`: pass's signing keys, the operator, the re-encryption with progress
/// and Ctrl-C handling, and the new trust anchor. `edit` and `rotate` check trust before the
/// person edits or changes passwords, so that the history is walked once per change (issue 18).
pub fn carry_out_checked(
    vault: &Snapshot,
    global: &Global,
    mut plan: vault::change::Plan,
    anchor: Anchor,
    err: &mut dyn Write,
) -> anyhow::Result<vault::change::Outcome> {
    sign_gpg_ids(global, &mut plan)?;
    let identity = identity(global, Some(vault))?;
    let total = vault.layout().entries.len();
    warn_card(identity.as_ref(), total, err)?;
    let outcome = with_monitor(total, "re-encrypting", |m| {
        vault.execute(plan, identity.as_ref(), m)
    })?;
    advance_anchor(vault.repo(), &anchor, outcome.commit)?;
    Ok(outcome)
}

/// The operator vouches for a key: `--fingerprint FPR` must be its fingerprint, else a person
/// confirms it on the terminal (`question`; `needs` says what to do without one). Returns
/// whether to go on.
///
/// # Errors
/// [`Error::FingerprintMismatch`] for another fingerprint; no terminal and no `--yes`.
pub fn vouch_for(
    global: &Global,
    fpr: vault::crypto::Fingerprint,
    asserted: Option<&str>,
    (question, needs): (&str, &str),
) -> anyhow::Result<bool> {
    match asserted {
        Some(asserted) if vault::crypto::Fingerprint::parse(asserted) == Some(fpr) => Ok(true),
        Some(asserted) => Err(Error::FingerprintMismatch {
            expected: asserted.to_string(),
            actual: fpr.to_string(),
        }
        .into()),
        None => ui::confirm(global.yes, question, needs),
    }
}

/// "N entries now readable by NAME (r re-wrapped, e re-encrypted, u already right).": what a
/// change that gave NAME access (`add-member`, `grant`) did.
pub fn now_readable(outcome: &vault::change::Outcome, name: &str) -> String {
    format!(
        "{} now readable by {name} ({} re-wrapped, {} re-encrypted, {} already right).",
        vault::text::count(
            outcome.rewrapped + outcome.reencrypted + outcome.unchanged,
            "entry",
            "entries"
        ),
        outcome.rewrapped,
        outcome.reencrypted,
        outcome.unchanged
    )
}
