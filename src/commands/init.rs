//! `vault init`: adopt a pass store, or create a new one with a first member.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::bail;

use vault::crypto::{Fingerprint, MemberKey};
use vault::store::MemberName;
use vault::vault::{adopt, create};
use vault::{keyring, Error};

use crate::cli::{Global, InitArgs};
use crate::commands::store_path;

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
        let commit = create(&store, &key, name.clone())?;
        writeln!(
            out,
            "Created store {} with member {name} ({}); commit {}",
            store.display(),
            key.fingerprint().grouped(),
            commit.short()
        )?;
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
    let adopted = adopt(&store, &names, &keyring::export)?;
    for w in &adopted.warnings {
        writeln!(err, "warning: {w}")?;
    }
    if adopted.became_repository {
        writeln!(out, "{} is now a git repository.", store.display())?;
    }
    writeln!(
        out,
        "Adopted {} ({} entries); commit {}. Members:",
        store.display(),
        adopted.entries,
        adopted.commit.short()
    )?;
    for (name, fpr) in &adopted.members {
        writeln!(out, "  {name:<16} {}", fpr.grouped())?;
    }
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
