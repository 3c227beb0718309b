//! The only module that imports git2: the store's repository, its history, and the protocol
//! that makes every change all or nothing.
//!
//! The committed git state is the truth. A change is built entirely beside the store's files:
//! a journal saying a change is under way is made durable ([`Repo::begin`]); the new blobs are
//! streamed from memory into one pack file (which joins the object database only once complete,
//! so a change that stops adds nothing) while each changed file's new content is written next to
//! it as a hidden temporary (`.NAME.XXXXXXXX.vault-tmp`, see [`Staging`]); then the trees and
//! the commit.
//! Then, in order: one flush makes all of it durable, the journal is completed with the new
//! commit, the branch moves from the old commit to the new one (the commit point), each temporary
//! whose content hashes to the committed blob is renamed over its file (anything else is written
//! from the object database), the index is updated from their stat data (no re-hashing), and the
//! journal is removed. An interruption before the branch moves leaves the old commit, and
//! [`Repo::recover`] removes the temporaries; after it, [`Repo::recover`] finishes the work-tree
//! update from the new commit. Either way the store is wholly before or wholly after, and every
//! file is replaced by a rename, so a reader (pass, git) never sees half a file.
//!
//! Whatever is committed is hostile input: temporaries are created exclusively (`O_EXCL`, so a
//! planted link at that name is never followed) under unpredictable names, and vault never writes
//! or deletes through a folder that is a symbolic link. One writer at a time: [`Repo::lock`].

mod fault;
mod journal;
mod lock;
mod log;
mod merge;
mod objects;
mod remote;
mod repo;
mod transaction;

pub(crate) use fault::fault_point;
pub use journal::{write_file_durably, Recovery};
pub use lock::StoreLock;
pub use log::{trailers, CommitInfo, Met, TreeCache};
pub use merge::{BothChanged, Resolution};
pub use objects::{BlobId, CommitId, NewBlob, Objects};
pub use remote::{Standing, Upstream};
pub use repo::{FileKind, Repo, TreeFile};
pub use transaction::{Change, Signer, Staging, FILE_SIZE_LIMIT_HIT};

// Shared by the files of this module only.
use journal::Journal;
use objects::short_id;
use repo::ge;
use transaction::write_failure;
