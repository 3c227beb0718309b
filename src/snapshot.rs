//! The store as committed at HEAD, loaded once per run: its layout, its `.gpg-id` files resolved
//! to member keys, `.public-keys/` and `.members.toml`. Reading only: changes are in
//! [`crate::change`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::change::Keyring;
use crate::crypto::{self, Fingerprint, MemberKey};
use crate::error::{Error, Result};
use crate::git::{CommitId, Recovery, Repo, StoreLock};
use crate::store::roster::Roster;
use crate::store::{
    gpg_id_path, parse_gpg_id, show_folder, Folder, Layout, Recipient, PUBLIC_KEYS,
};

/// A store as committed at HEAD.
pub struct Snapshot {
    pub(crate) repo: Repo,
    pub(crate) head: CommitId,
    pub(crate) layout: Layout,
    pub(crate) roster: Roster,
    pub(crate) keys: BTreeMap<Fingerprint, MemberKey>,
    pub(crate) recipients: BTreeMap<Folder, Vec<Fingerprint>>,
    pub(crate) gpg_id_problems: Vec<Error>,
    pub(crate) gpg_id_texts: GpgIdTexts,
    /// Held from loading to the end of a change (see [`Snapshot::open_for_change`]).
    _lock: Option<StoreLock>,
    /// A git operation left half-done ("a merge", "a rebase"): read, never changed.
    pub(crate) in_progress: Option<&'static str>,
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
    /// That the key expires soon (see [`Snapshot::members_report`]), if it does.
    pub warning: Option<String>,
}

/// `vault members --json` (docs/json-output.md).
#[derive(Debug, serde::Serialize)]
pub struct MembersReport {
    /// Named members, then recipients nobody named (`name`: `(unnamed)`).
    pub members: Vec<MemberInfo>,
    pub former_members: Vec<FormerInfo>,
    /// Keys members used before `vault replace-key`.
    pub replaced_keys: Vec<ReplacedInfo>,
}

/// A key a member used before `vault replace-key`, as `vault members` shows it.
#[derive(Debug, serde::Serialize)]
pub struct ReplacedInfo {
    pub name: String,
    pub fingerprint: String,
    /// When it was replaced (RFC 3339, escaped: text anyone with push access could write).
    pub replaced: String,
    /// Whether the member said it was compromised.
    pub compromised: bool,
}

/// A former member as `vault members` shows them.
#[derive(Debug, serde::Serialize)]
pub struct FormerInfo {
    pub name: String,
    pub fingerprint: String,
    /// When they were removed, as `.members.toml` records it (RFC 3339; escaped, it is text
    /// anyone with push access could write).
    pub removed: String,
}

pub(crate) fn load_keys(repo: &Repo, layout: &Layout) -> Result<BTreeMap<Fingerprint, MemberKey>> {
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
    recipient: &Recipient,
    keys: impl Iterator<Item = &'k MemberKey>,
) -> std::result::Result<Fingerprint, (usize, String)> {
    let keys: Vec<&MemberKey> = keys.collect();
    // A primary key named exactly wins: a certificate that binds another's key as its subkey
    // (anyone can publish one) must not make that key's line ambiguous, nor take it over.
    let primary = |k: &MemberKey| match recipient {
        Recipient::Fingerprint(f) => k.fingerprint() == *f,
        Recipient::KeyId(id) => k.fingerprint().key_id() == *id,
        Recipient::Email(_) => false,
    };
    let any_key = |k: &MemberKey| match recipient {
        Recipient::Fingerprint(f) => k.has_fingerprint(*f),
        Recipient::KeyId(id) => k.has_bound_key_id(*id),
        Recipient::Email(e) => k.emails().iter().any(|m| m == e),
    };
    let mut found: Vec<Fingerprint> = keys
        .iter()
        .filter(|k| primary(k))
        .map(|k| k.fingerprint())
        .collect();
    if found.is_empty() {
        found = keys
            .iter()
            .filter(|k| any_key(k))
            .map(|k| k.fingerprint())
            .collect();
    }
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

pub(crate) type RecipientMap = BTreeMap<Folder, Vec<Fingerprint>>;

/// Each `.gpg-id` as committed, with the line number of each recipient line vault resolved and
/// its fingerprint: what a rewrite keeps comments from ([`crate::store::render_gpg_id_keeping`]).
pub(crate) type GpgIdTexts = BTreeMap<Folder, (String, Vec<(usize, Fingerprint)>)>;

/// Resolves every `.gpg-id` to fingerprints (and keeps its text, [`GpgIdTexts`]). A `.gpg-id`
/// vault cannot read is an error naming it, or with `lenient`, a problem returned beside the
/// rest; so is a line that resolves to no key.
pub(crate) fn resolve_gpg_ids(
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

pub(crate) fn resolve_line(
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
    let not_found = |where_: &str| match line.recipient {
        Recipient::Fingerprint(f) => Error::MissingKey {
            fingerprint: f.to_string(),
            file: file.to_string(),
        },
        _ => line_err(format!("no key in {where_} matches it")),
    };
    match matching(&line.recipient, keys.values()) {
        Ok(f) => return Ok(f),
        Err((0, _)) => {}
        Err((n, list)) => return Err(ambiguous(n, list)),
    }
    let Some(lookup) = keyring else {
        return Err(not_found(".public-keys/"));
    };
    let exported = lookup(&line.recipient).map_err(line_err)?;
    let found = MemberKey::parse_many(&exported)
        .map_err(|p| line_err(format!("the keyring's key is unusable: {p}")))?;
    match matching(&line.recipient, found.iter()) {
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
pub(crate) fn escaped(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| crate::text::escape(p).into_owned())
        .collect()
}

pub(crate) fn now() -> String {
    crypto::format_time(std::time::SystemTime::now())
}

/// Finishes or undoes an interrupted change if no other vault holds the store's lock (a reader
/// never waits for, nor fails because of, a running writer: it reads the committed HEAD).
pub(crate) fn recover_if_idle(repo: &Repo) -> Result<Option<Recovery>> {
    if !repo.change_under_way() {
        return Ok(None);
    }
    match repo.try_lock()? {
        Some(_lock) => repo.recover(),
        None => Ok(None),
    }
}

impl Snapshot {
    /// Opens an adopted store for reading: finishes or undoes an interrupted change first
    /// (returned, so the caller can say which) unless another vault command is running, then
    /// loads HEAD.
    ///
    /// # Errors
    /// Everything [`Repo::open`] and [`Repo::head`] report; [`Error::NotAdopted`] for a pass store
    /// without `.members.toml`; key, `.gpg-id` and roster errors naming the file.
    pub fn open(store: &Path) -> Result<(Snapshot, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        let recovery = recover_if_idle(&repo)?;
        Ok((Self::load(repo, false, None)?, recovery))
    }

    /// Opens an adopted store to change it: takes the store's writer lock (waiting up to `wait`
    /// for another vault command, see [`Repo::lock`]) and holds it as long as the returned value
    /// lives, then as [`Snapshot::open`].
    ///
    /// # Errors
    /// [`Error::Busy`], and everything [`Snapshot::open`] reports.
    pub fn open_for_change(store: &Path, wait: Duration) -> Result<(Snapshot, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        if let Some(what) = repo.operation_in_progress() {
            return Err(Error::InProgress(what));
        }
        let lock = repo.lock(wait)?;
        let recovery = repo.recover()?;
        Ok((Self::load(repo, false, Some(lock))?, recovery))
    }

    /// Like [`Snapshot::open`], for reading only: `.gpg-id` lines that resolve to no key are kept as
    /// [`Snapshot::gpg_id_problems`] instead of failing, and a pass store that vault has not adopted
    /// is read with no member names.
    pub fn open_lenient(store: &Path) -> Result<(Snapshot, Option<Recovery>)> {
        let repo = Repo::open(store)?;
        let recovery = recover_if_idle(&repo)?;
        Ok((Self::load(repo, true, None)?, recovery))
    }

    /// The store at HEAD again, after this process moved HEAD (a fast-forward, a commit),
    /// keeping the writer lock if this snapshot held it.
    ///
    /// # Errors
    /// As [`Snapshot::open`].
    pub fn reload(self) -> Result<Snapshot> {
        let repo = Repo::open(self.repo.root())?;
        Self::load(repo, false, self._lock)
    }

    /// The store as `draft` (a commit no ref points to yet, such as an unsigned merge), keeping
    /// the lock: what a change completing `draft` plans from.
    ///
    /// # Errors
    /// As [`Snapshot::open`].
    pub fn at_draft(self, draft: CommitId) -> Result<Snapshot> {
        let repo = Repo::open(self.repo.root())?;
        Self::load_at(repo, false, self._lock, Some(draft))
    }

    fn load(repo: Repo, lenient: bool, lock: Option<StoreLock>) -> Result<Snapshot> {
        Self::load_at(repo, lenient, lock, None)
    }

    fn load_at(
        repo: Repo,
        lenient: bool,
        lock: Option<StoreLock>,
        at: Option<CommitId>,
    ) -> Result<Snapshot> {
        // During a rebase HEAD is detached: readers read the commit it points to, and say why.
        let in_progress = repo.operation_in_progress();
        let head = match (at, in_progress) {
            (Some(draft), _) => draft,
            (None, Some(_)) => repo.head_commit()?,
            (None, None) => repo.head()?,
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
        Ok(Snapshot {
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

    /// `.gpg-id` lines that resolve to no key (only from [`Snapshot::open_lenient`]).
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

    /// Recipients of some `.gpg-id` that `.members.toml` does not name (added by `pass init` or
    /// by hand after adoption).
    pub fn unnamed_recipients(&self) -> BTreeSet<Fingerprint> {
        let named: BTreeSet<Fingerprint> = self.roster.members().map(|(_, f)| *f).collect();
        self.recipients
            .values()
            .flatten()
            .filter(|f| !named.contains(f))
            .copied()
            .collect()
    }

    /// The folders whose `.gpg-id` lists `fpr`, as people see them (`/`, `ops/`).
    pub fn folders_of(&self, fpr: Fingerprint) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|(_, r)| r.contains(&fpr))
            .map(|(f, _)| show_folder(f))
            .collect()
    }

    /// The members and former members, as `vault members` reports them; a member whose key
    /// expires within `warn_within` gets a warning.
    pub fn members_report(&self, warn_within: std::time::Duration) -> MembersReport {
        let mut members = self.members();
        for m in &mut members {
            let key = Fingerprint::parse(&m.fingerprint).and_then(|f| self.keys.get(&f));
            m.warning = key.and_then(|k| expiry_warning(k, &m.name, warn_within));
        }
        MembersReport {
            members,
            replaced_keys: self
                .roster
                .replaced()
                .iter()
                .map(|r| ReplacedInfo {
                    name: r.name.to_string(),
                    fingerprint: r.fingerprint.to_string(),
                    replaced: crate::text::escape(&r.replaced).into_owned(),
                    compromised: r.compromised,
                })
                .collect(),
            former_members: self
                .roster
                .former()
                .iter()
                .map(|f| FormerInfo {
                    name: f.name.to_string(),
                    fingerprint: f.fingerprint.to_string(),
                    removed: crate::text::escape(&f.removed).into_owned(),
                })
                .collect(),
        }
    }

    /// Every member with the folders they read.
    pub fn members(&self) -> Vec<MemberInfo> {
        let mut out: Vec<MemberInfo> = self
            .roster
            .members()
            .map(|(name, fpr)| self.member_info(name.to_string(), *fpr))
            .collect();
        out.extend(
            self.unnamed_recipients()
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
            folders: self.folders_of(fpr),
            expires: key.and_then(|k| k.expiry()).map(crypto::format_time),
            problem: match key {
                None => Some("its key is missing from .public-keys/".into()),
                Some(k) => k.problem().map(|p| p.to_string()),
            },
            warning: None,
        }
    }
}

/// Where a store's `README.md` stands (see [`crate::readme`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadmeStatus {
    /// There is none (or it is not a regular file).
    Missing,
    /// The team's own: vault never touches it.
    HandWritten,
    /// Generated by vault, and what vault would generate now.
    Current,
    /// Generated by vault, but the store changed since.
    Stale,
}

impl Snapshot {
    /// The README vault generates for this store, with `rotate` (entry -> former members who
    /// could read its current content: [`crate::audit::rotation`]).
    pub fn readme_text(&self, rotate: &BTreeMap<String, Vec<String>>) -> String {
        let keys = |f: Fingerprint| self.keys.get(&f);
        let names: Vec<String> = self.layout.entries.iter().map(|e| e.name.clone()).collect();
        crate::readme::render(&crate::readme::View::of(
            (&names, crate::readme::unreadable(&self.layout)),
            &self.recipients,
            &self.roster,
            &keys,
            rotate,
        ))
    }

    /// The committed `README.md`, if any.
    ///
    /// # Errors
    /// Git errors reading it.
    pub fn readme_bytes(&self) -> Result<Option<Vec<u8>>> {
        if self.layout.readme_link {
            // A link is the team's own arrangement: never vault's.
            return Ok(Some(Vec::new()));
        }
        self.layout.readme.map(|b| self.repo.read(b)).transpose()
    }

    /// Whether the committed `README.md` is one vault generated that no longer matches the
    /// store (other tools changed it since): what `vault repair` and `vault sync` refresh. Walks
    /// history for the entries to rotate, only when there is such a README.
    ///
    /// # Errors
    /// Git errors.
    pub fn readme_stale(&self) -> Result<bool> {
        if !self
            .readme_bytes()?
            .is_some_and(|b| crate::readme::is_generated(&b))
        {
            return Ok(false);
        }
        let rotate = crate::audit::rotation(self, &self.roster)?;
        Ok(self.readme_status(&rotate)? == ReadmeStatus::Stale)
    }

    /// Whether the committed `README.md` is vault's and current, given `rotate` (as
    /// [`Snapshot::readme_text`] takes it).
    ///
    /// # Errors
    /// Git errors reading it.
    pub fn readme_status(&self, rotate: &BTreeMap<String, Vec<String>>) -> Result<ReadmeStatus> {
        Ok(match self.readme_bytes()? {
            None => ReadmeStatus::Missing,
            Some(b) if !crate::readme::is_generated(&b) => ReadmeStatus::HandWritten,
            Some(b) if b == self.readme_text(rotate).as_bytes() => ReadmeStatus::Current,
            Some(_) => ReadmeStatus::Stale,
        })
    }
}

/// "its key expires on DATE (in N days) …" when member `name`'s usable `key` expires within
/// `within` from now; None for a key that does not, or that already cannot be encrypted to (its
/// problem says so).
pub fn expiry_warning(key: &MemberKey, name: &str, within: std::time::Duration) -> Option<String> {
    if key.problem().is_some() {
        return None;
    }
    let expiry = key.expiry()?;
    let left = expiry.duration_since(std::time::SystemTime::now()).ok()?;
    (left <= within).then(|| {
        format!(
            "its key expires on {} (in {}): {name} extends it, then `vault update-member {name} KEYFILE`",
            crypto::format_time(expiry),
            crate::text::count((left.as_secs() / 86_400) as usize, "day", "days")
        )
    })
}
