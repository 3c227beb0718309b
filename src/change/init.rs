//! `vault init`: adopting an existing pass store, or creating a new one with a first member.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::crypto::{Fingerprint, Identity, MemberKey};
use crate::error::{Error, Result};
use crate::git::{Change, CommitId, Repo, TreeFile};
use crate::snapshot::*;
use crate::store::roster::Roster;
use crate::store::{
    gpg_id_path, render_gpg_id, Layout, MemberName, Recipient, MEMBERS, PUBLIC_KEYS,
};
use crate::text::count;

/// What `vault init` did.
#[derive(Debug)]
pub struct Adopted {
    pub commit: CommitId,
    pub members: Vec<(MemberName, Fingerprint)>,
    pub entries: usize,
    /// Members whose key has a problem (expired, no encryption subkey, ...).
    pub warnings: Vec<String>,
    pub became_repository: bool,
}

/// Looks a `.gpg-id` recipient up outside the store (the user's GnuPG keyring): the exported
/// certificates, possibly several.
pub type Keyring<'a> = dyn Fn(&Recipient) -> std::result::Result<Vec<u8>, String> + 'a;

/// Adopts an existing pass store: resolves every `.gpg-id` recipient to a key (from
/// `.public-keys/`, else `keyring`), names each member (`names`, else the e-mail's local part),
/// writes `.public-keys/` and `.members.toml`, and makes one commit. A folder that is not a git
/// repository becomes one (its store files are committed too: [`crate::store::is_store_file`]).
/// Nothing is re-encrypted. Holds the store's lock ([`Repo::lock`], waiting up to `wait`).
///
/// # Errors
/// [`Error::AlreadyInitialised`], [`Error::Dirty`], [`Error::ForeignFiles`] for files that are
/// not store files, [`Error::Temporaries`], [`Error::MissingKey`] and [`Error::GpgIdLine`] naming
/// an unresolvable recipient, [`Error::MemberExists`] for a name clash, [`Error::Busy`], and
/// everything [`Repo::open`] reports.
pub fn adopt(
    store: &Path,
    names: &BTreeMap<Fingerprint, MemberName>,
    keyring: &Keyring,
    identity: Option<&Identity>,
    wait: Duration,
) -> Result<Adopted> {
    if !store.is_dir() {
        return Err(Error::NoStore(store.to_path_buf()));
    }
    let not_a_repository = matches!(Repo::open(store), Err(Error::NotGitRepo(_)));
    // Check there is something to adopt before making a repository of a random folder.
    if not_a_repository && !store.join(".gpg-id").is_file() {
        return Err(Error::NotPassStore(store.to_path_buf()));
    }
    let (repo, made) = Repo::open_or_init(store)?;
    if let Some(what) = repo.operation_in_progress() {
        return Err(Error::InProgress(what));
    }
    let lock = repo.lock(wait)?;
    match adopt_repo(&repo, names, keyring, identity, made) {
        Ok(adopted) => Ok(adopted),
        Err(e) => {
            // A repository made here for an adoption that did not happen is removed again
            // (while locked, and only if still without a commit): refusing changes nothing.
            if made && !matches!(e, Error::Unfinished { .. }) {
                repo.uninit(lock);
            }
            Err(e)
        }
    }
}

fn adopt_repo(
    repo: &Repo,
    names: &BTreeMap<Fingerprint, MemberName>,
    keyring: &Keyring,
    identity: Option<&Identity>,
    became_repository: bool,
) -> Result<Adopted> {
    repo.recover()?;
    let unborn = repo.is_unborn();
    let files: Vec<TreeFile> = if unborn {
        // vault commits only store files: anything else must be moved out or ignored first.
        let foreign = repo.foreign_files()?;
        if !foreign.is_empty() {
            return Err(Error::ForeignFiles(escaped(&foreign)));
        }
        repo.worktree_files()?
    } else {
        let head = repo.head()?;
        let dirty = repo.dirty_paths()?;
        if !dirty.is_empty() {
            return Err(Error::Dirty(escaped(&dirty)));
        }
        repo.files(head)?
    };
    let layout = Layout::new(files);
    if layout.members.is_some() {
        return Err(Error::AlreadyInitialised(repo.root().to_path_buf()));
    }
    if !layout.temporaries.is_empty() {
        return Err(Error::Temporaries(escaped(&layout.temporaries)));
    }
    if layout.gpg_ids.is_empty() {
        return Err(Error::NotPassStore(repo.root().to_path_buf()));
    }
    let mut keys = load_keys(repo, &layout)?;
    let (recipients, _, _) = resolve_gpg_ids(repo, &layout, &mut keys, Some(keyring), false)?;
    let used: BTreeSet<Fingerprint> = recipients.values().flatten().copied().collect();
    for fpr in names.keys() {
        if !used.contains(fpr) {
            return Err(Error::NameNotRecipient(fpr.to_string()));
        }
    }

    let mut roster = Roster::default();
    let mut members = Vec::new();
    let mut warnings = Vec::new();
    let mut change = Change {
        writes: Vec::new(),
        deletes: Vec::new(),
        message: String::new(),
        action: "init".into(),
        replaces: None,
    };
    for fpr in &used {
        let key = &keys[fpr];
        let name = match names.get(fpr) {
            Some(n) => n.clone(),
            None => key
                .emails()
                .iter()
                .find_map(|e| MemberName::from_email(e))
                .ok_or_else(|| Error::NoNameFor(fpr.to_string()))?,
        };
        roster.add(name.clone(), *fpr).map_err(|_| {
            Error::MemberExists(format!(
                "two keys would both be named {name} ({fpr} and {}): give one of them --name FINGERPRINT=NAME",
                roster.fingerprint(&name).map(|f| f.to_string()).unwrap_or_default()
            ))
        })?;
        if let Some(p) = key.problem() {
            warnings.push(format!("member {name} ({fpr}): {p}"));
        }
        if !layout.public_keys.contains_key(&fpr.to_string()) {
            change.writes.push((
                format!("{PUBLIC_KEYS}/{fpr}"),
                repo.write_blob(key.armored())?,
            ));
        }
        members.push((name, *fpr));
    }
    change
        .writes
        .push((MEMBERS.into(), repo.write_blob(roster.render().as_bytes())?));
    let list: Vec<String> = members.iter().map(|(n, _)| n.to_string()).collect();
    change.message = commit_message(
        &format!(
            "Adopt password store with vault ({})",
            count(members.len(), "member", "members")
        ),
        &format!(
            "Members: {}.\n{} in {} with a .gpg-id; nothing was re-encrypted.",
            list.join(", "),
            count(layout.entries.len(), "entry", "entries"),
            count(layout.gpg_ids.len(), "folder", "folders")
        ),
        &[("Vault-Action".into(), "init".into())],
    );
    let commit = repo.commit(&change, unborn, signer(identity).as_deref(), None, &|| {
        false
    })?;
    Ok(Adopted {
        commit,
        members,
        entries: layout.entries.len(),
        warnings,
        became_repository,
    })
}

/// Creates a new store in an empty (or missing) folder with `key` as its first member, holding
/// the store's lock ([`Repo::lock`], waiting up to `wait`).
///
/// # Errors
/// [`Error::AlreadyPassStore`], [`Error::NotEmpty`] if the folder holds anything but an empty
/// git repository; [`Error::Busy`].
pub fn create(
    store: &Path,
    key: &MemberKey,
    name: MemberName,
    identity: Option<&Identity>,
    wait: Duration,
) -> Result<CommitId> {
    if store.exists() {
        let entries = std::fs::read_dir(store).map_err(|e| Error::io("reading", store, e))?;
        let others: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".git")
            .collect();
        if others.iter().any(|n| n == ".gpg-id") {
            return Err(Error::AlreadyPassStore(store.to_path_buf()));
        }
        if !others.is_empty() {
            return Err(Error::NotEmpty {
                path: store.to_path_buf(),
                why: "is not empty",
            });
        }
    } else {
        std::fs::create_dir_all(store).map_err(|e| Error::io("creating", store, e))?;
    }
    let (repo, _) = Repo::open_or_init(store)?;
    let _lock = repo.lock(wait)?;
    if !repo.is_unborn() {
        return Err(Error::NotEmpty {
            path: store.to_path_buf(),
            why: "already has git history",
        });
    }
    let fpr = key.fingerprint();
    let mut roster = Roster::default();
    roster.add(name.clone(), fpr)?;
    let change = Change {
        writes: vec![
            (
                gpg_id_path(""),
                repo.write_blob(render_gpg_id(&[fpr]).as_bytes())?,
            ),
            (
                format!("{PUBLIC_KEYS}/{fpr}"),
                repo.write_blob(key.armored())?,
            ),
            (MEMBERS.into(), repo.write_blob(roster.render().as_bytes())?),
        ],
        deletes: Vec::new(),
        message: commit_message(
            &format!("Create store with member {name} ({})", fpr.short()),
            &format!("{name} is the first member."),
            &[
                ("Vault-Action".into(), "init".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
            ],
        ),
        action: "init".into(),
        replaces: None,
    };
    repo.commit(&change, false, signer(identity).as_deref(), None, &|| false)
}

/// A commit signer from an optional operator identity that can sign.
fn signer(identity: Option<&Identity>) -> Option<Box<crate::git::Signer<'_>>> {
    let id = identity.filter(|i| i.can_sign())?;
    Some(Box::new(move |data: &[u8]| sign_as(id, data, true)))
}
