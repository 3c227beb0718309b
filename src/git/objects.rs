//! The object database: blob and commit ids, reading blobs from any thread, and streaming a
//! change's new blobs into one pack file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Odb, Oid, Repository};

use super::*;
use crate::error::{Error, Result};

/// A blob in the store's object database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobId(pub(super) Oid);

impl BlobId {
    /// The id git gives a blob holding `data` (SHA-1 of `blob LEN\0DATA`), whether or not it is
    /// in any repository.
    pub fn hash(data: &[u8]) -> BlobId {
        BlobId(Oid::hash_object(ObjectType::Blob, data).expect("hashing memory cannot fail"))
    }
}

/// A commit in the store's history.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CommitId(pub(super) Oid);

impl std::fmt::Display for CommitId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl CommitId {
    /// The first ten hex digits, as people quote a commit.
    pub fn short(&self) -> String {
        short_id(self.0)
    }
}

pub(super) fn short_id(oid: Oid) -> String {
    oid.to_string().chars().take(10).collect()
}

/// A new blob for [`Repo::write_pack`]: its content and id, hashed on any worker thread.
pub struct NewBlob {
    pub(super) id: BlobId,
    pub(super) data: Vec<u8>,
}

impl NewBlob {
    /// Takes `data` and hashes it (git's blob id: SHA-1 of `blob LEN\0DATA`).
    pub fn new(data: Vec<u8>) -> NewBlob {
        NewBlob {
            id: BlobId::hash(&data),
            data,
        }
    }

    pub fn id(&self) -> BlobId {
        self.id
    }
}

/// Reads blobs from a worker thread (each worker holds its own repository handle).
pub struct Objects(pub(super) Repository);

impl Objects {
    /// Opens the object database of the repository at `root` (from any thread).
    pub fn open(root: &Path) -> Result<Objects> {
        Repository::open(root)
            .map(Objects)
            .map_err(ge("opening the repository"))
    }

    /// The handle a worker opened with [`Objects::open`], or the error opening it gave (said
    /// again for each use, as the worker's error is not consumed).
    pub fn opened(objects: &Result<Objects>) -> Result<&Objects> {
        objects.as_ref().map_err(|e| match e {
            Error::Git { what, cause } => Error::git(
                what.clone(),
                git2::Error::new(cause.code(), cause.class(), cause.message()),
            ),
            other => Error::git_msg("opening the repository", &other.with_causes()),
        })
    }

    pub fn read(&self, blob: BlobId) -> Result<Vec<u8>> {
        self.0
            .find_blob(blob.0)
            .map(|b| b.content().to_vec())
            .map_err(|e| Error::git("reading a blob", e))
    }
}

impl CommitId {
    /// Parses a full hex commit id.
    pub fn parse(hex: &str) -> Option<CommitId> {
        Oid::from_str(hex).ok().map(CommitId)
    }
}

impl Repo {
    /// The bytes of a blob.
    pub fn read(&self, blob: BlobId) -> Result<Vec<u8>> {
        self.repo
            .find_blob(blob.0)
            .map(|b| b.content().to_vec())
            .map_err(ge("reading a blob"))
    }

    /// Writes a blob from memory into the object database.
    pub fn write_blob(&self, data: &[u8]) -> Result<BlobId> {
        self.repo
            .blob(data)
            .map(BlobId)
            .map_err(ge("writing a blob"))
    }

    /// Writes a change's new blobs as one new pack file. `fill` gets a sink for the
    /// [`NewBlob`]s, which collects them in memory (an object database of libgit2's mempack
    /// backend alone, so that nothing else goes there); once `fill` succeeds, libgit2's
    /// pack builder (zlib, delta search on every core) streams them into the object database's
    /// pack writer, which indexes the pack and only then moves it into `objects/pack`. If `fill`
    /// fails, or vault dies meanwhile, nothing was written (or only a temporary libgit2 removes,
    /// or `git gc` prunes): a change that does not happen adds no object.
    ///
    /// Returns `fill`'s value and the files of the new pack (for [`Repo::discard_packs`]).
    ///
    /// # Errors
    /// `fill`'s error; [`Error::Git`] if libgit2 cannot build or write the pack (the file size
    /// limit named as such).
    pub fn write_pack<T>(
        &self,
        fill: impl FnOnce(&mut dyn FnMut(NewBlob) -> Result<()>) -> Result<T>,
    ) -> Result<(T, Vec<PathBuf>)> {
        // An object database of its own, in memory only (libgit2's mempack backend): every blob
        // goes there, without looking for it on disk first, and nothing else is written there.
        let memory = {
            let odb = Odb::new().map_err(ge("collecting new objects in memory"))?;
            odb.add_new_mempack_backend(1)
                .map_err(ge("collecting new objects in memory"))?;
            Repository::from_odb(odb).map_err(ge("collecting new objects in memory"))?
        };
        let memory_odb = memory
            .odb()
            .map_err(ge("collecting new objects in memory"))?;
        let mut ids = Vec::new();
        let value = fill(&mut |blob: NewBlob| {
            let id = memory_odb
                .write(ObjectType::Blob, &blob.data)
                .map_err(ge("collecting a new blob"))?;
            debug_assert_eq!(id, blob.id.0);
            ids.push(id);
            Ok(())
        })?;
        let mut builder = memory.packbuilder().map_err(ge("starting a pack"))?;
        builder.set_threads(0); // as many as there are cores
        for id in &ids {
            builder
                .insert_object(*id, None)
                .map_err(ge("adding a blob to the pack"))?;
        }
        let packs_before = self.pack_files();
        let odb = self.repo.odb().map_err(ge("opening the object database"))?;
        let mut writer = odb.packwriter().map_err(ge("starting a pack"))?;
        // git2's pack writer reports any failure as "Write error": libgit2's own error says why.
        let mut failed: Option<git2::Error> = None;
        let built = builder.foreach(|chunk| match writer.write_all(chunk) {
            Ok(()) => true,
            Err(_) => {
                failed = Some(git2::Error::last_error(-1));
                false
            }
        });
        let into = || {
            format!(
                "writing a pack into {}",
                self.repo.path().join("objects/pack").display()
            )
        };
        if let Some(e) = failed {
            return Err(write_failure(into(), e));
        }
        built.map_err(|e| write_failure(into(), e))?;
        writer
            .commit()
            .map_err(|e| write_failure("finishing the pack".into(), e))?;
        drop(writer);
        odb.refresh().map_err(ge("reading the new pack"))?;
        fault_point("pack written");
        let new = self
            .pack_files()
            .into_iter()
            .filter(|p| !packs_before.contains(p))
            .collect();
        Ok((value, new))
    }

    pub(super) fn pack_files(&self) -> Vec<PathBuf> {
        fs::read_dir(self.repo.path().join("objects/pack"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    /// Removes the files of packs this run wrote for a change that then did not happen.
    pub fn discard_packs(&self, files: &[PathBuf]) {
        for f in files {
            let _ = fs::remove_file(f);
        }
    }
}
