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
use tokio::sync::{mpsc, oneshot};

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
    /// Whether this is a [`Wake`]: no write of its own, only a checkpoint due.
    fn is_wake(&self) -> bool {
        false
    }
}

/// Tells an idle writer that [`Deferred`] state grew: a checkpoint (which writes it) is then
/// due within `MAX_UNSYNCED`, like after any unsynced commit. It commits nothing itself: every
/// first ack and first dedup record since the last commit sends one, and as an op of its own
/// each forced an unsynced commit per batch, ten times as many as `SPILL_EVERY` allows, every
/// one of them adding to the next checkpoint's freed-page records (docs/performance.md,
/// "Checkpoints off the enqueue path").
pub(crate) struct Wake;

impl Write for Wake {
    fn apply(&mut self, _: &WriteTransaction) -> Result<(), StorageError> {
        Ok(())
    }

    fn finish(self: Box<Self>, _: Result<Stored, StorageError>) {}

    fn durable(&self) -> Durable {
        Durable::Later
    }

    fn is_wake(&self) -> bool {
        true
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

fn run(slot: &Slot, rx: mpsc::Receiver<Op>, counts: &Counts) {
    std::thread::scope(|scope| {
        let committer = Committer::spawn(scope, slot);
        if let Err(e) = &committer {
            tracing::warn!(error = %e, "no checkpoint thread: enqueues wait for each checkpoint");
        }
        serve(slot, rx, counts, committer.as_ref().ok());
    });
}

fn serve(slot: &Slot, mut rx: mpsc::Receiver<Op>, counts: &Counts, committer: Option<&Committer>) {
    // A runtime of its own on this dedicated thread (never a tokio worker), only to wait for
    // the next op with a deadline.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tracing::error!(error = %e, "storage writer could not start"),
    };
    // When the first commit not yet fsync'd was made (or the first record the log holds that
    // no checkpoint covers yet).
    let mut unsynced: Option<Instant> = None;
    // Until when every commit is fsync'd (see `SYNC_ALL_AFTER_FAILURE`).
    let mut sync_all_until: Option<Instant> = None;
    // When deferred state was last written by any commit.
    let mut spilled = Instant::now();
    // Ops that arrived while a checkpoint committed and could not go to the log: they come
    // before anything still in the channel.
    let mut held: Vec<Op> = Vec::new();
    loop {
        let next = if !held.is_empty() {
            Some(None)
        } else {
            match unsynced {
                None => rt.block_on(rx.recv()).map(Some),
                Some(since) => {
                    let deadline = tokio::time::Instant::from_std(since + MAX_UNSYNCED);
                    match rt.block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await })
                    {
                        Ok(op) => op.map(Some),
                        Err(_elapsed) => Some(None), // time to fsync what is unsynced
                    }
                }
            }
        };
        let Some(first) = next else { break };
        let mut batch = match first {
            Some(op) => drain(op, &mut rx),
            None => std::mem::take(&mut held),
        };
        let ops = batch.len();
        batch.retain(|op| !op.is_wake());
        if ops > 0 && batch.is_empty() {
            unsynced = unsynced.or(Some(Instant::now()));
            continue;
        }
        let sync_all = sync_all_until.is_some_and(|until| Instant::now() < until);
        let now = batch.is_empty()
            || batch
                .iter()
                .any(|op| op.durable() == Durable::Now && op.redo().is_empty())
            || unsynced.is_some_and(|since| since.elapsed() >= MAX_UNSYNCED)
            || sync_all;
        let logged = !now && batch.iter().any(|op| !op.redo().is_empty());
        // When the log took its first enqueue while a checkpoint committed.
        let mut appended = None;
        let result = match (logged, now, committer) {
            (true, _, _) => log(slot, &mut batch, counts, &mut spilled),
            (false, true, Some(committer)) if !sync_all => {
                let mut wait = Wait {
                    rt: &rt,
                    rx: &mut rx,
                    held: &mut held,
                    appended: &mut appended,
                    counts,
                };
                checkpoint(slot, &mut batch, committer, &mut wait).map(|()| Stored::Db)
            }
            (false, now, _) => commit(slot, &mut batch, now, counts).map(|()| Stored::Db),
        };
        if !logged {
            spilled = Instant::now();
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, ops = batch.len(), "storage commit failed");
        }
        unsynced = match &result {
            Ok(_) if now => appended,
            Ok(_) => unsynced.or(Some(Instant::now())),
            // The file is reopened: it holds what was fsync'd, and nothing else to sync.
            Err(e) if e.is_io() => None,
            // A failed sync is tried again later, not in a loop.
            Err(_) if batch.is_empty() => Some(Instant::now()),
            Err(_) => unsynced.or(appended),
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
            // What waited for the failed commit is refused like everything arriving now.
            held.drain(..)
                .for_each(|op| op.finish(Err(StorageError::Unavailable)));
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

/// The thread that builds and commits checkpoints, so that the writer thread can go on
/// appending enqueues to the log meanwhile: a checkpoint takes milliseconds (writing what
/// [`Deferred`] owners keep, then redb's durable commit, which stores the freed-page records of
/// every unsynced commit before it), and every enqueue waiting behind it used to wait that long
/// (docs/performance.md, "Why embedded p99 stays at 14 ms").
struct Committer {
    jobs: std::sync::mpsc::Sender<Checkpoint>,
}

/// A checkpoint for the committer: its batch, the log generation it covers, and where its
/// outcome goes.
struct Checkpoint {
    batch: Vec<Op>,
    covers: Option<u64>,
    done: oneshot::Sender<Checkpointed>,
}

/// A checkpoint's batch back, the deferred state's settles and the commit's outcome.
type Checkpointed = (Vec<Op>, Vec<Settle>, Result<(), StorageError>);

impl Committer {
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        slot: &'scope Slot,
    ) -> std::io::Result<Committer> {
        let (jobs, rx) = std::sync::mpsc::channel::<Checkpoint>();
        std::thread::Builder::new()
            .name("hookgate-checkpoint".into())
            .spawn_scoped(scope, move || {
                for job in rx {
                    let Checkpoint {
                        mut batch,
                        covers,
                        done,
                    } = job;
                    let mut settles = Vec::new();
                    // A panic (a bug in redb or in an op) fails this checkpoint, not the thread:
                    // the settles gathered so far must hear of it, or the jobs they cover would
                    // stay marked as being stored and no later checkpoint would write them.
                    let build = || {
                        let txn = begin(slot, &mut batch, Commit::Checkpoint, &mut settles)?;
                        if let Some(generation) = covers {
                            txn.open_table(META)?.insert(CHECKPOINTED, generation)?;
                        }
                        #[cfg(test)]
                        if let Some((reached, go_on)) = slot.gate.lock().unwrap().take() {
                            let _ = reached.send(());
                            let _ = go_on.recv();
                        }
                        Ok(txn.commit()?)
                    };
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(build))
                        .unwrap_or_else(|_| {
                            tracing::error!("storage checkpoint panicked");
                            Err(StorageError::Unavailable)
                        });
                    let _ = done.send((batch, settles, result));
                }
            })?;
        Ok(Committer { jobs })
    }
}

/// What the writer serves while a checkpoint commits.
struct Wait<'a> {
    rt: &'a tokio::runtime::Runtime,
    rx: &'a mut mpsc::Receiver<Op>,
    /// Ops that must wait for the commit.
    held: &'a mut Vec<Op>,
    /// When the first enqueue went to the log meanwhile.
    appended: &'a mut Option<Instant>,
    counts: &'a Counts,
}

/// An fsync'd commit of the batch and all deferred state, like [`commit`], built and committed
/// by the committer thread. If the log could be sealed (see [`Wal::seal`]), enqueues that
/// arrive meanwhile are appended to its next generation and answered as usual; everything else
/// waits in `held` for the commit's outcome.
fn checkpoint(
    slot: &Slot,
    batch: &mut Vec<Op>,
    committer: &Committer,
    wait: &mut Wait<'_>,
) -> Result<(), StorageError> {
    let covers = {
        let mut wal = slot.wal();
        match wal.is_dirty() {
            false => None,
            true => Some(wal.seal().ok_or(wal.generation())),
        }
    };
    // Appending meanwhile is safe only into a generation this commit does not cover: what the
    // checkpoint stores of the next one is only stored early.
    let appendable = !matches!(covers, Some(Err(_)));
    let covers = covers.map(|c| c.unwrap_or_else(|g| g));
    let (done, outcome) = oneshot::channel();
    let job = Checkpoint {
        batch: std::mem::take(batch),
        covers,
        done,
    };
    if let Err(std::sync::mpsc::SendError(job)) = committer.jobs.send(job) {
        *batch = job.batch;
        return Err(StorageError::Closed);
    }
    let (ops, settles, result) = wait.serve(slot, outcome, appendable);
    *batch = ops;
    if result.is_ok()
        && let Some(generation) = covers
    {
        slot.wal().checkpointed(generation);
    }
    settle(slot, result.is_ok(), true, settles, wait.counts);
    result
}

impl Wait<'_> {
    /// Until the commit's outcome arrives: enqueues go to the log (while `appendable` and the
    /// log takes them), every other op into `held`.
    fn serve(
        &mut self,
        slot: &Slot,
        mut outcome: oneshot::Receiver<Checkpointed>,
        mut appendable: bool,
    ) -> Checkpointed {
        let mut open = true;
        loop {
            let next = self.rt.block_on(async {
                tokio::select! {
                    biased;
                    done = &mut outcome => Err(done),
                    op = self.rx.recv(), if open => Ok(op),
                }
            });
            let first = match next {
                // The committer thread is gone: its batch with it.
                Err(done) => {
                    return done.unwrap_or((Vec::new(), Vec::new(), Err(StorageError::Closed)));
                }
                Ok(Some(op)) => op,
                Ok(None) => {
                    open = false; // closing: only the outcome is left to wait for
                    continue;
                }
            };
            let batch = drain(first, self.rx);
            let (enqueues, others): (Vec<Op>, Vec<Op>) = batch
                .into_iter()
                .partition(|op| appendable && !op.redo().is_empty());
            self.held.extend(others);
            if enqueues.is_empty() {
                continue;
            }
            match append(slot, &enqueues, self.counts) {
                Ok(()) => {
                    self.appended.get_or_insert_with(Instant::now);
                    enqueues
                        .into_iter()
                        .for_each(|op| op.finish(Ok(Stored::Log)));
                }
                Err(e) => {
                    // They wait for the commit, then take the usual way (an fsync'd commit).
                    tracing::warn!(error = %e, "write-ahead log failed during a checkpoint");
                    appendable = false;
                    self.held.extend(enqueues);
                }
            }
        }
    }
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
    match append(slot, enqueues, counts) {
        Ok(()) => Ok(Stored::Log),
        Err(e) => {
            tracing::warn!(error = %e, "write-ahead log failed; committing with an fsync instead");
            commit(slot, enqueues, true, counts).map(|()| Stored::Db)
        }
    }
}

/// Appends the enqueues' jobs to the log as one record and flushes it.
fn append(slot: &Slot, enqueues: &[Op], counts: &Counts) -> std::io::Result<()> {
    let puts: Vec<&Put> = enqueues.iter().flat_map(|op| op.redo()).collect();
    slot.wal().append(&puts)?;
    counts.logged.fetch_add(1, Ordering::Relaxed);
    Ok(())
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
    let kind = match fsync {
        true => Commit::Checkpoint,
        false => Commit::Unsynced,
    };
    let result = begin(slot, batch, kind, &mut settles).and_then(|txn| {
        let mut wal = slot.wal();
        let covers = (fsync && wal.is_dirty()).then(|| wal.generation());
        if let Some(generation) = covers {
            txn.open_table(META)?.insert(CHECKPOINTED, generation)?;
        }
        txn.commit()?;
        if let Some(generation) = covers {
            wal.checkpointed(generation);
        }
        Ok(())
    });
    settle(slot, result.is_ok(), fsync, settles, counts);
    result
}

/// A write transaction holding the deferred state and the batch, durable if a checkpoint.
fn begin(
    slot: &Slot,
    batch: &mut [Op],
    kind: Commit,
    settles: &mut Vec<Settle>,
) -> Result<WriteTransaction, StorageError> {
    let mut txn = slot.begin_write()?;
    txn.set_durability(match kind {
        Commit::Checkpoint => Durability::Immediate,
        Commit::Unsynced => Durability::None,
    })?;
    for deferred in slot.deferred() {
        settles.push(deferred.write(&txn, kind)?);
    }
    for op in batch.iter_mut() {
        op.apply(&txn)?;
    }
    Ok(txn)
}

/// After a commit's outcome is known: readers get a snapshot of it before anyone hears of it,
/// then the deferred state's owners learn whether it was stored.
fn settle(slot: &Slot, ok: bool, fsync: bool, settles: Vec<Settle>, counts: &Counts) {
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
}
