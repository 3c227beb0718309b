//! `vault init`: adopt a pass store, or create a new one with a first member.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;

use vault::change::{adopt, create};
use vault::crypto::{Fingerprint, MemberKey};
use vault::store::MemberName;
use vault::{keyring, Error};

use vault::git::Repo;
use vault::trust::anchor_at;

use crate::cli::{Global, InitArgs};
use crate::commands::{identity, lock_wait, store_path};

/// Pins this clone's trust anchor at the commit init just made; returns how many keys it trusts.
fn pin_anchor(store: &std::path::Path, commit: vault::git::CommitId) -> anyhow::Result<usize> {
    let repo = Repo::open(store)?;
    let anchor = anchor_at(&repo, commit)?;
    anchor.save(&repo)?;
    Ok(anchor.trusted.len())
}

fn say_trusted(trusted: usize, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "This clone now trusts {} as the store's members (`vault verify` checks later changes against them).",
        if trusted == 1 { "this key".to_string() } else { format!("these {trusted} keys") }
    )?;
    Ok(())
}

pub fn run(
    global: &Global,
    args: &InitArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<()> {
    let store = store_path(global)?;
    if let Some(keyfile) = &args.key {
        let file = keyfile.display().to_string();
        let bytes =
            std::fs::read(keyfile).map_err(|e| Error::io("reading key file", keyfile, e))?;
        let key =
            MemberKey::parse_strict(&bytes).map_err(|problem| Error::KeyFile { file, problem })?;
        let name = match args.name.as_slice() {
            [] => stem_name(keyfile)?,
            [one] => MemberName::parse(one)?,
            _ => bail!("give one --name for the first member"),
        };
        let operator = identity(global, None)?;
        if operator.is_none() {
            writeln!(
                err,
                "warning: no --identity: the first commit is not signed"
            )?;
        }
        let commit = create(&store, &key, name.clone(), operator.as_ref(), lock_wait()?)?;
        // The anchor is saved before anything is printed: output can fail (a closed pipe), the
        // bookkeeping must not depend on it.
        let trusted = pin_anchor(&store, commit)?;
        writeln!(
            out,
            "Created store {} with member {name} ({}); commit {}",
            store.display(),
            key.fingerprint().grouped(),
            commit.short()
        )?;
        say_trusted(trusted, out)?;
        return Ok(());
    }

    let mut names = BTreeMap::new();
    for n in &args.name {
        let (fpr, name) = n.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--name {n:?}: when adopting a store, give --name FINGERPRINT=NAME"
            ))
        })?;
        let fpr = Fingerprint::parse(fpr).ok_or_else(|| {
            Error::Usage(format!("--name {n:?}: {fpr:?} is not a full fingerprint"))
        })?;
        names.insert(fpr, MemberName::parse(name)?);
    }
    let operator = identity(global, None)?;
    if operator.is_none() {
        writeln!(
            err,
            "warning: no --identity: the adoption commit is not signed"
        )?;
    }
    let adopted = adopt(
        &store,
        &names,
        &keyring::export,
        operator.as_ref(),
        lock_wait()?,
    )?;
    let trusted = pin_anchor(&store, adopted.commit)?;
    for w in &adopted.warnings {
        writeln!(err, "warning: {w}")?;
    }
    if adopted.became_repository {
        writeln!(out, "{} is now a git repository.", store.display())?;
    }
    writeln!(
        out,
        "Adopted {} ({}); commit {}. Members:",
        store.display(),
        vault::text::count(adopted.entries, "entry", "entries"),
        adopted.commit.short()
    )?;
    for (name, fpr) in &adopted.members {
        writeln!(out, "  {name:<16} {}", fpr.grouped())?;
    }
    say_trusted(trusted, out)?;
    Ok(())
}

/// A member name from a key file's name: `keys/eduardo.asc` -> `eduardo`.
pub fn stem_name(path: &std::path::Path) -> anyhow::Result<MemberName> {
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.split('.').next().unwrap_or("");
    MemberName::parse(stem).map_err(|e| {
        anyhow::anyhow!(
            "{e} (taken from the key file's name {}: give --name NAME)",
            path.display()
        )
    })
}
