//! The history: commits as [`CommitInfo`], trailers by git's rules, signatures, and the walks
//! that trust and audit make.

use std::collections::{BTreeSet, HashMap};

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
    /// full rather than trusting this shortcut).
    ///
    /// # Errors
    /// Git errors reading the commits or their trees.
    pub fn touches(
        &self,
        commit: CommitId,
        parent: CommitId,
        wanted: &dyn Fn(&str, bool) -> bool,
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
        )?;
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
    ) -> Result<Compared> {
        if old == new {
            return Ok(Compared::Whole);
        }
        let tree = |id: Option<git2::Oid>| -> Result<Option<git2::Tree>> {
            id.map(|id| self.repo.find_tree(id).map_err(ge("reading a tree")))
                .transpose()
        };
        let (old, new) = (tree(old)?, tree(new)?);
        let (old, new) = (Entry::all(old.as_ref()), Entry::all(new.as_ref()));
        if !Entry::in_order(&old) || !Entry::in_order(&new) {
            return Ok(Compared::OutOfOrder);
        }
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) => a.git_cmp(b),
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
            let name = String::from_utf8_lossy(e.name());
            let path = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            // Equal in git's order means both are folders or both are not.
            if e.is_tree() {
                match self.tree_changes(a.map(|a| a.id), b.map(|b| b.id), &path, visit)? {
                    Compared::Whole => {}
                    other => return Ok(other),
                }
            } else if visit(&path, a, b) {
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
            let tree = commit.tree().map_err(ge("reading a commit's tree"))?;
            let info = CommitInfo::of(&commit);
            let keeps = keeps_content(&info);
            let parents: Vec<git2::Commit> = commit.parents().collect();
            // Per parent: the followed paths whose blob differs from this commit's, and the
            // files this commit deleted, by blob (renames that kept it).
            let mut differs: Vec<BTreeSet<String>> = Vec::new();
            let mut deleted: Vec<HashMap<git2::Oid, String>> = Vec::new();
            let mut parent_trees = Vec::new();
            for parent in &parents {
                let parent_tree = parent.tree().map_err(ge("reading a commit's tree"))?;
                let (changed, gone) = self.changes_against(&parent_tree, &tree, &here)?;
                differs.push(changed);
                deleted.push(gone);
                parent_trees.push(parent_tree);
            }
            // What goes on into each parent. A path no parent changed is taken as it is (with
            // one parent, the whole map moves on: the common case costs nothing per path).
            let mut onward: Vec<Open> = vec![Open::new(); parents.len()];
            let moved: BTreeSet<(String, String)> = if parents.is_empty() {
                here.keys().cloned().collect()
            } else {
                differs
                    .iter()
                    .flatten()
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
            // Each parent's files by blob, made only when a copy has to be looked for.
            let mut by_blob: Vec<Option<HashMap<git2::Oid, String>>> = vec![None; parents.len()];
            for ((path, head_path), same) in to_follow.drain(..) {
                // Taken unchanged from some parents (of a merge): the change is further back,
                // along those lines only.
                let same_as: Vec<usize> = (0..parents.len())
                    .filter(|i| !differs[*i].contains(&path))
                    .collect();
                if !same_as.is_empty() {
                    for i in same_as {
                        merge_into(&mut onward[i], (path.clone(), head_path.clone()), same);
                    }
                    continue;
                }
                let blob = tree
                    .get_path(std::path::Path::new(&path))
                    .ok()
                    .map(|e| e.id());
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
                for (i, parent_tree) in parent_trees.iter().enumerate() {
                    let in_parent = |p: &str| parent_tree.get_path(std::path::Path::new(p)).is_ok();
                    let renamed = blob
                        .and_then(|b| deleted[i].get(&b).cloned())
                        .filter(|p| *p != path)
                        .or_else(|| {
                            sources(&info, &path)
                                .into_iter()
                                .find(|p| *p != path && in_parent(p))
                        });
                    if let Some(source) = renamed {
                        found.push((i, source, true));
                    } else if in_parent(&path) {
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

    /// Per [`Repo::walk_versions`] step: the paths followed in `here` whose blob differs between
    /// `parent` and `tree`, and the files `tree` no longer has, by their blob in `parent`.
    /// Compares the trees as [`Repo::tree_changes`] does; a malformed tree is compared with
    /// libgit2's full diff instead.
    fn changes_against(
        &self,
        parent: &git2::Tree,
        tree: &git2::Tree,
        here: &Open,
    ) -> Result<(BTreeSet<String>, HashMap<git2::Oid, String>)> {
        let followed = |p: &str| {
            here.range((p.to_string(), String::new())..)
                .next()
                .is_some_and(|((q, _), _)| q == p)
        };
        let mut changed = BTreeSet::new();
        let mut gone = HashMap::new();
        let submodule = i32::from(git2::FileMode::Commit);
        let compared = self.tree_changes(
            Some(parent.id()),
            Some(tree.id()),
            "",
            &mut |path, old, new| {
                // Submodules are not the store's (as the diff's `ignore_submodules`).
                let old = old.filter(|e| e.mode != submodule);
                let new = new.filter(|e| e.mode != submodule);
                if let (Some(old), None) = (old, new) {
                    gone.insert(old.id, path.to_string());
                }
                if (old.is_some() || new.is_some()) && followed(path) {
                    changed.insert(path.to_string());
                }
                false
            },
        )?;
        if compared == Compared::Whole {
            return Ok((changed, gone));
        }
        let mut opts = DiffOptions::new();
        opts.ignore_submodules(true);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(parent), Some(tree), Some(&mut opts))
            .map_err(ge("comparing a commit with its parent"))?;
        let (mut changed, mut gone) = (BTreeSet::new(), HashMap::new());
        for d in diff.deltas() {
            if d.status() == git2::Delta::Deleted {
                if let Some(p) = d.old_file().path() {
                    gone.insert(d.old_file().id(), p.to_string_lossy().into_owned());
                }
            }
            if let Some(p) = d.new_file().path().or(d.old_file().path()) {
                let p = p.to_string_lossy();
                if followed(&p) {
                    changed.insert(p.into_owned());
                }
            }
        }
        Ok((changed, gone))
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

/// What [`Repo::tree_changes`] calls for each file that differs: its path, the entry before and
/// after (absent where there is none); true stops the comparison.
type Visit<'v> = dyn FnMut(&str, Option<&Entry>, Option<&Entry>) -> bool + 'v;

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

/// A tree entry, as [`Repo::tree_changes`] compares them.
struct Entry<'t> {
    entry: git2::TreeEntry<'t>,
    id: git2::Oid,
    mode: i32,
}

impl<'t> Entry<'t> {
    /// The entries of `tree` (none if absent), borrowed from it.
    fn all(tree: Option<&'t git2::Tree>) -> Vec<Entry<'t>> {
        let Some(tree) = tree else {
            return Vec::new();
        };
        tree.iter()
            .map(|entry| Entry {
                id: entry.id(),
                mode: entry.filemode(),
                entry,
            })
            .collect()
    }

    fn name(&self) -> &[u8] {
        self.entry.name_bytes()
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

    /// Whether the entries are strictly in git's order (so no name repeats).
    fn in_order(entries: &[Entry]) -> bool {
        entries
            .windows(2)
            .all(|w| w[0].git_cmp(&w[1]) == std::cmp::Ordering::Less)
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
                .touches(commit, parent, &|p, link| link || is_membership_file(p))
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
        let mut bytes = raw("b.gpg");
        bytes.extend(raw("a.gpg"));
        let tree = git
            .odb()
            .unwrap()
            .write(git2::ObjectType::Tree, &bytes)
            .unwrap();
        let bad = lab.commit_tree(Some(root), tree);
        assert!(lab.membership(bad, root));
        let mut sorted = raw("a.gpg");
        sorted.extend(raw("b.gpg"));
        let tree = git
            .odb()
            .unwrap()
            .write(git2::ObjectType::Tree, &sorted)
            .unwrap();
        let good = lab.commit_tree(Some(root), tree);
        assert!(!lab.membership(good, root));
    }
}
