//! Opening the store's repository, its HEAD, its committed tree and the status of its work tree.

use std::fs;
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Index, Repository, RepositoryInitOptions, Signature, StatusOptions};

use super::*;
use crate::error::{Error, Result};
use crate::store::is_store_file;

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

/// The store's git repository.
pub struct Repo {
    pub(super) repo: Repository,
    pub(super) root: PathBuf,
}

pub(super) fn ge(what: &str) -> impl FnOnce(git2::Error) -> Error + '_ {
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
        // libgit2 re-hashes every object it reads to check its id; git itself does not (it
        // checks ids where objects arrive, when a pack is indexed, and in `git fsck`), and so
        // neither does vault: a long history walk spent a tenth of its time there (issue 18).
        // Like git, vault then trusts the clone's own object database: objects copied in
        // without indexing (a local `git clone` of a path, alternates) are taken as they are.
        git2::opts::strict_hash_verification(false);
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

    /// The commit the current branch points to.
    ///
    /// # Errors
    /// [`Error::BadHead`] for a detached HEAD or a branch with no commit yet.
    pub fn head(&self) -> Result<CommitId> {
        if self.repo.head_detached().unwrap_or(false) {
            return Err(Error::BadHead("detached (not on a branch)"));
        }
        self.head_commit()
    }

    /// Whether HEAD is a branch with no commit yet (a repository just created).
    pub fn is_unborn(&self) -> bool {
        self.repo.head_detached().ok() == Some(false)
            && matches!(self.repo.head(), Err(e) if e.code() == ErrorCode::UnbornBranch)
    }

    /// `git status` of the work tree: untracked files one by one, ignored ones left out,
    /// submodules' insides not looked into.
    pub(super) fn statuses(&self) -> Result<git2::Statuses<'_>> {
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
    pub(super) fn tree_files(&self, tree: &git2::Tree) -> Result<Vec<TreeFile>> {
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
    pub(super) fn store_index(&self) -> Result<Index> {
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
        let tree = self.write_tree(&mut self.store_index()?)?;
        self.tree_files(&tree)
    }

    /// Writes the trees an in-memory index describes into the object database; returns the root.
    pub(super) fn write_tree(&self, index: &mut Index) -> Result<git2::Tree<'_>> {
        let id = index
            .write_tree_to(&self.repo)
            .map_err(ge("writing the tree"))?;
        self.repo.find_tree(id).map_err(ge("reading the tree"))
    }

    pub(super) fn author(&self) -> Result<Signature<'static>> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let (Some(name), Some(email)) = (env("GIT_AUTHOR_NAME"), env("GIT_AUTHOR_EMAIL")) {
            return Signature::now(&name, &email).map_err(ge("making the commit author"));
        }
        self.repo.signature().map_err(|_| Error::NoGitIdentity)
    }

    /// The branch HEAD names.
    pub(super) fn branch(&self) -> Result<String> {
        self.repo
            .find_reference("HEAD")
            .ok()
            .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_string))
            .ok_or(Error::BadHead("detached (not on a branch)"))
    }

    /// Where git runs this repository's hooks from: `core.hooksPath` (relative to the work
    /// tree when relative, as git reads it), else `.git/hooks`.
    pub fn hooks_dir(&self) -> PathBuf {
        match self
            .repo
            .config()
            .ok()
            .and_then(|c| c.get_path("core.hooksPath").ok())
        {
            Some(p) if p.is_absolute() => p,
            Some(p) => self.root.join(p),
            None => self.repo.path().join("hooks"),
        }
    }

    /// The repository's `.git` folder (local files that are not part of the store).
    pub fn git_dir(&self) -> &Path {
        self.repo.path()
    }
}

/// The `add_all` filter that adds store files only ([`is_store_file`]): 0 adds, 1 skips.
pub(super) fn store_files_only(path: &Path, _spec: &[u8]) -> i32 {
    match path.to_str() {
        Some(p) if is_store_file(p) => 0,
        _ => 1,
    }
}
