//! The `Queue` contract over the embedded store: each operation is one write through the
//! group commit, and the schedule follows once the write's outcome is known.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redb::WriteTransaction;
use tokio::sync::oneshot;

use super::hot::Taken;
use super::{EmbeddedQueue, Schedule, put_job, settle};
use crate::config::OnDead;
use crate::deliver::Failure;
use crate::embedded::{Durable, Put, QUEUE, StorageError, Stored, now_ms, to_ms};
use crate::queue::schedule::Next;
use crate::queue::{AttemptRecord, DeadEvent, Event, Job, OrderStats, Queue, QueueError, record};

impl Queue for EmbeddedQueue {
    async fn enqueue(&self, event: Event) -> Result<u64, QueueError> {
        let seqs = self.enqueue_all(vec![event]).await?;
        Ok(seqs.first().copied().unwrap_or_default())
    }

    /// One write op, so the events share one transaction (or one log record). Refuses with
    /// `Full` rather than waiting when the writer is far behind.
    async fn enqueue_all(&self, events: Vec<Event>) -> Result<Vec<u64>, QueueError> {
        let due = now_ms();
        let mut jobs = Vec::with_capacity(events.len());
        let mut order_keys = Vec::with_capacity(events.len());
        for event in events {
            let bytes = record::encode_job(due, 0, None, &event).map_err(StorageError::from)?;
            jobs.push(Put {
                lane: event.lane(),
                seq: self.next_seq(),
                bytes: bytes.into(),
            });
            order_keys.push(event.order_key);
        }
        let seqs: Vec<u64> = jobs.iter().map(|j| j.seq).collect();
        let (tx, rx) = oneshot::channel();
        let (schedule, hot) = (Arc::clone(&self.schedule), self.hot.clone());
        let then = move |result: Result<Stored, StorageError>, jobs: Vec<Put>| {
            if let Ok(stored) = result {
                if stored == Stored::Log {
                    hot.insert(&jobs);
                }
                // In seq order, so a key's chain is in order of acceptance.
                for (job, key) in jobs.iter().zip(&order_keys) {
                    schedule.insert(&job.lane, due, job.seq, key.as_deref());
                }
            }
            let _ = tx.send(result.map(drop));
        };
        self.db.try_submit_enqueue(jobs, then)?;
        rx.await.unwrap_or(Err(StorageError::Closed))?;
        Ok(seqs)
    }

    /// Waits while storage is failing: a delivery started then could not be acknowledged.
    async fn receive(&self, lane: &str) -> Result<Job, QueueError> {
        let notify = self.schedule.notifier(lane);
        loop {
            self.db.healthy().await;
            self.resync()?;
            // Registered before looking, so a job added in between still wakes us.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_receive(lane)? {
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
    /// A job only the write-ahead log holds is acknowledged in memory, without a write; a
    /// stored one is deleted by the next commit of deferred state (see `acks`).
    async fn ack(&self, job: &Job) -> Result<(), QueueError> {
        let (lane, seq) = (job.event.lane(), job.seq);
        if self.hot.take(&lane, seq) == Taken::Hot {
            self.schedule.remove(&lane, seq);
            return Ok(());
        }
        if job.event.order_key.is_none() && self.db.is_healthy() {
            self.acks.push(&self.db, lane, seq);
            return Ok(());
        }
        // An ordered job's key moves on only once its ack is committed, and promptly: this
        // write goes to the writer now instead of waiting for the next spill. While storage
        // fails, the write is refused and the job comes back once it works.
        let key = lane.clone();
        let write = move |txn: &WriteTransaction| {
            txn.open_table(QUEUE)?.remove((key.as_str(), seq))?;
            Ok(())
        };
        let after = move |s: &Schedule, ok: Option<&()>| settle(s, &lane, seq, ok.is_some());
        // Lost in a crash, the ack costs a redelivery: it rides along with the next fsync.
        Ok(self.write_then(Durable::Later, write, after).await?)
    }

    /// The job is due again at `at` even if the write fails (it then keeps its old record).
    async fn retry(&self, job: &Job, at: SystemTime, error: &str) -> Result<(), QueueError> {
        let (lane, seq, due) = (job.event.lane(), job.seq, to_ms(at));
        let bytes = record::encode_job(due, job.attempts + 1, Some(error), &job.event)
            .map_err(StorageError::from)?;
        // Only the log holds it: the next checkpoint stores the new record, a crash the old one.
        if self.hot.replace(&lane, seq, bytes.clone().into()) {
            self.schedule.insert(&lane, due, seq, None);
            return Ok(());
        }
        let key = lane.clone();
        let write = move |txn: &WriteTransaction| put_job(txn, &key, seq, &bytes);
        let after = move |s: &Schedule, _: Option<&()>| s.insert(&lane, due, seq, None);
        // Lost in a crash, the job keeps its previous record: due at once, one attempt fewer.
        Ok(self.write_then(Durable::Later, write, after).await?)
    }

    async fn dead_letter(
        &self,
        job: &Job,
        error: &Failure,
        on_dead: OnDead,
    ) -> Result<(), QueueError> {
        let holds_key = on_dead == OnDead::Block && job.event.order_key.is_some();
        // One that holds its key is filed under its job's seq: a replay queues it under that
        // seq again, ahead of the key's later events, in memory and after a restart.
        let seq = if holds_key { job.seq } else { self.next_seq() };
        let dead = DeadEvent::of(job, error, on_dead, seq);
        Ok(self.move_to_dead(job, dead).await?)
    }

    async fn depth(&self, lane: &str) -> Result<usize, QueueError> {
        Ok(self.schedule.depth(lane))
    }

    async fn oldest_age(&self, lane: &str) -> Result<Option<Duration>, QueueError> {
        let oldest = self.oldest(lane)?;
        Ok(oldest.map(|j| crate::queue::age_since(j.event.received_at_ms)))
    }

    async fn dead(&self, lane: &str, limit: usize) -> Result<Vec<DeadEvent>, QueueError> {
        Ok(self.dead_list(lane, limit)?)
    }

    async fn dead_by_id(&self, lane: &str, id: &str) -> Result<Option<DeadEvent>, QueueError> {
        Ok(self.dead_one(lane, id)?)
    }

    async fn replay(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        let dead = self.dead_one(lane, id)?.into_iter().collect();
        Ok(self.revive(lane, dead).await? > 0)
    }

    async fn ordering(&self, lane: &str) -> Result<OrderStats, QueueError> {
        Ok(self.schedule.ordering(lane))
    }

    async fn replay_all(&self, lane: &str) -> Result<usize, QueueError> {
        let dead = self.dead_list(lane, usize::MAX)?;
        Ok(self.revive(lane, dead).await?)
    }

    async fn purge(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        Ok(self.purge_one(lane, id).await?)
    }

    async fn purge_all(&self, lane: &str) -> Result<usize, QueueError> {
        Ok(self.purge_lane(lane).await?)
    }

    async fn stored_lanes(&self) -> Result<Vec<String>, QueueError> {
        let mut lanes = self.schedule.lanes();
        lanes.extend(self.dead_lanes()?);
        lanes.sort();
        lanes.dedup();
        Ok(lanes)
    }

    async fn record_attempt(&self, lane: &str, rec: AttemptRecord) -> Result<(), QueueError> {
        Ok(self.append_history(lane, rec)?)
    }

    async fn history(
        &self,
        lane: &str,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, QueueError> {
        Ok(self.read_history(lane, event_id, limit)?)
    }
}
