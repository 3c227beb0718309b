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
        let outcome = match journal.decide(current) {
            Decision::Finish(new) => {
                self.update_worktree(journal.old, new, journal.old.is_none(), &Default::default())?;
                Recovery::Finished {
                    action: journal.action.clone(),
                    commit: short_id(new),
                }
            }
            Decision::RollBack => Recovery::RolledBack {
                action: journal.action.clone(),
            },
            Decision::Stuck(why) => return Err(Error::Journal(why)),
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
    rustix::fs::syncfs(&f).map_err(|e| Error::io("flushing", path, e.into()))
}

/// `.git/vault-journal`: a change under way. `new` is `none` until the new commit exists and
/// everything it needs is durable; only then may the branch move.
pub(super) struct Journal {
    pub(super) refname: String,
    pub(super) old: Option<Oid>,
    pub(super) new: Option<Oid>,
    pub(super) action: String,
}

/// What recovery does about a journal, from where the branch points now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    /// The branch moved to the new commit: bring the work tree up to it.
    Finish(Oid),
    /// The branch is where it was: the change never happened; drop its leftovers.
    RollBack,
    /// The branch is somewhere else (someone moved it by hand): say where, touch nothing.
    Stuck(String),
}

impl Journal {
    /// The commit point is the branch moving from `old` to `new` (`new` is recorded, durably,
    /// before it may move): so a branch at `new` means the change happened, a branch at `old`
    /// (with `new` made or not) means it did not, and anything else is not vault's doing.
    pub(super) fn decide(&self, current: Option<Oid>) -> Decision {
        match self.new {
            Some(new) if current == Some(new) => Decision::Finish(new),
            _ if current == self.old => Decision::RollBack,
            _ => Decision::Stuck(format!(
                "{} points to neither the commit before ({}) nor after ({}) the change '{}'",
                self.refname,
                self.old
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "none".into()),
                self.new
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "not made yet".into()),
                self.action
            )),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(c: char) -> Oid {
        Oid::from_str(&c.to_string().repeat(40)).unwrap()
    }

    fn journal(old: Option<Oid>, new: Option<Oid>) -> Journal {
        Journal {
            refname: "refs/heads/main".into(),
            old,
            new,
            action: "remove-member".into(),
        }
    }

    /// Every fault point of the commit protocol, by what the journal and the branch say then.
    #[test]
    fn recovery_decides_from_the_journal_and_the_branch() {
        let (old, new, other) = (oid('a'), oid('b'), oid('c'));
        // Died before the new commit was recorded (staging, pack, tree): the branch is at old.
        assert_eq!(
            journal(Some(old), None).decide(Some(old)),
            Decision::RollBack
        );
        // Died after recording it but before the branch moved.
        assert_eq!(
            journal(Some(old), Some(new)).decide(Some(old)),
            Decision::RollBack
        );
        // Died after the branch moved (work tree, index): finish.
        assert_eq!(
            journal(Some(old), Some(new)).decide(Some(new)),
            Decision::Finish(new)
        );
        // The first commit of a repository: no old commit, no branch yet.
        assert_eq!(journal(None, Some(new)).decide(None), Decision::RollBack);
        assert_eq!(
            journal(None, Some(new)).decide(Some(new)),
            Decision::Finish(new)
        );
        // Someone moved the branch meanwhile: neither is safe.
        for (j, current) in [
            (journal(Some(old), Some(new)), Some(other)),
            (journal(Some(old), None), Some(other)),
            (journal(Some(old), Some(new)), None),
        ] {
            let Decision::Stuck(why) = j.decide(current) else {
                panic!("{current:?} must be stuck");
            };
            assert!(
                why.contains("refs/heads/main") && why.contains("remove-member"),
                "{why}"
            );
        }
    }

    #[test]
    fn journal_text_round_trips_and_refuses_anything_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL);
        let mut j = journal(Some(oid('a')), None);
        j.action = "add-member\nsmuggled line".into();
        j.write(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let back = Journal::parse(&text).unwrap();
        assert_eq!((back.old, back.new), (Some(oid('a')), None));
        assert_eq!(back.action, "add-member smuggled line");
        for bad in [
            "",
            "vault-journal 2\nref r\nold none\nnew none\naction x\n",
            "vault-journal 1\nref r\nold nothex\nnew none\naction x\n",
            "vault-journal 1\nref r\nnew none\nold none\naction x\n",
            "vault-journal 1\nref r\nold none\n",
        ] {
            assert!(Journal::parse(bad).is_none(), "{bad:?}");
        }
    }
}
