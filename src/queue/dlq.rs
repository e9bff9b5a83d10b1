//! Dead-letter access for the admin API and the `dlq` CLI: list, show, replay, purge.

use std::sync::Arc;

use redb::WriteTransaction;
use tokio::sync::oneshot;

use super::embedded::{EmbeddedQueue, put_job};
use super::{DeadEvent, QueueError, record};
use crate::embedded::{DEAD, Db, StorageError, now_ms};

impl EmbeddedQueue {
    /// Up to `limit` dead events of `route`, oldest first.
    pub fn dead(&self, route: &str, limit: usize) -> Result<Vec<DeadEvent>, QueueError> {
        Ok(read_dead(&self.db, route, limit)?)
    }

    /// The dead event `seq` of `route`, if there is one.
    pub fn dead_one(&self, route: &str, seq: u64) -> Result<Option<DeadEvent>, QueueError> {
        Ok(read_dead_one(&self.db, route, seq)?)
    }

    /// Puts a dead event back at the tail of its queue with attempts reset and the same event
    /// id. Returns its new sequence number, or None if it was not (or no longer) dead.
    /// Durable when Ok.
    pub async fn replay(&self, route: &str, seq: u64) -> Result<Option<u64>, QueueError> {
        let Some(dead) = self.dead_one(route, seq)? else {
            return Ok(None);
        };
        let (new_seq, due) = (self.next_seq(), now_ms());
        let bytes = record::encode_job(due, 0, None, &dead.event).map_err(StorageError::from)?;
        let key = route.to_owned();
        // Encoded before: the writer only moves bytes, so a bad record cannot fail a batch.
        let write = move |txn: &WriteTransaction| {
            if txn.open_table(DEAD)?.remove((key.as_str(), seq))?.is_none() {
                return Ok(false); // purged or replayed meanwhile
            }
            put_job(txn, &key, new_seq, &bytes)?;
            Ok(true)
        };
        // Scheduled on the writer thread, so a cancelled caller cannot strand the job.
        let (schedule, route) = (Arc::clone(&self.schedule), route.to_owned());
        let (tx, rx) = oneshot::channel();
        let then = move |result: Result<bool, StorageError>| {
            if let Ok(true) = result {
                schedule.insert(&route, due, new_seq);
            }
            let _ = tx.send(result);
        };
        self.db.submit(write, then).await?;
        let moved = rx.await.unwrap_or(Err(StorageError::Closed))?;
        Ok(moved.then_some(new_seq))
    }

    /// Replays every dead event of `route`; returns how many went back on the queue.
    pub async fn replay_all(&self, route: &str) -> Result<usize, QueueError> {
        let mut replayed = 0;
        for dead in self.dead(route, usize::MAX)? {
            replayed += usize::from(self.replay(route, dead.seq).await?.is_some());
        }
        Ok(replayed)
    }

    /// Deletes the dead event `seq` of `route`; false if there was none. Durable when Ok.
    pub async fn purge(&self, route: &str, seq: u64) -> Result<bool, QueueError> {
        let key = route.to_owned();
        let write = move |txn: &WriteTransaction| {
            let mut table = txn.open_table(DEAD)?;
            let removed = table.remove((key.as_str(), seq))?.is_some();
            Ok(removed)
        };
        Ok(self.db.write(write).await?)
    }

    /// Deletes every dead event of `route`; returns how many. Durable when Ok.
    pub async fn purge_all(&self, route: &str) -> Result<usize, QueueError> {
        let key = route.to_owned();
        let write = move |txn: &WriteTransaction| {
            let mut table = txn.open_table(DEAD)?;
            let mut removed = 0;
            table.retain_in((key.as_str(), 0)..=(key.as_str(), u64::MAX), |_, _| {
                removed += 1;
                false
            })?;
            Ok(removed)
        };
        Ok(self.db.write(write).await?)
    }
}

fn read_dead(db: &Db, route: &str, limit: usize) -> Result<Vec<DeadEvent>, StorageError> {
    let txn = db.read()?;
    let table = txn.open_table(DEAD)?;
    let mut out = Vec::new();
    for entry in table.range((route, 0)..=(route, u64::MAX))?.take(limit) {
        let (_, bytes) = entry?;
        out.push(record::decode_dead(bytes.value())?);
    }
    Ok(out)
}

fn read_dead_one(db: &Db, route: &str, seq: u64) -> Result<Option<DeadEvent>, StorageError> {
    let txn = db.read()?;
    let table = txn.open_table(DEAD)?;
    let Some(bytes) = table.get((route, seq))? else {
        return Ok(None);
    };
    Ok(Some(record::decode_dead(bytes.value())?))
}
