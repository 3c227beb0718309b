//! `.git/vault-journal`, and finishing or undoing a change an earlier run left unfinished.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use git2::Oid;

use super::*;
use crate::error::{Error, Result};
use crate::store::is_temporary_name;

pub(super) const JOURNAL: &str = "vault-journal";

/// What an interrupted change turned into when the next command looked at it.
#[derive(Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The branch had moved: the work tree was brought up to the new commit.
    Finished { action: String, commit: String },
    /// The branch had not moved: the change never happened.
    RolledBack { action: String },
}

impl Repo {
    pub(super) fn journal_path(&self) -> PathBuf {
        self.repo.path().join(JOURNAL)
    }

    /// Whether a journal says a change is under way (or was interrupted): then, and only then,
    /// there may be something to recover.
    pub fn change_under_way(&self) -> bool {
        self.journal_path().exists() || !self.partial_journals().unwrap_or_default().is_empty()
    }

    /// Journals whose writing was cut short (`.vault-journal.XXXXXXXX.tmp`, see
    /// [`write_file_durably`]; older versions of vault wrote `vault-journal.tmp`).
    fn partial_journals(&self) -> Result<Vec<PathBuf>> {
        let git_dir = self.repo.path();
        Ok(fs::read_dir(git_dir)
            .map_err(|e| Error::io("reading", git_dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n == "vault-journal.tmp"
                        || (n.starts_with(".vault-journal.") && n.ends_with(".tmp"))
                })
            })
            .collect())
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
        for partial in self.partial_journals()? {
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
    pub(super) fn sync(&self) -> Result<()> {
        sync_fs(self.repo.path())?;
        let device = |p: &Path| fs::metadata(p).map(|m| m.dev()).ok();
        if device(self.repo.path()) != device(&self.root) {
            sync_fs(&self.root)?;
        }
        Ok(())
    }
}

impl Repo {
    /// Removes every temporary of vault's ([`is_temporary_name`]) from the work tree, except
    /// committed files (those are a problem to report, not vault's to delete). Folders that are
    /// symbolic links are not entered.
    pub(super) fn remove_temporaries(&self) -> Result<()> {
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
pub(super) fn sync_fs(path: &Path) -> Result<()> {
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
pub(super) struct Journal {
    pub(super) refname: String,
    pub(super) old: Option<Oid>,
    pub(super) new: Option<Oid>,
    pub(super) action: String,
}

impl Journal {
    pub(super) fn write(&self, path: &Path) -> Result<()> {
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

    pub(super) fn parse(text: &str) -> Option<Journal> {
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
