//! The queue in Redis Streams, shared by every replica.
//!
//! A lane is `storage.shards` shards (one on a single Redis); an event belongs to the shard of
//! its id's hash ([`Redis::shard_of`]), an ordered one to its key's (see `order`). Keys of
//! shard S of lane L of route R (all tagged `{R}`, or `{R/S}` with several shards, so one
//! transaction may touch several and no transaction or script ever spans two slots):
//! - `q:L`: a stream; field `j` of an entry holds the job; one consumer group, `hookgate`.
//! - `retry:L`: jobs waiting for a retry, in a sorted set scored by due time (ms).
//! - `dead:L` (hash, event id → dead letter) and `dead-order:L` (ids scored by time of death).
//! - `history:L`: the newest `HISTORY_MAX` attempts, a capped list.
//! - `corrupt:L`: entries that could not be decoded, set aside for a human.
//! - `order:L`, `order-wait:L`, `order-waiting:L`, `order-blocked:L`: ordered delivery, the
//!   keys' heads and their held events (see `order`).
//!
//! An entry leaves the stream only in the transaction that settles it (XACK + XDEL, plus the
//! retry or dead-letter write), never by MAXLEN trimming, so nothing unacknowledged is dropped.
//! An entry leased by a replica that died is claimed by another with XAUTOCLAIM once it has been
//! idle for the visibility timeout; Redis, not the replica, remembers the lease.
//!
//! Every replica reads every shard. Reads over the whole lane, the admin API's, visit each shard
//! and merge.

mod batch;
mod dlq;
mod ids;
mod order;
mod read;
mod scan;
mod scripts;
mod settle;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use super::{AttemptRecord, DeadEvent, Event, Job, OrderStats, Queue, QueueError, record};
use crate::config::OnDead;
use crate::deliver::Failure;
use crate::embedded::{now_ms, to_ms};
use crate::redis_conn::{Conn, Redis, RedisError};
use ids::{id_of, seq_of};
use settle::Settle;

/// The consumer group every replica reads through.
const GROUP: &str = "hookgate";

/// The Redis Streams queue. Cheap to clone; clones share lane state and reader connections.
#[derive(Clone)]
pub struct RedisQueue {
    redis: Redis,
    /// This process's name in the consumer group.
    consumer: Arc<str>,
    visibility: Duration,
    lanes: Arc<Mutex<HashMap<String, read::LaneState>>>,
    /// Idle connections for blocking reads (a blocked read would stall the shared one).
    readers: Arc<Mutex<Vec<Conn>>>,
    /// Acks and history lines waiting for the next batch.
    batch: Arc<batch::Batcher>,
    /// The keys of each lane seen, by shard: ten formatted strings each, which the enqueue,
    /// the read and the settle of every event asked for (4 % of the process's CPU on Redis).
    key_cache: Arc<Mutex<HashMap<String, Vec<Arc<Keys>>>>>,
}

/// Lanes whose keys are cached; beyond, keys are built per call (an admin API asking about
/// arbitrary lane names must not grow the cache without bound).
const KEY_CACHE_LANES: usize = 1024;

/// The keys of one lane.
pub(super) struct Keys {
    stream: String,
    retry: String,
    dead: String,
    dead_order: String,
    history: String,
    corrupt: String,
    order: String,
    order_wait: String,
    order_waiting: String,
    order_blocked: String,
}

impl RedisQueue {
    /// A queue over `redis`; entries idle for `visibility` are taken over from dead replicas.
    pub fn new(redis: Redis, visibility: Duration) -> Self {
        let consumer = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        RedisQueue {
            redis,
            consumer: consumer.into(),
            visibility,
            lanes: Arc::default(),
            readers: Arc::default(),
            batch: Arc::default(),
            key_cache: Arc::default(),
        }
    }

    /// One PING within `op_timeout`: whether Redis answers at all.
    pub(super) async fn ping(&self) -> Result<(), RedisError> {
        self.redis.query::<()>(&redis::cmd("PING")).await
    }

    /// The keys of shard `shard` of `lane`, built once per lane.
    fn keys(&self, lane: &str, shard: u32) -> Arc<Keys> {
        let mut cache = self.key_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(keys) = cache.get(lane).and_then(|all| all.get(shard as usize)) {
            return Arc::clone(keys);
        }
        if shard >= self.redis.shards() || cache.len() >= KEY_CACHE_LANES {
            return Arc::new(self.build_keys(lane, shard));
        }
        let all: Vec<Arc<Keys>> = self
            .shards()
            .map(|s| Arc::new(self.build_keys(lane, s)))
            .collect();
        let keys = Arc::clone(&all[shard as usize]);
        cache.insert(lane.to_owned(), all);
        keys
    }

    fn build_keys(&self, lane: &str, shard: u32) -> Keys {
        // Route names cannot contain '/', so the route is what precedes the first one.
        let route = lane.split('/').next().unwrap_or(lane);
        let key = |kind: &str| self.redis.key(route, shard, &format!("{kind}:{lane}"));
        Keys {
            stream: key("q"),
            retry: key("retry"),
            dead: key("dead"),
            dead_order: key("dead-order"),
            history: key("history"),
            corrupt: key("corrupt"),
            order: key("order"),
            order_wait: key("order-wait"),
            order_waiting: key("order-waiting"),
            order_blocked: key("order-blocked"),
        }
    }

    /// The keys of the shard of event id `id` of `lane` (an unordered event's; see
    /// `keys_for`).
    fn keys_of(&self, lane: &str, id: &str) -> Arc<Keys> {
        self.keys(lane, self.redis.shard_of(id))
    }

    /// Every shard of a lane.
    fn shards(&self) -> std::ops::Range<u32> {
        0..self.redis.shards()
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<String, read::LaneState>> {
        // Every update is a single field write, so a panic elsewhere leaves it consistent.
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues encoded jobs of one shard, all or none; returns their entry ids ("" for one
    /// held behind its key).
    async fn enqueue_shard(
        &self,
        shard: u32,
        jobs: &[(&Event, Vec<u8>)],
    ) -> Result<Vec<String>, RedisError> {
        if jobs.iter().any(|(e, _)| e.order_key.is_some()) {
            return self.enqueue_scripted(shard, jobs).await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut stream = String::new();
        for (event, job) in jobs {
            stream = self.keys(&event.lane(), shard).stream.clone();
            pipe.cmd("XADD").arg(&stream).arg("*").arg("j").arg(job);
        }
        self.redis.query_pipe_replicated(&pipe, &stream).await
    }

    /// Runs a MULTI/EXEC transaction on the shared connection.
    async fn transact(&self, pipe: &redis::Pipeline) -> Result<(), RedisError> {
        self.redis.query_pipe(pipe).await
    }
}

impl Queue for RedisQueue {
    async fn enqueue(&self, event: Event) -> Result<u64, QueueError> {
        let seqs = self.enqueue_all(vec![event]).await?;
        Ok(seqs.first().copied().unwrap_or_default())
    }

    /// One MULTI/EXEC (or one script, when some are ordered) per shard touched: one for the
    /// lanes of one webhook, as they share its id or key, and so its shard. Every event of a
    /// shard or none. Ok only once Redis has answered, and `WAIT` has seen
    /// `storage.wait_replicas` replicas hold it. An event held behind an earlier one of its key
    /// gets its seq only once it enters the stream: its seq here is 0.
    async fn enqueue_all(&self, events: Vec<Event>) -> Result<Vec<u64>, QueueError> {
        let mut seqs = vec![0; events.len()];
        let mut todo: Vec<usize> = (0..events.len()).collect();
        while let Some(&first) = todo.first() {
            let shard = self.shard_for(&events[first]);
            let (now, later): (Vec<usize>, Vec<usize>) = todo
                .into_iter()
                .partition(|&i| self.shard_for(&events[i]) == shard);
            let mut jobs = Vec::with_capacity(now.len());
            for &i in &now {
                let job = record::encode_job(now_ms(), 0, None, &events[i]);
                jobs.push((&events[i], job.map_err(RedisError::from)?));
            }
            let ids = self.enqueue_shard(shard, &jobs).await?;
            for (&i, id) in now.iter().zip(&ids) {
                seqs[i] = if id.is_empty() { 0 } else { seq_of(id)? };
            }
            todo = later;
        }
        Ok(seqs)
    }

    async fn receive(&self, lane: &str) -> Result<Job, QueueError> {
        self.next_job(lane).await
    }

    /// An unordered job's ack goes with the next batch (see `batch`); an ordered one's runs
    /// its key's script.
    async fn ack(&self, job: &Job) -> Result<(), QueueError> {
        if job.event.order_key.is_some() {
            return Ok(self.settle_job(job, Settle::Ack).await?);
        }
        let (lane, shard) = (job.event.lane(), self.shard_for(&job.event));
        Ok(self.batched(&lane, shard, batch::Op::Ack(job.seq)).await?)
    }

    /// Moves the job from the stream to the retry set in one transaction; a mover puts it back
    /// into the stream once due (see `read`). An ordered job keeps its key meanwhile.
    async fn retry(&self, job: &Job, at: SystemTime, error: &str) -> Result<(), QueueError> {
        let due = to_ms(at);
        let bytes = record::encode_job(due, job.attempts + 1, Some(error), &job.event)
            .map_err(RedisError::from)?;
        // The job's seq first makes the member unique even if two jobs encode alike.
        let member = [job.seq.to_be_bytes().as_slice(), &bytes].concat();
        let how = Settle::Retry {
            due,
            member: &member,
        };
        self.settle_job(job, how).await?;
        self.due_at(&job.event.lane(), self.shard_for(&job.event), due);
        Ok(())
    }

    async fn dead_letter(
        &self,
        job: &Job,
        error: &Failure,
        on_dead: OnDead,
    ) -> Result<(), QueueError> {
        let dead = DeadEvent::of(job, error, on_dead, job.seq);
        let bytes = record::encode_dead(&dead).map_err(RedisError::from)?;
        let how = Settle::Dead {
            dead: &dead,
            bytes: &bytes,
        };
        Ok(self.settle_job(job, how).await?)
    }

    /// Entries in the streams (waiting or leased: they leave when settled), retries, and
    /// events held behind an earlier one of their key.
    async fn depth(&self, lane: &str) -> Result<usize, QueueError> {
        let mut depth = 0;
        for shard in self.shards() {
            let keys = self.keys(lane, shard);
            let mut pipe = redis::pipe();
            pipe.cmd("XLEN").arg(&keys.stream);
            pipe.cmd("ZCARD").arg(&keys.retry);
            pipe.cmd("HLEN").arg(&keys.order_wait);
            let (stream, retry, held): (usize, usize, usize) = self.redis.query_pipe(&pipe).await?;
            depth += stream + retry + held;
        }
        Ok(depth)
    }

    async fn oldest_age(&self, lane: &str) -> Result<Option<Duration>, QueueError> {
        let mut oldest: Option<u64> = None;
        for shard in self.shards() {
            let keys = self.keys(lane, shard);
            let queued = self.oldest_received(&keys).await?;
            for at in queued.into_iter().chain(self.oldest_held(&keys).await?) {
                oldest = Some(oldest.map_or(at, |o| o.min(at)));
            }
        }
        Ok(oldest.map(crate::queue::age_since))
    }

    /// Newest first across the shards.
    async fn dead(&self, lane: &str, limit: usize) -> Result<Vec<DeadEvent>, QueueError> {
        let mut all = Vec::new();
        for shard in self.shards() {
            let found = self.dead_list(&self.keys(lane, shard), limit).await?;
            all.extend(found.into_iter().map(|(_, d)| d));
        }
        all.sort_by_key(|d| std::cmp::Reverse(d.died_at_ms));
        all.truncate(limit);
        Ok(all)
    }

    async fn dead_by_id(&self, lane: &str, id: &str) -> Result<Option<DeadEvent>, QueueError> {
        let found = self.find_dead(lane, id).await?;
        Ok(found.map(|(_, _, d)| d))
    }

    async fn replay(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        let Some((keys, raw, dead)) = self.find_dead(lane, id).await? else {
            return Ok(false);
        };
        Ok(self.revive(&keys, &raw, &dead).await?)
    }

    /// One script per shard: the counts are kept by the scripts that change them.
    async fn ordering(&self, lane: &str) -> Result<OrderStats, QueueError> {
        let mut stats = OrderStats::default();
        for shard in self.shards() {
            order::merge(&mut stats, self.order_stats(&self.keys(lane, shard)).await?);
        }
        Ok(stats)
    }

    async fn replay_all(&self, lane: &str) -> Result<usize, QueueError> {
        let mut replayed = 0;
        for shard in self.shards() {
            let keys = self.keys(lane, shard);
            for (raw, dead) in self.dead_list(&keys, usize::MAX).await? {
                replayed += usize::from(self.revive(&keys, &raw, &dead).await?);
            }
        }
        Ok(replayed)
    }

    async fn purge(&self, lane: &str, id: &str) -> Result<bool, QueueError> {
        let Some((keys, _, dead)) = self.find_dead(lane, id).await? else {
            return Ok(false);
        };
        Ok(self.purge_one(&keys, &dead).await?)
    }

    async fn purge_all(&self, lane: &str) -> Result<usize, QueueError> {
        let mut purged = 0;
        for shard in self.shards() {
            purged += self.purge_lane(&self.keys(lane, shard)).await?;
        }
        Ok(purged)
    }

    async fn stored_lanes(&self) -> Result<Vec<String>, QueueError> {
        Ok(self.scan_lanes().await?)
    }

    /// One shard holds all of one event's attempts (its id's); the line goes with the next
    /// batch.
    async fn record_attempt(&self, lane: &str, rec: AttemptRecord) -> Result<(), QueueError> {
        let bytes = record::encode_attempt(&rec).map_err(RedisError::from)?;
        let shard = self.redis.shard_of(&rec.event_id);
        Ok(self.batched(lane, shard, batch::Op::Line(bytes)).await?)
    }

    /// Newest first across the shards (one shard holds all of one event's attempts).
    async fn history(
        &self,
        lane: &str,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, QueueError> {
        if let Some(id) = event_id {
            let keys = self.keys_of(lane, id);
            return Ok(self.read_history(&keys, event_id, limit).await?);
        }
        let mut all = Vec::new();
        for shard in self.shards() {
            let keys = self.keys(lane, shard);
            all.extend(self.read_history(&keys, None, limit).await?);
        }
        // Stable: within a shard the list order (newest first) stands for ties.
        all.sort_by_key(|a| std::cmp::Reverse(a.at_ms));
        all.truncate(limit);
        Ok(all)
    }
}

#[cfg(test)]
mod tests;
