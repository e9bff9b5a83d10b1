//! The single writer thread and its group commit.
//!
//! Why one thread: redb allows one write transaction at a time and every commit costs an fsync.
//! Batching every op that is waiting into one transaction lets concurrent requests share that
//! fsync, so throughput grows with load instead of queueing behind the disk.
//!
//! Not every write needs its own fsync. An enqueue does: the sender's `200` waits for it. An
//! acknowledgement, a retry's new due time, a dedup record or a history line lost in a crash
//! costs a redelivery, a repeated attempt or a missing line, never an event; such writes are
//! [`Durable::Later`] and commit without an fsync (redb's `Durability::None`), becoming durable
//! with the next fsync'd commit. That commit comes with the next `Durable::Now` write, and at
//! the latest `MAX_UNSYNCED` after the first unsynced one, so the window a crash can undo is
//! bounded. (redb reuses freed pages only after a durable commit, which bounds the file too.)
//!
//! An enqueue needs no fsync'd commit either: a batch whose only `Durable::Now` writes are
//! enqueues commits without one and is made durable by appending its jobs to the write-ahead
//! log ([`super::wal`]) and flushing that, one sequential write instead of a dozen page writes.
//! Every fsync'd commit is a checkpoint of the log.
//!
//! Some state is written by no op of its own ([`Deferred`]): the jobs enqueued through the log
//! and not yet delivered, dedup records, history lines, acknowledgements of stored jobs. The
//! log (or nothing, for what a crash may lose) covers them meanwhile; an unsynced commit at most
//! every `SPILL_EVERY` writes the records, the lines, the acks and the jobs queued for a while,
//! and each checkpoint writes all that is left. A job delivered within `HOT_FOR` (`queue::embedded::hot`) so never costs redb a write:
//! at the rates the gateway runs at, that is nearly every job.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Durability, WriteTransaction};
use tokio::sync::mpsc;

use super::StorageError;
use super::slot::Slot;
use super::wal::{CHECKPOINTED, Put};
use crate::embedded::{META, put_jobs};

mod recover;

/// Most ops applied in one transaction: bounds the transaction's size and the wait of the
/// first op in the batch.
const MAX_BATCH: usize = 1024;
/// Longest time a `Durable::Later` write stays without an fsync.
pub(crate) const MAX_UNSYNCED: Duration = Duration::from_millis(100);
/// How often a batch made durable by the log alone also commits [`Deferred`] state (unsynced),
/// so checkpoints stay small: ten such commits between two checkpoints.
const SPILL_EVERY: Duration = Duration::from_millis(10);
/// After a commit failed on the file (a full disk), every commit is fsync'd for this long.
///
/// redb reuses the pages a transaction frees only once a durable commit follows, and a
/// non-durable commit allocates fresh pages for everything it rewrites. On a full disk, unsynced
/// acknowledgements would then fail for want of the very pages they free, be undone by the
/// reopen, and be redelivered; fsync'd, each commit makes the space freed before it reusable, so
/// a draining queue gives its room back to new events.
const SYNC_ALL_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// When a write must be on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durable {
    /// fsync'd before the caller hears of the commit.
    Now,
    /// Committed (visible to readers) at once, fsync'd with a later commit within `MAX_UNSYNCED`.
    Later,
}

/// Transactions committed since open: all of them, those fsync'd, and those made durable by
/// the write-ahead log.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) commits: AtomicU64,
    pub(crate) syncs: AtomicU64,
    /// Batches made durable by a write-ahead log append instead of an fsync'd commit.
    pub(crate) logged: AtomicU64,
}

/// One write waiting for the writer.
pub(crate) type Op = Box<dyn Write>;

/// Where a committed batch made its enqueues durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// In the database (an fsync'd commit stored the jobs).
    Db,
    /// In the write-ahead log only: the jobs are not in the database until a checkpoint, so
    /// their owner keeps them (see [`Deferred`]).
    Log,
}

/// What a [`Deferred::write`] is told once its commit's outcome is known: true if committed.
pub(crate) type Settle = Box<dyn FnOnce(bool) + Send>;

/// Whether a commit that writes [`Deferred`] state is a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Commit {
    /// fsync'd: everything must be written, the log starts over after it.
    Checkpoint,
    /// Not fsync'd (the log still covers what it holds): write what is worth writing early.
    Unsynced,
}

/// State its owner keeps in memory and writes with commits: all of it in each checkpoint (an
/// fsync'd commit), and at most every `SPILL_EVERY` in an unsynced commit whatever it would
/// rather not hold any longer, so that no checkpoint has much to write (a large one would hold
/// up every enqueue behind it). Written before the batch's own ops.
pub(crate) trait Deferred: Send + Sync {
    /// Writes what waits into the commit's transaction.
    fn write(&self, txn: &WriteTransaction, commit: Commit) -> Result<Settle, StorageError>;
    /// Whether anything waits: the writer checkpoints before it stops.
    fn pending(&self) -> bool;
    /// After a reopen replayed the log into the database: what only the log held is in the
    /// database now.
    fn replayed(&self) {}
}

/// A write applied inside a group commit, then told how the commit went.
pub(crate) trait Write: Send {
    /// Applies the write to the batch's transaction. An error aborts the whole batch.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StorageError>;
    /// Reports the batch's outcome to whoever waits for this write.
    fn finish(self: Box<Self>, commit: Result<Stored, StorageError>);
    /// Whether the batch holding this write must be fsync'd before it is reported.
    fn durable(&self) -> Durable;
    /// The jobs an enqueue stores, which the write-ahead log may make durable instead of an
    /// fsync'd commit; empty for every other write.
    fn redo(&self) -> &[Put] {
        &[]
    }
}

/// A closure run in the transaction whose result goes to `then` once the commit is known.
pub(crate) struct Call<F, T, C> {
    f: Option<F>,
    out: Option<T>,
    then: C,
    durable: Durable,
}

impl<F, T, C> Call<F, T, C> {
    pub(crate) fn new(durable: Durable, f: F, then: C) -> Self {
        Call {
            f: Some(f),
            out: None,
            then,
            durable,
        }
    }
}

/// An enqueue: jobs made durable by the write-ahead log, or, in a batch that is fsync'd
/// anyway, stored in the database by that commit. `then` hears which, and gets the jobs back.
pub(crate) struct Enqueue<C> {
    puts: Vec<Put>,
    then: C,
}

impl<C> Enqueue<C> {
    pub(crate) fn new(puts: Vec<Put>, then: C) -> Self {
        Enqueue { puts, then }
    }
}

impl<C> Write for Enqueue<C>
where
    C: FnOnce(Result<Stored, StorageError>, Vec<Put>) + Send,
{
    /// Only in an fsync'd batch: a logged batch never applies its enqueues.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StorageError> {
        put_jobs(txn, &self.puts)
    }

    fn finish(self: Box<Self>, commit: Result<Stored, StorageError>) {
        (self.then)(commit, self.puts)
    }

    fn durable(&self) -> Durable {
        Durable::Now
    }

    fn redo(&self) -> &[Put] {
        &self.puts
    }
}

impl<F, T, C> Write for Call<F, T, C>
where
    T: Send,
    F: FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send,
    C: FnOnce(Result<T, StorageError>) + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StorageError> {
        if let Some(f) = self.f.take() {
            self.out = Some(f(txn)?);
        }
        Ok(())
    }

    fn finish(self: Box<Self>, commit: Result<Stored, StorageError>) {
        // `out` is None only when the batch failed before this op ran; commit is Err then.
        let Call { out, then, .. } = *self;
        then(commit.and_then(|_| out.ok_or(StorageError::Closed)));
    }

    fn durable(&self) -> Durable {
        self.durable
    }
}

/// Starts the writer thread; it ends once every sender is dropped and the channel is drained.
pub(super) fn spawn(
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Op>,
    counts: Arc<Counts>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hookgate-storage".into())
        .spawn(move || run(&slot, rx, &counts))
}

fn run(slot: &Slot, mut rx: mpsc::Receiver<Op>, counts: &Counts) {
    // A runtime of its own on this dedicated thread (never a tokio worker), only to wait for
    // the next op with a deadline.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tracing::error!(error = %e, "storage writer could not start"),
    };
    // When the first commit not yet fsync'd was made.
    let mut unsynced: Option<Instant> = None;
    // Until when every commit is fsync'd (see `SYNC_ALL_AFTER_FAILURE`).
    let mut sync_all_until: Option<Instant> = None;
    // When deferred state was last written by any commit.
    let mut spilled = Instant::now();
    loop {
        let next = match unsynced {
            None => rt.block_on(rx.recv()).map(Some),
            Some(since) => {
                let deadline = tokio::time::Instant::from_std(since + MAX_UNSYNCED);
                match rt.block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await }) {
                    Ok(op) => op.map(Some),
                    Err(_elapsed) => Some(None), // time to fsync what is unsynced
                }
            }
        };
        let Some(first) = next else { break };
        let mut batch = first.map(|op| drain(op, &mut rx)).unwrap_or_default();
        let now = batch.is_empty()
            || batch
                .iter()
                .any(|op| op.durable() == Durable::Now && op.redo().is_empty())
            || unsynced.is_some_and(|since| since.elapsed() >= MAX_UNSYNCED)
            || sync_all_until.is_some_and(|until| Instant::now() < until);
        let logged = !now && batch.iter().any(|op| !op.redo().is_empty());
        let result = match logged {
            true => log(slot, &mut batch, counts, &mut spilled),
            false => commit(slot, &mut batch, now, counts).map(|()| Stored::Db),
        };
        if !logged {
            spilled = Instant::now();
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, ops = batch.len(), "storage commit failed");
        }
        unsynced = match &result {
            Ok(_) if now => None,
            Ok(_) => unsynced.or(Some(Instant::now())),
            // The file is reopened: it holds what was fsync'd, and nothing else to sync.
            Err(e) if e.is_io() => None,
            // A failed sync is tried again later, not in a loop.
            Err(_) if batch.is_empty() => Some(Instant::now()),
            Err(_) => unsynced,
        };
        let failed = result.as_ref().is_err_and(StorageError::is_io);
        if failed {
            // Before anyone hears of the failure, so neither `/readyz` nor the error count lags
            // behind a 503; counted first, so whoever sees "failing" also sees the count.
            slot.errors.inc("commit");
            slot.set_healthy(false);
        }
        for op in batch {
            op.finish(result.clone());
        }
        if failed {
            if !recover::run(slot, &mut rx) {
                break;
            }
            sync_all_until = Some(Instant::now() + SYNC_ALL_AFTER_FAILURE);
        }
    }
    let pending = unsynced.is_some() || slot.deferred().iter().any(|d| d.pending());
    if pending && let Err(e) = commit(slot, &mut [], true, counts) {
        tracing::error!(error = %e, "storage: last sync failed");
    }
    tracing::debug!("storage writer stopped");
}

/// A batch without an fsync whose enqueues the write-ahead log makes durable: the other ops
/// commit without an fsync (if there are any), then the enqueues' jobs are appended to the log
/// and flushed; they reach the database with the next checkpoint, if still queued then. If the
/// log cannot be written, an fsync'd commit stores the enqueues instead (or fails, and the batch
/// with it: the writer then reopens the store as after any failed commit).
fn log(
    slot: &Slot,
    batch: &mut [Op],
    counts: &Counts,
    spilled: &mut Instant,
) -> Result<Stored, StorageError> {
    // Stable: the enqueues keep their order, so each key's chain stays in order of acceptance.
    batch.sort_by_key(|op| !op.redo().is_empty());
    let split = batch.partition_point(|op| op.redo().is_empty());
    let (others, enqueues) = batch.split_at_mut(split);
    if !others.is_empty() || spilled.elapsed() >= SPILL_EVERY {
        commit(slot, others, false, counts)?;
        *spilled = Instant::now();
    }
    let puts: Vec<&Put> = enqueues.iter().flat_map(|op| op.redo()).collect();
    let appended = slot.wal().append(&puts);
    match appended {
        Ok(()) => {
            counts.logged.fetch_add(1, Ordering::Relaxed);
            Ok(Stored::Log)
        }
        Err(e) => {
            tracing::warn!(error = %e, "write-ahead log failed; committing with an fsync instead");
            commit(slot, enqueues, true, counts).map(|()| Stored::Db)
        }
    }
}

/// Takes `first` and whatever else is already waiting, up to `MAX_BATCH`.
fn drain(first: Op, rx: &mut mpsc::Receiver<Op>) -> Vec<Op> {
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    batch
}

/// Applies the batch in one transaction and commits it, with an fsync when `fsync`; an empty
/// fsync'd batch makes every unsynced commit before it durable. Every commit first writes the
/// state [`Deferred`] owners keep (an fsync'd one all of it); an fsync'd commit is a checkpoint:
/// once it is on disk, everything the write-ahead log holds is in redb for good.
///
/// If any op fails the transaction is dropped (aborted) and the whole batch gets the error.
fn commit(slot: &Slot, batch: &mut [Op], fsync: bool, counts: &Counts) -> Result<(), StorageError> {
    let mut settles = Vec::new();
    let result = commit_with(slot, batch, fsync, &mut settles);
    let ok = result.is_ok();
    if ok {
        slot.refresh();
    }
    settles.into_iter().for_each(|settle| settle(ok));
    if ok {
        counts.commits.fetch_add(1, Ordering::Relaxed);
        if fsync {
            counts.syncs.fetch_add(1, Ordering::Relaxed);
        }
    }
    result
}

fn commit_with(
    slot: &Slot,
    batch: &mut [Op],
    fsync: bool,
    settles: &mut Vec<Settle>,
) -> Result<(), StorageError> {
    let mut txn = slot.begin_write()?;
    txn.set_durability(match fsync {
        true => Durability::Immediate,
        false => Durability::None,
    })?;
    let kind = match fsync {
        true => Commit::Checkpoint,
        false => Commit::Unsynced,
    };
    for deferred in slot.deferred() {
        settles.push(deferred.write(&txn, kind)?);
    }
    for op in batch.iter_mut() {
        op.apply(&txn)?;
    }
    let mut wal = slot.wal();
    let checkpoint = fsync && wal.is_dirty();
    if checkpoint {
        txn.open_table(META)?
            .insert(CHECKPOINTED, wal.generation())?;
    }
    txn.commit()?;
    if checkpoint {
        wal.checkpointed();
    }
    Ok(())
}
