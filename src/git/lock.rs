//! One writer at a time: the store's lock.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use super::*;
use crate::error::{Error, Result};

/// This store's writer lock, held until dropped (see [`Repo::lock`]). The operating system
/// releases it when the process ends, however it ends, so it can never be left stale.
#[derive(Debug)]
pub struct StoreLock {
    pub(super) _file: fs::File,
}

pub(super) const LOCK_FILE: &str = "vault.lock";

impl Repo {
    pub(super) fn lock_file(&self) -> Result<fs::File> {
        let path = self.repo.path().join(LOCK_FILE);
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("opening", path, e))
    }

    /// Takes the store's writer lock: an exclusive `flock` on `.git/vault.lock`, which then holds
    /// this process's id for the next one to name. Every command that may write, or finish an
    /// interrupted change, holds it from before it reads the journal until it is done, so two runs
    /// never take each other's live change for a crashed one. Waits up to `wait` for another
    /// holder (checking every 50 ms).
    ///
    /// # Errors
    /// [`Error::Busy`] with the other process's id when it still holds the lock after `wait`;
    /// [`Error::Io`].
    pub fn lock(&self, wait: Duration) -> Result<StoreLock> {
        let start = Instant::now();
        loop {
            if let Some(lock) = self.try_lock()? {
                return Ok(lock);
            }
            if start.elapsed() >= wait {
                let pid = fs::read_to_string(self.repo.path().join(LOCK_FILE))
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                return Err(Error::Busy { pid });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Repo::lock`] without waiting: `None` while another process holds it.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let mut file = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io("locking", self.repo.path().join(LOCK_FILE), e))
            }
        }
        // Best effort: the id only makes another run's message more helpful.
        let _ = file
            .set_len(0)
            .and_then(|_| write!(file, "{}", std::process::id()));
        Ok(Some(StoreLock { _file: file }))
    }
}
