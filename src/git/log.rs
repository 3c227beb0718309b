//! The history: commits as [`CommitInfo`], trailers by git's rules, signatures, and the walks
//! that trust and audit make.

use std::collections::BTreeSet;

use git2::DiffOptions;

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

impl Repo {
    /// The newest commit reachable from `head` (every parent followed, newest first by commit
    /// time) for which `wanted` holds, if any. Reads every commit until it finds one: for error
    /// paths and reports, not for every run.
    ///
    /// # Errors
    /// Git errors while walking.
    pub fn find_in_history(
        &self,
        head: CommitId,
        wanted: &dyn Fn(&CommitInfo) -> bool,
    ) -> Result<Option<CommitInfo>> {
        let mut walk = self.repo.revwalk().map_err(ge("walking history"))?;
        walk.set_sorting(git2::Sort::TIME)
            .map_err(ge("walking history"))?;
        walk.push(head.0).map_err(ge("walking history"))?;
        for id in walk {
            let id = id.map_err(ge("walking history"))?;
            let commit = self.repo.find_commit(id).map_err(ge("reading a commit"))?;
            let info = CommitInfo::of(&commit);
            if wanted(&info) {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }
}

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

/// What [`Repo::walk_versions`] meets, newest first.
#[derive(Debug)]
pub enum Met<'a> {
    /// A version of HEAD's entry `path` (under whatever name it had then) with content `blob`,
    /// made by `commit`. `same` says whether it has HEAD's content: no commit since changed the
    /// content (re-encryptions and renames do not).
    Version {
        path: &'a str,
        blob: BlobId,
        commit: &'a CommitInfo,
        same: bool,
    },
    /// `commit` changed the content of `path` to HEAD's (the newest such commit along each line
    /// of history).
    Changed {
        path: &'a str,
        commit: &'a CommitInfo,
    },
}

impl Repo {
    /// Walks back from `head` through every parent, each commit once, following each of `paths`
    /// through its whole history: across re-encryptions (`keeps_content` says a commit only
    /// re-encrypted), content changes, and renames and copies: `sources` names the paths a
    /// commit's message says it renamed or copied to a followed one (for those git cannot see
    /// because the ciphertext changed); a rename or copy that kept the blob is found by the blob
    /// (a file of the parent with the same one, deleted by the commit or not). A commit that
    /// changed a followed path (against a parent) made a [`Met::Version`]; the newest content
    /// change along each line is [`Met::Changed`]. A merge that took a path from one parent
    /// unchanged follows it into that parent only, so the commit that made a change is credited,
    /// not the merge that brought it in; a path a merge changed is followed into every parent
    /// (whoever could read it on either side counts). Two of HEAD's entries that go back to one
    /// older file (a copy) are each followed.
    ///
    /// # Errors
    /// Git errors reading history.
    pub fn walk_versions(
        &self,
        head: CommitId,
        paths: &BTreeSet<String>,
        keeps_content: &dyn Fn(&CommitInfo) -> bool,
        sources: &dyn Fn(&CommitInfo, &str) -> Vec<String>,
        visit: &mut dyn FnMut(Met) -> Result<()>,
    ) -> Result<()> {
        use std::collections::{BTreeMap, HashMap};
        let mut walk = self.repo.revwalk().map_err(ge("walking history"))?;
        walk.push(head.0).map_err(ge("walking history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
            .map_err(ge("walking history"))?;
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        // Commit -> (path there, HEAD's path it is the history of) -> whether its content is
        // still HEAD's.
        type Open = BTreeMap<(String, String), bool>;
        let mut open: HashMap<git2::Oid, Open> = HashMap::new();
        open.insert(
            head.0,
            paths
                .iter()
                .map(|p| ((p.clone(), p.clone()), true))
                .collect(),
        );
        for oid in walk {
            if open.is_empty() {
                break;
            }
            let oid = oid.map_err(ge("walking history"))?;
            let Some(here) = open.remove(&oid) else {
                continue;
            };
            let commit = self.repo.find_commit(oid).map_err(ge("reading a commit"))?;
            let tree = commit.tree().map_err(ge("reading a commit's tree"))?;
            let info = CommitInfo::of(&commit);
            let keeps = keeps_content(&info);
            let parents: Vec<git2::Commit> = commit.parents().collect();
            let followed: BTreeSet<&str> = here.keys().map(|(p, _)| p.as_str()).collect();
            // Per parent: the followed paths whose blob differs from this commit's, and the
            // files this commit deleted, by blob (renames that kept it).
            let mut differs: Vec<BTreeSet<String>> = Vec::new();
            let mut deleted: Vec<HashMap<git2::Oid, String>> = Vec::new();
            let mut parent_trees = Vec::new();
            for parent in &parents {
                let parent_tree = parent.tree().map_err(ge("reading a commit's tree"))?;
                let diff = self
                    .repo
                    .diff_tree_to_tree(Some(&parent_tree), Some(&tree), Some(&mut opts))
                    .map_err(ge("comparing a commit with its parent"))?;
                let mut changed = BTreeSet::new();
                let mut gone = HashMap::new();
                for d in diff.deltas() {
                    if d.status() == git2::Delta::Deleted {
                        if let Some(p) = d.old_file().path() {
                            gone.insert(d.old_file().id(), p.to_string_lossy().into_owned());
                        }
                    }
                    if let Some(p) = d.new_file().path().or(d.old_file().path()) {
                        let p = p.to_string_lossy();
                        if followed.contains(p.as_ref()) {
                            changed.insert(p.into_owned());
                        }
                    }
                }
                differs.push(changed);
                deleted.push(gone);
                parent_trees.push(parent_tree);
            }
            // Each parent's files by blob, made only when a copy has to be looked for.
            let mut by_blob: Vec<Option<HashMap<git2::Oid, String>>> = vec![None; parents.len()];
            for ((path, head_path), same) in &here {
                let same = *same;
                // Where the path goes in each parent, and whether its content there is HEAD's.
                let mut follow: Vec<(usize, String, bool)> = Vec::new();
                let same_as: Vec<usize> = (0..parents.len())
                    .filter(|i| !differs[*i].contains(path))
                    .collect();
                if !same_as.is_empty() {
                    // Taken unchanged from these parents: the change is further back.
                    for i in same_as {
                        follow.push((i, path.clone(), same));
                    }
                } else {
                    let blob = tree
                        .get_path(std::path::Path::new(path))
                        .ok()
                        .map(|e| e.id());
                    if let Some(blob) = blob {
                        visit(Met::Version {
                            path: head_path,
                            blob: BlobId(blob),
                            commit: &info,
                            same,
                        })?;
                    }
                    // Where each parent had it: renamed or copied from another file (by blob,
                    // then as the message says; also onto a path that existed), else the same
                    // path, else a copy of a file with the same blob.
                    let mut found: Vec<(usize, String, bool)> = Vec::new();
                    for (i, parent_tree) in parent_trees.iter().enumerate() {
                        let in_parent =
                            |p: &str| parent_tree.get_path(std::path::Path::new(p)).is_ok();
                        let renamed = blob
                            .and_then(|b| deleted[i].get(&b).cloned())
                            .filter(|p| p != path)
                            .or_else(|| {
                                sources(&info, path)
                                    .into_iter()
                                    .find(|p| p != path && in_parent(p))
                            });
                        if let Some(source) = renamed {
                            found.push((i, source, true));
                        } else if in_parent(path) {
                            found.push((i, path.clone(), false));
                        } else if let Some(b) = blob {
                            let files = by_blob[i].get_or_insert_with(|| blobs_of(parent_tree));
                            if let Some(source) = files.get(&b) {
                                found.push((i, source.clone(), true));
                            }
                        }
                    }
                    if found.is_empty() && same {
                        // No parent had it under any name: its content starts here.
                        visit(Met::Changed {
                            path: head_path,
                            commit: &info,
                        })?;
                    }
                    for (i, source, renamed) in found {
                        let kept = keeps || renamed;
                        if !kept && same {
                            visit(Met::Changed {
                                path: head_path,
                                commit: &info,
                            })?;
                        }
                        follow.push((i, source, same && kept));
                    }
                }
                for (i, source, same) in follow {
                    let entry = open
                        .entry(parents[i].id())
                        .or_default()
                        .entry((source, head_path.clone()))
                        .or_insert(same);
                    // Reached along two lines: HEAD's content if either line says so.
                    *entry |= same;
                }
            }
        }
        Ok(())
    }
}

/// Every file of `tree` (recursively) by blob id: where a copy that kept the blob came from.
fn blobs_of(tree: &git2::Tree) -> std::collections::HashMap<git2::Oid, String> {
    let mut files = std::collections::HashMap::new();
    let _ = tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() == Some(git2::ObjectType::Blob) {
            if let Ok(name) = entry.name() {
                files
                    .entry(entry.id())
                    .or_insert_with(|| format!("{dir}{name}"));
            }
        }
        git2::TreeWalkResult::Ok
    });
    files
}
