//! The embedded store: one redb file holding dedup records, the queue, dead letters and the
//! delivery history.
//!
//! Every write goes through one writer thread ([`writer`]) that batches whatever is waiting
//! into a single fsync'd transaction (group commit). Reads open their own snapshot at once.

mod error;
mod private;
mod slot;
mod sweep;
mod wal;
mod writer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

pub use error::StorageError;

use crate::metrics::StorageErrors;
use slot::Slot;
pub(crate) use slot::Snapshot;
pub(crate) use wal::Put;
use writer::{Call, Enqueue, Op, Wake};
pub(crate) use writer::{Commit, Deferred, Durable, Settle, Stored};

/// Done dedup records: (route, event id) → expiry, in ms since the Unix epoch.
pub(crate) const DEDUP: TableDefinition<(&str, &str), u64> = TableDefinition::new("dedup");
/// The same records ordered by expiry, so a sweep is a range delete.
pub(crate) const DEDUP_BY_EXPIRY: TableDefinition<(u64, &str, &str), ()> =
    TableDefinition::new("dedup_by_expiry");
/// Queued jobs: (lane, seq) → encoded `queue::record::Stored`.
pub(crate) const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");
/// Dead letters: (lane, seq at death) → encoded `queue::DeadEvent`.
pub(crate) const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");
/// The dead letters by event id: (lane, event id) → their key in `DEAD`.
pub(crate) const DEAD_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("dead_ids");
/// Delivery history, a ring per lane: (lane, slot) → encoded (number, `queue::AttemptRecord`).
pub(crate) const HISTORY: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("history");
/// Small counters that must survive a restart (the last sequence number handed out).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in `META` of the highest sequence number ever stored (jobs and dead letters).
pub(crate) const LAST_SEQ: &str = "last_seq";

/// File name of the database inside the data directory.
pub(crate) const FILE_NAME: &str = "hookgate.redb";
/// Ops waiting for the writer; past this, `try_submit` refuses (the ingress answers 503).
const CHANNEL_CAPACITY: usize = 8192;

/// Handle to the embedded database; clones share the file and the writer thread.
///
/// The writer stops after flushing once every handle is dropped or [`Db::close`] is called.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

/// A [`Db`] handle that lets the database close once every strong handle is gone.
#[derive(Clone)]
pub(crate) struct WeakDb(std::sync::Weak<Inner>);

impl WeakDb {
    /// The database, unless it has been dropped.
    pub(crate) fn upgrade(&self) -> Option<Db> {
        self.0.upgrade().map(|inner| Db { inner })
    }
}

struct Inner {
    slot: Arc<Slot>,
    // None once closed: later writes fail with `StorageError::Closed`.
    ops: Mutex<Option<mpsc::Sender<Op>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    counts: Arc<writer::Counts>,
}

/// Page cache used by `Db::open` (and the default of `storage.cache`). 64 MiB bought no
/// throughput over 16 MiB with a million events queued, and cost 77 MiB of RSS
/// (docs/performance.md, "A standing backlog"): the OS page cache holds the file anyway.
pub const DEFAULT_CACHE: usize = 16 << 20;

impl Db {
    /// Opens (or creates) `<dir>/hookgate.redb`, creating `dir`, and starts the writer thread.
    /// What it creates is private to the user: the directory 0700, the file 0600.
    pub fn open(dir: &Path) -> Result<Db, StorageError> {
        Self::open_with_cache(dir, DEFAULT_CACHE)
    }

    /// Like `open`, with redb's page cache capped at `cache_bytes` (redb's own default is 1 GiB,
    /// which a gateway with a long backlog would otherwise grow into).
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<Db, StorageError> {
        let file = dir.join(FILE_NAME);
        private::prepare_dir(dir).map_err(|e| StorageError::Io(Arc::new(e)))?;
        private::prepare_file(&file).map_err(|e| StorageError::Io(Arc::new(e)))?;
        let slot = Slot::open(file, cache_bytes)?;
        let counts = Arc::new(writer::Counts::default());
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let writer = writer::spawn(Arc::clone(&slot), rx, Arc::clone(&counts))
            .map_err(|e| StorageError::Io(Arc::new(e)))?;
        let inner = Inner {
            slot,
            ops: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            counts,
        };
        Ok(Db {
            inner: Arc::new(inner),
        })
    }

    /// A handle that does not keep the database open (for background tasks).
    pub(crate) fn downgrade(&self) -> WeakDb {
        WeakDb(Arc::downgrade(&self.inner))
    }

    /// Number of write transactions committed since open (one per group commit).
    pub fn commits(&self) -> u64 {
        self.inner.counts.commits.load(Ordering::Relaxed)
    }

    /// How many times the file was reopened after an I/O error; each reopen keeps only what
    /// was fsync'd, so a [`Durable::Later`] write reported as committed may be undone.
    pub(crate) fn reopens(&self) -> u64 {
        self.inner.slot.reopens()
    }

    /// Number of those commits that were fsync'd.
    pub fn syncs(&self) -> u64 {
        self.inner.counts.syncs.load(Ordering::Relaxed)
    }

    /// Number of batches made durable by a write-ahead log append (an fdatasync of the log)
    /// rather than by an fsync'd commit.
    pub fn logged(&self) -> u64 {
        self.inner.counts.logged.load(Ordering::Relaxed)
    }

    /// Whether writes commit: false from a failed commit on the file (a full disk) until the
    /// database has been reopened and a write committed again.
    pub fn is_healthy(&self) -> bool {
        self.inner.slot.is_healthy()
    }

    /// Returns once storage is healthy (at once when it is).
    pub(crate) async fn healthy(&self) {
        let mut health = self.inner.slot.health();
        // An error means the writer is gone; the caller's next operation then says so.
        let _ = health.wait_for(|healthy| *healthy).await.is_ok();
    }

    /// Reopens the file as the writer does after an I/O error: what was not fsync'd is undone.
    #[cfg(test)]
    pub(crate) fn reopen(&self) {
        self.inner.slot.reopen().unwrap();
    }

    /// Forces the health, as a failed commit or a recovery would.
    #[cfg(test)]
    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.inner.slot.set_healthy(healthy);
    }

    /// The counter of storage errors by operation, for `/metrics` (shared, not a copy).
    pub fn errors(&self) -> StorageErrors {
        self.inner.slot.errors.clone()
    }

    /// Stops the writer after it has committed every op already sent, and waits for it.
    ///
    /// Blocks the calling thread for at most one batch; later writes fail with `Closed`.
    /// Reads keep working until the last handle is dropped.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Returns once every write sent before this call is committed (or has failed).
    ///
    /// Use it to make fire-and-forget writes such as dedup `complete` durable, e.g. at shutdown.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.write(|_| Ok(())).await
    }

    /// Holds the next checkpoint's commit (tests only): the first receiver hears when it is
    /// reached, and it goes on once the sender sends or is dropped.
    #[cfg(test)]
    pub(crate) fn hold_next_checkpoint(
        &self,
    ) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (reached, on_reach) = std::sync::mpsc::channel();
        let (go_on, on_go) = std::sync::mpsc::channel();
        *self.inner.slot.gate.lock().unwrap() = Some((reached, on_go));
        (on_reach, go_on)
    }

    /// Opens a read snapshot that sees every commit finished before this call.
    pub(crate) fn read(&self) -> Result<ReadTransaction, StorageError> {
        self.inner.slot.read()
    }

    /// A read snapshot shared by all callers, replaced after every commit before the commit is
    /// reported: it holds every commit its caller has heard of. None after a reopen until the
    /// next commit; call [`Db::read`] then.
    pub(crate) fn latest(&self) -> Option<Snapshot> {
        self.inner.slot.latest()
    }

    /// The generation of [`Db::latest`], cheap to compare with one kept from an earlier call.
    pub(crate) fn generation(&self) -> u64 {
        self.inner.slot.generation()
    }

    /// Runs `f` in the next group commit and waits for it: durable (fsync'd) when Ok.
    ///
    /// Waits for room in the writer's queue. If the caller is cancelled after the op was sent,
    /// the write still happens.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send + 'static,
    {
        self.write_with(Durable::Now, f).await
    }

    /// Like [`Db::write`]; with [`Durable::Later`] it returns once committed, before the fsync.
    pub(crate) async fn write_with<T, F>(&self, durable: Durable, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.submit(durable, f, move |r| drop(tx.send(r))).await?;
        rx.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Sends `f` to the writer and returns once it is queued, not committed.
    ///
    /// `then` runs on the writer thread with the commit's outcome (on the caller's, with the
    /// error, when the op is refused); it must be quick and must not drop the last `Db` handle
    /// (the writer cannot join itself). With [`Durable::Later`] that outcome comes before the
    /// fsync (see [`writer`]).
    pub(crate) async fn submit<T, F, C>(
        &self,
        durable: Durable,
        f: F,
        then: C,
    ) -> Result<(), StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send + 'static,
        C: FnOnce(Result<T, StorageError>) + Send + 'static,
    {
        let op: Op = Box::new(Call::new(durable, f, then));
        let sent = match self.sender() {
            Ok(sender) => sender
                .send(op)
                .await
                .map_err(|e| (e.0, StorageError::Closed)),
            Err(e) => Err((op, e)),
        };
        sent.map_err(refused)
    }

    /// Enqueues the jobs in `puts` durably: `then` hears whether the write-ahead log holds them
    /// ([`Stored::Log`]: the caller keeps them until a checkpoint, see [`Db::defer`]) or the
    /// database does, and gets them back. Refuses with `Busy` instead of waiting when the
    /// writer is behind.
    pub(crate) fn try_submit_enqueue<C>(&self, puts: Vec<Put>, then: C) -> Result<(), StorageError>
    where
        C: FnOnce(Result<Stored, StorageError>, Vec<Put>) + Send + 'static,
    {
        let op: Op = Box::new(Enqueue::new(puts, then));
        let sender = match self.sender() {
            Ok(sender) => sender,
            Err(e) => return Err(refused((op, e))),
        };
        sender.try_send(op).map_err(|e| {
            refused(match e {
                mpsc::error::TrySendError::Full(op) => (op, StorageError::Busy),
                mpsc::error::TrySendError::Closed(op) => (op, StorageError::Closed),
            })
        })
    }

    /// Has every checkpoint write what `owner` keeps in memory (see [`Deferred`]).
    pub(crate) fn defer(&self, owner: Arc<dyn Deferred>) {
        self.inner.slot.defer(owner);
    }

    /// Wakes the writer so that a checkpoint follows within `MAX_UNSYNCED`: for a [`Deferred`]
    /// owner whose state grew while the writer may be idle. It commits nothing of its own.
    pub(crate) fn kick(&self) {
        let op: Op = Box::new(Wake);
        if let Ok(sender) = self.sender() {
            // Full: the writer is busy, and a checkpoint is coming anyway.
            let _ = sender.try_send(op);
        }
    }

    /// The writer's queue; refuses at once while storage is failing, so nobody waits on it.
    fn sender(&self) -> Result<mpsc::Sender<Op>, StorageError> {
        if !self.is_healthy() {
            return Err(StorageError::Unavailable);
        }
        let ops = self.inner.ops.lock().unwrap_or_else(|p| p.into_inner());
        ops.clone().ok_or(StorageError::Closed)
    }
}

/// Tells a refused op's callback (so a leased job is rescheduled, a dedup marker dropped) and
/// returns the reason for the caller.
fn refused((op, e): (Op, StorageError)) -> StorageError {
    op.finish(Err(e.clone()));
    e
}

impl Inner {
    fn close(&self) {
        // Dropping the only long-lived sender lets the writer drain the channel and exit.
        drop(self.ops.lock().unwrap_or_else(|p| p.into_inner()).take());
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else { return };
        if handle.thread().id() == std::thread::current().id() {
            return; // the last handle died inside a writer callback; the thread ends by itself
        }
        if handle.join().is_err() {
            tracing::error!("storage writer thread panicked");
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates every table once so that read transactions never meet a missing table.
fn create_tables(db: &Database) -> Result<(), StorageError> {
    let txn = db.begin_write()?;
    txn.open_table(DEDUP)?;
    txn.open_table(DEDUP_BY_EXPIRY)?;
    txn.open_table(QUEUE)?;
    txn.open_table(DEAD)?;
    txn.open_table(DEAD_IDS)?;
    txn.open_table(HISTORY)?;
    txn.open_table(META)?;
    txn.commit()?;
    Ok(())
}

/// Stores jobs in `QUEUE` and keeps `LAST_SEQ` at the highest sequence number stored.
pub(crate) fn put_jobs(txn: &WriteTransaction, puts: &[Put]) -> Result<(), StorageError> {
    let mut queue = txn.open_table(QUEUE)?;
    for put in puts {
        queue.insert((put.lane.as_str(), put.seq), &put.bytes[..])?;
    }
    match puts.iter().map(|p| p.seq).max() {
        Some(seq) => bump_last_seq(txn, seq),
        None => Ok(()),
    }
}

/// Persists `seq` as the highest handed out, so numbers are never reused after a restart.
pub(crate) fn bump_last_seq(txn: &WriteTransaction, seq: u64) -> Result<(), StorageError> {
    let mut meta = txn.open_table(META)?;
    let last = meta.get(LAST_SEQ)?.map_or(0, |g| g.value());
    if seq > last {
        meta.insert(LAST_SEQ, seq)?;
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: the clock stored in records (it survives restarts).
pub(crate) fn now_ms() -> u64 {
    to_ms(std::time::SystemTime::now())
}

/// Converts a wall-clock time to ms since the epoch; times before 1970 become 0.
pub(crate) fn to_ms(t: std::time::SystemTime) -> u64 {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
