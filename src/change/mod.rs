//! The membership changes vault makes to a [`Snapshot`]: planned in memory ([`Plan`],
//! `plan.rs`), then carried out ([`Snapshot::execute`], `execute.rs`): every entry governed by a
//! changed `.gpg-id` (or actually readable by a member losing access) whose readers are not
//! already exactly right is re-wrapped (new readers only: the session key gets an extra PKESK, the
//! data packet is kept) or re-encrypted with a fresh session key (whenever someone must lose
//! access), in parallel, blobs straight into git; then one signed commit. Nothing is written to
//! the work tree before the commit point, so an error anywhere leaves the store as it was.
//! Adopting or creating a store is `init.rs`.

mod accept;
mod content;
mod execute;
mod failures;
mod init;
mod merge;
mod plan;
mod signers;

pub use init::{adopt, create, Adopted, Keyring};
pub use merge::Settle;

use std::collections::{BTreeMap, BTreeSet};

use crate::crypto::{Fingerprint, Identity, KeyId, MemberKey};
use crate::error::{Error, Result};
use crate::git::CommitId;
use crate::store::roster::Roster;
use crate::store::{gpg_id_path, Folder, Layout};

/// What a membership change will do, before it is done.
#[derive(Debug)]
pub struct Plan {
    action: &'static str,
    subject: String,
    body: String,
    trailers: Vec<(String, String)>,
    recipients: BTreeMap<Folder, Vec<Fingerprint>>,
    changed: BTreeSet<Folder>,
    /// Folders whose `.gpg-id` stays as it is but whose entries are checked against their
    /// recipients again (a member's certificate changed: new or lost encryption subkeys).
    reread: BTreeSet<Folder>,
    key_writes: Vec<(String, Vec<u8>)>,
    /// Paths the commit deletes (a former member's key file, entries removed or renamed).
    deletes: Vec<String>,
    /// Entries written with new content (`vault insert`, `generate`, `edit`, a renamed entry
    /// whose readers change): entry file path -> plaintext, encrypted in the change to the
    /// recipients of its folder.
    content: Vec<(String, crate::secret::Secret)>,
    /// Entries written with an existing ciphertext (renamed or copied where the readers stay
    /// the same): entry file path -> blob.
    copies: Vec<(String, crate::git::BlobId)>,
    /// Entries renamed or copied by the change (`mv`, `cp`): name -> new name. Their content
    /// (password) is the same, so what is to rotate goes along.
    moved: Vec<(String, String)>,
    roster: Roster,
    /// Key ids of a member losing access: entries encrypted to them are reported for rotation.
    removed_key_ids: Vec<KeyId>,
    /// The key of a member being added (not in `.public-keys/` yet).
    added: Option<MemberKey>,
    /// pass's `PASSWORD_STORE_SIGNING_KEY`: when set, every `.gpg-id` written is signed.
    pass_signing_keys: Vec<Fingerprint>,
    /// A key other than the operator's to sign `.gpg-id` files with (`--signing-key`).
    gpg_id_signer: Option<Identity>,
    /// Folders whose `.gpg-id` is a link -> the folder whose `.gpg-id` it leads to.
    links: BTreeMap<Folder, Folder>,
    /// `vault repair`: every entry is checked against its `.gpg-id`, not only those under a
    /// changed one, and a change that finds nothing to do is refused ([`Error::NothingToRepair`]).
    every_entry: bool,
    /// The unsigned merge this change completes ([`crate::git::Change::replaces`]).
    replaces: Option<CommitId>,
    /// `vault readme`: the change creates `README.md` (every change refreshes one vault made).
    create_readme: bool,
}

impl Plan {
    /// A plan for `action` that, as it stands, changes nothing: these recipients and this
    /// roster, no file written or deleted, no message yet. The planners fill in the rest.
    fn unchanged(
        action: &'static str,
        recipients: BTreeMap<Folder, Vec<Fingerprint>>,
        roster: Roster,
    ) -> Plan {
        Plan {
            action,
            subject: String::new(),
            body: String::new(),
            trailers: Vec::new(),
            recipients,
            changed: BTreeSet::new(),
            reread: BTreeSet::new(),
            key_writes: Vec::new(),
            deletes: Vec::new(),
            content: Vec::new(),
            copies: Vec::new(),
            moved: Vec::new(),
            roster,
            removed_key_ids: Vec::new(),
            added: None,
            pass_signing_keys: Vec::new(),
            gpg_id_signer: None,
            links: BTreeMap::new(),
            every_entry: false,
            replaces: None,
            create_readme: false,
        }
    }

    /// Signs every `.gpg-id` the change writes, as pass does with `PASSWORD_STORE_SIGNING_KEY`
    /// (`keys`, empty when unset). A signature must be by a key pass accepts there: one of `keys`,
    /// else the key that signed the existing `.gpg-id.sig`. That is the operator's key, or
    /// `signer` (a key the operator holds for the purpose, e.g. the team's signing key).
    pub fn sign_gpg_ids_for_pass(&mut self, keys: Vec<Fingerprint>, signer: Option<Identity>) {
        self.pass_signing_keys = keys;
        self.gpg_id_signer = signer;
    }

    /// Whether the change checks the entries `folder`'s `.gpg-id` governs: it rewrites that
    /// `.gpg-id`, or a reader's certificate changed.
    fn rereads(&self, folder: &Folder) -> bool {
        self.changed.contains(folder) || self.reread.contains(folder)
    }

    /// Whether the change makes member `name` a former member (they read nothing after it).
    pub fn retires(&self, name: &crate::store::MemberName) -> bool {
        self.roster.fingerprint(name).is_none()
            && self.roster.former().iter().any(|f| f.name == *name)
    }

    /// Fingerprints that will be recipients after the change.
    pub fn recipients_after(&self) -> BTreeSet<Fingerprint> {
        self.recipients.values().flatten().copied().collect()
    }

    /// The `.gpg-id` files the change writes (e.g. `.gpg-id`, `ops/.gpg-id`), escaped for display.
    /// A symbolic link is named with the file it leads to (`finance/.gpg-id -> ops/.gpg-id`):
    /// writing that file changes every folder that links to it, as pass reads them.
    pub fn changed_gpg_ids(&self) -> Vec<String> {
        self.changed
            .iter()
            .map(|f| {
                let path = crate::text::escape(&gpg_id_path(f)).into_owned();
                match self.links.get(f) {
                    Some(to) => format!("{path} -> {}", crate::text::escape(&gpg_id_path(to))),
                    None => path,
                }
            })
            .collect()
    }

    /// Adds every folder that shares a changed folder's `.gpg-id` through a symbolic link to the
    /// change, with the same recipients: pass reads one file for all of them.
    fn with_links(mut self, layout: &Layout) -> Plan {
        for folder in self.changed.clone() {
            let recipients = self.recipients[&folder].clone();
            for shared in layout.sharing(&folder) {
                self.recipients.insert(shared.clone(), recipients.clone());
                self.changed.insert(shared);
            }
        }
        self.links = layout
            .gpg_id_links
            .iter()
            .filter(|(from, _)| self.changed.contains(*from))
            .map(|(f, t)| (f.clone(), t.clone()))
            .collect();
        self
    }
}

/// `identity`'s detached signature over `data`: ASCII-armored for a git commit (`gpgsig`), binary
/// for pass's `.gpg-id.sig`. Its failure is named after the key.
fn sign_as(identity: &Identity, data: &[u8], armored: bool) -> Result<Vec<u8>> {
    identity
        .sign_detached(data, armored)
        .map_err(|problem| Error::Identity {
            file: identity.fingerprint().to_string(),
            problem: problem.to_string(),
        })
}

/// What a membership change did.
#[derive(Debug)]
pub struct Outcome {
    pub commit: CommitId,
    /// Entries that kept their encrypted data and gained readers.
    pub rewrapped: usize,
    /// Entries re-encrypted with a fresh session key.
    pub reencrypted: usize,
    /// Entries governed by a changed `.gpg-id` whose readers were already right.
    pub unchanged: usize,
    /// Entries the removed member could read before the change (to rotate), as committed.
    pub exposed: Vec<String>,
    pub changed_gpg_ids: Vec<String>,
    /// What the change could not re-encrypt: foreign content in the changed folders (age files,
    /// submodules), and entries no `.gpg-id` governs that a member losing access can read; one
    /// sentence each for people (escaped): said, never hidden behind a clean summary.
    pub not_reencrypted: Vec<String>,
}

/// Callbacks for long work: progress (done, total) and whether the user asked to stop.
pub struct Monitor<'a> {
    pub progress: &'a (dyn Fn(usize, usize) + Sync),
    pub interrupted: &'a (dyn Fn() -> bool + Sync),
}

impl Monitor<'_> {
    pub fn silent() -> Monitor<'static> {
        Monitor {
            progress: &|_, _| {},
            interrupted: &|| false,
        }
    }
}

fn commit_message(subject: &str, body: &str, trailers: &[(String, String)]) -> String {
    let trailers: String = trailers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    if body.is_empty() {
        format!("{subject}\n\n{trailers}")
    } else {
        format!("{subject}\n\n{body}\n\n{trailers}")
    }
}
