//! Dedup shared by every replica, in Redis: a claim is `SET key pending NX PX <claim_ttl>`, done
//! is `SET key done EX <dedup_ttl>`, a release deletes the claim.
//!
//! Keys are `{prefix}:{<route>}:dedup:<id>`, or `{prefix}:{<route>/<shard>}:dedup:<id>` on a
//! cluster, so the ids of one route spread over its shards' slots like its queue does. A claim expires by itself, so a replica that dies
//! between claim and enqueue cannot swallow the sender's retry.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::{Claim, DedupError, Store};
use crate::redis_conn::{Redis, RedisError};

/// Claims the id, or says who holds it: one round trip, and no gap between the two steps.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], 'pending', 'NX', 'PX', ARGV[1]) then return 'fresh' end
          return redis.call('GET', KEYS[1]) or 'expired'",
    )
});

/// Deletes the key only while it is still a claim: a done record must survive a late release.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == 'pending' then return redis.call('DEL', KEYS[1]) end
          return 0",
    )
});

/// Dedup in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisDedup {
    redis: Redis,
    dedup_ttl: Duration,
    claim_ttl: Duration,
}

impl RedisDedup {
    /// Done ids block for `dedup_ttl`; an unfinished claim blocks for `claim_ttl`.
    pub fn new(redis: Redis, dedup_ttl: Duration, claim_ttl: Duration) -> Self {
        RedisDedup {
            redis,
            dedup_ttl,
            claim_ttl,
        }
    }

    fn key(&self, route: &str, id: &str) -> String {
        let shard = self.redis.shard_of(id);
        self.redis.key(route, shard, &format!("dedup:{id}"))
    }
}

impl Store for RedisDedup {
    async fn claim(&self, route: &str, id: &str) -> Result<Claim, DedupError> {
        let mut conn = self.redis.conn();
        let ttl_ms = self.claim_ttl.as_millis().max(1) as u64;
        let key = self.key(route, id);
        let mut call = CLAIM.key(&key);
        call.arg(ttl_ms);
        let state: String = self.redis.run(call.invoke_async(&mut conn)).await?;
        match state.as_str() {
            "fresh" => Ok(Claim::Fresh),
            "done" => Ok(Claim::Duplicate),
            // "pending", or a claim that expired between SET and GET: someone is on it.
            "pending" | "expired" => Ok(Claim::InFlight),
            other => Err(RedisError::Reply(format!("dedup key holds {other:?}")).into()),
        }
    }

    /// Sets the done record whether or not the claim is still there: if it expired meanwhile
    /// (a very slow enqueue), the event is enqueued all the same and must now count as done.
    async fn complete(&self, route: &str, id: &str) -> Result<(), DedupError> {
        let secs = self.dedup_ttl.as_secs().max(1);
        let mut set = redis::cmd("SET");
        set.arg(self.key(route, id)).arg("done").arg("EX").arg(secs);
        let () = self.redis.query(&set).await?;
        Ok(())
    }

    async fn release(&self, route: &str, id: &str) -> Result<(), DedupError> {
        let mut conn = self.redis.conn();
        let key = self.key(route, id);
        let _: i64 = self
            .redis
            .run(RELEASE.key(&key).invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
