//! The queue in the embedded redb file, for a single replica.
//!
//! Jobs are stored under (route, seq); an in-memory [`Schedule`] says which is due next. The
//! schedule is changed only once a write has committed, so no worker ever sees a job that is
//! not on disk, and a cancelled `enqueue` whose write went through still gets delivered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use redb::{ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::schedule::{Next, Schedule};
use super::{DeadEvent, Event, Job, Queue, QueueError, record};
use crate::embedded::{DEAD, Db, META, QUEUE, StorageError, now_ms, to_ms};

/// Key in `META` of the highest sequence number ever stored.
const LAST_SEQ: &str = "last_seq";

/// The embedded queue. Cheap to clone; clones share the schedule.
#[derive(Clone)]
pub struct EmbeddedQueue {
    pub(super) db: Db,
    pub(super) schedule: Arc<Schedule>,
    next_seq: Arc<AtomicU64>,
}

impl EmbeddedQueue {
    /// Rebuilds the schedule from the stored jobs: everything left over from a previous run,
    /// leased or not, is due again at its stored time (at-least-once).
    pub fn open(db: Db) -> Result<Self, StorageError> {
        let schedule = Schedule::default();
        let txn = db.read()?;
        let mut last = txn
            .open_table(META)?
            .get(LAST_SEQ)?
            .map_or(0, |g| g.value());
        for entry in txn.open_table(QUEUE)?.iter()? {
            let (key, value) = entry?;
            let (route, seq) = key.value();
            schedule.insert(route, record::due_of(value.value())?, seq);
            last = last.max(seq);
        }
        Ok(EmbeddedQueue {
            db,
            schedule: Arc::new(schedule),
            next_seq: Arc::new(AtomicU64::new(last + 1)),
        })
    }

    /// Hands out the next sequence number; persisted by [`put_job`] with the job.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Reads a leased job. Synchronous on purpose: an await between lease and return would
    /// let a cancelled `receive` leak the lease.
    fn load(&self, route: &str, seq: u64) -> Result<Option<Job>, StorageError> {
        let txn = self.db.read()?;
        let table = txn.open_table(QUEUE)?;
        let Some(bytes) = table.get((route, seq))? else {
            return Ok(None);
        };
        Ok(Some(record::decode_job(seq, bytes.value())?))
    }

    /// Leases the next due job without waiting, or says when to look again.
    fn try_receive(&self, route: &str) -> Result<Result<Job, Next>, StorageError> {
        loop {
            let seq = match self.schedule.lease(route, now_ms()) {
                Next::Lease(seq) => seq,
                wait => return Ok(Err(wait)),
            };
            match self.load(route, seq) {
                Ok(Some(job)) => return Ok(Ok(job)),
                Ok(None) => self.schedule.remove(route, seq), // removed meanwhile; skip it
                Err(e) => {
                    self.schedule.insert(route, now_ms(), seq);
                    return Err(e);
                }
            }
        }
    }

    /// Runs `write`, then updates the schedule with `after` once the outcome is known.
    ///
    /// `after` runs on the writer thread, so the schedule is right even if the caller is
    /// cancelled while waiting.
    async fn write_then<F, A>(&self, write: F, after: A) -> Result<(), StorageError>
    where
        F: FnOnce(&WriteTransaction) -> Result<(), StorageError> + Send + 'static,
        A: FnOnce(&Schedule, bool) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let schedule = Arc::clone(&self.schedule);
        let then = move |result: Result<(), StorageError>| {
            after(&schedule, result.is_ok());
            let _ = tx.send(result);
        };
        self.db.submit(write, then).await?;
        rx.await.unwrap_or(Err(StorageError::Closed))
    }
}

impl Queue for EmbeddedQueue {
    /// Refuses with `Full` rather than waiting when the writer is far behind.
    async fn enqueue(&self, event: Event) -> Result<u64, QueueError> {
        let seq = self.next_seq();
        let due = now_ms();
        let bytes = record::encode_job(due, 0, None, &event).map_err(StorageError::from)?;
        let (tx, rx) = oneshot::channel();
        let schedule = Arc::clone(&self.schedule);
        let route = event.route;
        let write_route = route.clone();
        let write = move |txn: &WriteTransaction| put_job(txn, &write_route, seq, &bytes);
        let then = move |result: Result<(), StorageError>| {
            if result.is_ok() {
                schedule.insert(&route, due, seq);
            }
            let _ = tx.send(result);
        };
        self.db.try_submit(write, then)?;
        rx.await.unwrap_or(Err(StorageError::Closed))?;
        Ok(seq)
    }

    async fn receive(&self, route: &str) -> Result<Job, QueueError> {
        let notify = self.schedule.notifier(route);
        loop {
            // Registered before looking, so a job added in between still wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_receive(route)? {
                Ok(job) => return Ok(job),
                Err(Next::WaitUntil(due)) => {
                    let wait = Duration::from_millis(due.saturating_sub(now_ms()));
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = notified => {}
                    }
                }
                Err(_) => notified.await,
            }
        }
    }

    /// On failure the job becomes due again at once: it may be delivered twice, never lost.
    async fn ack(&self, job: &Job) -> Result<(), QueueError> {
        let (route, seq) = (job.event.route.clone(), job.seq);
        let key = route.clone();
        let write = move |txn: &WriteTransaction| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            Ok(())
        };
        let after = move |s: &Schedule, ok: bool| settle(s, &route, seq, ok);
        Ok(self.write_then(write, after).await?)
    }

    /// The job is due again at `at` even if the write fails (it then keeps its old record).
    async fn retry(&self, job: &Job, at: SystemTime, error: &str) -> Result<(), QueueError> {
        let (route, seq, due) = (job.event.route.clone(), job.seq, to_ms(at));
        let bytes = record::encode_job(due, job.attempts + 1, Some(error), &job.event)
            .map_err(StorageError::from)?;
        let key = route.clone();
        let write = move |txn: &WriteTransaction| put_job(txn, &key, seq, &bytes);
        let after = move |s: &Schedule, _ok: bool| s.insert(&route, due, seq);
        Ok(self.write_then(write, after).await?)
    }

    /// Delete from the queue and insert into the dead letters in one transaction.
    async fn dead_letter(&self, job: &Job, error: &str) -> Result<(), QueueError> {
        let dead = DeadEvent {
            seq: job.seq,
            event: job.event.clone(),
            attempts: job.attempts + 1,
            last_error: error.to_owned(),
            died_at_ms: now_ms(),
        };
        let bytes = record::encode_dead(&dead).map_err(StorageError::from)?;
        let (route, seq) = (job.event.route.clone(), job.seq);
        let key = route.clone();
        let write = move |txn: &WriteTransaction| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            txn.open_table(DEAD)?
                .insert((key.as_str(), seq), bytes.as_slice())?;
            Ok(())
        };
        let after = move |s: &Schedule, ok: bool| settle(s, &route, seq, ok);
        Ok(self.write_then(write, after).await?)
    }

    fn depth(&self, route: &str) -> usize {
        self.schedule.depth(route)
    }
}

/// After an ack or a dead-letter move: forget the job, or make it due again if the write
/// failed (it is still on disk, so it must not vanish from the schedule).
fn settle(schedule: &Schedule, route: &str, seq: u64, committed: bool) {
    if committed {
        schedule.remove(route, seq);
    } else {
        schedule.insert(route, now_ms(), seq);
    }
}

/// Stores a job and keeps `LAST_SEQ` at the highest sequence number stored.
pub(super) fn put_job(
    txn: &WriteTransaction,
    route: &str,
    seq: u64,
    bytes: &[u8],
) -> Result<(), StorageError> {
    txn.open_table(QUEUE)?.insert((route, seq), bytes)?;
    let mut meta = txn.open_table(META)?;
    let last = meta.get(LAST_SEQ)?.map_or(0, |g| g.value());
    if seq > last {
        meta.insert(LAST_SEQ, seq)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
