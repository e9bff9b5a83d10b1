//! The open redb database, replaceable while the gateway runs, and whether storage works.
//!
//! After an I/O error (a full disk) redb refuses every later operation until the `Database` is
//! closed and opened again. Every handle therefore reaches the database through this slot, and
//! only the writer thread replaces it (see `docs/architecture.md`, "Storage faults").

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};
use tokio::sync::watch;

use super::wal::{CHECKPOINTED, Put, Wal};
use super::writer::Deferred;
use super::{META, StorageError, create_tables, put_jobs};
use crate::metrics::StorageErrors;

/// The database file, its open handle (absent while being reopened) and the storage health.
pub(super) struct Slot {
    db: RwLock<Option<Database>>,
    /// The write-ahead log of enqueues; its records are put back into every database opened.
    wal: Mutex<Wal>,
    path: PathBuf,
    cache_bytes: usize,
    /// True while writes commit; false from a failed commit until a probe commit succeeds.
    healthy: watch::Sender<bool>,
    /// Failed commits and reopen attempts, for `/metrics`.
    pub(super) errors: StorageErrors,
    /// Successful reopens: each one may have undone commits that were not fsync'd yet.
    reopens: AtomicU64,
    /// What each checkpoint writes besides its batch (see [`Deferred`]).
    deferred: RwLock<Vec<Arc<dyn Deferred>>>,
    /// A read snapshot of the newest commit, shared by readers that look something up on every
    /// request (a dedup claim): a read transaction and a table opened per lookup cost more than
    /// the lookup. None until the first commit after an open or a reopen.
    latest: Mutex<Option<Snapshot>>,
    /// The generation of `latest`, readable without its lock.
    generation: AtomicU64,
    /// Tests hold the next checkpoint's commit here: told when it is reached, it waits for the
    /// word to go on.
    #[cfg(test)]
    pub(super) gate: Mutex<Option<Gate>>,
}

/// Where a test holds a checkpoint's commit: (reached, go on).
#[cfg(test)]
pub(super) type Gate = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

/// A shared read snapshot and its generation (one per commit of the writer thread).
#[derive(Clone)]
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) txn: Arc<ReadTransaction>,
}

impl Slot {
    /// Opens (or creates) the file at `path` and its tables, and the write-ahead log beside it,
    /// whose records not yet checkpointed go back into the database first.
    pub(super) fn open(path: PathBuf, cache_bytes: usize) -> Result<Arc<Slot>, StorageError> {
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let (mut wal, records) = Wal::open(dir).map_err(|e| StorageError::Io(Arc::new(e)))?;
        let db = open_db(&path, cache_bytes)?;
        replay(&db, &mut wal, records)?;
        Ok(Arc::new(Slot {
            db: RwLock::new(Some(db)),
            wal: Mutex::new(wal),
            path,
            cache_bytes,
            healthy: watch::Sender::new(true),
            errors: StorageErrors::default(),
            reopens: AtomicU64::new(0),
            deferred: RwLock::default(),
            latest: Mutex::default(),
            generation: AtomicU64::new(0),
            #[cfg(test)]
            gate: Mutex::default(),
        }))
    }

    /// A read snapshot of the current database; `Unavailable` while it is being reopened.
    pub(super) fn read(&self) -> Result<ReadTransaction, StorageError> {
        let db = self.current();
        Ok(db.as_ref().ok_or(StorageError::Unavailable)?.begin_read()?)
    }

    /// The shared snapshot of the newest commit, if there is one (see `latest`).
    pub(super) fn latest(&self) -> Option<Snapshot> {
        self.lock_latest().clone()
    }

    /// The generation of the shared snapshot: a reader holding one of this generation has the
    /// newest.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Replaces the shared snapshot with one of the newest commit (the writer thread calls it
    /// after each commit, before anyone hears of the commit, so whoever has heard of one finds
    /// a snapshot that holds it). Without a database, or if no read can begin, there is none.
    pub(super) fn refresh(&self) {
        self.publish(self.read().ok());
    }

    fn publish(&self, txn: Option<ReadTransaction>) {
        let txn = txn.map(Arc::new);
        let mut latest = self.lock_latest();
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        *latest = txn.map(|txn| Snapshot { generation, txn });
        self.generation.store(generation, Ordering::Release);
    }

    fn lock_latest(&self) -> MutexGuard<'_, Option<Snapshot>> {
        // Every update is a single assignment: a panic elsewhere leaves it consistent.
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
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
        // No reader may go on with a snapshot of the failed file (its reads would fail).
        self.publish(None);
        let old = self.lock_write().take();
        if let Some(old) = old
            && let Err(e) = old.close()
        {
            // Expected after an I/O error: the file is closed (and its lock released) either way.
            tracing::debug!(error = %e, "closing the failed database");
        }
        let db = open_db(&self.path, self.cache_bytes)?;
        // The reopened file lost every commit not fsync'd, enqueues made durable by the log
        // among them: they go back before anyone reads or writes.
        {
            let mut wal = self.wal();
            if let Err(e) = wal.release_reserve() {
                tracing::warn!(error = %e, "could not release the write-ahead log's reserve");
            }
            let records = wal.reread().map_err(|e| StorageError::Io(Arc::new(e)))?;
            replay(&db, &mut wal, records)?;
        }
        self.deferred().iter().for_each(|d| d.replayed());
        *self.lock_write() = Some(db);
        self.refresh();
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

    /// The write-ahead log (the writer thread appends and checkpoints through it).
    pub(super) fn wal(&self) -> MutexGuard<'_, Wal> {
        self.wal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an owner of state that each checkpoint writes.
    pub(super) fn defer(&self, owner: Arc<dyn Deferred>) {
        self.deferred
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(owner);
    }

    /// The owners whose state each checkpoint writes.
    pub(super) fn deferred(&self) -> Vec<Arc<dyn Deferred>> {
        self.deferred
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn current(&self) -> RwLockReadGuard<'_, Option<Database>> {
        // A panic while the lock was held leaves either the old or the new handle: both usable.
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_write(&self) -> RwLockWriteGuard<'_, Option<Database>> {
        self.db.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Puts the log's records newer than the last checkpoint back into `db`, in one fsync'd commit
/// that is itself a checkpoint; then the log starts over. A record may hold jobs that redb
/// already has, or that were delivered and acknowledged since (the acknowledgement not yet
/// fsync'd): putting them back is a redelivery at worst, never a loss.
///
/// The log then goes on past the stored checkpoint, whatever it read: a file whose first record
/// was torn reads as empty, and records numbered from 1 again would be taken for checkpointed
/// ones by the next replay.
fn replay(db: &Database, wal: &mut Wal, records: super::wal::Records) -> Result<(), StorageError> {
    let mut txn = db.begin_write()?;
    let done = txn
        .open_table(META)?
        .get(CHECKPOINTED)?
        .map_or(0, |g| g.value());
    wal.resume_after(done);
    let newer: Vec<&Vec<Put>> = records
        .iter()
        .filter(|(g, _)| *g > done)
        .map(|(_, puts)| puts)
        .collect();
    if newer.is_empty() {
        return Ok(()); // the transaction aborts: nothing was written
    }
    txn.set_durability(Durability::Immediate)?;
    let mut replayed = 0usize;
    for puts in newer {
        put_jobs(&txn, puts)?;
        replayed += puts.len();
    }
    let generation = wal.generation();
    txn.open_table(META)?.insert(CHECKPOINTED, generation)?;
    txn.commit()?;
    wal.checkpointed(generation);
    tracing::info!(
        jobs = replayed,
        "queued events restored from the write-ahead log"
    );
    Ok(())
}

fn open_db(path: &std::path::Path, cache_bytes: usize) -> Result<Database, StorageError> {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(cache_bytes);
    let db = builder.create(path)?;
    create_tables(&db)?;
    Ok(db)
}
