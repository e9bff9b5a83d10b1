//! The queue in the embedded redb file, for a single replica.
//!
//! Jobs are stored under (lane, seq); an in-memory [`Schedule`] says which is due next. The
//! schedule is changed only once a write has committed, so no worker ever sees a job that is
//! not on disk, and a cancelled `enqueue` whose write went through still gets delivered. A job
//! enqueued through the write-ahead log is on disk in the log and waits in [`hot::Hot`] until a
//! checkpoint stores it, unless it is delivered first.

mod acks;
mod api;
mod dlq;
mod history;
mod hot;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::schedule::{Next, Schedule};
use super::{Job, record};
use crate::embedded::{
    DEAD, Db, Durable, LAST_SEQ, META, QUEUE, StorageError, bump_last_seq, now_ms,
};
use hot::Hot;

/// The embedded queue. Cheap to clone; clones share the schedule.
#[derive(Clone)]
pub struct EmbeddedQueue {
    pub(super) db: Db,
    schedule: Arc<Schedule>,
    next_seq: Arc<AtomicU64>,
    history: Arc<history::Rings>,
    /// Jobs the write-ahead log holds and the database not yet.
    hot: Hot,
    /// Stored jobs acknowledged, waiting for the next commit to delete them.
    acks: Arc<acks::Acks>,
    /// The store's reopen count last seen by `resync`.
    reopens: Arc<AtomicU64>,
}

impl EmbeddedQueue {
    /// Rebuilds the schedule from the stored jobs: everything left over from a previous run,
    /// leased or not, is due again at its stored time (at-least-once). Keys held by dead letters
    /// are blocked first, then jobs go into their key's chain in seq (acceptance) order.
    pub fn open(db: Db) -> Result<Self, StorageError> {
        let schedule = Schedule::default();
        let txn = db.read()?;
        let mut last = txn
            .open_table(META)?
            .get(LAST_SEQ)?
            .map_or(0, |g| g.value());
        for entry in txn.open_table(DEAD)?.iter()? {
            let (key, value) = entry?;
            if let Some((order_key, id, since)) = record::hold_of(value.value())? {
                schedule.block(key.value().0, order_key, id, since);
            }
        }
        // Unordered jobs go in per lane at once (`Schedule::load`); ordered ones one by one,
        // in seq order, through their key's chain.
        let mut unordered: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
        for entry in txn.open_table(QUEUE)?.iter()? {
            let (key, value) = entry?;
            let (lane, seq) = key.value();
            let (due, order_key) = record::due_and_key_of(value.value())?;
            match order_key {
                Some(_) => schedule.insert(lane, due, seq, order_key),
                // Looked up before inserting: `entry` would need a `String` per job.
                None if unordered.contains_key(lane) => {
                    unordered.get_mut(lane).expect("present").push((due, seq));
                }
                None => drop(unordered.insert(lane.to_owned(), vec![(due, seq)])),
            }
            last = last.max(seq);
        }
        for (lane, jobs) in unordered {
            schedule.load(&lane, jobs);
        }
        let next_seq = Arc::new(AtomicU64::new(last + 1));
        let hot = Hot::new(Arc::clone(&next_seq));
        let history = Arc::<history::Rings>::default();
        let schedule = Arc::new(schedule);
        let acks = Arc::new(acks::Acks::new(Arc::clone(&schedule)));
        // Acks after the jobs: one taken while a commit stores it is deleted after the put.
        db.defer(Arc::new(hot.clone()));
        db.defer(history.clone());
        db.defer(acks.clone());
        Ok(EmbeddedQueue {
            schedule,
            next_seq,
            history,
            hot,
            acks,
            reopens: Arc::new(AtomicU64::new(db.reopens())),
            db,
        })
    }

    /// After the store was reopened (an I/O error), puts back into the schedule the jobs the
    /// file still holds but the schedule forgot: their acknowledgement was committed without
    /// an fsync and undone by the reopen, so they are delivered again rather than stranded.
    fn resync(&self) -> Result<(), StorageError> {
        let now = self.db.reopens();
        // A plain load first: this runs before every receive, and a swap would write the
        // shared counter each time.
        if self.reopens.load(Ordering::Acquire) == now
            || self.reopens.swap(now, Ordering::AcqRel) == now
        {
            return Ok(());
        }
        let txn = self.db.read()?;
        let mut stored: HashMap<String, Vec<(u64, u64, Option<String>)>> = HashMap::new();
        for entry in txn.open_table(QUEUE)?.iter()? {
            let (key, value) = entry?;
            let (lane, seq) = key.value();
            let (due, order_key) = record::due_and_key_of(value.value())?;
            let job = (due, seq, order_key.map(str::to_owned));
            stored.entry(lane.to_owned()).or_default().push(job);
        }
        let restored: usize = stored
            .iter()
            .map(|(lane, jobs)| self.schedule.restore(lane, jobs))
            .sum();
        if restored > 0 {
            tracing::warn!(
                restored,
                "jobs whose acknowledgement a storage reopen undid are queued again"
            );
        }
        Ok(())
    }

    /// Hands every leased job back to the queue, due now (call only when no worker runs).
    pub fn return_leases(&self) {
        let n = self.schedule.release_all(now_ms());
        if n > 0 {
            tracing::info!(returned = n, "leased events returned to the queue");
        }
    }

    /// Hands out the next sequence number; persisted with its record (`bump_last_seq`).
    fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Reads a leased job. Synchronous on purpose: an await between lease and return would
    /// let a cancelled `receive` leak the lease.
    fn load(&self, lane: &str, seq: u64) -> Result<Option<Job>, StorageError> {
        if let Some(bytes) = self.hot.get(lane, seq) {
            return Ok(Some(record::decode_job(seq, &bytes)?));
        }
        let txn = self.db.read()?;
        let table = txn.open_table(QUEUE)?;
        let Some(bytes) = table.get((lane, seq))? else {
            return Ok(None);
        };
        Ok(Some(record::decode_job(seq, bytes.value())?))
    }

    /// Leases the next due job without waiting, or says when to look again.
    fn try_receive(&self, lane: &str) -> Result<Result<Job, Next>, StorageError> {
        loop {
            let seq = match self.schedule.lease(lane, now_ms()) {
                Next::Lease(seq) => seq,
                wait => return Ok(Err(wait)),
            };
            match self.load(lane, seq) {
                Ok(Some(job)) => return Ok(Ok(job)),
                Ok(None) => self.schedule.remove(lane, seq), // removed meanwhile; skip it
                Err(e) => {
                    self.schedule.insert(lane, now_ms(), seq, None);
                    return Err(e);
                }
            }
        }
    }

    /// Runs `write`, then updates the schedule with `after` once the outcome is known.
    ///
    /// `after` runs on the writer thread, so the schedule is right even if the caller is
    /// cancelled while waiting.
    async fn write_then<T, F, A>(
        &self,
        durable: Durable,
        write: F,
        after: A,
    ) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StorageError> + Send + 'static,
        A: FnOnce(&Schedule, Option<&T>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let schedule = Arc::clone(&self.schedule);
        let lines = self.history.take();
        let write = move |txn: &WriteTransaction| {
            history::write(txn, lines)?;
            write(txn)
        };
        let then = move |result: Result<T, StorageError>| {
            after(&schedule, result.as_ref().ok());
            let _ = tx.send(result);
        };
        self.db.submit(durable, write, then).await?;
        rx.await.unwrap_or(Err(StorageError::Closed))
    }

    /// The oldest queued job of `lane` (lowest seq), if any.
    fn oldest(&self, lane: &str) -> Result<Option<Job>, StorageError> {
        let hot = self.hot.first(lane);
        let txn = self.db.read()?;
        let table = txn.open_table(QUEUE)?;
        let stored = table.range((lane, 0)..=(lane, u64::MAX))?.next();
        let stored = stored.transpose()?;
        let stored = stored.as_ref().map(|(k, v)| (k.value().1, v.value()));
        let older = match (stored, &hot) {
            (Some((seq, bytes)), Some((hot_seq, _))) if seq < *hot_seq => Some((seq, bytes)),
            (_, Some((seq, bytes))) => Some((*seq, &bytes[..])),
            (stored, None) => stored,
        };
        Ok(older
            .map(|(seq, bytes)| record::decode_job(seq, bytes))
            .transpose()?)
    }
}

/// After an ack or a dead-letter move: forget the job, or make it due again if the write
/// failed (it is still on disk, so it must not vanish from the schedule).
fn settle(schedule: &Schedule, lane: &str, seq: u64, committed: bool) {
    if committed {
        schedule.remove(lane, seq);
    } else {
        schedule.insert(lane, now_ms(), seq, None);
    }
}

/// Stores a job and keeps `LAST_SEQ` at the highest sequence number stored.
fn put_job(txn: &WriteTransaction, lane: &str, seq: u64, bytes: &[u8]) -> Result<(), StorageError> {
    txn.open_table(QUEUE)?.insert((lane, seq), bytes)?;
    bump_last_seq(txn, seq)
}

#[cfg(test)]
mod tests;
