//! The history: commits as [`CommitInfo`], trailers by git's rules, signatures, and the walks
//! that trust and audit make.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::rc::Rc;

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

    /// Whether any path that differs between `commit` and `parent` is one `wanted` picks
    /// (`wanted(path, is_link)`: `is_link` when either side is a symbolic link). Compares the
    /// two trees as [`Repo::tree_changes`] does, so a commit that changes one entry costs a few
    /// tree reads however large the store is: the trust walk's cost per commit (issue 18),
    /// where a full diff was most of the time on 20,000 commits. Stops at the first path
    /// picked; a malformed tree counts as touching one (the caller then reads the commit in
    /// full rather than trusting this shortcut). `trees` carries the trees read from one call to
    /// the next, for a walk whose next commit is this one's parent or child.
    ///
    /// # Errors
    /// Git errors reading the commits or their trees.
    pub fn touches(
        &self,
        commit: CommitId,
        parent: CommitId,
        wanted: &dyn Fn(&str, bool) -> bool,
        trees: &mut TreeCache,
    ) -> Result<bool> {
        let tree = |c: CommitId| {
            self.repo
                .find_commit(c.0)
                .map(|c| c.tree_id())
                .map_err(ge("reading a commit"))
        };
        let compared = self.tree_changes(
            Some(tree(parent)?),
            Some(tree(commit)?),
            "",
            &mut |path, old, new| {
                let link = [old, new].into_iter().flatten().any(Entry::is_link);
                wanted(path, link)
            },
            trees,
        )?;
        trees.next_step();
        Ok(compared != Compared::Whole)
    }

    /// Calls `visit(path, old, new)` for each file (or link, or submodule) that differs between
    /// the trees `old` and `new` (either may be absent) under the folder `prefix`, until it
    /// returns true. Descends only into folders whose tree ids differ, merging their entries in
    /// git's tree order, as git's own tree diff does, without libgit2's diff machinery (which
    /// re-reads the configuration for every diff: 15% of a long walk, issue 18).
    ///
    /// Returns [`Compared::OutOfOrder`] at a tree whose entries are out of git's order or
    /// repeat a name: git writes neither, but anyone who can push can, and the merge would then
    /// miss changes; the caller must not trust what was visited.
    ///
    /// # Errors
    /// Git errors reading a tree.
    fn tree_changes(
        &self,
        old: Option<git2::Oid>,
        new: Option<git2::Oid>,
        prefix: &str,
        visit: &mut Visit,
        trees: &mut TreeCache,
    ) -> Result<Compared> {
        if old == new {
            return Ok(Compared::Whole);
        }
        // Deeper than any store needs: a tree nested to exhaust the stack is malformed too.
        if prefix.bytes().filter(|b| *b == b'/').count() >= 64 {
            return Ok(Compared::OutOfOrder);
        }
        let (old, new) = (trees.get(self, old)?, trees.get(self, new)?);
        let (Some(old), Some(new)) = (Parsed::view(old.as_deref()), Parsed::view(new.as_deref()))
        else {
            return Ok(Compared::OutOfOrder);
        };
        // Only the entries between what both trees share at their start and at their end can
        // differ: a commit usually changes one entry of a large folder (issue 18).
        let (old, new) = View::differing(old, new);
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) => a.git_cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (a, b) = match order {
                std::cmp::Ordering::Less => (old.get(i), None),
                std::cmp::Ordering::Greater => (None, new.get(j)),
                std::cmp::Ordering::Equal => (old.get(i), new.get(j)),
            };
            i += usize::from(a.is_some());
            j += usize::from(b.is_some());
            let Some(e) = a.or(b) else { break };
            if a.map(|a| (a.id, a.mode)) == b.map(|b| (b.id, b.mode)) {
                continue;
            }
            if let (Some(a), Some(b)) = (a, b) {
                if a.is_tree() != b.is_tree() {
                    return Ok(Compared::OutOfOrder); // cannot be, with the names parse allows
                }
            }
            let name = String::from_utf8_lossy(e.name());
            let path = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            // Equal in git's order means both are folders or both are not.
            if e.is_tree() {
                match self.tree_changes(
                    a.map(|a| a.oid()),
                    b.map(|b| b.oid()),
                    &path,
                    visit,
                    trees,
                )? {
                    Compared::Whole => {}
                    other => return Ok(other),
                }
            } else if visit(&path, a.as_ref(), b.as_ref()) {
                return Ok(Compared::Stopped);
            }
        }
        Ok(Compared::Whole)
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
        let mut walk = self.repo.revwalk().map_err(ge("walking history"))?;
        walk.push(head.0).map_err(ge("walking history"))?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)
            .map_err(ge("walking history"))?;
        // Commit -> (path there, HEAD's path it is the history of) -> whether its content is
        // still HEAD's.
        let mut open: HashMap<git2::Oid, Open> = HashMap::new();
        let mut blobs: Option<BlobIndex> = None;
        let mut trees = TreeCache::default();
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
            let Some(mut here) = open.remove(&oid) else {
                continue;
            };
            let commit = self.repo.find_commit(oid).map_err(ge("reading a commit"))?;
            // Tree ids only: libgit2 parses a tree object in full when it is looked up, and
            // only a rename, a copy or a malformed tree needs one (issue 18).
            let tree = commit.tree_id();
            let info = CommitInfo::of(&commit);
            let keeps = keeps_content(&info);
            let parents: Vec<git2::Commit> = commit.parents().collect();
            // Per parent: the followed paths whose blob differs from this commit's, and the
            // files this commit deleted, by blob (renames that kept it).
            let mut steps: Vec<Step> = Vec::new();
            let mut parent_trees = Vec::new();
            for parent in &parents {
                let parent_tree = parent.tree_id();
                steps.push(self.changes_against(parent_tree, tree, &here, &mut trees)?);
                parent_trees.push(parent_tree);
            }
            trees.next_step();
            let differs: Vec<&BTreeMap<String, Blobs>> = steps.iter().map(|s| &s.changed).collect();
            // What goes on into each parent. A path no parent changed is taken as it is (with
            // one parent, the whole map moves on: the common case costs nothing per path).
            let mut onward: Vec<Open> = vec![Open::new(); parents.len()];
            let moved: BTreeSet<(String, String)> = if parents.is_empty() {
                here.keys().cloned().collect()
            } else {
                differs
                    .iter()
                    .flat_map(|d| d.keys())
                    .flat_map(|p| {
                        here.range((p.clone(), String::new())..)
                            .take_while(move |((q, _), _)| q == p)
                            .map(|(k, _)| k.clone())
                    })
                    .collect()
            };
            let mut to_follow: Vec<((String, String), bool)> = moved
                .into_iter()
                .map(|k| {
                    let same = here.remove(&k).unwrap_or(false);
                    (k, same)
                })
                .collect();
            if parents.len() == 1 {
                onward[0] = here;
            } else {
                for (key, same) in here {
                    for (i, _) in parents.iter().enumerate() {
                        onward[i].insert(key.clone(), same);
                    }
                }
            }
            // The parent's files by blob, for a copy that has to be looked for: carried from
            // this commit's index if there is one, else read.
            if let (Some(index), [step]) = (blobs.as_mut(), &steps[..]) {
                if index.tree == tree {
                    index.undo(step, parent_trees[0]);
                }
            }
            for ((path, head_path), same) in to_follow.drain(..) {
                // Taken unchanged from some parents (of a merge): the change is further back,
                // along those lines only.
                let same_as: Vec<usize> = (0..parents.len())
                    .filter(|i| !differs[*i].contains_key(&path))
                    .collect();
                if !same_as.is_empty() {
                    for i in same_as {
                        merge_into(&mut onward[i], (path.clone(), head_path.clone()), same);
                    }
                    continue;
                }
                // Its blob here and in each parent, as the comparison found them.
                let blob = match differs.first() {
                    Some(d) => d.get(&path).and_then(|(_, new)| *new),
                    None => self
                        .find_tree(tree)?
                        .get_path(std::path::Path::new(&path))
                        .ok()
                        .map(|e| e.id()),
                };
                if let Some(blob) = blob {
                    visit(Met::Version {
                        path: &head_path,
                        blob: BlobId(blob),
                        commit: &info,
                        same,
                    })?;
                }
                // Where each parent had it: renamed or copied from another file (by blob,
                // then as the message says; also onto a path that existed), else the same
                // path, else a copy of a file with the same blob.
                let mut found: Vec<(usize, String, bool)> = Vec::new();
                for (i, &parent_tree) in parent_trees.iter().enumerate() {
                    let mut renamed = blob
                        .and_then(|b| steps[i].gone.get(&b).cloned())
                        .filter(|p| *p != path);
                    if renamed.is_none() {
                        // As the message says: a path the parent has.
                        let named: Vec<String> = sources(&info, &path)
                            .into_iter()
                            .filter(|p| *p != path)
                            .collect();
                        if !named.is_empty() {
                            let tree = self.find_tree(parent_tree)?;
                            let in_parent = |p: &String| tree.get_path(Path::new(p)).is_ok();
                            renamed = named.into_iter().find(in_parent);
                        }
                    }
                    if let Some(source) = renamed {
                        found.push((i, source, true));
                    } else if differs[i].get(&path).is_some_and(|(old, _)| old.is_some()) {
                        found.push((i, path.clone(), false));
                    } else if let Some(b) = blob {
                        let index = match blobs.take() {
                            Some(index) if index.tree == parent_tree => index,
                            _ => BlobIndex::of(&self.find_tree(parent_tree)?),
                        };
                        let source = index.source(b).cloned();
                        blobs = Some(index);
                        if let Some(source) = source {
                            found.push((i, source.clone(), true));
                        }
                    }
                }
                if found.is_empty() && same {
                    // No parent had it under any name: its content starts here.
                    visit(Met::Changed {
                        path: &head_path,
                        commit: &info,
                    })?;
                }
                for (i, source, renamed) in found {
                    let kept = keeps || renamed;
                    if !kept && same {
                        visit(Met::Changed {
                            path: &head_path,
                            commit: &info,
                        })?;
                    }
                    merge_into(&mut onward[i], (source, head_path.clone()), same && kept);
                }
            }
            for (parent, next) in parents.iter().zip(onward) {
                match open.entry(parent.id()) {
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(next);
                    }
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        for (key, same) in next {
                            merge_into(o.get_mut(), key, same);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Per [`Repo::walk_versions`] step: how `tree` differs from `parent` ([`Step`]).
    /// Compares the trees as [`Repo::tree_changes`] does; a malformed tree is compared with
    /// libgit2's full diff instead.
    fn changes_against(
        &self,
        parent: git2::Oid,
        tree: git2::Oid,
        here: &Open,
        trees: &mut TreeCache,
    ) -> Result<Step> {
        let followed = |p: &str| {
            here.range((p.to_string(), String::new())..)
                .next()
                .is_some_and(|((q, _), _)| q == p)
        };
        let mut step = Step::default();
        let submodule = i32::from(git2::FileMode::Commit);
        let compared = self.tree_changes(
            Some(parent),
            Some(tree),
            "",
            &mut |path, old, new| {
                // Submodules are not the store's (as the diff's `ignore_submodules`).
                let old = old.filter(|e| e.mode != submodule).map(Entry::oid);
                let new = new.filter(|e| e.mode != submodule).map(Entry::oid);
                step.add(path, old, new, followed(path));
                false
            },
            trees,
        )?;
        if compared == Compared::Whole {
            return Ok(step);
        }
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        let diff = self
            .repo
            .diff_tree_to_tree(
                Some(&self.find_tree(parent)?),
                Some(&self.find_tree(tree)?),
                Some(&mut opts),
            )
            .map_err(ge("comparing a commit with its parent"))?;
        let mut step = Step::default();
        for d in diff.deltas() {
            let Some(path) = d.new_file().path().or(d.old_file().path()) else {
                continue;
            };
            let path = path.to_string_lossy();
            let old = (d.status() != git2::Delta::Added).then(|| d.old_file().id());
            let new = (d.status() != git2::Delta::Deleted).then(|| d.new_file().id());
            step.add(&path, old, new, followed(&path));
        }
        Ok(step)
    }
}

/// A file's blob in a parent and in the commit (absent where there is no such file).
type Blobs = (Option<git2::Oid>, Option<git2::Oid>);

/// How a commit differs from one parent, as [`Repo::walk_versions`] uses it.
#[derive(Default)]
struct Step {
    /// The followed paths whose blob differs, with their blobs in the parent and the commit.
    changed: BTreeMap<String, Blobs>,
    /// The files the commit deleted, by their blob in the parent (renames that kept it).
    gone: HashMap<git2::Oid, String>,
    /// Every file that differs: path, blob in the parent, blob in the commit.
    files: Vec<(String, Option<git2::Oid>, Option<git2::Oid>)>,
}

impl Step {
    fn add(&mut self, path: &str, old: Option<git2::Oid>, new: Option<git2::Oid>, followed: bool) {
        if old.is_none() && new.is_none() {
            return;
        }
        if let (Some(old), None) = (old, new) {
            self.gone.insert(old, path.to_string());
        }
        if followed {
            self.changed.insert(path.to_string(), (old, new));
        }
        self.files.push((path.to_string(), old, new));
    }
}

/// Every file of one tree by blob id: where a copy that kept the blob came from. Walking a
/// whole tree per commit that adds a file would make a history of one commit per entry (as
/// pass makes it) cost its square; so the index is carried from a commit to its parent by
/// undoing the commit's [`Step`] (issue 18).
struct BlobIndex {
    tree: git2::Oid,
    files: HashMap<git2::Oid, BTreeSet<String>>,
}

impl BlobIndex {
    /// The index of `tree`, read in full.
    fn of(tree: &git2::Tree) -> BlobIndex {
        let mut files: HashMap<git2::Oid, BTreeSet<String>> = HashMap::new();
        let _ = tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() == Some(git2::ObjectType::Blob) {
                if let Ok(name) = entry.name() {
                    files
                        .entry(entry.id())
                        .or_default()
                        .insert(format!("{dir}{name}"));
                }
            }
            git2::TreeWalkResult::Ok
        });
        BlobIndex {
            tree: tree.id(),
            files,
        }
    }

    /// Makes this (the index of a commit's tree) the index of the parent tree `parent`, which
    /// the commit changed by `step`.
    fn undo(&mut self, step: &Step, parent: git2::Oid) {
        for (path, old, new) in &step.files {
            if let Some(new) = new {
                if let Some(paths) = self.files.get_mut(new) {
                    paths.remove(path);
                    if paths.is_empty() {
                        self.files.remove(new);
                    }
                }
            }
            if let Some(old) = old {
                self.files.entry(*old).or_default().insert(path.clone());
            }
        }
        self.tree = parent;
    }

    /// A file with this blob (the first by name), if any.
    fn source(&self, blob: git2::Oid) -> Option<&String> {
        self.files.get(&blob).and_then(|paths| paths.first())
    }
}

/// The paths [`Repo::walk_versions`] follows into one commit: (path there, HEAD's path it is the
/// history of) -> whether its content there is still HEAD's.
type Open = std::collections::BTreeMap<(String, String), bool>;

/// Adds a followed path to what goes into a parent: reached along two lines, it has HEAD's
/// content if either line says so.
fn merge_into(open: &mut Open, key: (String, String), same: bool) {
    *open.entry(key).or_insert(same) |= same;
}

/// What [`Repo::tree_changes`] calls for each file that differs: its path, the entry before and
/// after (absent where there is none); true stops the comparison.
type Visit<'v> = dyn FnMut(&str, Option<&Entry>, Option<&Entry>) -> bool + 'v;

/// The trees a history walk read in its last step and in this one, kept for the next step,
/// whose commit is this step's parent (libgit2's object cache keeps no tree over 4 KiB, so a
/// folder of a few hundred entries would be read and parsed twice per commit, issue 18). Walks
/// in either direction reuse them; it holds two steps' trees at most.
#[derive(Default)]
pub struct TreeCache {
    last: HashMap<git2::Oid, Rc<Parsed>>,
    this: HashMap<git2::Oid, Rc<Parsed>>,
}

impl TreeCache {
    /// The tree `id`, parsed: the last or this step's if either read it, else read now.
    fn get(&mut self, repo: &Repo, id: Option<git2::Oid>) -> Result<Option<Rc<Parsed>>> {
        let Some(id) = id else { return Ok(None) };
        let tree = match self.this.get(&id).or(self.last.get(&id)) {
            Some(t) => t.clone(),
            None => Rc::new(Parsed::new(repo.raw_tree(id)?)),
        };
        self.this.insert(id, tree.clone());
        Ok(Some(tree))
    }

    /// Ends a step: what it read is what the next one may reuse.
    fn next_step(&mut self) {
        self.last = std::mem::take(&mut self.this);
    }
}

impl Repo {
    /// The tree `id`, parsed by libgit2.
    ///
    /// # Errors
    /// Git errors reading it.
    fn find_tree(&self, id: git2::Oid) -> Result<git2::Tree<'_>> {
        self.repo
            .find_tree(id)
            .map_err(ge("reading a commit's tree"))
    }

    /// The tree object `id` as git stores it (entries of `MODE NAME\0ID`), read from the
    /// object database without libgit2's parsing, whose octal mode parsing was a sixth of a
    /// long history walk (issue 18).
    fn raw_tree(&self, id: git2::Oid) -> Result<Box<[u8]>> {
        let odb = self.repo.odb().map_err(ge("reading a tree"))?;
        let object = odb.read(id).map_err(ge("reading a tree"))?;
        if object.kind() != git2::ObjectType::Tree {
            return Err(crate::Error::git(
                "reading a tree",
                git2::Error::from_str(&format!("{id} is not a tree")),
            ));
        }
        Ok(Box::from(object.data()))
    }
}

/// How [`Repo::tree_changes`] ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Compared {
    /// Every difference was visited.
    Whole,
    /// The visitor asked to stop.
    Stopped,
    /// A tree is malformed (out of git's order, or a name repeats): what was visited is not
    /// all that differs.
    OutOfOrder,
}

/// Where one entry is in a [`Parsed`] tree: its name's start and end, its id's bytes, its mode.
type Slot = (u32, u32, [u8; 20], i32);

/// A tree object parsed once (each tree is read on a parent's side, then again on the commit's
/// side of the next step): its bytes and where each entry is in them.
struct Parsed {
    data: Box<[u8]>,
    /// Name (start, end), id, mode; `None` when the tree does not parse or is out of git's
    /// order.
    entries: Option<Vec<Slot>>,
}

impl Parsed {
    /// Parses a raw tree object (entries of `MODE NAME\0ID`). A mode git does not write, an
    /// empty name or one with a `/`, or entries out of git's order make it malformed.
    fn new(data: Box<[u8]>) -> Parsed {
        let entries = Self::parse(&data);
        let mut parsed = Parsed { data, entries };
        if !parsed.view_in_order() {
            parsed.entries = None;
        }
        parsed
    }

    fn parse(data: &[u8]) -> Option<Vec<Slot>> {
        let mut at = 0usize;
        // An entry is at least 28 bytes (a five-digit mode, a one-byte name, an id).
        let mut out = Vec::with_capacity(data.len() / 28);
        while at < data.len() {
            let rest = &data[at..];
            let space = rest.iter().position(|b| *b == b' ')?;
            let mode = rest[..space].iter().try_fold(0i32, |m, d| match d {
                b'0'..=b'7' if m < 0o1000000 => Some(m * 8 + i32::from(d - b'0')),
                _ => None,
            })?;
            // Only the modes git writes: libgit2 and git's checkout read others (`040755` as a
            // folder, `120644` as a link) where a comparison by exact mode would not.
            if !matches!(
                mode,
                0o40000 | 0o100644 | 0o100755 | 0o100664 | 0o120000 | 0o160000
            ) {
                return None;
            }
            let nul = space + 1 + rest[space + 1..].iter().position(|b| *b == 0)?;
            // A name is one path component: empty or with a `/` it could pair a file with a
            // folder in git's order.
            let name = &rest[space + 1..nul];
            if name.is_empty() || name.contains(&b'/') {
                return None;
            }
            let id: [u8; 20] = rest.get(nul + 1..nul + 21)?.try_into().ok()?;
            let name = (
                u32::try_from(at + space + 1).ok()?,
                u32::try_from(at + nul).ok()?,
            );
            out.push((name.0, name.1, id, mode));
            at += nul + 21;
        }
        Some(out)
    }

    fn view_in_order(&self) -> bool {
        let Some(view) = Parsed::view(Some(self)) else {
            return false;
        };
        (1..view.len()).all(|i| {
            let (a, b) = (view.get(i - 1), view.get(i));
            a.zip(b)
                .is_some_and(|(a, b)| a.git_cmp(&b) == std::cmp::Ordering::Less)
        })
    }

    /// The entries of a tree (none if absent); `None` if it is malformed.
    fn view(tree: Option<&Parsed>) -> Option<View<'_>> {
        match tree {
            None => Some(View {
                data: &[],
                entries: &[],
            }),
            Some(p) => Some(View {
                data: &p.data,
                entries: p.entries.as_deref()?,
            }),
        }
    }
}

/// The entries of a [`Parsed`] tree.
struct View<'t> {
    data: &'t [u8],
    entries: &'t [Slot],
}

impl<'t> View<'t> {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Where entry `i` starts in the tree object (its mode), and where it ends (after its id).
    fn extent(&self, i: usize) -> (usize, usize) {
        let end = |k: usize| self.entries[k].1 as usize + 1 + 20;
        (if i == 0 { 0 } else { end(i - 1) }, end(i))
    }

    /// The entries of `a` and `b` (two parsed, well-formed trees) that may differ: the leading
    /// entries that lie within the bytes both objects start with are the same entries (parsed
    /// from the same bytes), and so are the trailing ones that lie within the bytes both end
    /// with, at the same distance from the end, in both. The rest is what a merge of the two in
    /// git's order has to look at; both trees are sorted, so it finds the same differences as
    /// a merge of the whole trees.
    fn differing(a: View<'t>, b: View<'t>) -> (View<'t>, View<'t>) {
        let (x, y) = (a.data, b.data);
        let head = common_prefix(x, y);
        // The two may overlap (an entry added): the entries counted at the start and at the
        // end are kept apart below.
        let tail = common_suffix(x, y);
        // Entry ends only grow: the entries wholly within the shared start come first.
        let within_head = |v: &View| v.entries.partition_point(|s| s.1 as usize + 21 <= head);
        let lo = within_head(&a).min(within_head(&b));
        let mut same_tail = 0;
        while same_tail < a.len() - lo && same_tail < b.len() - lo {
            let from_end_a = x.len() - a.extent(a.len() - 1 - same_tail).0;
            let from_end_b = y.len() - b.extent(b.len() - 1 - same_tail).0;
            if from_end_a > tail || from_end_a != from_end_b {
                break;
            }
            same_tail += 1;
        }
        let part = |v: View<'t>| View {
            data: v.data,
            entries: &v.entries[lo..v.len() - same_tail],
        };
        (part(a), part(b))
    }

    fn get(&self, i: usize) -> Option<Entry<'t>> {
        let (start, end, id, mode) = *self.entries.get(i)?;
        Some(Entry {
            name: &self.data[start as usize..end as usize],
            id,
            mode,
        })
    }
}

/// How many bytes `x` and `y` start with in common.
fn common_prefix(x: &[u8], y: &[u8]) -> usize {
    let n = x.len().min(y.len());
    let mut k = 0;
    // Blocks first: slice comparison is one `memcmp`.
    while k + 64 <= n && x[k..k + 64] == y[k..k + 64] {
        k += 64;
    }
    while k < n && x[k] == y[k] {
        k += 1;
    }
    k
}

/// How many bytes `x` and `y` end with in common.
fn common_suffix(x: &[u8], y: &[u8]) -> usize {
    let n = x.len().min(y.len());
    let (xe, ye) = (x.len(), y.len());
    let mut k = 0;
    while k + 64 <= n && x[xe - k - 64..xe - k] == y[ye - k - 64..ye - k] {
        k += 64;
    }
    while k < n && x[xe - 1 - k] == y[ye - 1 - k] {
        k += 1;
    }
    k
}

/// A tree entry, as [`Repo::tree_changes`] compares them.
#[derive(Clone, Copy)]
struct Entry<'t> {
    name: &'t [u8],
    /// The object id's bytes (made a [`git2::Oid`] only where entries differ).
    id: [u8; 20],
    mode: i32,
}

impl Entry<'_> {
    fn name(&self) -> &[u8] {
        self.name
    }

    fn oid(&self) -> git2::Oid {
        git2::Oid::from_bytes(&self.id).expect("20 bytes")
    }

    fn is_tree(&self) -> bool {
        self.mode == i32::from(git2::FileMode::Tree)
    }

    fn is_link(&self) -> bool {
        self.mode == i32::from(git2::FileMode::Link)
    }

    /// git's order of tree entries (`base_name_compare` in git's tree.c): bytes, with a
    /// folder's name compared as if followed by `/`.
    fn git_cmp(&self, other: &Entry) -> std::cmp::Ordering {
        let (a, b) = (self.name(), other.name());
        let n = a.len().min(b.len());
        let end = |name: &[u8], e: &Entry| {
            name.get(n)
                .copied()
                .unwrap_or(if e.is_tree() { b'/' } else { 0 })
        };
        a[..n]
            .cmp(&b[..n])
            .then_with(|| end(a, self).cmp(&end(b, other)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::is_membership_file;

    /// A repository, and commits made from `(path, content, mode)` changes on top of a parent.
    struct Lab {
        _dir: tempfile::TempDir,
        repo: Repo,
    }

    /// A path, and its new content and mode (none: removed).
    type Change<'a> = (&'a str, Option<(&'a [u8], i32)>);

    const FILE: i32 = 0o100644;
    const LINK: i32 = 0o120000;

    impl Lab {
        fn new() -> Lab {
            let dir = tempfile::tempdir().unwrap();
            git2::Repository::init(dir.path()).unwrap();
            let repo = Repo::open(dir.path()).unwrap();
            Lab { _dir: dir, repo }
        }

        fn commit(&self, parent: Option<CommitId>, changes: &[Change]) -> CommitId {
            let git = &self.repo.repo;
            let base = match parent {
                Some(p) => git.find_commit(p.0).unwrap().tree().unwrap(),
                None => git
                    .find_tree(git.treebuilder(None).unwrap().write().unwrap())
                    .unwrap(),
            };
            let mut update = git2::build::TreeUpdateBuilder::new();
            for (path, change) in changes {
                match change {
                    Some((data, m)) => {
                        let blob = git.blob(data).unwrap();
                        update.upsert(*path, blob, mode(*m));
                    }
                    None => {
                        update.remove(*path);
                    }
                }
            }
            let tree = update.create_updated(git, &base).unwrap();
            self.commit_tree(parent, tree)
        }

        fn commit_tree(&self, parent: Option<CommitId>, tree: git2::Oid) -> CommitId {
            let git = &self.repo.repo;
            let who = git2::Signature::new("T", "t@x", &git2::Time::new(1, 0)).unwrap();
            let tree = git.find_tree(tree).unwrap();
            let parents: Vec<git2::Commit> = parent
                .map(|p| git.find_commit(p.0).unwrap())
                .into_iter()
                .collect();
            let parents: Vec<&git2::Commit> = parents.iter().collect();
            CommitId(git.commit(None, &who, &who, "c", &tree, &parents).unwrap())
        }

        fn membership(&self, commit: CommitId, parent: CommitId) -> bool {
            self.repo
                .touches(
                    commit,
                    parent,
                    &|p, link| link || is_membership_file(p),
                    &mut TreeCache::default(),
                )
                .unwrap()
        }
    }

    fn mode(mode: i32) -> git2::FileMode {
        match mode {
            LINK => git2::FileMode::Link,
            _ => git2::FileMode::Blob,
        }
    }

    #[test]
    fn touches_finds_membership_files_and_links_deep_in_the_tree_only() {
        let lab = Lab::new();
        let root = lab.commit(
            None,
            &[
                (".gpg-id", Some((b"A\n", FILE))),
                ("a/b/.gpg-id", Some((b"B\n", FILE))),
                ("a/b/x.gpg", Some((b"x1", FILE))),
                ("a/c/y.gpg", Some((b"y1", FILE))),
                (".public-keys/k.asc", Some((b"k", FILE))),
            ],
        );
        let edit = lab.commit(Some(root), &[("a/b/x.gpg", Some((b"x2", FILE)))]);
        assert!(!lab.membership(edit, root), "an entry's new content");
        let add = lab.commit(Some(root), &[("a/d/z.gpg", Some((b"z", FILE)))]);
        assert!(!lab.membership(add, root), "a new entry in a new folder");
        let recipients = lab.commit(Some(root), &[("a/b/.gpg-id", Some((b"C\n", FILE)))]);
        assert!(lab.membership(recipients, root), "a nested .gpg-id");
        let sig = lab.commit(Some(root), &[("a/c/.gpg-id.sig", Some((b"s", FILE)))]);
        assert!(lab.membership(sig, root), "a new .gpg-id.sig");
        let key = lab.commit(Some(root), &[(".public-keys/k.asc", None)]);
        assert!(lab.membership(key, root), "a removed key");
        assert!(lab.membership(root, key), "a key added back");
        let link = lab.commit(Some(root), &[("a/c/l", Some((b"../b", LINK)))]);
        assert!(lab.membership(link, root), "a new symbolic link");
        let emptied = lab.commit(Some(root), &[("a/c/y.gpg", None)]);
        let file = lab.commit(Some(emptied), &[("a/c", Some((b"f", FILE)))]);
        assert!(!lab.membership(file, root), "a folder replaced by a file");
        let deep = lab.commit(Some(root), &[("a/b/.gpg-id", None), ("a/b/x.gpg", None)]);
        let deep = lab.commit(Some(deep), &[("a/b", Some((b"f", FILE)))]);
        assert!(
            lab.membership(deep, root),
            "a folder with a .gpg-id replaced by a file"
        );
        assert!(lab.membership(recipients, edit), "two commits apart");
    }

    /// A tree out of git's order could hide an entry from a merge of the two trees: it counts
    /// as touching, so the trust walk judges the commit in full.
    #[test]
    fn a_tree_out_of_git_order_counts_as_touching() {
        let lab = Lab::new();
        let root = lab.commit(None, &[("b.gpg", Some((b"1", FILE)))]);
        let git = &lab.repo.repo;
        let blob = git.blob(b"2").unwrap();
        let raw = |name: &str| {
            let mut e = format!("100644 {name}\0").into_bytes();
            e.extend_from_slice(blob.as_bytes());
            e
        };
        let commit_of = |names: [&str; 2]| {
            let bytes: Vec<u8> = names.into_iter().flat_map(raw).collect();
            let odb = git.odb().unwrap();
            lab.commit_tree(
                Some(root),
                odb.write(git2::ObjectType::Tree, &bytes).unwrap(),
            )
        };
        let bad = commit_of(["b.gpg", "a.gpg"]);
        assert!(lab.membership(bad, root));
        // A name with a `/`, or a mode git does not write (libgit2 reads `040755` as a folder).
        let slash = commit_of(["a.gpg", "b/c"]);
        assert!(lab.membership(slash, root));
        let odd = {
            let mut bytes = b"40755 x\0".to_vec();
            bytes.extend_from_slice(git.treebuilder(None).unwrap().write().unwrap().as_bytes());
            let odb = git.odb().unwrap();
            lab.commit_tree(
                Some(root),
                odb.write(git2::ObjectType::Tree, &bytes).unwrap(),
            )
        };
        assert!(lab.membership(odd, root));
        let good = commit_of(["a.gpg", "b.gpg"]);
        assert!(!lab.membership(good, root));
    }

    /// A tree object of files named `names[i]` with ids of `ids[i]` repeated.
    fn parsed<S: AsRef<str>>(entries: &[(S, u8)]) -> Parsed {
        let mut data = Vec::new();
        for (name, id) in entries {
            data.extend_from_slice(format!("100644 {}\0", name.as_ref()).as_bytes());
            data.extend_from_slice(&[*id; 20]);
        }
        Parsed::new(data.into_boxed_slice())
    }

    fn names<'v>(v: &View<'v>) -> Vec<&'v str> {
        (0..v.len())
            .map(|i| std::str::from_utf8(v.get(i).unwrap().name).unwrap())
            .collect()
    }

    /// Only the entries between what two trees share at both ends are merged.
    #[test]
    fn trees_are_merged_only_where_their_bytes_differ() {
        let ten: Vec<(String, u8)> = (0..10).map(|i| (format!("e{i}.gpg"), i as u8)).collect();
        let base: Vec<(&str, u8)> = ten.iter().map(|(n, i)| (n.as_str(), *i)).collect();
        let window = |a: &[(&str, u8)], b: &[(&str, u8)]| {
            let (pa, pb) = (parsed(a), parsed(b));
            let (va, vb) = View::differing(
                Parsed::view(Some(&pa)).unwrap(),
                Parsed::view(Some(&pb)).unwrap(),
            );
            (
                names(&va).into_iter().map(String::from).collect::<Vec<_>>(),
                names(&vb).into_iter().map(String::from).collect::<Vec<_>>(),
            )
        };
        let none: Vec<String> = Vec::new();
        assert_eq!(window(&base, &base), (none.clone(), none.clone()));
        // One entry's id: only that entry, on both sides (also when ids share their first
        // bytes with the old one: the shared start reaches into the entry, not past it).
        let mut edited = base.clone();
        edited[5].1 = 99;
        let five = vec!["e5.gpg".to_string()];
        assert_eq!(window(&base, &edited), (five.clone(), five.clone()));
        // An entry added: nothing on one side, the new entry on the other.
        let mut added = base.clone();
        added.insert(3, ("e2x.gpg", 7));
        assert_eq!(
            window(&base, &added),
            (none.clone(), vec!["e2x.gpg".into()])
        );
        assert_eq!(
            window(&added, &base),
            (vec!["e2x.gpg".into()], none.clone())
        );
        // The first and the last changed: everything between is looked at.
        let mut ends = base.clone();
        ends[0].1 = 50;
        ends[9].1 = 51;
        let (a, b) = window(&base, &ends);
        assert_eq!((a.len(), b.len()), (10, 10));
        // Empty trees.
        assert_eq!(window(&[], &[]), (none.clone(), none.clone()));
        assert_eq!(window(&[], &base[..1]), (none, vec!["e0.gpg".into()]));
    }

    /// Whatever two trees differ in lies in the entries [`View::differing`] keeps, on random
    /// pairs of trees whose names and ids share long runs of bytes.
    #[test]
    fn the_merge_window_holds_every_difference() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let tree = |next: &mut dyn FnMut(u64) -> u64| {
            let mut t: BTreeMap<String, u8> = BTreeMap::new();
            for _ in 0..next(9) {
                t.insert(format!("e{}", next(12)), next(3) as u8);
            }
            t
        };
        for _ in 0..2000 {
            let (a, b) = (tree(&mut next), tree(&mut next));
            let list = |t: &BTreeMap<String, u8>| -> Vec<(String, u8)> {
                t.iter().map(|(n, i)| (n.clone(), *i)).collect()
            };
            let (la, lb) = (list(&a), list(&b));
            let (pa, pb) = (parsed(&la), parsed(&lb));
            let (va, vb) = View::differing(
                Parsed::view(Some(&pa)).unwrap(),
                Parsed::view(Some(&pb)).unwrap(),
            );
            let (wa, wb) = (names(&va), names(&vb));
            for name in a.keys().chain(b.keys()) {
                if a.get(name) != b.get(name) {
                    assert!(
                        (!a.contains_key(name) || wa.contains(&name.as_str()))
                            && (!b.contains_key(name) || wb.contains(&name.as_str())),
                        "{name} differs but is outside the window: {la:?} {lb:?}"
                    );
                }
            }
        }
    }
}
