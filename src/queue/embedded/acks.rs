//! Acknowledgements of stored jobs, deleted by the next commit of deferred state.
//!
//! An ack is `Durable::Later` anyway: lost in a crash, it costs a redelivery. Written as an op
//! of its own, each cost a boxed write, a trip through the writer's queue and a wake-up of the
//! delivery task once its commit was in; here it is a push under a lock, and the deletes of a
//! whole batch share one table open. The schedule forgets the job at once (so depth and lag
//! are right at once); a commit that fails makes it due again, as it is still on disk.
//!
//! Jobs of an ordered lane are not acknowledged here: their key may move on only once the ack
//! is committed, and a spill comes up to `SPILL_EVERY` later, which would pace a key at that.

use std::sync::{Arc, Mutex, MutexGuard};

use redb::WriteTransaction;

use super::Schedule;
use crate::embedded::{Commit, Db, Deferred, QUEUE, Settle, StorageError, now_ms};

/// The stored jobs acknowledged since the last commit of deferred state, as (lane, seq).
pub(super) struct Acks {
    pending: Mutex<Vec<(String, u64)>>,
    schedule: Arc<Schedule>,
}

impl Acks {
    /// Acks whose commits settle `schedule`.
    pub(super) fn new(schedule: Arc<Schedule>) -> Acks {
        Acks {
            pending: Mutex::default(),
            schedule,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(String, u64)>> {
        // Every update is a single call: a panic elsewhere leaves the list consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the job in the schedule and keeps its delete for the next commit; wakes an
    /// idle writer for the first one.
    pub(super) fn push(&self, db: &Db, lane: String, seq: u64) {
        self.schedule.remove(&lane, seq);
        let first = {
            let mut pending = self.lock();
            pending.push((lane, seq));
            pending.len() == 1
        };
        if first {
            db.kick();
        }
    }
}

impl Deferred for Acks {
    fn write(&self, txn: &WriteTransaction, _: Commit) -> Result<Settle, StorageError> {
        let acks = std::mem::take(&mut *self.lock());
        if let Err(e) = delete(txn, &acks) {
            // The batch is abandoned: the next commit tries these again.
            self.lock().extend(acks);
            return Err(e);
        }
        let schedule = Arc::clone(&self.schedule);
        Ok(Box::new(move |committed| {
            if !committed {
                let now = now_ms();
                for (lane, seq) in acks {
                    schedule.insert(&lane, now, seq, None);
                }
            }
        }))
    }

    fn pending(&self) -> bool {
        !self.lock().is_empty()
    }
}

fn delete(txn: &WriteTransaction, acks: &[(String, u64)]) -> Result<(), StorageError> {
    if acks.is_empty() {
        return Ok(());
    }
    let mut queue = txn.open_table(QUEUE)?;
    for (lane, seq) in acks {
        queue.remove((lane.as_str(), *seq))?;
    }
    Ok(())
}
