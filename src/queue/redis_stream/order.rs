//! Ordered delivery (`order_by`) in Redis: only the oldest unsettled event of a key is in the
//! lane's stream; the key's later events wait in its shard's `order-wait:L` hash until the head
//! is delivered or dead-lettered (see `scripts` for the state and its invariant).
//!
//! An ordered event lives on the shard of its key, not of its id, so the key's state, its
//! events, their retries and dead letters share one hash slot and every change to a key is one
//! script. Replicas then never both hand out events of one key: only a script puts an event of
//! a key into the stream, and only once its head has left it.

mod scripts;

use super::{GROUP, Keys, RedisQueue, Settle, id_of};
use crate::queue::{BlockedKey, DeadEvent, Event, Job, OrderStats, record};
use crate::redis_conn::RedisError;

/// Longest-blocked keys whose held events are looked at for the queue's oldest age.
const AGE_SAMPLE: usize = 64;

impl RedisQueue {
    /// The shard of an event: its key's when it is ordered (a key's events, state and dead
    /// letters must share one slot), else its id's.
    pub(super) fn shard_for(&self, event: &Event) -> u32 {
        self.redis
            .shard_of(event.order_key.as_deref().unwrap_or(&event.id))
    }

    /// The keys of the shard holding `event`.
    pub(super) fn keys_for(&self, event: &Event) -> std::sync::Arc<Keys> {
        self.keys(&event.lane(), self.shard_for(event))
    }

    /// Enqueues events of one shard, some ordered, in one script (all or none), waiting for
    /// `storage.wait_replicas` as every enqueue does. Returns each one's entry id, "" if held.
    pub(super) async fn enqueue_scripted(
        &self,
        shard: u32,
        jobs: &[(&Event, Vec<u8>)],
    ) -> Result<Vec<String>, RedisError> {
        let mut call = scripts::ENQUEUE.prepare_invoke();
        let mut stream = String::new();
        for (event, job) in jobs {
            let keys = self.keys(&event.lane(), shard);
            call.key(&keys.stream).key(&keys.order);
            call.key(&keys.order_wait).key(&keys.order_waiting);
            let key = event.order_key.as_deref();
            call.arg(if key.is_some() { "1" } else { "0" });
            call.arg(key.unwrap_or_default()).arg(job);
            stream = keys.stream.clone();
        }
        self.redis.script_replicated(&call, &stream).await
    }

    /// Settles the leased head of `key`; a no-op (logged) if another replica already settled
    /// it after taking the lease over.
    pub(super) async fn settle_ordered(
        &self,
        job: &Job,
        key: &str,
        how: Settle<'_>,
    ) -> Result<(), RedisError> {
        let keys = self.keys_for(&job.event);
        let mut call = scripts::SETTLE.key(&keys.stream);
        call.key(&keys.order)
            .key(&keys.order_wait)
            .key(&keys.order_waiting);
        call.key(&keys.order_blocked).key(&keys.retry);
        call.key(&keys.dead).key(&keys.dead_order);
        call.arg(GROUP).arg(id_of(job.seq)).arg(key);
        match how {
            Settle::Ack => call.arg("ack"),
            Settle::Retry { due, member } => call.arg("retry").arg(due).arg(member),
            Settle::Dead { dead, bytes } => {
                let how = if dead.holds_key { "block" } else { "release" };
                call.arg(how).arg(&dead.event.id).arg(bytes);
                call.arg(dead.died_at_ms)
            }
        };
        let mut conn = self.redis.conn();
        let settled: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        if settled == 0 {
            tracing::warn!(lane = %job.event.lane(), event_id = %job.event.id, "event already settled by a replica that took its lease over; this outcome is dropped");
        }
        Ok(())
    }

    /// Puts an ordered dead letter back unless it changed since it was read as `raw`: first
    /// of its key again if it blocks the key, else behind the key's events. True if moved.
    pub(super) async fn revive_ordered(
        &self,
        keys: &Keys,
        raw: &[u8],
        dead: &DeadEvent,
        key: &str,
        job: &[u8],
    ) -> Result<bool, RedisError> {
        let mut call = scripts::REVIVE.prepare_invoke();
        self.dead_and_order_keys(&mut call, keys);
        call.arg(&dead.event.id).arg(raw).arg(job).arg(key);
        let mut conn = self.redis.conn();
        let moved: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(moved == 1)
    }

    /// Deletes the dead letter of ordered event `id`, releasing the key it blocks. True if
    /// there was one.
    pub(super) async fn purge_ordered(
        &self,
        keys: &Keys,
        id: &str,
        key: &str,
    ) -> Result<bool, RedisError> {
        let mut call = scripts::PURGE.prepare_invoke();
        self.dead_and_order_keys(&mut call, keys);
        call.arg(id).arg(key);
        let mut conn = self.redis.conn();
        let purged: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(purged == 1)
    }

    /// Deletes every dead letter of a lane shard, releasing every key they block; how many.
    pub(super) async fn purge_lane(&self, keys: &Keys) -> Result<usize, RedisError> {
        let mut call = scripts::PURGE_LANE.prepare_invoke();
        self.dead_and_order_keys(&mut call, keys);
        let mut conn = self.redis.conn();
        self.redis.run(call.invoke_async(&mut conn)).await
    }

    /// The keys of `REVIVE`, `PURGE` and `PURGE_LANE`.
    fn dead_and_order_keys(&self, call: &mut redis::ScriptInvocation<'_>, keys: &Keys) {
        call.key(&keys.dead).key(&keys.dead_order).key(&keys.stream);
        call.key(&keys.order).key(&keys.order_wait);
        call.key(&keys.order_waiting).key(&keys.order_blocked);
    }

    /// Ordered delivery in one lane shard.
    pub(super) async fn order_stats(&self, keys: &Keys) -> Result<OrderStats, RedisError> {
        let mut call = scripts::STATS.key(&keys.order);
        call.key(&keys.order_wait).key(&keys.order_waiting);
        call.key(&keys.order_blocked);
        let mut conn = self.redis.conn();
        let (waiting_keys, waiting_events, blocked_keys, key, since, event_id): Reply =
            self.redis.run(call.invoke_async(&mut conn)).await?;
        let oldest_blocked = (!key.is_empty()).then(|| BlockedKey {
            key,
            event_id,
            since_ms: since.parse::<f64>().unwrap_or_default() as u64,
        });
        Ok(OrderStats {
            waiting_keys,
            waiting_events,
            blocked_keys,
            oldest_blocked,
        })
    }

    /// When the oldest event held behind a blocked key was received, if any (held events of
    /// other keys are younger than their key's head, which the stream or retry set holds).
    pub(super) async fn oldest_held(&self, keys: &Keys) -> Result<Option<u64>, RedisError> {
        let mut call = scripts::OLDEST_HELD.key(&keys.order);
        call.key(&keys.order_wait).key(&keys.order_blocked);
        call.arg(AGE_SAMPLE);
        let mut conn = self.redis.conn();
        let jobs: Vec<Vec<u8>> = self.redis.run(call.invoke_async(&mut conn)).await?;
        let mut oldest: Option<u64> = None;
        for raw in jobs {
            let at = record::decode_job(0, &raw)?.event.received_at_ms;
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
        Ok(oldest)
    }
}

/// What `STATS` answers.
type Reply = (usize, usize, usize, String, String, String);

/// Adds one shard's counts to a lane's; the oldest blocked key is the earliest blocked.
pub(super) fn merge(into: &mut OrderStats, shard: OrderStats) {
    into.waiting_keys += shard.waiting_keys;
    into.waiting_events += shard.waiting_events;
    into.blocked_keys += shard.blocked_keys;
    if let Some(b) = shard.oldest_blocked {
        let older = into
            .oldest_blocked
            .as_ref()
            .is_none_or(|o| b.since_ms < o.since_ms);
        if older {
            into.oldest_blocked = Some(b);
        }
    }
}
