//! The open redb database, replaceable while the gateway runs, and whether storage works.
//!
//! After an I/O error (a full disk) redb refuses every later operation until the `Database` is
//! closed and opened again. Every handle therefore reaches the database through this slot, and
//! only the writer thread replaces it (see `docs/architecture.md`, "Storage faults").

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use tokio::sync::watch;

use super::{StorageError, create_tables};
use crate::metrics::StorageErrors;

/// The database file, its open handle (absent while being reopened) and the storage health.
pub(super) struct Slot {
    db: RwLock<Option<Database>>,
    path: PathBuf,
    cache_bytes: usize,
    /// True while writes commit; false from a failed commit until a probe commit succeeds.
    healthy: watch::Sender<bool>,
    /// Failed commits and reopen attempts, for `/metrics`.
    pub(super) errors: StorageErrors,
    /// Successful reopens: each one may have undone commits that were not fsync'd yet.
    reopens: AtomicU64,
}

impl Slot {
    /// Opens (or creates) the file at `path` and its tables.
    pub(super) fn open(path: PathBuf, cache_bytes: usize) -> Result<Arc<Slot>, StorageError> {
        let db = open_db(&path, cache_bytes)?;
        Ok(Arc::new(Slot {
            db: RwLock::new(Some(db)),
            path,
            cache_bytes,
            healthy: watch::Sender::new(true),
            errors: StorageErrors::default(),
            reopens: AtomicU64::new(0),
        }))
    }

    /// A read snapshot of the current database; `Unavailable` while it is being reopened.
    pub(super) fn read(&self) -> Result<ReadTransaction, StorageError> {
        let db = self.current();
        Ok(db.as_ref().ok_or(StorageError::Unavailable)?.begin_read()?)
    }

    /// A write transaction on the current database (called by the writer thread only).
    pub(super) fn begin_write(&self) -> Result<WriteTransaction, StorageError> {
        let db = self.current();
        Ok(db
            .as_ref()
            .ok_or(StorageError::Unavailable)?
            .begin_write()?)
    }

    /// Closes the failed database and opens the file again; redb repairs it on open.
    ///
    /// Readers see `Unavailable` meanwhile; the open runs outside the lock, so a slow repair
    /// never blocks a reader. On error the slot stays empty and the caller tries again later.
    pub(super) fn reopen(&self) -> Result<(), StorageError> {
        let old = self.lock_write().take();
        if let Some(old) = old
            && let Err(e) = old.close()
        {
            // Expected after an I/O error: the file is closed (and its lock released) either way.
            tracing::debug!(error = %e, "closing the failed database");
        }
        let db = open_db(&self.path, self.cache_bytes)?;
        *self.lock_write() = Some(db);
        self.reopens.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// How many times the database was reopened since the gateway started.
    pub(super) fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Acquire)
    }

    /// Whether writes currently commit.
    pub(super) fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// Records the storage health, waking whoever waits for a change.
    pub(super) fn set_healthy(&self, healthy: bool) {
        self.healthy
            .send_if_modified(|h| std::mem::replace(h, healthy) != healthy);
    }

    /// A receiver of the health, to wait until storage works again.
    pub(super) fn health(&self) -> watch::Receiver<bool> {
        self.healthy.subscribe()
    }

    fn current(&self) -> RwLockReadGuard<'_, Option<Database>> {
        // A panic while the lock was held leaves either the old or the new handle: both usable.
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_write(&self) -> RwLockWriteGuard<'_, Option<Database>> {
        self.db.write().unwrap_or_else(|p| p.into_inner())
    }
}

fn open_db(path: &std::path::Path, cache_bytes: usize) -> Result<Database, StorageError> {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache_bytes);
    let db = builder.create(path)?;
    create_tables(&db)?;
    Ok(db)
}
