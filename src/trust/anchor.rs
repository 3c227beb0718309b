//! The per-clone trust anchor: the commit and fingerprints this clone trusts, kept in
//! `.git/vault-anchor` (local, never in the repository).

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::Reader;
use crate::crypto::Fingerprint;
use crate::error::{Error, Result};
use crate::git::{write_file_durably, CommitId, Repo};

const ANCHOR_FILE: &str = "vault-anchor";

/// The commit and the fingerprints this clone trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub commit: CommitId,
    pub trusted: BTreeSet<Fingerprint>,
}

#[derive(Serialize, Deserialize)]
struct AnchorFile {
    commit: String,
    trusted: Vec<String>,
}

fn anchor_path(repo: &Repo) -> PathBuf {
    repo.git_dir().join(ANCHOR_FILE)
}

impl Anchor {
    /// This clone's anchor, if one was set.
    ///
    /// # Errors
    /// [`Error::Roster`] if the file is unreadable (naming it).
    pub fn load(repo: &Repo) -> Result<Option<Anchor>> {
        let path = anchor_path(repo);
        let _ = fs::remove_file(path.with_extension("tmp")); // a save cut short
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", path, e)),
        };
        let bad = |problem: &str| Error::BadFile {
            file: path.display().to_string(),
            problem: problem.into(),
        };
        let file: AnchorFile =
            toml::from_str(&text).map_err(|_| bad("it is not a valid trust anchor"))?;
        let commit =
            CommitId::parse(&file.commit).ok_or_else(|| bad("its commit id is invalid"))?;
        let trusted = file
            .trusted
            .iter()
            .map(|f| Fingerprint::parse(f).ok_or_else(|| bad("a fingerprint is invalid")))
            .collect::<Result<_>>()?;
        Ok(Some(Anchor { commit, trusted }))
    }

    /// Saves this clone's anchor durably (`.git/vault-anchor`, see
    /// [`crate::git::write_file_durably`]).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file.
    pub fn save(&self, repo: &Repo) -> Result<()> {
        let file = AnchorFile {
            commit: self.commit.to_string(),
            trusted: self.trusted.iter().map(|f| f.to_string()).collect(),
        };
        let text = format!(
            "# vault's trust anchor for this clone (local, not part of the store).\n{}",
            toml::to_string(&file).expect("the anchor always serialises")
        );
        write_file_durably(&anchor_path(repo), text.as_bytes())
    }
}

/// The anchor for a clone that has none yet: HEAD, trusting every recipient at HEAD.
///
/// # Errors
/// Git errors.
pub fn anchor_at(repo: &Repo, head: CommitId) -> Result<Anchor> {
    let state = Reader::new(repo).state(head)?;
    Ok(Anchor {
        commit: head,
        trusted: state
            .recipients()
            .into_iter()
            .filter_map(Fingerprint::parse)
            .collect(),
    })
}
