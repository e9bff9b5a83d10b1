//! The single writer thread and its group commit.
//!
//! Why one thread: redb allows one write transaction at a time and every commit costs an fsync.
//! Batching every op that is waiting into one transaction lets concurrent requests share that
//! fsync, so throughput grows with load instead of queueing behind the disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use redb::{Durability, WriteTransaction};
use tokio::sync::mpsc;

use super::StorageError;
use super::slot::Slot;

mod recover;

/// Most ops applied in one transaction: bounds the transaction's size and the wait of the
/// first op in the batch.
const MAX_BATCH: usize = 1024;

/// One write waiting for the writer.
pub(crate) type Op = Box<dyn Write>;

/// A write applied inside a group commit, then told how the commit went.
pub(crate) trait Write: Send {
    /// Applies the write to the batch's transaction. An error aborts the whole batch.
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), StorageError>;
    /// Reports the batch's outcome to whoever waits for this write.
    fn finish(self: Box<Self>, commit: Result<(), StorageError>);
}

/// A closure run in the transaction whose result goes to `then` once the commit is known.
pub(crate) struct Call<F, T, C> {
    f: Option<F>,
    out: Option<T>,
    then: C,
}

impl<F, T, C> Call<F, T, C> {
    pub(crate) fn new(f: F, then: C) -> Self {
        Call {
            f: Some(f),
            out: None,
            then,
        }
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

    fn finish(self: Box<Self>, commit: Result<(), StorageError>) {
        // `out` is None only when the batch failed before this op ran; commit is Err then.
        let Call { out, then, .. } = *self;
        then(commit.and_then(|()| out.ok_or(StorageError::Closed)));
    }
}

/// Starts the writer thread; it ends once every sender is dropped and the channel is drained.
pub(super) fn spawn(
    slot: Arc<Slot>,
    rx: mpsc::Receiver<Op>,
    commits: Arc<AtomicU64>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("hookgate-storage".into())
        .spawn(move || run(&slot, rx, &commits))
}

fn run(slot: &Slot, mut rx: mpsc::Receiver<Op>, commits: &AtomicU64) {
    // Blocks only this dedicated thread, never a tokio worker.
    while let Some(first) = rx.blocking_recv() {
        let mut batch = drain(first, &mut rx);
        let result = commit(slot, &mut batch);
        match &result {
            Ok(()) => drop(commits.fetch_add(1, Ordering::Relaxed)),
            Err(e) => tracing::error!(error = %e, ops = batch.len(), "storage commit failed"),
        }
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
        if failed && !recover::run(slot, &mut rx) {
            break;
        }
    }
    tracing::debug!("storage writer stopped");
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

/// Applies the batch in one transaction and commits it with an fsync.
///
/// If any op fails the transaction is dropped (aborted) and the whole batch gets the error.
fn commit(slot: &Slot, batch: &mut [Op]) -> Result<(), StorageError> {
    let mut txn = slot.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    for op in batch.iter_mut() {
        op.apply(&txn)?;
    }
    txn.commit()?;
    Ok(())
}
