//! The history: commits as [`CommitInfo`], trailers by git's rules, signatures, and the walks
//! that trust and audit make.

use git2::{Delta, DiffOptions};

use super::*;
use crate::error::Result;

impl Repo {
    /// Whether `commit` is `ancestor` or descends from it.
    fn leads_to(&self, commit: git2::Oid, ancestor: git2::Oid) -> bool {
        commit == ancestor
            || self
                .repo
                .graph_descendant_of(commit, ancestor)
                .unwrap_or(false)
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

    /// The commit `spec` names (a full or abbreviated id, a ref, `HEAD~2` …: git's rules).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchCommit`] when it names no commit.
    pub fn resolve_commit(&self, spec: &str) -> Result<CommitId> {
        self.repo
            .revparse_single(spec)
            .and_then(|o| o.peel_to_commit())
            .map(|c| CommitId(c.id()))
            .map_err(|_| crate::Error::NoSuchCommit(crate::text::escape(spec).into_owned()))
    }

    /// The best common ancestor of `a` and `b` (`git merge-base`), or `None` when they share no
    /// history or `a` is no longer in the repository (pruned after a reset or a rebase).
    pub fn merge_base(&self, a: CommitId, b: CommitId) -> Option<CommitId> {
        self.repo.merge_base(a.0, b.0).ok().map(CommitId)
    }

    /// The line of commits from `from` (exclusive) to `to` (inclusive), oldest first, each with
    /// the parent it is reached from; `None` if `from` is not an ancestor of `to`. The line
    /// follows first parents, except at a merge whose first parent does not lead to `from`:
    /// there it follows the parent that does. So a clone whose trusted commit came in as a
    /// merge's second parent judges the merge against that parent (what the merge brought from
    /// the other side is the merge's change, vouched for by whoever signed it).
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
            let mut parents = commit.parent_ids();
            let Some(first) = parents.next() else {
                return Ok(None);
            };
            let parent = if commit.parent_count() == 1 || self.leads_to(first, from.0) {
                first
            } else {
                match parents.find(|p| self.leads_to(*p, from.0)) {
                    Some(p) => p,
                    None => first, // not an ancestor at all: the walk ends at the root
                }
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
    pub(super) fn of(commit: &git2::Commit) -> CommitInfo {
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
