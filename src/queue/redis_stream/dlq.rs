//! Dead letters, delivery history and queue age in Redis.

use redis::streams::StreamRangeReply;

use super::{Keys, RedisQueue, scripts};
use crate::embedded::now_ms;
use crate::queue::{AttemptRecord, DeadEvent, HISTORY_MAX, record};
use crate::redis_conn::RedisError;

/// Retry-set members looked at for the oldest age (they are ordered by due time, not age).
const AGE_SAMPLE: isize = 64;

impl RedisQueue {
    /// Up to `limit` dead letters, newest first, each with its stored bytes.
    pub(super) async fn dead_list(
        &self,
        keys: &Keys,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, DeadEvent)>, RedisError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).map_or(-1, |l| l - 1);
        let mut list = redis::cmd("ZREVRANGE");
        list.arg(&keys.dead_order).arg(0).arg(stop);
        let ids: Vec<String> = self.redis.query(&list).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = redis::cmd("HMGET");
        get.arg(&keys.dead).arg(&ids);
        let raws: Vec<Option<Vec<u8>>> = self.redis.query(&get).await?;
        // An id purged between the two reads comes back nil: skip it.
        raws.into_iter().flatten().map(decode_dead).collect()
    }

    /// The dead letter of event `id`, with its stored bytes.
    pub(super) async fn dead_one(
        &self,
        keys: &Keys,
        id: &str,
    ) -> Result<Option<(Vec<u8>, DeadEvent)>, RedisError> {
        let mut get = redis::cmd("HGET");
        get.arg(&keys.dead).arg(id);
        let raw: Option<Vec<u8>> = self.redis.query(&get).await?;
        raw.map(decode_dead).transpose()
    }

    /// The dead letter of event `id` of `lane` and the keys of its shard. An ordered event
    /// died on its key's shard, which the id does not tell: the id's shard is asked first,
    /// then the others (an admin lookup, at most `storage.shards` reads).
    pub(super) async fn find_dead(
        &self,
        lane: &str,
        id: &str,
    ) -> Result<Option<(std::sync::Arc<Keys>, Vec<u8>, DeadEvent)>, RedisError> {
        let home = self.redis.shard_of(id);
        let others = self.shards().filter(|&s| s != home);
        for shard in std::iter::once(home).chain(others) {
            let keys = self.keys(lane, shard);
            if let Some((raw, dead)) = self.dead_one(&keys, id).await? {
                return Ok(Some((keys, raw, dead)));
            }
        }
        Ok(None)
    }

    /// Moves a dead letter back into the stream (attempts reset), unless it changed since it
    /// was read as `raw`. True if moved. An ordered one goes back into its key's order.
    pub(super) async fn revive(
        &self,
        keys: &Keys,
        raw: &[u8],
        dead: &DeadEvent,
    ) -> Result<bool, RedisError> {
        let job = record::encode_job(now_ms(), 0, None, &dead.event)?;
        if let Some(key) = &dead.event.order_key {
            return self.revive_ordered(keys, raw, dead, key, &job).await;
        }
        let mut conn = self.redis.conn();
        let mut call = scripts::REVIVE.key(&keys.dead);
        call.key(&keys.dead_order).key(&keys.stream);
        call.arg(&dead.event.id).arg(raw).arg(job);
        let moved: i64 = self.redis.run(call.invoke_async(&mut conn)).await?;
        Ok(moved == 1)
    }

    /// Deletes the dead letter `dead`; true if it was still there. One that blocks its key
    /// releases it.
    pub(super) async fn purge_one(
        &self,
        keys: &Keys,
        dead: &DeadEvent,
    ) -> Result<bool, RedisError> {
        let id = &dead.event.id;
        if let Some(key) = &dead.event.order_key {
            return self.purge_ordered(keys, id, key).await;
        }
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("HDEL").arg(&keys.dead).arg(id);
        pipe.cmd("ZREM").arg(&keys.dead_order).arg(id).ignore();
        let (removed,): (i64,) = self.redis.query_pipe(&pipe).await?;
        Ok(removed > 0)
    }

    /// Newest first, at most `limit`, optionally only `event_id`'s attempts.
    pub(super) async fn read_history(
        &self,
        keys: &Keys,
        event_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AttemptRecord>, RedisError> {
        // Filtering by id needs the whole (capped) list; otherwise read only what is asked.
        let stop = match event_id {
            None => isize::try_from(limit.min(HISTORY_MAX)).unwrap_or(1) - 1,
            Some(_) => -1,
        };
        if stop < 0 && event_id.is_none() {
            return Ok(Vec::new());
        }
        let mut range = redis::cmd("LRANGE");
        range.arg(&keys.history).arg(0).arg(stop);
        let raws: Vec<Vec<u8>> = self.redis.query(&range).await?;
        let newest_first = raws.iter().map(|raw| record::decode_attempt(raw));
        let newest_first: Vec<AttemptRecord> = newest_first.collect::<Result<_, _>>()?;
        Ok(crate::queue::newest_attempts(newest_first, event_id, limit))
    }

    /// When the oldest waiting event of a shard was received: the stream's head, or one of
    /// the first `AGE_SAMPLE` retries by due time (an estimate for very long retry sets).
    pub(super) async fn oldest_received(&self, keys: &Keys) -> Result<Option<u64>, RedisError> {
        let mut pipe = redis::pipe();
        pipe.cmd("XRANGE")
            .arg(&keys.stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        pipe.cmd("ZRANGE")
            .arg(&keys.retry)
            .arg(0)
            .arg(AGE_SAMPLE - 1);
        let (head, retries): (StreamRangeReply, Vec<Vec<u8>>) =
            self.redis.query_pipe(&pipe).await?;
        let mut oldest: Option<u64> = None;
        let mut consider = |raw: &[u8]| -> Result<(), RedisError> {
            let at = record::decode_job(0, raw)?.event.received_at_ms;
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
            Ok(())
        };
        for entry in &head.ids {
            if let Some(raw) = entry.get::<Vec<u8>>("j") {
                consider(&raw)?;
            }
        }
        for member in &retries {
            consider(member.get(8..).unwrap_or_default())?;
        }
        Ok(oldest)
    }
}

fn decode_dead(raw: Vec<u8>) -> Result<(Vec<u8>, DeadEvent), RedisError> {
    let dead = record::decode_dead(&raw)?;
    Ok((raw, dead))
}
