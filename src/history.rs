//! The only module that imports git2.
//!
//! The committed git state is the truth. A change is built entirely beside the store's files:
//! a journal saying a change is under way is made durable ([`Repo::begin`]); the new blobs are
//! streamed from memory into one pack file (which joins the object database only once complete,
//! so a change that stops adds nothing) while each changed file's new content is written next to
//! it as a hidden temporary (`.NAME.XXXXXXXX.vault-tmp`, see [`Staging`]); then the trees and
//! the commit.
//! Then, in order: one flush makes all of it durable, the journal is completed with the new
//! commit, the branch moves from the old commit to the new one (the commit point), each temporary
//! whose content hashes to the committed blob is renamed over its file (anything else is written
//! from the object database), the index is updated from their stat data (no re-hashing), and the
//! journal is removed. An interruption before the branch moves leaves the old commit, and
//! [`Repo::recover`] removes the temporaries; after it, [`Repo::recover`] finishes the work-tree
//! update from the new commit. Either way the store is wholly before or wholly after, and every
//! file is replaced by a rename, so a reader (pass, git) never sees half a file.
//!
//! Whatever is committed is hostile input: temporaries are created exclusively (`O_EXCL`, so a
//! planted link at that name is never followed) under unpredictable names, and vault never writes
//! or deletes through a folder that is a symbolic link. One writer at a time: [`Repo::lock`].

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use git2::{
    Delta, DiffOptions, ErrorCode, Index, IndexEntry, IndexTime, ObjectType, Oid, Repository,
    RepositoryInitOptions, Signature, StatusOptions,
};

use crate::error::{Error, Result};
use crate::store::{is_store_file, is_temporary_name, TMP_SUFFIX};

const JOURNAL: &str = "vault-journal";

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

/// Adds the OS's reason to a failed write, when libgit2 gave none.
fn write_failure(what: String, e: git2::Error) -> Error {
    let os = std::io::Error::last_os_error();
    let mut message = e.message().to_string();
    if let Some(explained) = size_limit_message(&message) {
        message = explained;
    } else if os.raw_os_error().unwrap_or(0) != 0 {
        message = format!("{os} ({message})");
    }
    Error::Git { what, message }
}

/// Fault injection for the crash-safety tests, in debug builds only: with
/// `VAULT_FAULT_TRACE=1` each step of a change is named on stderr as `fault-point N NAME`; with
/// `VAULT_FAULT_POINT=N` the process aborts (no clean-up, like SIGKILL) on reaching step N; with
/// `VAULT_FAULT_STALL=NAME` it pauses for 8 seconds the first time it reaches the step NAME (for
/// the tests of two runs at once).
#[cfg(debug_assertions)]
pub(crate) fn fault_point(name: &str) {
    static STALLED: std::sync::Once = std::sync::Once::new();
    if std::env::var("VAULT_FAULT_STALL").is_ok_and(|s| s == name) {
        STALLED.call_once(|| {
            eprintln!("fault-point stalled at {name}");
            std::thread::sleep(Duration::from_secs(8));
        });
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static CONFIG: OnceLock<(bool, Option<usize>)> = OnceLock::new();
    let (trace, stop) = *CONFIG.get_or_init(|| {
        (
            std::env::var_os("VAULT_FAULT_TRACE").is_some(),
            std::env::var("VAULT_FAULT_POINT")
                .ok()
                .and_then(|v| v.parse().ok()),
        )
    });
    let n = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    if trace {
        eprintln!("fault-point {n} {name}");
    }
    if stop == Some(n) {
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub(crate) fn fault_point(_: &str) {}

/// A blob in the store's object database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobId(Oid);

impl BlobId {
    /// The id git gives a blob holding `data` (SHA-1 of `blob LEN\0DATA`), whether or not it is
    /// in any repository.
    pub fn hash(data: &[u8]) -> BlobId {
        BlobId(Oid::hash_object(ObjectType::Blob, data).expect("hashing memory cannot fail"))
    }
}

/// A commit in the store's history.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CommitId(Oid);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl CommitId {
    /// The first ten hex digits, as people quote a commit.
    pub fn short(&self) -> String {
        short_id(self.0)
    }
}

fn short_id(oid: Oid) -> String {
    oid.to_string().chars().take(10).collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileKind {
    Regular,
    Symlink,
    /// A git submodule (a commit of another repository, mode 160000).
    Submodule,
    Other,
}

/// A file of a committed tree, with its path relative to the store ('/'-separated).
#[derive(Clone, Debug)]
pub struct TreeFile {
    /// The path; a name that is not UTF-8 has U+FFFD in place of its bad bytes (see `utf8`).
    pub path: String,
    /// Whether the committed path is UTF-8 (vault reads only those).
    pub utf8: bool,
    pub blob: BlobId,
    pub kind: FileKind,
    /// For a symbolic link, its target as committed (the blob's bytes).
    pub link: Option<Vec<u8>>,
}

/// What an interrupted change turned into when the next command looked at it.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The branch had moved: the work tree was brought up to the new commit.
    Finished { action: String, commit: String },
    /// The branch had not moved: the change never happened.
    RolledBack { action: String },
}

/// One commit to make: files to write (path, content already in the object database) and paths
/// to delete, on top of the current branch head.
pub struct Change {
    pub writes: Vec<(String, BlobId)>,
    pub deletes: Vec<String>,
    pub message: String,
    /// A short name of what is being done, for the journal and recovery messages.
    pub action: String,
}

/// Writes the new content of a change's files next to them, as hidden temporaries, from any
/// thread, before the commit point (see the module documentation). Made by [`Repo::begin`].
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    /// Store path -> its temporary.
    staged: Mutex<std::collections::HashMap<String, PathBuf>>,
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

    fn take(&self) -> std::collections::HashMap<String, PathBuf> {
        std::mem::take(&mut *self.staged.lock().expect("no panics hold this lock"))
    }
}

/// A blob framed for a pack file: its id and its pack entry (type and size header, then the
/// zlib stream). Made on any thread; written by [`Repo::write_pack`].
pub struct PackedBlob {
    blob: BlobId,
    entry: Vec<u8>,
}

impl PackedBlob {
    /// Hashes and frames `data`. Ciphertext does not compress, so its zlib stream only stores;
    /// other files (`compress`) are deflated.
    pub fn new(data: &[u8], compress: bool) -> Result<PackedBlob> {
        let oid = Oid::hash_object(ObjectType::Blob, data).map_err(ge("hashing a blob"))?;
        let mut entry = Vec::with_capacity(data.len() + 32);
        let mut size = data.len();
        let mut byte = (3u8 << 4) | (size & 0x0f) as u8; // 3: blob
        size >>= 4;
        while size > 0 {
            entry.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        entry.push(byte);
        let level = if compress {
            flate2::Compression::fast()
        } else {
            flate2::Compression::none()
        };
        let mut z = flate2::write::ZlibEncoder::new(entry, level);
        z.write_all(data)
            .and_then(|_| z.finish())
            .map(|entry| PackedBlob {
                blob: BlobId(oid),
                entry,
            })
            .map_err(|e| Error::Git {
                what: "framing a blob".into(),
                message: e.to_string(),
            })
    }

    pub fn id(&self) -> BlobId {
        self.blob
    }
}

/// Makes an ASCII-armored detached signature over a commit's content.
pub type Signer<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>> + 'a;

/// The store's git repository.
pub struct Repo {
    repo: Repository,
    root: PathBuf,
}

/// Reads blobs from a worker thread (each worker holds its own repository handle).
pub struct Objects(Repository);

impl Objects {
    /// Opens the object database of the repository at `root` (from any thread).
    pub fn open(root: &Path) -> Result<Objects> {
        Repository::open(root)
            .map(Objects)
            .map_err(ge("opening the repository"))
    }

    /// The handle a worker opened with [`Objects::open`], or the error opening it gave (said
    /// again for each use, as the worker's error is not consumed).
    pub fn opened(objects: &Result<Objects>) -> Result<&Objects> {
        objects.as_ref().map_err(|e| Error::Git {
            what: "opening the repository".into(),
            message: e.to_string(),
        })
    }

    pub fn read(&self, blob: BlobId) -> Result<Vec<u8>> {
        self.0
            .find_blob(blob.0)
            .map(|b| b.content().to_vec())
            .map_err(|e| Error::git("reading a blob", e))
    }
}

fn ge(what: &str) -> impl FnOnce(git2::Error) -> Error + '_ {
    move |e| Error::git(what, e)
}

impl Repo {
    /// Opens the repository whose work tree is exactly `store`.
    ///
    /// # Errors
    /// [`Error::NoStore`] if the folder does not exist, [`Error::NotGitRepo`] if it is not in a git
    /// repository, [`Error::NotRepoTop`] if it is inside one but not at its top.
    pub fn open(store: &Path) -> Result<Repo> {
        if !store.is_dir() {
            return Err(Error::NoStore(store.to_path_buf()));
        }
        let root = store
            .canonicalize()
            .map_err(|e| Error::io("reading", store, e))?;
        let repo = match Repository::open(&root) {
            Ok(r) => r,
            Err(e) if e.code() == ErrorCode::NotFound => {
                return Err(match Repository::discover(&root) {
                    Ok(outer) => Error::NotRepoTop {
                        path: root,
                        top: outer.workdir().unwrap_or(outer.path()).to_path_buf(),
                    },
                    Err(_) => Error::NotGitRepo(root),
                })
            }
            Err(e) => return Err(Error::git(format!("opening {}", root.display()), e)),
        };
        match repo.workdir().map(|w| w.canonicalize()) {
            Some(Ok(w)) if w == root => {}
            _ => return Err(Error::NotGitRepo(root)),
        }
        Ok(Repo { repo, root })
    }

    /// Makes `store` a git repository (branch `main`) if it is not one yet, and opens it.
    /// Returns whether this call made it (and so may remove it again, see [`Repo::uninit`]).
    pub fn open_or_init(store: &Path) -> Result<(Repo, bool)> {
        match Self::open(store) {
            Err(Error::NotGitRepo(_)) => {
                let mut opts = RepositoryInitOptions::new();
                opts.initial_head("main").no_reinit(true);
                Repository::init_opts(store, &opts).map_err(|e| {
                    Error::git(format!("creating a repository in {}", store.display()), e)
                })?;
                Ok((Self::open(store)?, true))
            }
            other => other.map(|r| (r, false)),
        }
    }

    /// Removes the repository [`Repo::open_or_init`] made for a change that then did not happen,
    /// provided it still has no commit (another run may have used it meanwhile). `lock` proves
    /// the caller holds the store's lock.
    pub fn uninit(self, lock: StoreLock) {
        if self.is_unborn() {
            let _ = fs::remove_dir_all(self.repo.path());
        }
        drop(lock);
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn journal_path(&self) -> PathBuf {
        self.repo.path().join(JOURNAL)
    }

    /// Whether a journal says a change is under way (or was interrupted): then, and only then,
    /// there may be something to recover.
    pub fn change_under_way(&self) -> bool {
        self.journal_path().exists()
    }

    /// The git operation left half-done in this repository, if any (a conflicted merge, a rebase
    /// stopped at a conflict, a cherry-pick, …), from libgit2's repository state: "a merge",
    /// "a rebase", …
    pub fn operation_in_progress(&self) -> Option<&'static str> {
        use git2::RepositoryState::*;
        match self.repo.state() {
            Clean => None,
            Merge => Some("a merge"),
            Revert | RevertSequence => Some("a revert"),
            CherryPick | CherryPickSequence => Some("a cherry-pick"),
            Bisect => Some("a bisect"),
            Rebase | RebaseInteractive | RebaseMerge => Some("a rebase"),
            ApplyMailbox | ApplyMailboxOrRebase => Some("a git am"),
        }
    }

    /// The commit HEAD points to, on a branch or detached (for reading during a rebase, which
    /// detaches HEAD).
    ///
    /// # Errors
    /// [`Error::BadHead`] for a repository with no commit.
    pub fn head_commit(&self) -> Result<CommitId> {
        self.repo
            .head()
            .ok()
            .and_then(|h| h.target())
            .map(CommitId)
            .ok_or(Error::BadHead("on a branch with no commits yet"))
    }

    /// The commit the current branch points to.
    ///
    /// # Errors
    /// [`Error::BadHead`] for a detached HEAD or a branch with no commit yet.
    pub fn head(&self) -> Result<CommitId> {
        if self.repo.head_detached().unwrap_or(false) {
            return Err(Error::BadHead("detached (not on a branch)"));
        }
        match self.repo.head() {
            Ok(h) => h
                .target()
                .map(CommitId)
                .ok_or(Error::BadHead("not a commit")),
            Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => {
                Err(Error::BadHead("on a branch with no commits yet"))
            }
            Err(e) => Err(Error::git("reading HEAD", e)),
        }
    }

    /// Whether HEAD is a branch with no commit yet (a repository just created).
    pub fn is_unborn(&self) -> bool {
        self.repo.head_detached().ok() == Some(false)
            && matches!(self.repo.head(), Err(e) if e.code() == ErrorCode::UnbornBranch)
    }

    /// `git status` of the work tree: untracked files one by one, ignored ones left out,
    /// submodules' insides not looked into.
    fn statuses(&self) -> Result<git2::Statuses<'_>> {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(true);
        self.repo
            .statuses(Some(&mut opts))
            .map_err(ge("reading the status of the store"))
    }

    /// Tracked files whose work-tree or index state differs from HEAD, and untracked files that
    /// git does not ignore: store files (entries, `.gpg-id`, vault's own files) because a change
    /// would not account for them, any other file because vault commits only store files
    /// ([`is_store_file`]) and will not leave one behind unexplained.
    pub fn dirty_paths(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for s in self.statuses()?.iter() {
            let path = s.path().unwrap_or("?").to_string();
            let st = s.status();
            if st == git2::Status::WT_NEW {
                if is_store_file(&path) {
                    out.push(format!("{path} (untracked)"));
                } else {
                    out.push(format!("{path} (untracked, not a store file)"));
                }
            } else if !st.is_ignored() {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// Every file of a commit's tree.
    pub fn files(&self, commit: CommitId) -> Result<Vec<TreeFile>> {
        let tree = self
            .repo
            .find_commit(commit.0)
            .and_then(|c| c.tree())
            .map_err(ge("reading the committed tree"))?;
        self.tree_files(&tree)
    }

    /// Every file under `tree`, walked by hand from the raw names (git2's own walk gives up on
    /// a folder whose name is not UTF-8, and such a name is anyone's to commit).
    fn tree_files(&self, tree: &git2::Tree) -> Result<Vec<TreeFile>> {
        let mut out = Vec::new();
        let mut todo: Vec<(Vec<u8>, git2::Tree)> = vec![(Vec::new(), tree.clone())];
        while let Some((prefix, tree)) = todo.pop() {
            for entry in tree.iter() {
                let mut raw = prefix.clone();
                raw.extend_from_slice(entry.name_bytes());
                let kind = match entry.filemode() {
                    0o100644 | 0o100755 => FileKind::Regular,
                    0o120000 => FileKind::Symlink,
                    0o160000 => FileKind::Submodule,
                    0o040000 => {
                        let sub = self
                            .repo
                            .find_tree(entry.id())
                            .map_err(ge("reading the committed tree"))?;
                        raw.push(b'/');
                        todo.push((raw, sub));
                        continue;
                    }
                    _ => FileKind::Other,
                };
                let link = match kind {
                    FileKind::Symlink => Some(self.read(BlobId(entry.id()))?),
                    _ => None,
                };
                out.push(TreeFile {
                    utf8: std::str::from_utf8(&raw).is_ok(),
                    path: String::from_utf8_lossy(&raw).into_owned(),
                    blob: BlobId(entry.id()),
                    kind,
                    link,
                });
            }
        }
        Ok(out)
    }

    /// The bytes of a blob.
    pub fn read(&self, blob: BlobId) -> Result<Vec<u8>> {
        self.repo
            .find_blob(blob.0)
            .map(|b| b.content().to_vec())
            .map_err(ge("reading a blob"))
    }

    /// Writes a blob from memory into the object database.
    pub fn write_blob(&self, data: &[u8]) -> Result<BlobId> {
        self.repo
            .blob(data)
            .map(BlobId)
            .map_err(ge("writing a blob"))
    }

    /// Streams exactly `count` blobs into one new pack file. `fill` gets a sink for the
    /// [`PackedBlob`]s; the pack joins the object database only if `fill` succeeds with `count`
    /// blobs written. Otherwise, or if vault dies meanwhile, only a temporary file is left, which
    /// libgit2 removes (or `git gc` prunes): a change that does not happen adds no object.
    pub fn write_pack<T>(
        &self,
        count: usize,
        fill: impl FnOnce(&mut dyn FnMut(PackedBlob) -> Result<()>) -> Result<T>,
    ) -> Result<(T, Vec<PathBuf>)> {
        let odb = self.repo.odb().map_err(ge("opening the object database"))?;
        let packs_before = self.pack_files();
        let mut writer = odb.packwriter().map_err(ge("starting a pack"))?;
        let mut sha = sha1_smol::Sha1::new();
        let io = |e: std::io::Error| Error::Git {
            what: format!(
                "writing a pack into {}",
                self.repo.path().join("objects/pack").display()
            ),
            message: size_limit_message(&e).unwrap_or_else(|| e.to_string()),
        };
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(
            &u32::try_from(count)
                .expect("fewer than 4 billion objects")
                .to_be_bytes(),
        );
        sha.update(&header);
        writer.write_all(&header).map_err(io)?;
        let mut written = 0usize;
        let value = fill(&mut |packed: PackedBlob| {
            sha.update(&packed.entry);
            writer.write_all(&packed.entry).map_err(io)?;
            written += 1;
            Ok(())
        })?;
        if written != count {
            return Err(Error::Git {
                what: "writing a pack".into(),
                message: format!("{written} objects written, {count} announced"),
            });
        }
        writer.write_all(&sha.digest().bytes()).map_err(io)?;
        writer.commit().map_err(ge("finishing the pack"))?;
        drop(writer);
        odb.refresh().map_err(ge("reading the new pack"))?;
        fault_point("pack written");
        let new = self
            .pack_files()
            .into_iter()
            .filter(|p| !packs_before.contains(p))
            .collect();
        Ok((value, new))
    }

    fn pack_files(&self) -> Vec<PathBuf> {
        fs::read_dir(self.repo.path().join("objects/pack"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Removes the files of packs this run wrote for a change that then did not happen.
    pub fn discard_packs(&self, files: &[PathBuf]) {
        for f in files {
            let _ = fs::remove_file(f);
        }
    }

    /// Files of the work tree that git does not ignore and that are not store files
    /// ([`is_store_file`]): what `vault init` would otherwise have to commit in a folder that is
    /// not a repository yet (a plaintext export beside the entries, say).
    pub fn foreign_files(&self) -> Result<Vec<String>> {
        // New in the work tree, or already staged (`git add -A` before `vault init`).
        let new = git2::Status::WT_NEW | git2::Status::INDEX_NEW;
        Ok(self
            .statuses()?
            .iter()
            .filter(|s| s.status().intersects(new))
            .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
            .filter(|p| !is_store_file(p))
            .collect())
    }

    /// A new in-memory index holding the store files of the work tree ([`is_store_file`], not
    /// ignored), and nothing else, whatever the on-disk index holds (a file staged by hand is
    /// not taken along). Writes their blobs.
    fn store_index(&self) -> Result<Index> {
        let mut disk = self.repo.index().map_err(ge("reading the index"))?;
        disk.add_all(
            ["*"],
            git2::IndexAddOption::DEFAULT,
            Some(&mut store_files_only),
        )
        .map_err(ge("reading the store's files"))?;
        let mut index = Index::new().map_err(ge("making an index"))?;
        for e in disk.iter() {
            if std::str::from_utf8(&e.path).is_ok_and(is_store_file) {
                index.add(&e).map_err(ge("adding the store's files"))?;
            }
        }
        Ok(index)
    }

    /// The store files of the work tree ([`is_store_file`], not ignored) as they would be
    /// committed, for adopting a folder whose files are not committed yet. Writes their blobs.
    pub fn worktree_files(&self) -> Result<Vec<TreeFile>> {
        let tree_id = self
            .store_index()?
            .write_tree_to(&self.repo)
            .map_err(ge("writing the tree"))?;
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(ge("reading the tree"))?;
        self.tree_files(&tree)
    }

    fn author(&self) -> Result<Signature<'static>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(name), Some(email)) = (env("GIT_AUTHOR_NAME"), env("GIT_AUTHOR_EMAIL")) {
            return Signature::now(&name, &email).map_err(ge("making the commit author"));
        }
        self.repo.signature().map_err(|_| {
            Error::Usage(
                "git does not know who you are: set `git config --global user.name` and `user.email` (the commit author)"
                    .into(),
            )
        })
    }

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

    /// The branch HEAD names.
    fn branch(&self) -> Result<String> {
        self.repo
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string))
            .ok_or(Error::BadHead("detached (not on a branch)"))
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
        if let Some(p) = parent {
            let tree = self
                .repo
                .find_commit(p.0)
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
        let tree_id = index
            .write_tree_to(&self.repo)
            .map_err(ge("writing the tree"))?;
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(ge("reading the tree"))?;
        let author = self.author()?;
        let parents: Vec<git2::Commit> = parent
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
                let content = std::str::from_utf8(&buf).map_err(|_| Error::Git {
                    what: "writing the commit".into(),
                    message: "the commit is not UTF-8".into(),
                })?;
                let signature = sign(content.as_bytes())?;
                let signature = String::from_utf8(signature).map_err(|_| Error::Git {
                    what: "signing the commit".into(),
                    message: "the signature is not ASCII-armored".into(),
                })?;
                self.repo
                    .commit_signed(content, &signature, None)
                    .map_err(ge("writing the signed commit"))?
            }
        };

        if interrupted() {
            return Err(Error::Interrupted);
        }
        self.check_writable(
            change
                .writes
                .iter()
                .map(|(p, _)| p.as_str())
                .chain(change.deletes.iter().map(String::as_str)),
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
            cause: cause.to_string(),
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
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::io("writing", &dir, std::io::ErrorKind::InvalidInput.into()))?;
            // SAFETY: access reads the NUL-terminated path and nothing else.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
                return Err(Error::io(
                    "writing into",
                    &dir,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(())
    }

    /// Writes into the work tree every file that differs between `old` and `new` (a file in
    /// `staged` whose content is the new blob is renamed into place; anything else is written from
    /// the object database), and brings the index up to `new`. Idempotent, so recovery can run it
    /// again. Never writes or deletes through a folder that is a symbolic link.
    fn update_worktree(
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
        // libgit2 may fail here without a message of its own (leaving an older one behind) and
        // the OS error is what tells people why: start both from a clean slate.
        // SAFETY: git_error_clear only resets libgit2's thread-local error; errno is ours.
        unsafe {
            libgit2_sys::git_error_clear();
            *libc::__errno_location() = 0;
        }
        index.write().map_err(|e| {
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

    /// Finishes or undoes a change that an earlier run left unfinished (a crash, a kill, a power
    /// loss). Returns what it did, or `None` if there was nothing to do.
    ///
    /// # Errors
    /// [`Error::Journal`] if the branch points to neither the old nor the new commit.
    pub fn recover(&self) -> Result<Option<Recovery>> {
        let path = self.journal_path();
        // A journal that was being written when the process died: the branch cannot have moved
        // yet (it moves only after the journal is in place), so it is simply dropped. (Its
        // temporary is `.vault-journal.XXXXXXXX.tmp`, see `write_file_durably`; older versions
        // of vault wrote `vault-journal.tmp`.)
        let git_dir = self.repo.path();
        let partial = fs::read_dir(git_dir)
            .map_err(|e| Error::io("reading", git_dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == "vault-journal.tmp"
                        || (n.starts_with(".vault-journal.") && n.ends_with(".tmp"))
                })
            });
        for partial in partial {
            match fs::remove_file(&partial) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", partial, e)),
            }
        }
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let journal = Journal::parse(&text)
            .ok_or_else(|| Error::Journal(format!("{} is unreadable", path.display())))?;
        let current = self
            .repo
            .find_reference(&journal.refname)
            .ok()
            .and_then(|r| r.target());
        let outcome = if let Some(new) = journal.new.filter(|n| current == Some(*n)) {
            self.update_worktree(journal.old, new, journal.old.is_none(), &Default::default())?;
            Recovery::Finished {
                action: journal.action.clone(),
                commit: short_id(new),
            }
        } else if current == journal.old {
            Recovery::RolledBack {
                action: journal.action.clone(),
            }
        } else {
            return Err(Error::Journal(format!(
                "{} points to neither the commit before ({}) nor after ({}) the change '{}'",
                journal.refname,
                journal
                    .old
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "none".into()),
                journal
                    .new
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "not made yet".into()),
                journal.action
            )));
        };
        self.remove_temporaries()?;
        self.sync()?;
        fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
        Ok(Some(outcome))
    }

    /// Flushes the file systems holding the git folder and the work tree (one call each).
    fn sync(&self) -> Result<()> {
        sync_fs(self.repo.path())?;
        let device = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if device(self.repo.path()) != device(&self.root) {
            sync_fs(&self.root)?;
        }
        Ok(())
    }
}

impl CommitId {
    /// Parses a full hex commit id.
    pub fn parse(hex: &str) -> Option<CommitId> {
        Oid::from_str(hex).ok().map(CommitId)
    }
}

impl Repo {
    /// The repository's `.git` folder (local files that are not part of the store).
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }

    /// The paths that differ between two commits, each with whether it is a symbolic link on
    /// either side (a link can change which `.gpg-id` a folder reads).
    pub fn changed_paths(&self, commit: CommitId, parent: CommitId) -> Result<Vec<(String, bool)>> {
        let tree = |c: CommitId| self.repo.find_commit(c.0).and_then(|c| c.tree());
        let new = tree(commit).map_err(ge("reading a commit's tree"))?;
        let old = tree(parent).map_err(ge("reading a commit's tree"))?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old), Some(&new), None)
            .map_err(ge("comparing a commit with its parent"))?;
        let link = |f: git2::DiffFile| f.mode() == git2::FileMode::Link;
        Ok(diff
            .deltas()
            .filter_map(|d| {
                let path = d.new_file().path().or(d.old_file().path())?;
                let is_link = link(d.new_file()) || link(d.old_file());
                Some((path.to_string_lossy().into_owned(), is_link))
            })
            .collect())
    }

    /// The commit's OpenPGP signature and the content it signs, if it is signed.
    pub fn signature(&self, commit: CommitId) -> Option<(Vec<u8>, Vec<u8>)> {
        self.repo
            .extract_signature(&commit.0, None)
            .ok()
            .map(|(sig, data)| (sig.to_vec(), data.to_vec()))
    }

    /// The first-parent chain from `from` (exclusive) to `to` (inclusive), oldest first, with
    /// each commit's first parent; `None` if `from` is not on `to`'s first-parent line.
    pub fn chain(
        &self,
        from: CommitId,
        to: CommitId,
    ) -> Result<Option<Vec<(CommitInfo, CommitId)>>> {
        let mut out = Vec::new();
        let mut cur = to.0;
        loop {
            if cur == from.0 {
                out.reverse();
                return Ok(Some(out));
            }
            let commit = self.repo.find_commit(cur).map_err(ge("reading a commit"))?;
            let Ok(parent) = commit.parent_id(0) else {
                return Ok(None);
            };
            out.push((CommitInfo::of(&commit), CommitId(parent)));
            cur = parent;
        }
    }
}

/// Files a commit changed, each with its new blob (`None`: deleted).
pub type Changes = [(String, Option<BlobId>)];

/// A commit as the history walk reports it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub id: CommitId,
    /// The author's name, escaped for display ([`crate::text::escape`]): anyone can commit any.
    pub author: String,
    /// The commit date, in seconds since 1970 UTC, as committed (any value: format it with
    /// [`crate::text::format_unix`]).
    pub time: i64,
    /// The raw message: read machine fields with [`trailers`], escape anything shown.
    pub message: String,
}

impl CommitInfo {
    fn of(commit: &git2::Commit) -> CommitInfo {
        let author = commit.author();
        CommitInfo {
            id: CommitId(commit.id()),
            author: crate::text::escape(&String::from_utf8_lossy(author.name_bytes())).into_owned(),
            time: commit.time().seconds(),
            message: String::from_utf8_lossy(commit.message_bytes()).into_owned(),
        }
    }
}

/// The trailers of a commit message (`Key: value` lines of its last paragraph), parsed by git's
/// own rules (libgit2's `git_message_trailers`, as `git interpret-trailers` reads them), in order.
/// A `Key: value` line anywhere else in the message is not a trailer.
pub fn trailers(message: &str) -> Vec<(String, String)> {
    git2::message_trailers_strs(message)
        .map(|t| {
            t.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

impl Repo {
    /// Walks the first-parent history from `head` back to the root, newest first, once. For each
    /// commit, `visit` gets the commit and the files it changed against its first parent whose
    /// paths satisfy `wanted`, each with its new blob (`None`: deleted). The walk stops when
    /// `visit` returns `false`.
    pub fn walk_changes(
        &self,
        head: CommitId,
        wanted: &dyn Fn(&str) -> bool,
        visit: &mut dyn FnMut(&CommitInfo, &Changes) -> Result<bool>,
    ) -> Result<()> {
        let mut walk = self.repo.revwalk().map_err(ge("walking history"))?;
        walk.push(head.0).map_err(ge("walking history"))?;
        walk.simplify_first_parent()
            .map_err(ge("walking history"))?;
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        for oid in walk {
            let oid = oid.map_err(ge("walking history"))?;
            let commit = self.repo.find_commit(oid).map_err(ge("reading a commit"))?;
            let tree = commit.tree().map_err(ge("reading a commit's tree"))?;
            let parent_tree = match commit.parent(0) {
                Ok(p) => Some(p.tree().map_err(ge("reading a commit's tree"))?),
                Err(_) => None,
            };
            let diff = self
                .repo
                .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
                .map_err(ge("comparing a commit with its parent"))?;
            let mut changes = Vec::new();
            for delta in diff.deltas() {
                let Some(path) = delta.new_file().path().or(delta.old_file().path()) else {
                    continue;
                };
                let path = path.to_string_lossy();
                if !wanted(&path) {
                    continue;
                }
                let blob =
                    (delta.status() != Delta::Deleted).then(|| BlobId(delta.new_file().id()));
                changes.push((path.into_owned(), blob));
            }
            if changes.is_empty() {
                continue;
            }
            let info = CommitInfo::of(&commit);
            if !visit(&info, &changes)? {
                break;
            }
        }
        Ok(())
    }
}

fn index_entry(path: &str, id: Oid, meta: Option<&fs::Metadata>) -> IndexEntry {
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

/// The `add_all` filter that adds store files only ([`is_store_file`]): 0 adds, 1 skips.
fn store_files_only(path: &Path, _spec: &[u8]) -> i32 {
    match path.to_str() {
        Some(p) if is_store_file(p) => 0,
        _ => 1,
    }
}

/// The real folder that holds the store file `rel` (relative to `root`), and the file's name.
/// Every folder on the way must be a folder, not a symbolic link: a committed or planted link
/// could otherwise lead a write or a delete out of the store. A missing folder is made (mode
/// 0700) when `create`, else the folder is `None`.
///
/// # Errors
/// [`Error::Link`] naming the first folder that is a link (or a file); [`Error::Io`].
fn real_folder<'r>(root: &Path, rel: &'r str, create: bool) -> Result<(Option<PathBuf>, &'r str)> {
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
fn new_temporary(dir: &Path, name: &str, data: &[u8]) -> Result<PathBuf> {
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

impl Repo {
    /// Removes every temporary of vault's ([`is_temporary_name`]) from the work tree, except
    /// committed files (those are a problem to report, not vault's to delete). Folders that are
    /// symbolic links are not entered.
    fn remove_temporaries(&self) -> Result<()> {
        let root = self.root.as_path();
        let mut found = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            let items = match fs::read_dir(&dir) {
                Ok(items) => items,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading", &dir, e)),
            };
            for item in items {
                let item = item.map_err(|e| Error::io("reading", &dir, e))?;
                let name = item.file_name();
                let kind = item
                    .file_type()
                    .map_err(|e| Error::io("reading", &dir, e))?;
                if kind.is_dir() {
                    if !(dir == root && name == ".git") {
                        dirs.push(item.path());
                    }
                } else if name.to_str().is_some_and(is_temporary_name) {
                    found.push(item.path());
                }
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        // Tracked files, by their raw names (the index holds what the last commit vault made or
        // finished put there, whatever the names' encoding).
        let index = self.repo.index().map_err(ge("reading the index"))?;
        let tracked: std::collections::HashSet<PathBuf> = index
            .iter()
            .map(|e| {
                use std::os::unix::ffi::OsStrExt;
                root.join(std::ffi::OsStr::from_bytes(&e.path))
            })
            .collect();
        for path in found.into_iter().filter(|p| !tracked.contains(p)) {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", path, e)),
            }
        }
        Ok(())
    }
}

/// Replaces the store file `rel` under `root` with `data` so that a reader sees the old or the
/// new file, never a mix: a new temporary in the same real folder ([`real_folder`], made 0700
/// when missing), then a rename.
fn write_atomically(root: &Path, rel: &str, data: &[u8]) -> Result<()> {
    let (dir, name) = real_folder(root, rel, true)?;
    let dir = dir.expect("made when missing");
    let tmp = new_temporary(&dir, name, data)?;
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("replacing", path, e)
    })
}

/// Replaces a file of vault's own bookkeeping in `.git` (the journal, the trust anchor) durably:
/// write a new temporary beside it (`.NAME.XXXXXXXX.tmp`, its own for each writer, so two
/// writers never mix), flush it, rename it over `path`, flush the folder. After a crash the file
/// is wholly old or wholly new; a temporary left behind is never read.
///
/// # Errors
/// [`Error::Io`] naming the file.
pub fn write_file_durably(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let written = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.as_file().sync_all()?;
            f.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
    written.map_err(|e| Error::io("writing", path, e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("flushing", dir, e))?;
    }
    Ok(())
}

/// Flushes the file system holding `path` (one call for all the objects of a change).
fn sync_fs(path: &Path) -> Result<()> {
    let f = fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs takes a valid open descriptor and touches no memory of ours.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(Error::io("flushing", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// `.git/vault-journal`: a change under way. `new` is `none` until the new commit exists and
/// everything it needs is durable; only then may the branch move.
struct Journal {
    refname: String,
    old: Option<Oid>,
    new: Option<Oid>,
    action: String,
}

impl Journal {
    fn write(&self, path: &Path) -> Result<()> {
        let id = |o: Option<Oid>| o.map(|o| o.to_string()).unwrap_or_else(|| "none".into());
        let text = format!(
            "vault-journal 1\nref {}\nold {}\nnew {}\naction {}\n",
            self.refname,
            id(self.old),
            id(self.new),
            self.action.replace('\n', " ")
        );
        write_file_durably(path, text.as_bytes())
    }

    fn parse(text: &str) -> Option<Journal> {
        let mut lines = text.lines();
        if lines.next()? != "vault-journal 1" {
            return None;
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_string)
        };
        let refname = field("ref")?;
        let old = field("old")?;
        let new = field("new")?;
        let action = field("action")?;
        let id = |text: &str| match text {
            "none" => Some(None),
            hex => Oid::from_str(hex).ok().map(Some),
        };
        Some(Journal {
            refname,
            old: id(&old)?,
            new: id(&new)?,
            action,
        })
    }
}

/// This store's writer lock, held until dropped (see [`Repo::lock`]). The operating system
/// releases it when the process ends, however it ends, so it can never be left stale.
#[derive(Debug)]
pub struct StoreLock {
    _file: fs::File,
}

const LOCK_FILE: &str = "vault.lock";

impl Repo {
    fn lock_file(&self) -> Result<fs::File> {
        let path = self.repo.path().join(LOCK_FILE);
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("opening", path, e))
    }

    /// Takes the store's writer lock: an exclusive `flock` on `.git/vault.lock`, which then holds
    /// this process's id for the next one to name. Every command that may write, or finish an
    /// interrupted change, holds it from before it reads the journal until it is done, so two runs
    /// never take each other's live change for a crashed one. Waits up to `wait` for another
    /// holder (checking every 50 ms).
    ///
    /// # Errors
    /// [`Error::Busy`] with the other process's id when it still holds the lock after `wait`;
    /// [`Error::Io`].
    pub fn lock(&self, wait: Duration) -> Result<StoreLock> {
        let start = Instant::now();
        loop {
            if let Some(lock) = self.try_lock()? {
                return Ok(lock);
            }
            if start.elapsed() >= wait {
                let pid = fs::read_to_string(self.repo.path().join(LOCK_FILE))
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(Error::Busy { pid });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Repo::lock`] without waiting: `None` while another process holds it.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let mut file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking", self.repo.path().join(LOCK_FILE), e))
            }
        }
        // Best effort: the id only makes another run's message more helpful.
        let _ = file
            .set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(Some(StoreLock { _file: file }))
    }
}
