//! The branch's upstream, and talking to it. Fetching and pushing run the user's own `git`
//! program, so ssh configuration and agents, credential helpers and `insteadOf` rules work
//! exactly as for `git pull` and `git push`; everything local is libgit2's.

use std::process::Command;

use super::*;
use crate::error::{Error, Result};

/// Where the current branch syncs with: `branch.<name>.remote` and `branch.<name>.merge`, as
/// `git pull` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The remote's name (`origin`).
    pub remote: String,
    /// The branch on the remote, as a full ref (`refs/heads/main`).
    pub merge: String,
    /// The remote-tracking ref `git fetch` updates (`refs/remotes/origin/main`).
    pub tracking: String,
}

/// Where the local branch stands against its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    UpToDate,
    /// Local commits the upstream does not have.
    Ahead,
    /// Upstream commits the branch does not have: a fast-forward.
    Behind,
    /// Both have commits the other does not, since their merge base.
    Diverged {
        base: CommitId,
    },
}

impl Repo {
    /// The current branch's upstream; with `remote`, that remote instead (same branch name on
    /// it unless the branch's configuration names another).
    ///
    /// # Errors
    /// [`Error::NoUpstream`] when the branch has none and no `remote` is given.
    pub fn upstream(&self, remote: Option<&str>) -> Result<Upstream> {
        let refname = self.branch()?;
        let short = refname.strip_prefix("refs/heads/").unwrap_or(&refname);
        let config = self
            .repo
            .config()
            .map_err(ge("reading the git configuration"))?;
        let get = |key: &str| config.get_string(&format!("branch.{short}.{key}")).ok();
        let remote = match remote.map(str::to_string).or_else(|| get("remote")) {
            Some(r) => r,
            None => return Err(Error::NoUpstream(short.to_string())),
        };
        if self.repo.find_remote(&remote).is_err() {
            return Err(Error::NoRemote(remote));
        }
        let merge = get("merge").unwrap_or_else(|| refname.clone());
        let branch = merge.strip_prefix("refs/heads/").unwrap_or(&merge);
        Ok(Upstream {
            tracking: format!("refs/remotes/{remote}/{branch}"),
            remote,
            merge,
        })
    }

    /// Runs `git fetch REMOTE` in the store (the user's git, see the module documentation).
    ///
    /// # Errors
    /// [`Error::GitProgram`] with git's own message when it fails.
    pub fn fetch(&self, upstream: &Upstream) -> Result<()> {
        let refspec = format!("+{}:{}", upstream.merge, upstream.tracking);
        self.git_program(&["fetch", "--quiet", &upstream.remote, &refspec])
            .map(|_| ())
    }

    /// Runs `git push REMOTE HEAD:BRANCH`. Returns `false` when the remote refused because it
    /// has commits the branch does not (someone pushed meanwhile): fetch and integrate again.
    ///
    /// # Errors
    /// [`Error::GitProgram`] for any other failure.
    pub fn push(&self, upstream: &Upstream) -> Result<bool> {
        let refspec = format!("HEAD:{}", upstream.merge);
        let args = ["push", "--porcelain", &upstream.remote, &refspec];
        let (ok, stdout, stderr) = self.run_git(&args)?;
        if ok {
            return Ok(true);
        }
        // Only git's own porcelain status line counts: `!<TAB>from:to<TAB>[rejected] (why)`
        // (anything else on the output, a hook's or the server's, is anyone's to write).
        let lost_race = stdout.lines().any(|l| {
            let mut fields = l.split('\t');
            fields.next() == Some("!")
                && fields
                    .next()
                    .is_some_and(|refs| refs.ends_with(&format!(":{}", upstream.merge)))
                && fields.next().is_some_and(|why| {
                    why.starts_with("[rejected] (fetch first)")
                        || why.starts_with("[rejected] (non-fast-forward)")
                })
        });
        if lost_race {
            return Ok(false);
        }
        Err(Error::GitProgram {
            command: format!("git {}", args.join(" ")),
            output: format!("{stdout}{stderr}").trim().to_string(),
        })
    }

    /// The commit the remote-tracking ref points to, if any.
    pub fn tracking_commit(&self, upstream: &Upstream) -> Option<CommitId> {
        self.repo
            .refname_to_id(&upstream.tracking)
            .ok()
            .map(CommitId)
    }

    /// Where `local` stands against `remote`.
    ///
    /// # Errors
    /// [`Error::Git`] if the histories share no commit.
    pub fn standing(&self, local: CommitId, remote: CommitId) -> Result<Standing> {
        if local == remote {
            return Ok(Standing::UpToDate);
        }
        let base = self
            .merge_base(local, remote)
            .ok_or_else(|| Error::git_msg("comparing with the upstream", "no common history"))?;
        Ok(if base == remote {
            Standing::Ahead
        } else if base == local {
            Standing::Behind
        } else {
            Standing::Diverged { base }
        })
    }

    /// The commits in `to` that `from` does not have, oldest first (`git log --reverse
    /// from..to`, every parent followed).
    pub fn incoming(&self, from: CommitId, to: CommitId) -> Result<Vec<CommitInfo>> {
        let mut walk = self.repo.revwalk().map_err(ge("walking history"))?;
        walk.push(to.0).map_err(ge("walking history"))?;
        walk.hide(from.0).map_err(ge("walking history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .map_err(ge("walking history"))?;
        walk.map(|id| {
            let id = id.map_err(ge("walking history"))?;
            let commit = self.repo.find_commit(id).map_err(ge("reading a commit"))?;
            Ok(CommitInfo::of(&commit))
        })
        .collect()
    }

    /// Runs the `git` program in the store, non-interactively for credentials it cannot get
    /// (`GIT_TERMINAL_PROMPT=0`); returns its standard output.
    fn git_program(&self, args: &[&str]) -> Result<String> {
        let (ok, stdout, stderr) = self.run_git(args)?;
        if ok {
            return Ok(stdout);
        }
        Err(Error::GitProgram {
            command: format!("git {}", args.join(" ")),
            output: format!("{stdout}{stderr}").trim().to_string(),
        })
    }

    /// Runs git; returns whether it succeeded, its standard output and its standard error.
    fn run_git(&self, args: &[&str]) -> Result<(bool, String, String)> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::io("running", "git", e))?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}
