//! The object database: blob and commit ids, reading blobs from any thread, and streaming a
//! change's new blobs into one pack file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};

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

/// A blob framed for a pack file: its id and its pack entry (type and size header, then the
/// zlib stream). Made on any thread; written by [`Repo::write_pack`].
pub struct PackedBlob {
    pub(super) blob: BlobId,
    pub(super) entry: Vec<u8>,
}

impl PackedBlob {
    /// Hashes and frames `data`. Ciphertext does not compress, so its zlib stream only stores;
    /// other files (`compress`) are deflated.
    pub fn new(data: &[u8], compress: bool) -> Result<PackedBlob> {
        let oid = Oid::hash_object(ObjectType::Blob, data).map_err(ge("hashing a blob"))?;
        let mut entry = Vec::with_capacity(data.len() + 32);
        let mut size = data.len();
        let mut byte = (3u8 << 4) | (size & 0x0f) as u8; // 3: blob
        size >>= 4;
        while size > 0 {
            entry.push(byte | 0x80);
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        entry.push(byte);
        let level = if compress {
            flate2::Compression::fast()
        } else {
            flate2::Compression::none()
        };
        let mut z = flate2::write::ZlibEncoder::new(entry, level);
        z.write_all(data)
            .and_then(|_| z.finish())
            .map(|entry| PackedBlob {
                blob: BlobId(oid),
                entry,
            })
            .map_err(|e| Error::Git {
                what: "framing a blob".into(),
                message: e.to_string(),
            })
    }

    pub fn id(&self) -> BlobId {
        self.blob
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
        objects.as_ref().map_err(|e| Error::Git {
            what: "opening the repository".into(),
            message: e.to_string(),
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

    /// Streams exactly `count` blobs into one new pack file. `fill` gets a sink for the
    /// [`PackedBlob`]s; the pack joins the object database only if `fill` succeeds with `count`
    /// blobs written. Otherwise, or if vault dies meanwhile, only a temporary file is left, which
    /// libgit2 removes (or `git gc` prunes): a change that does not happen adds no object.
    pub fn write_pack<T>(
        &self,
        count: usize,
        fill: impl FnOnce(&mut dyn FnMut(PackedBlob) -> Result<()>) -> Result<T>,
    ) -> Result<(T, Vec<PathBuf>)> {
        let odb = self.repo.odb().map_err(ge("opening the object database"))?;
        let packs_before = self.pack_files();
        let mut writer = odb.packwriter().map_err(ge("starting a pack"))?;
        let mut sha = sha1_smol::Sha1::new();
        let io = |e: std::io::Error| Error::Git {
            what: format!(
                "writing a pack into {}",
                self.repo.path().join("objects/pack").display()
            ),
            message: size_limit_message(&e).unwrap_or_else(|| e.to_string()),
        };
        let mut header = Vec::with_capacity(12);
        header.extend_from_slice(b"PACK");
        header.extend_from_slice(&2u32.to_be_bytes());
        header.extend_from_slice(
            &u32::try_from(count)
                .expect("fewer than 4 billion objects")
                .to_be_bytes(),
        );
        sha.update(&header);
        writer.write_all(&header).map_err(io)?;
        let mut written = 0usize;
        let value = fill(&mut |packed: PackedBlob| {
            sha.update(&packed.entry);
            writer.write_all(&packed.entry).map_err(io)?;
            written += 1;
            Ok(())
        })?;
        if written != count {
            return Err(Error::Git {
                what: "writing a pack".into(),
                message: format!("{written} objects written, {count} announced"),
            });
        }
        writer.write_all(&sha.digest().bytes()).map_err(io)?;
        writer.commit().map_err(ge("finishing the pack"))?;
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
