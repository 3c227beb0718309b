//! Merging the upstream into the branch: libgit2's three-way merge for every path one side
//! changed, and the caller's decision for every path both sides changed differently (vault
//! decides those by what the files mean: recipient sets, rosters, certificates, plaintexts).
//! The result is an unsigned commit that no ref points to: the caller builds the real, signed
//! merge commit from it ([`Change::replaces`]).

use std::collections::{BTreeMap, BTreeSet};

use git2::Oid;

use super::transaction::index_entry;
use super::*;
use crate::error::Result;

/// A path both sides changed, differently, since their merge base. `None`: absent there.
#[derive(Debug, Clone)]
pub struct BothChanged {
    pub path: String,
    pub base: Option<BlobId>,
    pub ours: Option<BlobId>,
    pub theirs: Option<BlobId>,
}

/// What to do with a path both sides changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// This content (`None`: the path is deleted).
    Take(Option<BlobId>),
    /// This content, and another file beside it (`vault sync --keep-both`).
    Both {
        keep: BlobId,
        also: (String, BlobId),
    },
    /// It cannot be merged, and why, for people.
    Conflict(String),
}

impl Repo {
    /// Merges `theirs` into `ours` from their merge `base`: `resolve` decides every path both
    /// sides changed differently (regular files and links alike; a path whose kind changed is
    /// one of them). Returns the merged, unsigned commit (parents `ours`, `theirs`; no ref moves),
    /// or every conflict with its reason.
    ///
    /// # Errors
    /// `resolve`'s errors; git errors.
    pub fn merge_trees(
        &self,
        (base, ours, theirs): (CommitId, CommitId, CommitId),
        message: &str,
        mut resolve: impl FnMut(&BothChanged) -> Result<Resolution>,
    ) -> Result<std::result::Result<CommitId, Vec<(String, String)>>> {
        let files = |c: CommitId| -> Result<BTreeMap<String, (Oid, FileKind)>> {
            Ok(self
                .files(c)?
                .into_iter()
                .map(|f| (f.path, (f.blob.0, f.kind)))
                .collect())
        };
        let (b, o, t) = (files(base)?, files(ours)?, files(theirs)?);
        let paths: BTreeSet<&String> = b.keys().chain(o.keys()).chain(t.keys()).collect();
        let commit = |c: CommitId| self.repo.find_commit(c.0).map_err(ge("reading a commit"));
        let (our_commit, their_commit) = (commit(ours)?, commit(theirs)?);
        let mut index = self
            .repo
            .merge_commits(&our_commit, &their_commit, None)
            .map_err(ge("merging the upstream"))?;
        let mut conflicts = Vec::new();
        for path in paths {
            let (pb, po, pt) = (b.get(path), o.get(path), t.get(path));
            if po == pt || po == pb || pt == pb {
                continue; // one side (or neither) changed it: libgit2's merge took that side
            }
            let blob = |x: Option<&(Oid, FileKind)>| x.map(|(id, _)| BlobId(*id));
            let both = BothChanged {
                path: path.clone(),
                base: blob(pb),
                ours: blob(po),
                theirs: blob(pt),
            };
            let kinds_ok = [po, pt]
                .iter()
                .flatten()
                .all(|(_, kind)| *kind == FileKind::Regular);
            let resolution = if kinds_ok {
                resolve(&both)?
            } else {
                Resolution::Conflict("a link or another special file changed on both sides".into())
            };
            let _ = index.conflict_remove(std::path::Path::new(path));
            match resolution {
                Resolution::Take(Some(id)) => index
                    .add(&index_entry(path, id.0, None))
                    .map_err(ge("merging the upstream"))?,
                Resolution::Take(None) => {
                    let _ = index.remove_path(std::path::Path::new(path));
                }
                Resolution::Both { keep, also } => {
                    index
                        .add(&index_entry(path, keep.0, None))
                        .map_err(ge("merging the upstream"))?;
                    index
                        .add(&index_entry(&also.0, also.1 .0, None))
                        .map_err(ge("merging the upstream"))?;
                }
                Resolution::Conflict(why) => conflicts.push((path.clone(), why)),
            }
        }
        if index.has_conflicts() {
            for c in index.conflicts().map_err(ge("merging the upstream"))? {
                let c = c.map_err(ge("merging the upstream"))?;
                let entry = c.our.or(c.their).or(c.ancestor);
                if let Some(e) = entry {
                    let path = String::from_utf8_lossy(&e.path).into_owned();
                    if !conflicts.iter().any(|(p, _)| *p == path) {
                        conflicts.push((path, "git could not merge it".into()));
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Ok(Err(conflicts));
        }
        let tree_id = index
            .write_tree_to(&self.repo)
            .map_err(ge("writing the merged tree"))?;
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(ge("reading the merged tree"))?;
        let author = self.author()?;
        let merged = self
            .repo
            .commit(
                None,
                &author,
                &author,
                message,
                &tree,
                &[&our_commit, &their_commit],
            )
            .map_err(ge("writing the merge"))?;
        Ok(Ok(CommitId(merged)))
    }

    /// The parents of `commit`.
    pub fn parents(&self, commit: CommitId) -> Result<Vec<CommitId>> {
        let c = self
            .repo
            .find_commit(commit.0)
            .map_err(ge("reading a commit"))?;
        Ok(c.parent_ids().map(CommitId).collect())
    }
}
