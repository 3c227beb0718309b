//! One change, crash-safely: the journal begun, files staged beside their originals (created
//! exclusively, never through a link), the signed commit, the branch moved by compare-and-swap
//! (the commit point), then the staged files renamed into place and the index updated.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use git2::{Delta, DiffOptions, Index, IndexEntry, IndexTime, ObjectType, Oid};

use super::*;
use crate::error::{Error, Result};
use crate::store::TMP_SUFFIX;

/// Set (from a SIGXFSZ handler in the binary) when a write hit the process's file size limit:
/// libgit2 does not always say why a write failed, and this is a reason people can act on.
pub static FILE_SIZE_LIMIT_HIT: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// `detail`, explained, if a write has hit the file size limit ([`FILE_SIZE_LIMIT_HIT`]).
fn size_limit_message(detail: impl std::fmt::Display) -> Option<String> {
    FILE_SIZE_LIMIT_HIT
        .load(std::sync::atomic::Ordering::SeqCst)
        .then(|| format!("File too large: the file size limit (ulimit -f) was exceeded ({detail})"))
}

/// A failed libgit2 write, said as the file size limit when that is what stopped it (libgit2
/// reports only that the write failed).
pub(super) fn write_failure(what: String, e: git2::Error) -> Error {
    match size_limit_message(e.message()) {
        Some(explained) => Error::git(what, git2::Error::new(e.code(), e.class(), explained)),
        None => Error::git(what, e),
    }
}

/// One commit to make: files to write (path, content already in the object database) and paths
/// to delete, on top of the current branch head.
pub struct Change {
    pub writes: Vec<(String, BlobId)>,
    pub deletes: Vec<String>,
    pub message: String,
    /// A short name of what is being done, for the journal and recovery messages.
    pub action: String,
    /// A commit this change completes instead of HEAD: its tree is the starting point and its
    /// parents are the new commit's (an unsigned merge from [`Repo::merge_trees`], whose first
    /// parent is HEAD). `None`: on top of HEAD.
    pub replaces: Option<CommitId>,
}

/// Writes the new content of a change's files next to them, as hidden temporaries, from any
/// thread, before the commit point (see the module documentation). Made by [`Repo::begin`].
#[derive(Debug)]
pub struct Staging {
    pub(super) root: PathBuf,
    /// Store path -> its temporary.
    pub(super) staged: Mutex<std::collections::HashMap<String, PathBuf>>,
}

impl Staging {
    /// Writes `data` as a new temporary beside the store file `path` (mode 0600; missing folders
    /// are made 0700), created exclusively under an unpredictable name.
    ///
    /// # Errors
    /// [`Error::Link`] if a folder on the way is a symbolic link; [`Error::Io`] naming the file.
    pub fn write(&self, path: &str, data: &[u8]) -> Result<()> {
        let (dir, name) = real_folder(&self.root, path, true)?;
        let tmp = new_temporary(&dir.expect("made when missing"), name, data)?;
        self.staged
            .lock()
            .expect("no panics hold this lock")
            .insert(path.to_string(), tmp);
        fault_point("temporary written");
        Ok(())
    }

    pub(super) fn take(&self) -> std::collections::HashMap<String, PathBuf> {
        std::mem::take(&mut *self.staged.lock().expect("no panics hold this lock"))
    }
}

/// Makes an ASCII-armored detached signature over a commit's content.
pub type Signer<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>> + 'a;

impl Repo {
    /// Starts a change: makes a journal saying one is under way durable, so that if vault dies
    /// before the commit point the next run removes what it staged. Returns where to stage files.
    /// The caller holds the store's lock ([`Repo::lock`]).
    pub fn begin(&self, action: &str) -> Result<Staging> {
        let journal = Journal {
            refname: self.branch()?,
            old: self.head().ok().map(|c| c.0),
            new: None,
            action: action.to_string(),
        };
        journal.write(&self.journal_path())?;
        fault_point("journal begun");
        Ok(Staging {
            root: self.root.clone(),
            staged: Mutex::default(),
        })
    }

    /// Undoes a change that stopped before its commit point: removes what `staging` staged and
    /// the journal. Best effort: whatever is left, the next run's [`Repo::recover`] removes.
    pub fn abandon(&self, staging: &Staging) {
        let mut all_gone = true;
        for tmp in staging.take().into_values() {
            all_gone &= match fs::remove_file(tmp) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            };
        }
        // A temporary that could not be removed leaves the journal, so the next run's recovery
        // removes it.
        if all_gone {
            let _ = fs::remove_file(self.journal_path());
        }
    }

    /// Makes `change` one commit on the current branch and brings the work tree and index up to
    /// it, crash-safely (see the module documentation). With `import_worktree`, the commit also
    /// takes every non-ignored file of the work tree (adopting a folder that was not a repository).
    /// `interrupted` is consulted up to the commit point; after it the change always completes.
    ///
    /// With `sign`, the commit carries an OpenPGP signature (`gpgsig`) over its content, as
    /// `git commit -S` makes it; `sign` returns an ASCII-armored detached signature. `staging`
    /// holds the files staged since [`Repo::begin`], renamed into place after the commit point.
    /// The caller holds the store's lock ([`Repo::lock`]).
    pub fn commit(
        &self,
        change: &Change,
        import_worktree: bool,
        sign: Option<&Signer<'_>>,
        staging: Option<&Staging>,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<CommitId> {
        let refname = self.branch()?;
        let parent = if self.is_unborn() {
            None
        } else {
            Some(self.head()?)
        };

        let mut index = Index::new().map_err(ge("making an index"))?;
        let parent_ids: Vec<CommitId> = match change.replaces {
            Some(draft) => {
                let parents = self.parents(draft)?;
                if parents.first() != parent.as_ref() {
                    return Err(Error::git_msg(
                        "committing a merge",
                        "the merge does not start from HEAD",
                    ));
                }
                parents
            }
            None => parent.into_iter().collect(),
        };
        if let Some(start) = change.replaces.or(parent) {
            let tree = self
                .repo
                .find_commit(start.0)
                .and_then(|c| c.tree())
                .map_err(ge("reading HEAD's tree"))?;
            index.read_tree(&tree).map_err(ge("reading HEAD's tree"))?;
        }
        if import_worktree {
            for e in self.store_index()?.iter() {
                index.add(&e).map_err(ge("adding the store's files"))?;
            }
        }
        for (path, blob) in &change.writes {
            index
                .add(&index_entry(path, blob.0, None))
                .map_err(ge("staging the change"))?;
        }
        for path in &change.deletes {
            index
                .remove_path(Path::new(path))
                .map_err(ge("staging the change"))?;
        }
        let tree = self.write_tree(&mut index)?;
        let author = self.author()?;
        let parents: Vec<git2::Commit> = parent_ids
            .iter()
            .map(|p| self.repo.find_commit(p.0))
            .collect::<std::result::Result<_, _>>()
            .map_err(ge("reading HEAD"))?;
        let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
        let new = match sign {
            None => self
                .repo
                .commit(None, &author, &author, &change.message, &tree, &parent_refs)
                .map_err(ge("writing the commit"))?,
            Some(sign) => {
                let buf = self
                    .repo
                    .commit_create_buffer(&author, &author, &change.message, &tree, &parent_refs)
                    .map_err(ge("writing the commit"))?;
                let content = std::str::from_utf8(&buf)
                    .map_err(|_| Error::git_msg("writing the commit", "the commit is not UTF-8"))?;
                let signature = sign(content.as_bytes())?;
                let signature = String::from_utf8(signature).map_err(|_| {
                    Error::git_msg("signing the commit", "the signature is not ASCII-armored")
                })?;
                self.repo
                    .commit_signed(content, &signature, None)
                    .map_err(ge("writing the signed commit"))?
            }
        };

        if interrupted() {
            return Err(Error::Interrupted);
        }
        // A merge also brings the upstream's files into the work tree.
        let merged = match (change.replaces, parent) {
            (Some(draft), Some(head)) => self.check_materializable(head, draft)?,
            _ => Vec::new(),
        };
        self.check_writable(
            change
                .writes
                .iter()
                .map(|(p, _)| p.as_str())
                .chain(change.deletes.iter().map(String::as_str))
                .chain(merged.iter().map(String::as_str)),
        )?;
        // Everything the new commit needs (objects and staged files) must be on disk before the
        // branch may point to it.
        self.sync()?;
        fault_point("objects synced");
        let journal = Journal {
            refname: refname.clone(),
            old: parent.map(|p| p.0),
            new: Some(new),
            action: change.action.clone(),
        };
        journal.write(&self.journal_path())?;
        fault_point("journal written");

        // The commit point.
        let log = format!("vault: {}", change.action);
        let moved = match parent {
            Some(p) => self.repo.reference_matching(&refname, new, true, p.0, &log),
            None => self.repo.reference(&refname, new, false, &log),
        };
        if let Err(e) = moved {
            let _ = fs::remove_file(self.journal_path());
            return Err(Error::git(format!("moving {refname} to the new commit"), e));
        }
        fault_point("branch moved");

        // Past the commit point, a failure leaves the journal: the next run finishes the change.
        let unfinished = |cause: Error| Error::Unfinished {
            commit: short_id(new),
            cause: Box::new(cause),
        };
        let staged = staging.map(Staging::take).unwrap_or_default();
        self.update_worktree(parent.map(|p| p.0), new, import_worktree, &staged)
            .map_err(unfinished)?;
        self.sync().map_err(unfinished)?;
        fault_point("work tree synced");
        fs::remove_file(self.journal_path())
            .map_err(|e| unfinished(Error::io("removing", self.journal_path(), e)))?;
        fault_point("journal removed");
        Ok(CommitId(new))
    }

    /// Refuses, before anything moves, to bring in from `to` what vault's work-tree update
    /// cannot write faithfully: symbolic links, submodules and other special entries, names
    /// that are not UTF-8 (vault writes regular files only). Otherwise the branch would move and
    /// the work tree could never catch up.
    ///
    /// Returns the paths that differ between `from` and `to` (what the update will write or
    /// remove).
    ///
    /// # Errors
    /// [`Error::Unmergeable`] naming the path.
    pub(super) fn check_materializable(&self, from: CommitId, to: CommitId) -> Result<Vec<String>> {
        let changed = self.changed_paths(to, from)?;
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let target: std::collections::HashMap<String, (FileKind, bool)> = self
            .files(to)?
            .into_iter()
            .map(|f| (f.path, (f.kind, f.utf8)))
            .collect();
        let mut paths = Vec::with_capacity(changed.len());
        for (path, is_link) in changed {
            let why = match target.get(&path) {
                _ if is_link => Some("a symbolic link"),
                Some((FileKind::Submodule, _)) => Some("a submodule"),
                Some((FileKind::Other, _)) => Some("a special file"),
                Some((_, false)) => Some("a name that is not UTF-8"),
                _ => None,
            };
            if let Some(why) = why {
                return Err(Error::Unmergeable {
                    commit: to.short(),
                    path: crate::text::escape(&path).into_owned(),
                    why,
                });
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// Moves the current branch forward to `to`, a descendant of HEAD (a fast-forward, as `git
    /// merge --ff-only` makes it), and brings the work tree and index up to it, under the same
    /// journal as [`Repo::commit`]: killed at any moment, the next command finishes or undoes it.
    /// The caller holds the store's lock and has checked that the work tree is clean.
    ///
    /// # Errors
    /// [`Error::Git`] if the branch moved meanwhile or `to` is not in the repository;
    /// [`Error::Unfinished`] if the work tree could not be updated after the branch moved.
    pub fn fast_forward(&self, to: CommitId, action: &str) -> Result<()> {
        let refname = self.branch()?;
        let old = self.head()?;
        let changed = self.check_materializable(old, to)?;
        self.check_writable(changed.iter().map(String::as_str))?;
        self.sync()?;
        let journal = Journal {
            refname: refname.clone(),
            old: Some(old.0),
            new: Some(to.0),
            action: action.to_string(),
        };
        journal.write(&self.journal_path())?;
        let log = format!("vault: {action}: fast-forward");
        if let Err(e) = self
            .repo
            .reference_matching(&refname, to.0, true, old.0, &log)
        {
            let _ = fs::remove_file(self.journal_path());
            return Err(Error::git(format!("moving {refname} forward"), e));
        }
        fault_point("branch fast-forwarded");
        let unfinished = |cause: Error| Error::Unfinished {
            commit: short_id(to.0),
            cause: Box::new(cause),
        };
        self.update_worktree(Some(old.0), to.0, false, &Default::default())
            .map_err(unfinished)?;
        self.sync().map_err(unfinished)?;
        fs::remove_file(self.journal_path())
            .map_err(|e| unfinished(Error::io("removing", self.journal_path(), e)))?;
        Ok(())
    }

    /// Checks, before the commit point, that every folder the work-tree update writes to (or
    /// deletes from) and the git folder are writable, and that none of those folders is reached
    /// through a symbolic link, so that a read-only store (or a planted link) fails with nothing
    /// changed instead of half-way through.
    ///
    /// # Errors
    /// [`Error::Link`] naming the link; [`Error::Io`] naming the folder that is not writable.
    pub fn check_writable<'p>(&self, paths: impl IntoIterator<Item = &'p str>) -> Result<()> {
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(self.repo.path().to_path_buf());
        dirs.insert(self.repo.path().join("objects"));
        let paths: Vec<&str> = paths.into_iter().collect();
        for path in paths.iter().copied() {
            // The nearest existing folder: new folders are created inside it.
            let mut dir = self.root.join(path);
            while dir.pop() && !dir.exists() {}
            dirs.insert(dir);
        }
        for path in &paths {
            // A folder on the way that is a link (committed, or planted and ignored) would lead
            // the work-tree update out of the store: refuse now, while nothing has happened.
            real_folder(&self.root, path, false)?;
        }
        for dir in dirs {
            rustix::fs::access(&dir, rustix::fs::Access::WRITE_OK)
                .map_err(|e| Error::io("writing into", &dir, e.into()))?;
        }
        Ok(())
    }

    /// Writes into the work tree every file that differs between `old` and `new` (a file in
    /// `staged` whose content is the new blob is renamed into place; anything else is written from
    /// the object database), and brings the index up to `new`. Idempotent, so recovery can run it
    /// again. Never writes or deletes through a folder that is a symbolic link.
    pub(super) fn update_worktree(
        &self,
        old: Option<Oid>,
        new: Oid,
        fresh_index: bool,
        staged: &std::collections::HashMap<String, PathBuf>,
    ) -> Result<()> {
        let new_tree = self
            .repo
            .find_commit(new)
            .and_then(|c| c.tree())
            .map_err(ge("reading the new tree"))?;
        let old_tree = match old {
            Some(o) => Some(
                self.repo
                    .find_commit(o)
                    .and_then(|c| c.tree())
                    .map_err(ge("reading the old tree"))?,
            ),
            None => None,
        };
        let mut opts = DiffOptions::new();
        opts.include_typechange(true);
        let diff = self
            .repo
            .diff_tree_to_tree(old_tree.as_ref(), Some(&new_tree), Some(&mut opts))
            .map_err(ge("comparing the trees"))?;
        let mut index = self.repo.index().map_err(ge("reading the index"))?;
        if fresh_index || old.is_none() {
            index
                .read_tree(&new_tree)
                .map_err(ge("reading the new tree"))?;
        }
        for delta in diff.deltas() {
            let file = delta.new_file();
            let Some(path) = file.path().or(delta.old_file().path()) else {
                continue;
            };
            let rel = path.to_string_lossy().into_owned();
            let full = self.root.join(path);
            match delta.status() {
                Delta::Deleted => {
                    if let (Some(dir), name) = real_folder(&self.root, &rel, false)? {
                        let full = dir.join(name);
                        match fs::remove_file(&full) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(Error::io("removing", full, e)),
                        }
                    }
                    let _ = index.remove_path(path);
                }
                _ => {
                    if file.mode() == git2::FileMode::Link {
                        continue; // vault never writes symlinks
                    }
                    let staged = staged.get(&rel).filter(|tmp| {
                        Oid::hash_file(ObjectType::Blob, tmp).ok() == Some(file.id())
                    });
                    if let Some(tmp) = staged {
                        fs::rename(tmp, &full).map_err(|e| Error::io("replacing", &full, e))?;
                    } else {
                        let blob = self
                            .repo
                            .find_blob(file.id())
                            .map_err(ge("reading a new blob"))?;
                        write_atomically(&self.root, &rel, blob.content())?;
                    }
                    fault_point("work-tree file written");
                    let meta = fs::metadata(&full).map_err(|e| Error::io("reading", &full, e))?;
                    index
                        .add(&index_entry(&rel, file.id(), Some(&meta)))
                        .map_err(ge("updating the index"))?;
                }
            }
        }
        fault_point("work tree updated");
        self.write_index(&mut index).map_err(|e| {
            write_failure(
                format!(
                    "writing the index {}",
                    self.repo.path().join("index").display()
                ),
                e,
            )
        })?;
        fault_point("index written");
        Ok(())
    }
}

impl Repo {
    /// Writes `index` to `.git/index`. libgit2, like git, writes `.git/index.lock` first and
    /// renames it: a process killed in between (vault's own run, whose change the next run then
    /// finishes, or a git command) leaves the lock, and every later write would fail. A lock
    /// that no process releases within [`STALE_LOCK`] (git holds it for milliseconds) and that
    /// is at least that old is removed, and the write tried again, once.
    ///
    /// # Errors
    /// libgit2's, when the index cannot be written or the lock is a live one.
    fn write_index(&self, index: &mut Index) -> std::result::Result<(), git2::Error> {
        let lock = self.repo.path().join("index.lock");
        match index.write() {
            Err(e) if e.code() == git2::ErrorCode::Locked => {
                let started = std::time::Instant::now();
                while lock.exists() && started.elapsed() < STALE_LOCK {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let stale = fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age >= STALE_LOCK));
                if stale {
                    let _ = fs::remove_file(&lock);
                }
                index.write()
            }
            other => other,
        }
    }
}

/// How long a `.git/index.lock` must stay, unchanged, to count as left by a killed process.
const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) fn index_entry(path: &str, id: Oid, meta: Option<&fs::Metadata>) -> IndexEntry {
    let time = |s: i64, ns: i64| IndexTime::new(s as i32, ns as u32);
    let (ctime, mtime, dev, ino, uid, gid, size) = match meta {
        Some(m) => (
            time(m.ctime(), m.ctime_nsec()),
            time(m.mtime(), m.mtime_nsec()),
            m.dev() as u32,
            m.ino() as u32,
            m.uid(),
            m.gid(),
            m.size() as u32,
        ),
        None => (time(0, 0), time(0, 0), 0, 0, 0, 0, 0),
    };
    IndexEntry {
        ctime,
        mtime,
        dev,
        ino,
        mode: 0o100644,
        uid,
        gid,
        file_size: size,
        id,
        flags: path.len().min(0xfff) as u16,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// The real folder that holds the store file `rel` (relative to `root`), and the file's name.
/// Every folder on the way must be a folder, not a symbolic link: a committed or planted link
/// could otherwise lead a write or a delete out of the store. A missing folder is made (mode
/// 0700) when `create`, else the folder is `None`.
///
/// # Errors
/// [`Error::Link`] naming the first folder that is a link (or a file); [`Error::Io`].
pub(super) fn real_folder<'r>(
    root: &Path,
    rel: &'r str,
    create: bool,
) -> Result<(Option<PathBuf>, &'r str)> {
    let (folders, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let mut dir = root.to_path_buf();
    for part in folders.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Link {
                    path: dir.strip_prefix(root).unwrap_or(&dir).to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                match fs::DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Made meanwhile: check it again on the next pass.
                        dir.pop();
                        return real_folder(root, rel, create);
                    }
                    Err(e) => return Err(Error::io("creating", &dir, e)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, name)),
            Err(e) => return Err(Error::io("reading", &dir, e)),
        }
    }
    Ok((Some(dir), name))
}

/// Creates a temporary for the file `name` in `dir` holding `data`: a hidden file
/// `.NAME.XXXXXXXX.vault-tmp` (mode 0600) whose random part comes from the `tempfile` crate,
/// created with `O_CREAT | O_EXCL`, so an existing file or link at that name is never opened.
pub(super) fn new_temporary(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
    // Keep the whole name within NAME_MAX (255 bytes), on a character boundary.
    let mut cut = name.len().min(200);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{}.", &name[..cut]))
        .suffix(TMP_SUFFIX)
        .rand_bytes(8)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| Error::io("writing a temporary in", dir, e))?;
    file.write_all(data)
        .map_err(|e| Error::io("writing", file.path(), e))?;
    let (_, path) = file
        .keep()
        .map_err(|e| Error::io("writing", e.file.path(), e.error))?;
    Ok(path)
}

/// Replaces the store file `rel` under `root` with `data` so that a reader sees the old or the
/// new file, never a mix: a new temporary in the same real folder ([`real_folder`], made 0700
/// when missing), then a rename.
pub(super) fn write_atomically(root: &Path, rel: &str, data: &[u8]) -> Result<()> {
    let (dir, name) = real_folder(root, rel, true)?;
    let dir = dir.expect("made when missing");
    let tmp = new_temporary(&dir, name, data)?;
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("replacing", path, e)
    })
}
