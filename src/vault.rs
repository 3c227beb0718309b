//! A loaded store, and the membership changes vault makes to it.
//!
//! Loading reads only the committed state (HEAD): layout, `.gpg-id` files resolved to member keys,
//! `.public-keys/`, `.members.toml`. A change is planned in memory ([`Plan`]), then executed: every
//! entry governed by a changed `.gpg-id` whose readers are not already exactly right is re-wrapped
//! (new readers only: the session key gets an extra PKESK, the data packet is kept) or
//! re-encrypted with a fresh session key (whenever someone must lose access), in parallel, blobs
//! straight into git; then one commit. Nothing is written to the work tree before the commit
//! point, so an error anywhere leaves the store as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rayon::prelude::*;

use crate::crypto::{self, Envelope, Fingerprint, Identity, KeyId, MemberKey, Recipients};
use crate::error::{Error, Result};
use crate::git::{
    BlobId, Change, CommitId, Objects, PackedBlob, Recovery, Repo, Staging, StoreLock, TreeFile,
};
use crate::roster::Roster;
use crate::store::{
    gpg_id_path, parse_gpg_id, render_gpg_id, render_gpg_id_keeping, show_folder, Entry, Folder,
    Layout, MemberName, Spec, MEMBERS, PUBLIC_KEYS,
};
use crate::text::count;

/// A store as committed at HEAD.
pub struct Vault {
    repo: Repo,
    head: CommitId,
    layout: Layout,
    roster: Roster,
    keys: BTreeMap<Fingerprint, MemberKey>,
    recipients: BTreeMap<Folder, Vec<Fingerprint>>,
    gpg_id_problems: Vec<Error>,
    gpg_id_texts: GpgIdTexts,
    /// Held from loading to the end of a change (see [`Vault::open_for_change`]).
    _lock: Option<StoreLock>,
    /// A git operation left half-done ("a merge", "a rebase"): read, never changed.
    in_progress: Option<&'static str>,
}

/// What a membership change will do, before it is done.
#[derive(Debug)]
pub struct Plan {
    action: &'static str,
    subject: String,
    body: String,
    trailers: Vec<(String, String)>,
    recipients: BTreeMap<Folder, Vec<Fingerprint>>,
    changed: BTreeSet<Folder>,
    key_writes: Vec<(String, Vec<u8>)>,
    key_deletes: Vec<String>,
    roster: Roster,
    /// Key ids of a member losing access: entries encrypted to them are reported for rotation.
    removed_key_ids: Vec<KeyId>,
    /// The key of a member being added (not in `.public-keys/` yet).
    added: Option<MemberKey>,
    /// pass's `PASSWORD_STORE_SIGNING_KEY`: when set, every `.gpg-id` written is signed.
    pass_signing_keys: Vec<Fingerprint>,
    /// A key other than the operator's to sign `.gpg-id` files with (`--signing-key`).
    gpg_id_signer: Option<Identity>,
    /// Folders whose `.gpg-id` is a link -> the folder whose `.gpg-id` it leads to.
    links: BTreeMap<Folder, Folder>,
}

impl Plan {
    /// Signs every `.gpg-id` the change writes, as pass does with `PASSWORD_STORE_SIGNING_KEY`
    /// (`keys`, empty when unset). A signature must be by a key pass accepts there: one of `keys`,
    /// else the key that signed the existing `.gpg-id.sig`. That is the operator's key, or
    /// `signer` (a key the operator holds for the purpose, e.g. the team's signing key).
    pub fn sign_gpg_ids_for_pass(&mut self, keys: Vec<Fingerprint>, signer: Option<Identity>) {
        self.pass_signing_keys = keys;
        self.gpg_id_signer = signer;
    }

    /// Fingerprints that will be recipients after the change.
    pub fn recipients_after(&self) -> BTreeSet<Fingerprint> {
        self.recipients.values().flatten().copied().collect()
    }

    /// The `.gpg-id` files the change writes (e.g. `.gpg-id`, `ops/.gpg-id`), escaped for display.
    /// A symbolic link is named with the file it leads to (`finance/.gpg-id -> ops/.gpg-id`):
    /// writing that file changes every folder that links to it, as pass reads them.
    pub fn changed_gpg_ids(&self) -> Vec<String> {
        self.changed
            .iter()
            .map(|f| {
                let path = crate::text::escape(&gpg_id_path(f)).into_owned();
                match self.links.get(f) {
                    Some(to) => format!("{path} -> {}", crate::text::escape(&gpg_id_path(to))),
                    None => path,
                }
            })
            .collect()
    }

    /// Adds every folder that shares a changed folder's `.gpg-id` through a symbolic link to the
    /// change, with the same recipients: pass reads one file for all of them.
    fn with_links(mut self, layout: &Layout) -> Plan {
        for folder in self.changed.clone() {
            let recipients = self.recipients[&folder].clone();
            for shared in layout.sharing(&folder) {
                self.recipients.insert(shared.clone(), recipients.clone());
                self.changed.insert(shared);
            }
        }
        self.links = layout
            .gpg_id_links
            .iter()
            .filter(|(from, _)| self.changed.contains(*from))
            .map(|(f, t)| (f.clone(), t.clone()))
            .collect();
        self
    }
}

/// What a membership change did.
#[derive(Debug)]
pub struct Outcome {
    pub commit: CommitId,
    /// Entries that kept their encrypted data and gained readers.
    pub rewrapped: usize,
    /// Entries re-encrypted with a fresh session key.
    pub reencrypted: usize,
    /// Entries governed by a changed `.gpg-id` whose readers were already right.
    pub unchanged: usize,
    /// Entries the removed member could read before the change (to rotate), as committed.
    pub exposed: Vec<String>,
    pub changed_gpg_ids: Vec<String>,
    /// What the change could not re-encrypt: foreign content in the changed folders (age files,
    /// submodules), and entries no `.gpg-id` governs that a member losing access can read; one
    /// sentence each for people (escaped): said, never hidden behind a clean summary.
    pub not_reencrypted: Vec<String>,
}

/// A member as `vault members` shows them.
#[derive(Debug, serde::Serialize)]
pub struct MemberInfo {
    pub name: String,
    pub fingerprint: String,
    pub user_ids: Vec<String>,
    /// Folders whose `.gpg-id` lists this member (`/` is the root).
    pub folders: Vec<String>,
    /// RFC 3339, or `None` for a key that does not expire.
    pub expires: Option<String>,
    /// Why the key cannot be encrypted to, if it cannot.
    pub problem: Option<String>,
}

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
pub type Keyring<'a> = dyn Fn(&Spec) -> std::result::Result<Vec<u8>, String> + 'a;

/// Callbacks for long work: progress (done, total) and whether the user asked to stop.
pub struct Monitor<'a> {
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    pub interrupted: &'a (dyn Fn() -> bool + Sync),
}

impl Monitor<'_> {
    pub fn silent() -> Monitor<'static> {
        Monitor {
            progress: &|_, _| {},
            interrupted: &|| false,
        }
    }
}

fn load_keys(repo: &Repo, layout: &Layout) -> Result<BTreeMap<Fingerprint, MemberKey>> {
    let mut keys = BTreeMap::new();
    for (name, blob) in &layout.public_keys {
        let file = format!("{PUBLIC_KEYS}/{name}");
        let fpr = Fingerprint::parse(name).ok_or_else(|| Error::BadFile {
            file: file.clone(),
            problem: "the file name is not a key fingerprint".into(),
        })?;
        let key = MemberKey::parse(&repo.read(*blob)?).map_err(|problem| Error::KeyFile {
            file: file.clone(),
            problem,
        })?;
        if key.fingerprint() != fpr {
            return Err(Error::BadFile {
                file,
                problem: format!(
                    "it holds key {}, not the one its name says",
                    key.fingerprint()
                ),
            });
        }
        keys.insert(fpr, key);
    }
    Ok(keys)
}

/// Which of `keys` a `.gpg-id` line means: exactly one, or a reason.
pub(crate) fn matching<'k>(
    spec: &Spec,
    keys: impl Iterator<Item = &'k MemberKey>,
) -> std::result::Result<Fingerprint, (usize, String)> {
    let found: Vec<Fingerprint> = keys
        .filter(|k| match spec {
            Spec::Fingerprint(f) => k.has_fingerprint(*f),
            Spec::KeyId(id) => k.has_key_id(*id),
            Spec::Email(e) => k.emails().iter().any(|m| m == e),
        })
        .map(|k| k.fingerprint())
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err((0, String::new())),
        many => Err((
            many.len(),
            many.iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

type RecipientMap = BTreeMap<Folder, Vec<Fingerprint>>;

/// Resolves every `.gpg-id` to fingerprints. With `lenient`, a line that cannot be resolved is
/// skipped and returned as a problem instead of failing.
/// Each `.gpg-id` as committed, with the line number of each recipient line vault resolved and
/// its fingerprint: what a rewrite keeps comments from ([`crate::store::render_gpg_id_keeping`]).
type GpgIdTexts = BTreeMap<Folder, (String, Vec<(usize, Fingerprint)>)>;

fn resolve_gpg_ids(
    repo: &Repo,
    layout: &Layout,
    keys: &mut BTreeMap<Fingerprint, MemberKey>,
    keyring: Option<&Keyring>,
    lenient: bool,
) -> Result<(RecipientMap, Vec<Error>, GpgIdTexts)> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let mut texts = BTreeMap::new();
    // A `.gpg-id` that cannot be read still governs its folder for pass: never fall back to a
    // parent's (wider) recipients.
    for (folder, why) in &layout.broken_gpg_ids {
        let e = Error::BadFile {
            file: crate::text::escape(&gpg_id_path(folder)).into_owned(),
            problem: format!("{why}: pass would use it for that folder, vault cannot read it"),
        };
        if !lenient {
            return Err(e);
        }
        problems.push(e);
        out.insert(folder.clone(), Vec::new());
    }
    for (folder, blob) in &layout.gpg_ids {
        let file = crate::text::escape(&gpg_id_path(folder)).into_owned();
        let mut fprs: Vec<Fingerprint> = Vec::new();
        let bytes = repo.read(*blob)?;
        let lines = match parse_gpg_id(&file, &bytes) {
            Ok(l) => l,
            Err(e) if lenient => {
                problems.push(e);
                out.insert(folder.clone(), fprs);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut numbered = Vec::new();
        for line in lines {
            let resolved = resolve_line(&file, &line, keys, keyring);
            let fpr = match resolved {
                Ok(f) => f,
                Err(e) if lenient => {
                    problems.push(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            numbered.push((line.number, fpr));
            if !fprs.contains(&fpr) {
                fprs.push(fpr);
            }
        }
        out.insert(folder.clone(), fprs);
        // parse_gpg_id accepted it, so it is UTF-8.
        texts.insert(
            folder.clone(),
            (String::from_utf8_lossy(&bytes).into_owned(), numbered),
        );
    }
    Ok((out, problems, texts))
}

fn resolve_line(
    file: &str,
    line: &crate::store::GpgIdLine,
    keys: &mut BTreeMap<Fingerprint, MemberKey>,
    keyring: Option<&Keyring>,
) -> Result<Fingerprint> {
    let line_err = |problem: String| Error::GpgIdLine {
        file: file.to_string(),
        line: line.number,
        text: line.text.clone(),
        problem,
    };
    let ambiguous = |n: usize, list: String| {
        line_err(format!(
            "it matches {n} keys ({list}); write the full fingerprint instead"
        ))
    };
    let not_found = |where_: &str| match line.spec {
        Spec::Fingerprint(f) => Error::MissingKey {
            fingerprint: f.to_string(),
            file: file.to_string(),
        },
        _ => line_err(format!("no key in {where_} matches it")),
    };
    match matching(&line.spec, keys.values()) {
        Ok(f) => return Ok(f),
        Err((0, _)) => {}
        Err((n, list)) => return Err(ambiguous(n, list)),
    }
    let Some(lookup) = keyring else {
        return Err(not_found(".public-keys/"));
    };
    let exported = lookup(&line.spec).map_err(line_err)?;
    let found = MemberKey::parse_many(&exported)
        .map_err(|p| line_err(format!("the keyring's key is unusable: {p}")))?;
    match matching(&line.spec, found.iter()) {
        Ok(f) => {
            let key = found.into_iter().find(|k| k.fingerprint() == f);
            keys.insert(f, key.expect("matched above"));
            Ok(f)
        }
        Err((0, _)) => Err(not_found(".public-keys/ or the GnuPG keyring")),
        Err((n, list)) => Err(ambiguous(n, list)),
    }
}

/// Paths from the tree, escaped for an error message.
fn escaped(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| crate::text::escape(p).into_owned())
        .collect()
}

fn now() -> String {
    crypto::format_time(std::time::SystemTime::now())
}

/// Who signs each `.gpg-id.sig` a change writes.
type GpgIdSigners<'i> = BTreeMap<String, &'i Identity>;

/// Finishes or undoes an interrupted change if no other vault holds the store's lock (a reader
/// never waits for, nor fails because of, a running writer: it reads the committed HEAD).
fn recover_if_idle(repo: &Repo) -> Result<Option<Recovery>> {
    if !repo.change_under_way() {
        return Ok(None);
    }
    match repo.try_lock()? {
        Some(_lock) => repo.recover(),
        None => Ok(None),
    }
}

impl Vault {
    /// Opens an adopted store for reading: finishes or undoes an interrupted change first
    /// (returned, so the caller can say which) unless another vault command is running, then
    /// loads HEAD.
    ///
    /// # Errors
    /// Everything [`Repo::open`] and [`Repo::head`] report; [`Error::NotAdopted`] for a pass store
    /// without `.members.toml`; key, `.gpg-id` and roster errors naming the file.
    pub fn open(store: &Path) -> Result<(Vault, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        let recovery = recover_if_idle(&repo)?;
        Ok((Self::load(repo, false, None)?, recovery))
    }

    /// Opens an adopted store to change it: takes the store's writer lock (waiting up to `wait`
    /// for another vault command, see [`Repo::lock`]) and holds it as long as the returned value
    /// lives, then as [`Vault::open`].
    ///
    /// # Errors
    /// [`Error::Busy`], and everything [`Vault::open`] reports.
    pub fn open_for_change(store: &Path, wait: Duration) -> Result<(Vault, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        if let Some(what) = repo.operation_in_progress() {
            return Err(Error::InProgress(what));
        }
        let lock = repo.lock(wait)?;
        let recovery = repo.recover()?;
        Ok((Self::load(repo, false, Some(lock))?, recovery))
    }

    /// Like [`Vault::open`], for reading only: `.gpg-id` lines that resolve to no key are kept as
    /// [`Vault::gpg_id_problems`] instead of failing, and a pass store that vault has not adopted
    /// is read with no member names.
    pub fn open_lenient(store: &Path) -> Result<(Vault, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        let recovery = recover_if_idle(&repo)?;
        Ok((Self::load(repo, true, None)?, recovery))
    }

    fn load(repo: Repo, lenient: bool, lock: Option<StoreLock>) -> Result<Vault> {
        // During a rebase HEAD is detached: readers read the commit it points to, and say why.
        let in_progress = repo.operation_in_progress();
        let head = match in_progress {
            Some(_) => repo.head_commit()?,
            None => repo.head()?,
        };
        let layout = Layout::new(repo.files(head)?);
        let roster = match layout.members {
            Some(m) => Roster::parse(&repo.read(m)?)?,
            None if lenient => Roster::default(),
            None => return Err(Error::NotAdopted(repo.root().to_path_buf())),
        };
        let mut keys = load_keys(&repo, &layout)?;
        let (recipients, gpg_id_problems, gpg_id_texts) =
            resolve_gpg_ids(&repo, &layout, &mut keys, None, lenient)?;
        Ok(Vault {
            repo,
            head,
            layout,
            roster,
            keys,
            recipients,
            gpg_id_problems,
            gpg_id_texts,
            _lock: lock,
            in_progress,
        })
    }

    /// The git operation left half-done in the store ("a merge", "a rebase"), if any: the store
    /// was read at HEAD, and no change may be made until it is finished or aborted.
    pub fn in_progress(&self) -> Option<&'static str> {
        self.in_progress
    }

    /// `.gpg-id` lines that resolve to no key (only from [`Vault::open_lenient`]).
    pub fn gpg_id_problems(&self) -> &[Error] {
        &self.gpg_id_problems
    }

    pub fn root(&self) -> &Path {
        self.repo.root()
    }

    pub fn head(&self) -> CommitId {
        self.head
    }

    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    pub fn keys(&self) -> &BTreeMap<Fingerprint, MemberKey> {
        &self.keys
    }

    pub fn recipients(&self) -> &BTreeMap<Folder, Vec<Fingerprint>> {
        &self.recipients
    }

    /// Checks that a change may start: nothing uncommitted, and no committed file named like
    /// vault's temporaries (a plant: see [`Layout::temporaries`]).
    ///
    /// # Errors
    /// [`Error::Temporaries`] naming them; [`Error::Dirty`] listing uncommitted changes to
    /// tracked files and untracked files git does not ignore.
    pub fn check_ready(&self) -> Result<()> {
        if !self.layout.temporaries.is_empty() {
            return Err(Error::Temporaries(escaped(&self.layout.temporaries)));
        }
        let dirty = self.repo.dirty_paths()?;
        if dirty.is_empty() {
            Ok(())
        } else {
            Err(Error::Dirty(escaped(&dirty)))
        }
    }

    /// The name people use for a key: the roster's, or its fingerprint.
    pub fn display_name(&self, fpr: Fingerprint) -> String {
        self.roster
            .name_of(fpr)
            .map(|n| n.to_string())
            .unwrap_or_else(|| fpr.to_string())
    }

    /// Every member with the folders they read.
    pub fn members(&self) -> Vec<MemberInfo> {
        let mut out: Vec<MemberInfo> = self
            .roster
            .members()
            .map(|(name, fpr)| self.member_info(name.to_string(), *fpr))
            .collect();
        // Recipients that nobody named (e.g. added by `pass init` after adoption).
        let named: BTreeSet<Fingerprint> = self.roster.members().map(|(_, f)| *f).collect();
        let unnamed: BTreeSet<Fingerprint> = self
            .recipients
            .values()
            .flatten()
            .filter(|f| !named.contains(f))
            .copied()
            .collect();
        out.extend(
            unnamed
                .into_iter()
                .map(|f| self.member_info("(unnamed)".into(), f)),
        );
        out
    }

    fn member_info(&self, name: String, fpr: Fingerprint) -> MemberInfo {
        let key = self.keys.get(&fpr);
        MemberInfo {
            name,
            fingerprint: fpr.to_string(),
            user_ids: key.map(|k| k.user_ids().to_vec()).unwrap_or_default(),
            folders: self
                .recipients
                .iter()
                .filter(|(_, r)| r.contains(&fpr))
                .map(|(f, _)| show_folder(f))
                .collect(),
            expires: key.and_then(|k| k.expiry()).map(crypto::format_time),
            problem: match key {
                None => Some("its key is missing from .public-keys/".into()),
                Some(k) => k.problem().map(|p| p.to_string()),
            },
        }
    }

    /// Checks a folder given with `--folder`: it must hold an entry or a `.gpg-id` of its own,
    /// unless `create` (a mistyped `--folder finanse` would otherwise get a `.gpg-id` and a
    /// commit of its own).
    ///
    /// # Errors
    /// [`Error::NoSuchFolder`] with the nearest existing folder's name, if one is close.
    pub fn check_folder(&self, folder: &str, create: bool) -> Result<()> {
        let known = |f: &str| {
            self.layout.gpg_ids.contains_key(f)
                || self.layout.broken_gpg_ids.contains_key(f)
                || self
                    .layout
                    .entries
                    .iter()
                    .any(|e| e.path.strip_prefix(f).is_some_and(|r| r.starts_with('/')))
        };
        if create || folder.is_empty() || known(folder) {
            return Ok(());
        }
        let mut folders: BTreeSet<&str> = self.layout.gpg_ids.keys().map(String::as_str).collect();
        for e in &self.layout.entries {
            let mut f = Layout::folder_of(&e.path);
            while !f.is_empty() {
                folders.insert(f);
                f = Layout::folder_of(f);
            }
        }
        let nearest = folders
            .into_iter()
            .filter(|f| !f.is_empty())
            .map(|f| (strsim::damerau_levenshtein(f, folder), f))
            .filter(|(d, f)| *d <= 2.max(f.len() / 4))
            .min()
            .map(|(_, f)| show_folder(f));
        Err(Error::NoSuchFolder {
            folder: show_folder(folder),
            nearest,
        })
    }

    /// Plans adding `key` as member `name` to the root `.gpg-id`, or to `folder`'s (created from
    /// the recipients it inherits, plus the new one).
    ///
    /// # Errors
    /// [`Error::MemberExists`] if the name or key is taken or already reads that folder;
    /// [`Error::Usage`] if there is no `.gpg-id` to add to.
    pub fn plan_add(
        &self,
        key: &MemberKey,
        name: MemberName,
        folder: Option<Folder>,
    ) -> Result<Plan> {
        let fpr = key.fingerprint();
        let mut roster = self.roster.clone();
        roster.add(name.clone(), fpr)?;
        let folder = folder.unwrap_or_default();
        let mut recipients = self.recipients.clone();
        let current = match recipients.get(&folder) {
            Some(r) => r.clone(),
            None => match self.layout.governing(&folder) {
                Some(g) => recipients[&g].clone(),
                None if folder.is_empty() => {
                    return Err(Error::Usage(
                        "the store has no root .gpg-id; create it with `pass init` or `vault init KEYFILE --name NAME`".into(),
                    ))
                }
                None => Vec::new(),
            },
        };
        let named = self.roster.name_of(fpr).is_some();
        if current.contains(&fpr) && recipients.contains_key(&folder) && named {
            return Err(Error::MemberExists(format!(
                "key {fpr} already reads {}",
                show_folder(&folder)
            )));
        }
        let mut new = current;
        if !new.contains(&fpr) {
            new.push(fpr);
        }
        recipients.insert(folder.clone(), new);
        let uid = key.user_ids().first().cloned().unwrap_or_default();
        Ok(Plan {
            action: "add-member",
            subject: format!("Add member {name} ({})", fpr.short()),
            body: format!("{name} ({uid}) can now read {}.", show_folder(&folder)),
            trailers: vec![
                ("Vault-Action".into(), "add-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
                ("Vault-Folder".into(), show_folder(&folder)),
            ],
            recipients,
            changed: BTreeSet::from([folder]),
            key_writes: vec![(format!("{PUBLIC_KEYS}/{fpr}"), key.armored().to_vec())],
            key_deletes: Vec::new(),
            roster,
            removed_key_ids: Vec::new(),
            added: Some(key.clone()),
            pass_signing_keys: Vec::new(),
            gpg_id_signer: None,
            links: BTreeMap::new(),
        }
        .with_links(&self.layout))
    }

    /// Plans removing member `name` from every `.gpg-id` that lists them, or only from `folder`
    /// (creating its `.gpg-id` from the inherited recipients if it has none). A member left in no
    /// `.gpg-id` loses their `.public-keys` file and becomes a former member.
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::NotRecipient`], and [`Error::WouldEmpty`] when a
    /// `.gpg-id` would be left with nobody.
    pub fn plan_remove(&self, name: &MemberName, folder: Option<Folder>) -> Result<Plan> {
        let fpr = self
            .roster
            .fingerprint(name)
            .ok_or_else(|| Error::UnknownMember(name.to_string()))?;
        let mut recipients = self.recipients.clone();
        let targets: Vec<Folder> = match &folder {
            None => recipients
                .iter()
                .filter(|(_, r)| r.contains(&fpr))
                .map(|(f, _)| f.clone())
                .collect(),
            Some(f) => {
                let governing = self.layout.governing(f);
                match governing {
                    Some(g) if recipients[&g].contains(&fpr) => {
                        if &g != f {
                            let inherited = recipients[&g].clone();
                            recipients.insert(f.clone(), inherited);
                        }
                        vec![f.clone()]
                    }
                    _ => {
                        return Err(Error::NotRecipient {
                            member: name.to_string(),
                            folder: show_folder(f),
                        })
                    }
                }
            }
        };
        for f in &targets {
            let list = recipients
                .get_mut(f)
                .expect("target folders have recipients");
            list.retain(|r| *r != fpr);
            if list.is_empty() {
                return Err(Error::WouldEmpty {
                    member: name.to_string(),
                    file: gpg_id_path(f),
                });
            }
        }
        let still_member = recipients.values().any(|r| r.contains(&fpr));
        let mut roster = self.roster.clone();
        let key = self.keys.get(&fpr);
        let removed_key_ids: Vec<KeyId> = key
            .map(|k| k.all_key_ids().to_vec())
            .unwrap_or_else(|| vec![fpr.key_id()]);
        let (key_deletes, scope) = if still_member {
            (
                Vec::new(),
                targets
                    .iter()
                    .map(|f| show_folder(f))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        } else {
            let subkeys = key
                .map(|k| k.subkey_ids().iter().map(|i| i.to_string()).collect())
                .unwrap_or_default();
            roster.retire(name, subkeys, now());
            let deletes = if self.keys.contains_key(&fpr) {
                vec![format!("{PUBLIC_KEYS}/{fpr}")]
            } else {
                Vec::new()
            };
            (deletes, "the whole store".to_string())
        };
        Ok(Plan {
            action: "remove-member",
            subject: if still_member {
                format!("Remove member {name} ({}) from {scope}", fpr.short())
            } else {
                format!("Remove member {name} ({})", fpr.short())
            },
            body: format!(
                "{name} can no longer read {scope}; what they could read was re-encrypted with fresh session keys.\n\
                 They can still decrypt the old versions in git history: rotate those credentials."
            ),
            trailers: vec![
                ("Vault-Action".into(), "remove-member".into()),
                ("Vault-Member".into(), format!("{name} <{fpr}>")),
            ],
            recipients,
            changed: targets.into_iter().collect(),
            key_writes: Vec::new(),
            key_deletes,
            roster,
            removed_key_ids,
            added: None,
            pass_signing_keys: Vec::new(),
            gpg_id_signer: None,
            links: BTreeMap::new(),
        }
        .with_links(&self.layout))
    }

    /// For each `.gpg-id.sig` the plan must write (one exists, or `PASSWORD_STORE_SIGNING_KEY`
    /// is set), the key to sign it with: one pass will accept, as pass checks a signature's
    /// signer (primary or signing key) against `PASSWORD_STORE_SIGNING_KEY`. When that is unset
    /// here, the team's pass still expects the key that signed the existing signature, so that
    /// key it must be. Decided before anything is decrypted or written.
    ///
    /// # Errors
    /// [`Error::GpgIdSigner`] naming the file and the key pass expects when neither the operator
    /// nor the plan's `.gpg-id` signer is that key.
    fn gpg_id_signers<'i>(
        &self,
        plan: &'i Plan,
        operator: &'i Identity,
    ) -> Result<GpgIdSigners<'i>> {
        let mut out = BTreeMap::new();
        for folder in &plan.changed {
            let sig_path = format!("{}.sig", gpg_id_path(folder));
            if let Some(target) = self.layout.links.get(&sig_path) {
                // A link to the signature of the `.gpg-id` this folder reads is kept valid by
                // re-signing that one; a link anywhere else would go stale.
                let source = plan.links.get(folder).unwrap_or(folder);
                if *target == format!("{}.sig", gpg_id_path(source)) {
                    continue;
                }
                return Err(Error::BadFile {
                    file: crate::text::escape(&sig_path).into_owned(),
                    problem: format!(
                        "a symbolic link to {}, which is not the signature of the .gpg-id this \
                         folder reads: the change would leave it stale, and pass would refuse it",
                        crate::text::escape(target)
                    ),
                });
            }
            let existing = self.layout.signatures.get(&sig_path);
            if existing.is_none() && plan.pass_signing_keys.is_empty() {
                continue;
            }
            let (expected, rule): (Vec<String>, &str) = if plan.pass_signing_keys.is_empty() {
                let sig = self.repo.read(*existing.expect("checked above"))?;
                (
                    crypto::signature_issuers(&sig),
                    "the key that signed it (pass checks it against PASSWORD_STORE_SIGNING_KEY)",
                )
            } else {
                (
                    plan.pass_signing_keys
                        .iter()
                        .map(|f| f.to_string())
                        .collect(),
                    "PASSWORD_STORE_SIGNING_KEY",
                )
            };
            let accepted =
                |id: &Identity| expected.is_empty() || expected.iter().any(|h| id.signs_as(h));
            let signer = [Some(operator), plan.gpg_id_signer.as_ref()]
                .into_iter()
                .flatten()
                .find(|id| accepted(id))
                .ok_or_else(|| Error::GpgIdSigner {
                    file: crate::text::escape(&sig_path).into_owned(),
                    expected: expected
                        .iter()
                        .map(|h| self.describe_key(h))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    rule: rule.into(),
                    operator: operator.fingerprint().to_string(),
                })?;
            out.insert(sig_path, signer);
        }
        Ok(out)
    }

    /// A key named by fingerprint or key id (hex), with the member's name when it is a member's.
    fn describe_key(&self, handle: &str) -> String {
        let member = self.keys.values().find(|k| {
            k.fingerprint().to_string() == handle
                || k.all_key_ids().iter().any(|id| id.to_string() == handle)
                || k.fingerprint().key_id().to_string() == handle
        });
        match member {
            Some(k) => format!("{handle} (member {})", self.display_name(k.fingerprint())),
            None => handle.to_string(),
        }
    }

    /// Carries out a plan: re-encrypts what must change (decrypting with `identity`), then makes
    /// one commit. On any error, nothing is changed.
    ///
    /// # Errors
    /// [`Error::MemberKey`] if a recipient's key cannot be encrypted to; [`Error::NoIdentity`] if
    /// an entry must be re-encrypted and there is no operator key; [`Error::CannotDecrypt`] listing
    /// every entry the operator cannot read; [`Error::Entry`] for an unreadable entry;
    /// [`Error::Interrupted`]; git errors.
    pub fn execute(
        &self,
        plan: Plan,
        identity: Option<&Identity>,
        monitor: &Monitor,
    ) -> Result<Outcome> {
        // Every commit vault makes is signed by the operator.
        let operator = identity.ok_or(Error::NoIdentity)?;
        if !operator.can_sign() {
            return Err(Error::Identity {
                file: operator.fingerprint().to_string(),
                problem: "it has no usable signing key, and vault signs every commit it makes"
                    .into(),
            });
        }
        let sign = |data: &[u8]| {
            operator
                .sign_detached(data, true)
                .map_err(|problem| Error::Identity {
                    file: operator.fingerprint().to_string(),
                    problem,
                })
        };
        // An entry vault cannot rewrite (a symbolic link, perhaps out of the store) would keep
        // its old readers: refuse rather than leave it readable by someone who lost access.
        if !self.layout.temporaries.is_empty() {
            return Err(Error::Temporaries(escaped(&self.layout.temporaries)));
        }
        for skipped in &self.layout.skipped {
            let governed = Layout::governing_in(&plan.recipients, Layout::folder_of(&skipped.path));
            if governed.is_some_and(|g| plan.changed.contains(&g)) {
                return Err(Error::Unreadable {
                    path: crate::text::escape(&skipped.path).into_owned(),
                    problem: format!(
                        "{}: vault cannot re-encrypt it, and it would keep its old readers",
                        skipped.why
                    ),
                });
            }
        }
        let gpg_id_signers = self.gpg_id_signers(&plan, operator)?;
        // Which entries does the change govern, and to whom must each be encrypted?
        let mut work: Vec<(&Entry, &Folder)> = Vec::new();
        // Entries outside the changed folders, and outside any `.gpg-id`: when someone loses
        // access, their ciphertexts decide too (below).
        let mut elsewhere: Vec<(&Entry, Option<&Folder>)> = Vec::new();
        for e in &self.layout.entries {
            let Some(gov) = Layout::governing_in(&plan.recipients, Layout::folder_of(&e.path))
            else {
                elsewhere.push((e, None));
                continue;
            };
            let gov = plan
                .recipients
                .get_key_value(&gov)
                .expect("governing folder exists")
                .0;
            if e.governed_by.as_ref() != Some(gov) || plan.changed.contains(gov) {
                work.push((e, gov));
            } else {
                elsewhere.push((e, Some(gov)));
            }
        }
        // Clients that ignore a sub-folder's `.gpg-id` (ripasso saving an entry, older gopass
        // inserting one) encrypt to other readers than `.gpg-id` says: an entry the leaving member
        // can actually read is re-encrypted to its proper readers wherever it is, and listed to
        // rotate. One that no `.gpg-id` governs cannot be: it is named instead.
        // What vault cannot re-encrypt in the changed folders (age files, submodules) is named:
        // never a clean summary over something someone may still read.
        let mut not_reencrypted: Vec<String> = self
            .layout
            .foreign
            .iter()
            .filter(|f| {
                Layout::governing_in(&plan.recipients, Layout::folder_of(&f.path))
                    .is_some_and(|g| plan.changed.contains(&g))
            })
            .map(|f| format!("{}: {}", crate::text::escape(&f.path), f.why))
            .collect();
        let mut outside: Vec<String> = Vec::new();
        if !plan.removed_key_ids.is_empty() {
            let root = self.repo.root();
            let readable: Vec<bool> = elsewhere
                .par_iter()
                .map_init(
                    || Objects::open(root),
                    |objects, (entry, _)| {
                        let Ok(objects) = Objects::opened(objects) else {
                            return true; // checked (and reported) with the rest in phase 1
                        };
                        match objects.read(entry.blob).map(|b| {
                            Envelope::parse(&b).map(|env| {
                                env.readers()
                                    .iter()
                                    .any(|r| r.is_some_and(|id| plan.removed_key_ids.contains(&id)))
                            })
                        }) {
                            Ok(Ok(exposed)) => exposed,
                            _ => true, // unreadable: phase 1 names it
                        }
                    },
                )
                .collect();
            for ((entry, gov), exposed) in elsewhere.into_iter().zip(readable) {
                match (exposed, gov) {
                    (false, _) => {}
                    (true, Some(gov)) => work.push((entry, gov)),
                    (true, None) => {
                        outside.push(entry.name.clone());
                        not_reencrypted.push(format!(
                        "{}: no .gpg-id governs it, so vault cannot tell whom to re-encrypt it to; \
                         the member can still read it",
                        crate::text::escape(&entry.name)
                    ))
                    }
                }
            }
        }
        let mut targets: BTreeMap<&Folder, (Recipients, BTreeSet<KeyId>)> = BTreeMap::new();
        for (_, folder) in &work {
            if targets.contains_key(folder) {
                continue;
            }
            let mut members = Vec::new();
            for fpr in &plan.recipients[*folder] {
                let added = plan.added.as_ref().filter(|k| k.fingerprint() == *fpr);
                let key = added
                    .or(self.keys.get(fpr))
                    .ok_or_else(|| Error::MissingKey {
                        fingerprint: fpr.to_string(),
                        file: gpg_id_path(folder),
                    })?;
                if let Some(problem) = key.problem() {
                    return Err(Error::MemberKey {
                        member: self.display_name(*fpr),
                        fingerprint: fpr.to_string(),
                        problem: problem.clone(),
                    });
                }
                members.push(key);
            }
            let recipients = Recipients::new(&members);
            let ids = recipients.key_ids().into_iter().collect();
            targets.insert(folder, (recipients, ids));
        }

        // Phase 1, in parallel, writes nothing: read every affected entry and unlock its session
        // key, so that an entry the operator cannot read (or a malformed one) stops the change
        // before anything is written, with every such entry named. Whether the data of an entry
        // to re-encrypt is intact (its integrity check) is proven in phase 2, when it is
        // decrypted, still before the commit point: a tampered entry stops the change there.
        let total = 2 * work.len();
        let done = AtomicUsize::new(0);
        let tick = || (monitor.progress)(done.fetch_add(1, Ordering::Relaxed) + 1, total);
        let failed = AtomicBool::new(false);
        let failures: Mutex<Vec<(String, Failure)>> = Mutex::new(Vec::new());
        let fail = |name: &str, f: Failure| {
            failed.store(true, Ordering::Relaxed);
            failures
                .lock()
                .expect("no panics hold this lock")
                .push((name.to_string(), f));
        };
        let root = self.repo.root();
        let checked: Vec<Option<Checked>> = work
            .par_iter()
            .map_init(
                || (Objects::open(root), identity.cloned()),
                |(objects, identity), (entry, folder)| {
                    let wanted = &targets[folder].1;
                    let result = check_entry(
                        entry,
                        objects,
                        identity.as_mut(),
                        wanted,
                        &plan.removed_key_ids,
                        failed.load(Ordering::Relaxed),
                        monitor,
                    );
                    tick();
                    result.map_err(|f| fail(&entry.name, f)).ok()
                },
            )
            .collect();
        let failures = failures.into_inner().expect("no panics hold this lock");
        if !failures.is_empty() {
            return Err(summarise_failures(failures, identity));
        }
        // The store's own files, signatures included, are made before anything is written.
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for folder in &plan.changed {
            // Comments and the comments of kept lines stay; everything is written with LF.
            let text = match self.gpg_id_texts.get(folder) {
                Some((old, resolved)) => {
                    render_gpg_id_keeping(old, resolved, &plan.recipients[folder])
                }
                None => render_gpg_id(&plan.recipients[folder]),
            };
            let path = gpg_id_path(folder);
            // Keep pass's signed recipients valid: re-sign, never leave a stale signature.
            let sig_path = format!("{path}.sig");
            if let Some(signer) = gpg_id_signers.get(&sig_path) {
                let sig = signer
                    .sign_detached(text.as_bytes(), false)
                    .map_err(|problem| Error::Identity {
                        file: signer.fingerprint().to_string(),
                        problem,
                    })?;
                files.push((sig_path, sig));
            }
            // A `.gpg-id` that is a symbolic link stays one: the file it leads to is written
            // (it is in the plan, with the same recipients).
            if !plan.links.contains_key(folder) {
                files.push((path, text.into_bytes()));
            }
        }
        files.extend(plan.key_writes.iter().cloned());
        files.push((MEMBERS.into(), plan.roster.render().into_bytes()));
        self.repo.check_writable(
            work.iter()
                .map(|(e, _)| e.path.as_str())
                .chain(files.iter().map(|(p, _)| p.as_str()))
                .chain(plan.key_deletes.iter().map(String::as_str)),
        )?;

        // Phase 2 rewrites, with the session keys unlocked in phase 1. Workers stage each new
        // file beside the old one and frame its blob; this thread streams the blobs, and the
        // store's own files, into one pack, which joins the object database only when complete.
        // A change that stops before its commit point leaves neither the pack nor the staged files.
        let staging = self.repo.begin(plan.action)?;
        let rewrites = checked
            .iter()
            .filter(|c| !matches!(c, Some(Checked::Unchanged { .. })))
            .count();
        // Two files of a change may have the same content (two `.gpg-id` files left with the same
        // recipients): a pack holds each object once.
        let distinct_files = files.iter().map(|(_, b)| b).collect::<BTreeSet<_>>().len();
        let pack = self.repo.write_pack(rewrites + distinct_files, |sink| {
            let (results, sent) = std::thread::scope(|scope| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<PackedBlob>(256);
                let workers = scope.spawn(|| {
                    let tx = tx;
                    work.par_iter()
                        .zip(checked)
                        .map_init(
                            || (Objects::open(root), tx.clone()),
                            |(objects, tx), ((entry, folder), check)| {
                                let check = check.expect("phase 1 succeeded for every entry");
                                let r = rewrite_entry(
                                    entry,
                                    check,
                                    objects,
                                    &targets[folder].0,
                                    monitor,
                                    (&staging, tx),
                                );
                                tick();
                                r
                            },
                        )
                        .collect::<Vec<Result<Rewritten>>>()
                });
                let mut sent: Result<()> = Ok(());
                for packed in rx.iter() {
                    if let Err(e) = sink(packed) {
                        sent = Err(e);
                        break; // dropping the receiver stops the workers
                    }
                    crate::git::fault_point("blob written");
                }
                drop(rx); // so that workers blocked on a full channel stop
                (workers.join().expect("a worker panicked"), sent)
            });
            sent?;
            let results = results.into_iter().collect::<Result<Vec<Rewritten>>>()?;
            let mut ids = Vec::new();
            let mut sent = BTreeSet::new();
            for (path, bytes) in &files {
                let packed = PackedBlob::new(bytes, true)?;
                ids.push((path.clone(), packed.id()));
                if sent.insert(bytes) {
                    sink(packed)?;
                }
            }
            Ok((results, ids))
        });
        let ((results, file_ids), new_packs) = pack.inspect_err(|_| self.repo.abandon(&staging))?;

        let finish = || -> Result<Outcome> {
            let mut change = Change {
                writes: Vec::new(),
                deletes: plan.key_deletes.clone(),
                message: String::new(),
                action: plan.action.to_string(),
            };
            let (mut rewrapped, mut reencrypted, mut unchanged, mut exposed) =
                (0, 0, 0, Vec::new());
            for r in results {
                if r.exposed {
                    exposed.push(r.name.clone());
                }
                match r.how {
                    How::Unchanged => unchanged += 1,
                    How::Rewrapped(blob) => {
                        rewrapped += 1;
                        change.writes.push((r.path, blob));
                    }
                    How::Reencrypted(blob) => {
                        reencrypted += 1;
                        change.writes.push((r.path, blob));
                    }
                }
            }
            exposed.extend(outside.iter().cloned());
            exposed.sort();
            change.writes.extend(file_ids);
            let mut trailers = plan.trailers.clone();
            trailers.push((
                "Vault-Reencrypted".into(),
                (rewrapped + reencrypted).to_string(),
            ));
            change.message = commit_message(&plan.subject, &plan.body, &trailers);
            let commit = self.repo.commit(
                &change,
                false,
                Some(&sign),
                Some(&staging),
                monitor.interrupted,
            )?;
            Ok(Outcome {
                commit,
                rewrapped,
                reencrypted,
                unchanged,
                exposed,
                changed_gpg_ids: plan.changed_gpg_ids(),
                not_reencrypted: not_reencrypted.clone(),
            })
        };
        finish().inspect_err(|e| {
            // Before the commit point nothing happened: remove what this run added.
            if !matches!(e, Error::Unfinished { .. }) {
                self.repo.discard_packs(&new_packs);
                self.repo.abandon(&staging);
            }
        })
    }
}

fn commit_message(subject: &str, body: &str, trailers: &[(String, String)]) -> String {
    let trailers: String = trailers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    format!("{subject}\n\n{body}\n\n{trailers}")
}

enum Failure {
    NoIdentity,
    CannotDecrypt,
    Corrupt(String),
    Other(Error),
}

fn summarise_failures(mut failures: Vec<(String, Failure)>, identity: Option<&Identity>) -> Error {
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::Other(Error::Interrupted)))
    {
        return Error::Interrupted;
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Corrupt(_)))
    {
        let (entry, f) = failures.swap_remove(i);
        let Failure::Corrupt(problem) = f else {
            unreachable!()
        };
        return Error::Entry { entry, problem };
    }
    if let Some(i) = failures
        .iter()
        .position(|(_, f)| matches!(f, Failure::Other(_)))
    {
        let Failure::Other(e) = failures.swap_remove(i).1 else {
            unreachable!()
        };
        return e;
    }
    if failures
        .iter()
        .any(|(_, f)| matches!(f, Failure::NoIdentity))
    {
        return Error::NoIdentity;
    }
    if let Some(agent) = identity.and_then(|i| i.agent_error()) {
        return Error::Identity {
            file: "gpg-agent".into(),
            problem: format!(
                "it could not decrypt ({agent}). With --yes or without a terminal, vault does not let the agent ask for a passphrase: \
                 unlock the key first (gpg-preset-passphrase, or `pass show` one entry), run on a terminal, or give --passphrase-file"
            ),
        };
    }
    Error::CannotDecrypt {
        identity: identity
            .map(|i| format!("{} ({})", i.fingerprint(), i.user_id()))
            .unwrap_or_default(),
        entries: failures
            .into_iter()
            .filter(|(_, f)| matches!(f, Failure::CannotDecrypt))
            .map(|(n, _)| n)
            .collect(),
    }
}

enum How {
    Unchanged,
    Rewrapped(BlobId),
    Reencrypted(BlobId),
}

struct Rewritten {
    name: String,
    path: String,
    how: How,
    exposed: bool,
}

/// What phase 1 found out about an entry.
enum Checked {
    /// Its readers are already right: left byte-identical.
    Unchanged { exposed: bool },
    /// New readers only: keep the data, add PKESKs for `missing`.
    Rewrap {
        unlocked: crypto::Unlocked,
        missing: Vec<KeyId>,
        exposed: bool,
    },
    /// Someone loses access (or the message is not one to keep): fresh session key.
    Reencrypt {
        unlocked: crypto::Unlocked,
        exposed: bool,
    },
}

/// Phase 1 for one entry: decides what it needs and proves the operator can do it. Once any
/// entry has failed (`checking_only`), it only checks whether the operator can decrypt, so the
/// error can list every such entry without wasted work.
fn check_entry(
    entry: &Entry,
    objects: &Result<Objects>,
    identity: Option<&mut Identity>,
    wanted: &BTreeSet<KeyId>,
    removed: &[KeyId],
    checking_only: bool,
    monitor: &Monitor,
) -> std::result::Result<Checked, Failure> {
    if (monitor.interrupted)() {
        return Err(Failure::Other(Error::Interrupted));
    }
    let objects = Objects::opened(objects).map_err(Failure::Other)?;
    let bytes = objects.read(entry.blob).map_err(Failure::Other)?;
    let env = Envelope::parse(&bytes).map_err(Failure::Corrupt)?;
    let readers = env.readers();
    let exposed = readers
        .iter()
        .any(|r| r.is_some_and(|id| removed.contains(&id)));
    let actual: BTreeSet<KeyId> = readers.iter().flatten().copied().collect();
    let all_named = readers.iter().all(Option::is_some) && env.password_session_keys() == 0;
    if all_named && actual == *wanted && readers.len() == wanted.len() {
        return Ok(Checked::Unchanged { exposed });
    }
    let identity = identity.ok_or(Failure::NoIdentity)?;
    let unlocked = identity.unlock(&env).ok_or(Failure::CannotDecrypt)?;
    if checking_only {
        // Another entry failed: the change will not happen; only the decryption check matters.
        return Ok(Checked::Unchanged { exposed });
    }
    if all_named && actual.is_subset(wanted) && env.is_seipd_v1() {
        let missing = wanted.difference(&actual).copied().collect();
        return Ok(Checked::Rewrap {
            unlocked,
            missing,
            exposed,
        });
    }
    Ok(Checked::Reencrypt { unlocked, exposed })
}

/// Phase 2 for one entry: the new ciphertext, staged in the work tree, and framed as a blob and
/// sent to the pack writer.
fn rewrite_entry(
    entry: &Entry,
    check: Checked,
    objects: &Result<Objects>,
    recipients: &Recipients,
    monitor: &Monitor,
    (staging, pack): (&Staging, &std::sync::mpsc::SyncSender<PackedBlob>),
) -> Result<Rewritten> {
    let done = |how, exposed| {
        Ok(Rewritten {
            name: entry.name.clone(),
            path: entry.path.clone(),
            how,
            exposed,
        })
    };
    if let Checked::Unchanged { exposed } = check {
        return done(How::Unchanged, exposed);
    }
    if (monitor.interrupted)() {
        return Err(Error::Interrupted);
    }
    let objects = Objects::opened(objects)?;
    let bytes = objects.read(entry.blob)?;
    let corrupt = |problem: String| Error::Entry {
        entry: entry.name.clone(),
        problem,
    };
    let env = Envelope::parse(&bytes).map_err(corrupt)?;
    let write = |ct: &[u8]| -> Result<BlobId> {
        staging.write(&entry.path, ct)?;
        let packed = PackedBlob::new(ct, false)?;
        let blob = packed.id();
        // The receiver goes away only when writing the pack failed: stop quietly.
        pack.send(packed).map_err(|_| Error::Interrupted)?;
        Ok(blob)
    };
    match check {
        Checked::Unchanged { .. } => unreachable!("handled above"),
        Checked::Rewrap {
            unlocked,
            missing,
            exposed,
        } => {
            let ct = crypto::add_readers(&env, &unlocked, &recipients.only(&missing))
                .map_err(corrupt)?;
            done(How::Rewrapped(write(&ct)?), exposed)
        }
        Checked::Reencrypt { unlocked, exposed } => {
            let plain = crypto::decrypt(&env, &unlocked).map_err(corrupt)?;
            let ct = crypto::encrypt(&plain, recipients).map_err(corrupt)?;
            done(How::Reencrypted(write(&ct)?), exposed)
        }
    }
}

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
        return Err(Error::Usage(format!(
            "{} has no .gpg-id: it is not a pass store (create one with `vault init KEYFILE --name NAME`)",
            store.display()
        )));
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
        return Err(Error::Usage(format!(
            "{} has no .gpg-id: it is not a pass store (create one with `vault init KEYFILE --name NAME`)",
            repo.root().display()
        )));
    }
    let mut keys = load_keys(repo, &layout)?;
    let (recipients, _, _) = resolve_gpg_ids(repo, &layout, &mut keys, Some(keyring), false)?;
    let used: BTreeSet<Fingerprint> = recipients.values().flatten().copied().collect();
    for fpr in names.keys() {
        if !used.contains(fpr) {
            return Err(Error::Usage(format!(
                "--name {fpr}=...: that key is not a recipient in any .gpg-id"
            )));
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
    };
    for fpr in &used {
        let key = &keys[fpr];
        let name = match names.get(fpr) {
            Some(n) => n.clone(),
            None => key
                .emails()
                .iter()
                .find_map(|e| MemberName::from_email(e))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "key {fpr} has no e-mail address to name its member after: give --name {fpr}=NAME"
                    ))
                })?,
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
/// [`Error::Usage`] if the folder holds anything but an empty git repository; [`Error::Busy`].
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
            return Err(Error::Usage(format!(
                "{} is already a pass store: run `vault init` without a key file to adopt it",
                store.display()
            )));
        }
        if !others.is_empty() {
            return Err(Error::Usage(format!(
                "{} is not empty: give a new folder for a new store",
                store.display()
            )));
        }
    } else {
        std::fs::create_dir_all(store).map_err(|e| Error::io("creating", store, e))?;
    }
    let (repo, _) = Repo::open_or_init(store)?;
    let _lock = repo.lock(wait)?;
    if !repo.is_unborn() {
        return Err(Error::Usage(format!(
            "{} already has git history: give a new folder for a new store",
            store.display()
        )));
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
    };
    repo.commit(&change, false, signer(identity).as_deref(), None, &|| false)
}

/// A commit signer from an optional operator identity that can sign.
fn signer(identity: Option<&Identity>) -> Option<Box<crate::git::Signer<'_>>> {
    let id = identity.filter(|i| i.can_sign())?;
    Some(Box::new(move |data: &[u8]| {
        id.sign_detached(data, true)
            .map_err(|problem| Error::Identity {
                file: id.fingerprint().to_string(),
                problem,
            })
    }))
}
