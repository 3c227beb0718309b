//! Who reads what at one commit, as [`super::verify`] compares it between a commit and its
//! parent.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::crypto::{Fingerprint, MemberKey};
use crate::error::Result;
use crate::git::{BlobId, CommitId, Repo};
use crate::snapshot::matching;
use crate::store::{gpg_id_path, parse_gpg_id, Layout, Recipient};

/// Who reads what at one commit.
#[derive(Default)]
pub(super) struct State {
    /// (folder, recipient): recipient is a fingerprint, or `line: TEXT` for an unresolved line,
    /// or `unreadable FILE` for a `.gpg-id` that does not parse.
    pub pairs: BTreeSet<(String, String)>,
    /// The certificates in `.public-keys/` that parse, by primary fingerprint.
    pub keys: BTreeMap<Fingerprint, MemberKey>,
    /// `.public-keys/` file name -> blob.
    pub key_files: BTreeMap<String, BlobId>,
    /// The `.members.toml` blob.
    pub members: Option<BlobId>,
    /// Folder -> its `.gpg-id` blob.
    pub gpg_ids: BTreeMap<String, BlobId>,
    /// `.gpg-id.sig` path -> blob.
    pub signatures: BTreeMap<String, BlobId>,
}

impl State {
    /// Every recipient in any `.gpg-id`.
    pub fn recipients(&self) -> BTreeSet<&str> {
        self.pairs.iter().map(|(_, r)| r.as_str()).collect()
    }
}

/// Reads [`State`]s from history, parsing each `.public-keys/` blob once.
pub(super) struct Reader<'r> {
    repo: &'r Repo,
    keys: HashMap<BlobId, Option<MemberKey>>,
}

impl<'r> Reader<'r> {
    pub fn new(repo: &'r Repo) -> Reader<'r> {
        Reader {
            repo,
            keys: HashMap::new(),
        }
    }

    /// The state at `commit`.
    ///
    /// # Errors
    /// Git errors reading its tree or blobs.
    pub fn state(&mut self, commit: CommitId) -> Result<State> {
        let layout = Layout::new(self.repo.files(commit)?);
        let mut keys = BTreeMap::new();
        for blob in layout.public_keys.values() {
            if !self.keys.contains_key(blob) {
                let parsed = MemberKey::parse(&self.repo.read(*blob)?).ok();
                self.keys.insert(*blob, parsed);
            }
            if let Some(Some(k)) = self.keys.get(blob) {
                keys.insert(k.fingerprint(), k.clone());
            }
        }
        let mut pairs = BTreeSet::new();
        for (folder, blob) in &layout.gpg_ids {
            let file = gpg_id_path(folder);
            let bytes = self.repo.read(*blob)?;
            match parse_gpg_id(&file, &bytes) {
                Ok(lines) => {
                    for line in lines {
                        let who = match (matching(&line.recipient, keys.values()), &line.recipient)
                        {
                            (Ok(one), _) => one.to_string(),
                            (Err(_), Recipient::Fingerprint(f)) => f.to_string(),
                            _ => format!("line: {}", line.text),
                        };
                        pairs.insert((folder.clone(), who));
                    }
                }
                Err(_) => {
                    pairs.insert((folder.clone(), format!("unreadable {file}")));
                }
            }
        }
        Ok(State {
            pairs,
            keys,
            key_files: layout.public_keys,
            members: layout.members,
            gpg_ids: layout.gpg_ids,
            signatures: layout.signatures,
        })
    }
}
