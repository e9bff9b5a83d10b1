//! The Redis connection shared by the Redis dedup store and the Redis Streams queue.
//!
//! One `ConnectionManager` (a multiplexed connection that reconnects by itself) carries every
//! short command, so concurrent requests pipeline on one socket. Blocking reads (`XREADGROUP
//! BLOCK`) would stall that socket, so they get connections of their own ([`Redis::blocking`]).
//! Every call is bounded by `op_timeout`: an outage turns into errors, never into hangs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};

/// Failure of a Redis call.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No answer within `op_timeout` (Redis down, unreachable, or overloaded).
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis refused the command or the connection failed.
    #[error("redis: {0}")]
    Command(#[from] redis::RedisError),
    /// A stored record could not be decoded (or a record could not be encoded).
    #[error("record encoding: {0}")]
    Codec(#[from] postcard::Error),
    /// Redis answered something this version does not understand.
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

/// Handle to Redis; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    op_timeout: Duration,
}

impl Redis {
    /// Prepares a lazily connected handle: the gateway starts even while Redis is down and
    /// answers 503 until it is back. Needs a tokio runtime.
    pub fn connect(url: &str, prefix: &str, op_timeout: Duration) -> Result<Redis, RedisError> {
        let client = redis::Client::open(url)?;
        // Few, quick reconnect attempts: callers give up after op_timeout anyway, and the next
        // call starts a new attempt, so service resumes soon after Redis does.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Redis(Arc::new(Inner {
            client,
            conn,
            prefix: prefix.into(),
            op_timeout,
        })))
    }

    /// The shared multiplexed connection, for short commands.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.0.conn.clone()
    }

    /// The bound on one call.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.0.op_timeout
    }

    /// Sends one command on the shared connection, within `op_timeout`.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn();
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Sends a pipeline (a MULTI/EXEC transaction if `atomic`) within `op_timeout`.
    pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn();
        self.run(pipe.query_async(&mut conn)).await
    }

    /// Runs one Redis call within `op_timeout`.
    pub(crate) async fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        self.within(self.0.op_timeout, call).await
    }

    /// Runs one Redis call within `limit`.
    pub(crate) async fn within<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(limit, call).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisError::Timeout(limit)),
        }
    }

    /// A connection of its own for a blocking read of up to `block`.
    pub(crate) async fn blocking(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.0.op_timeout))
            .set_response_timeout(Some(block + self.0.op_timeout));
        let connect = self
            .0
            .client
            .get_multiplexed_async_connection_with_config(&config);
        self.run(connect).await
    }

    /// The prefix of every key (`storage.key_prefix`).
    pub(crate) fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// The key `{prefix}:{<route>}:<rest>`. The braces are a Redis Cluster hash tag: every key
    /// of a route lives in one slot, so one transaction or script may touch several of them.
    pub(crate) fn key(&self, route: &str, rest: &str) -> String {
        format!("{}:{{{route}}}:{rest}", self.0.prefix)
    }

    /// Asks Redis how it persists writes (`CONFIG GET append*`).
    pub async fn persistence(&self) -> Result<Persistence, RedisError> {
        let mut asked = redis::cmd("CONFIG");
        asked.arg("GET").arg("append*");
        let config: HashMap<String, String> = self.query(&asked).await?;
        Ok(Persistence::from_config(&config))
    }

    /// Logs at start what Redis's persistence means for acknowledged events (see
    /// [`Persistence::report`]). Never fails: the gateway runs either way.
    pub async fn check_persistence(&self) {
        match self.persistence().await {
            Ok(p) => p.report(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read Redis persistence settings (CONFIG GET)")
            }
        }
    }
}

/// How Redis persists what it acknowledges, which bounds what hookgate's `200` promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persistence {
    /// `appendonly no`: a Redis restart loses every event written since the last snapshot.
    NoAof,
    /// The AOF is on but fsynced lazily (`appendfsync` named here): a crash of the Redis host
    /// may lose about a second of acknowledged events.
    LazyFsync(String),
    /// `appendfsync always`: every answer waits for the disk, as the embedded store does.
    Always,
    /// Redis did not say (`CONFIG GET` hidden by a proxy or a managed service).
    Unknown,
}

impl Persistence {
    /// Reads the answer to `CONFIG GET append*`.
    pub fn from_config(config: &HashMap<String, String>) -> Persistence {
        match config.get("appendonly").map(String::as_str) {
            None => Persistence::Unknown,
            Some("yes") => match config.get("appendfsync").map(String::as_str) {
                Some("always") => Persistence::Always,
                fsync => Persistence::LazyFsync(fsync.unwrap_or("unknown").to_owned()),
            },
            Some(_) => Persistence::NoAof,
        }
    }

    /// Logs what the operator should know: a warning when a Redis restart loses events.
    pub fn report(&self) {
        match self {
            Persistence::NoAof => tracing::warn!(
                "Redis has appendonly no: accepted events are lost if Redis restarts; \
                 set appendonly yes (see docs/redis.md)"
            ),
            Persistence::LazyFsync(fsync) => tracing::info!(
                appendfsync = %fsync,
                "Redis AOF on; a crash of the Redis host may lose up to ~1 s of acknowledged events"
            ),
            Persistence::Always => {}
            Persistence::Unknown => tracing::warn!(
                "Redis did not report appendonly; make sure its AOF is on (see docs/redis.md)"
            ),
        }
    }
}

/// Helpers for tests against a real Redis (`HOOKGATE_TEST_REDIS_URL`, default 127.0.0.1:6379).
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// The Redis the tests use.
    pub(crate) fn url() -> String {
        std::env::var("HOOKGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A handle whose keys start with a prefix of this test's own.
    pub(crate) fn redis(test: &str) -> Redis {
        let prefix = format!(
            "hgtest-{test}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        Redis::connect(&url(), &prefix, Duration::from_secs(2)).expect("redis url parses")
    }

    /// Deletes every key of the handle's prefix.
    pub(crate) async fn cleanup(redis: &Redis) {
        let mut conn = redis.conn();
        let pattern = format!("{}:*", redis.0.prefix);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn persistence_is_read_from_config_get() {
        let p = |pairs: &[(&str, &str)]| Persistence::from_config(&config(pairs));
        let always = [("appendonly", "yes"), ("appendfsync", "always")];
        assert_eq!(p(&always), Persistence::Always);
        let everysec = [("appendonly", "yes"), ("appendfsync", "everysec")];
        assert_eq!(p(&everysec), Persistence::LazyFsync("everysec".into()));
        let unsaid = [("appendonly", "yes")];
        assert_eq!(p(&unsaid), Persistence::LazyFsync("unknown".into()));
        let off = [("appendonly", "no"), ("appendfsync", "always")];
        assert_eq!(p(&off), Persistence::NoAof);
        assert_eq!(p(&[]), Persistence::Unknown);
    }
}
