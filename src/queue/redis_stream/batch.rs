//! Acknowledgements of unordered jobs and delivery-history lines, sent to Redis in batches.
//!
//! Each was a MULTI/EXEC of its own: XACK + XDEL per delivered job, LPUSH + LTRIM per attempt,
//! eight commands and two round trips per event, each encoded, sent through the multiplexer,
//! parsed and answered one by one. Here they wait while one batch is in flight and go together
//! in the next: per shard of a lane, one transaction with one XACK and one XDEL for all its
//! acks, one LPUSH for all its lines and one LTRIM. The callers still wait for their batch's
//! answer, so an `Ok` means what it meant before: Redis has applied it.
//!
//! No task runs while nothing waits: the first op of a burst spawns a flusher on the caller's
//! runtime, which sends batches until none is left and then ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::{GROUP, RedisQueue, id_of};
use crate::queue::HISTORY_MAX;
use crate::redis_conn::RedisError;

/// Ops waiting for the next batch, and whether a flusher is sending.
#[derive(Default)]
pub(super) struct Batcher {
    state: Mutex<State>,
    /// Transactions sent, for the tests' check that ops do share them.
    #[cfg(test)]
    pub(super) sent: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    /// By (lane, shard): all of one shard's keys share a hash slot, so one transaction.
    waiting: HashMap<(String, u32), Group>,
    flushing: bool,
}

/// What one shard of a lane has waiting.
#[derive(Default)]
struct Group {
    /// Stream entry sequence numbers to XACK + XDEL.
    acks: Vec<u64>,
    /// Encoded attempts to push on the history list, oldest first.
    lines: Vec<Vec<u8>>,
    waiters: Vec<oneshot::Sender<Result<(), String>>>,
}

/// One op for [`RedisQueue::batched`].
pub(super) enum Op {
    Ack(u64),
    Line(Vec<u8>),
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the state consistent, so a panic elsewhere is harmless.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RedisQueue {
    /// Sends `op` for shard `shard` of `lane` with the next batch and waits for its answer.
    pub(super) async fn batched(&self, lane: &str, shard: u32, op: Op) -> Result<(), RedisError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut state = self.batch.lock();
            let group = state.waiting.entry((lane.to_owned(), shard)).or_default();
            match op {
                Op::Ack(seq) => group.acks.push(seq),
                Op::Line(bytes) => group.lines.push(bytes),
            }
            group.waiters.push(tx);
            !std::mem::replace(&mut state.flushing, true)
        };
        if start {
            tokio::spawn(self.clone().flush());
        }
        match rx.await {
            Ok(result) => result.map_err(RedisError::Batch),
            Err(_) => Err(RedisError::Batch("the batch was dropped".into())),
        }
    }

    /// Sends batches until nothing waits. Dropped (its runtime shutting down), it lets the
    /// next op start another; the waiters of the batch it held hear that it was dropped.
    async fn flush(self) {
        let mut flushing = Flushing(Some(Arc::clone(&self.batch)));
        loop {
            let groups = {
                let mut state = self.batch.lock();
                if state.waiting.is_empty() {
                    state.flushing = false;
                    // Cleared under the lock: a flusher started from here on must keep its flag.
                    flushing.0 = None;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            let mut sends = JoinSet::new();
            #[cfg(test)]
            self.batch
                .sent
                .fetch_add(groups.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for ((lane, shard), group) in groups {
                let keys = self.keys(&lane, shard);
                let pipe = transaction(&keys.stream, &keys.history, &group, self.redis.shards());
                let redis = self.redis.clone();
                sends.spawn(async move {
                    let result = redis.query_pipe::<()>(&pipe).await;
                    let result = result.map_err(|e| e.to_string());
                    for waiter in group.waiters {
                        let _ = waiter.send(result.clone());
                    }
                });
            }
            while sends.join_next().await.is_some() {}
        }
    }
}

/// One shard's batch as one MULTI/EXEC.
fn transaction(stream: &str, history: &str, group: &Group, shards: u32) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    if !group.acks.is_empty() {
        let ids: Vec<String> = group.acks.iter().map(|&seq| id_of(seq)).collect();
        pipe.cmd("XACK").arg(stream).arg(GROUP).arg(&ids).ignore();
        pipe.cmd("XDEL").arg(stream).arg(&ids).ignore();
    }
    if !group.lines.is_empty() {
        // LPUSH puts each argument at the head in turn: the newest ends up first.
        pipe.cmd("LPUSH").arg(history).arg(&group.lines).ignore();
        let share = HISTORY_MAX.div_ceil(shards as usize);
        pipe.cmd("LTRIM")
            .arg(history)
            .arg(0)
            .arg(share as isize - 1)
            .ignore();
    }
    pipe
}

/// Clears `flushing` if a flusher is dropped before it has sent everything (`None` once it
/// ended normally and cleared the flag itself).
struct Flushing(Option<Arc<Batcher>>);

impl Drop for Flushing {
    fn drop(&mut self) {
        if let Some(batch) = &self.0 {
            batch.lock().flushing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_acks_and_deletes_every_entry_and_pushes_every_line_then_trims() {
        let group = Group {
            acks: vec![1, 2],
            lines: vec![b"a".to_vec(), b"b".to_vec()],
            waiters: Vec::new(),
        };
        let pipe = transaction("q:l", "history:l", &group, 1);
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        let words: Vec<&str> = packed
            .split("\r\n")
            .filter(|w| !w.starts_with(['*', '$']))
            .collect();
        let (x1, x2) = (id_of(1), id_of(2));
        let expected = [
            "MULTI",
            "XACK",
            "q:l",
            "hookgate",
            &x1,
            &x2,
            "XDEL",
            "q:l",
            &x1,
            &x2,
            "LPUSH",
            "history:l",
            "a",
            "b",
            "LTRIM",
            "history:l",
            "0",
            "999",
            "EXEC",
        ];
        assert_eq!(words[..expected.len()], expected);
    }

    #[test]
    fn a_batch_of_lines_alone_touches_no_stream() {
        let group = Group {
            acks: Vec::new(),
            lines: vec![b"a".to_vec()],
            waiters: Vec::new(),
        };
        let pipe = transaction("q:l", "history:l", &group, 4);
        let packed = String::from_utf8_lossy(&pipe.get_packed_pipeline()).into_owned();
        assert!(!packed.contains("XACK") && !packed.contains("XDEL"));
        assert!(
            packed.contains("\r\n249\r\n"),
            "a quarter of the history per shard"
        );
    }
}
