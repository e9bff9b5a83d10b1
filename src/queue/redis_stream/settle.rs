//! Settling a leased job: delivered, due again later, or dead. Each is one transaction that
//! also takes the entry out of the stream, so a job is never in two places or in none.

use super::{GROUP, Job, RedisQueue, id_of};
use crate::queue::DeadEvent;
use crate::redis_conn::RedisError;

/// How a leased job is settled.
pub(super) enum Settle<'a> {
    /// Delivered (an ordered job's key goes on to its next event).
    Ack,
    /// Due again at `due`; `member` is its retry-set member (an ordered job keeps its key).
    Retry { due: u64, member: &'a [u8] },
    /// Dead-lettered as `dead`, encoded as `bytes` (an ordered job's key goes on, or stays
    /// blocked if `dead.holds_key`).
    Dead {
        dead: &'a DeadEvent,
        bytes: &'a [u8],
    },
}

impl RedisQueue {
    /// Settles `job` as `how`: a MULTI/EXEC, or for an ordered job one script (see `order`).
    pub(super) async fn settle_job(&self, job: &Job, how: Settle<'_>) -> Result<(), RedisError> {
        if let Some(key) = &job.event.order_key {
            return self.settle_ordered(job, key, how).await;
        }
        let keys = self.keys_for(&job.event);
        let mut pipe = redis::pipe();
        pipe.atomic();
        match how {
            Settle::Ack => {}
            Settle::Retry { due, member } => {
                pipe.cmd("ZADD")
                    .arg(&keys.retry)
                    .arg(due)
                    .arg(member)
                    .ignore();
            }
            Settle::Dead { dead, bytes } => {
                let id = &dead.event.id;
                pipe.cmd("HSET").arg(&keys.dead).arg(id).arg(bytes).ignore();
                let at = dead.died_at_ms;
                pipe.cmd("ZADD")
                    .arg(&keys.dead_order)
                    .arg(at)
                    .arg(id)
                    .ignore();
            }
        }
        let entry = id_of(job.seq);
        pipe.cmd("XACK")
            .arg(&keys.stream)
            .arg(GROUP)
            .arg(&entry)
            .ignore();
        pipe.cmd("XDEL").arg(&keys.stream).arg(&entry).ignore();
        self.transact(&pipe).await
    }
}
