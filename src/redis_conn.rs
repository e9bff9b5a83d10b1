//! The Redis connection shared by the Redis dedup store and the Redis Streams queue: one Redis
//! (`storage.redis_url`) or a Redis Cluster (`storage.redis_cluster`).
//!
//! One multiplexed connection that reconnects by itself (a `ConnectionManager`, or the cluster
//! client's connection, which also follows `MOVED`/`ASK` and refreshes the slot map after a
//! failover) carries every short command, so concurrent requests pipeline on one socket per
//! node. Blocking reads (`XREADGROUP BLOCK`) would stall that socket, so they get connections
//! of their own ([`Redis::blocking`]). Every call is bounded by `op_timeout`: an outage turns
//! into errors, never into hangs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, Pipeline, RedisFuture, ScriptInvocation, Value};

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
    /// A reply did not have the shape asked for.
    #[error("redis reply: {0}")]
    Parse(#[from] redis::ParsingError),
    /// The batch this write went with failed (the batch's error, shared by all its writes).
    #[error("redis (batched write): {0}")]
    Batch(String),
    /// `WAIT` saw fewer replicas hold the write than `storage.wait_replicas` asks for.
    #[error("only {got} of {wanted} replicas confirmed the write in time")]
    Replicas { wanted: u32, got: u32 },
}

/// Handle to Redis; cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct Redis(Arc<Inner>);

struct Inner {
    target: Target,
    conn: Conn,
    prefix: String,
    op_timeout: Duration,
    shards: u32,
    wait_replicas: u32,
    /// Idle connections for writes that `WAIT` for replicas.
    writers: std::sync::Mutex<Vec<Conn>>,
}

/// Idle `WAIT` connections kept for reuse (about one per concurrent enqueue).
const MAX_IDLE_WRITERS: usize = 64;

/// Where new connections (for blocking reads) are made.
// One per process: boxing a variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Target {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A multiplexed connection to one Redis or to a cluster; cheap to clone.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// A connection of its own to one Redis, for blocking reads.
    Own(redis::aio::MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Own(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipe: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipe, offset, count),
            Conn::Own(c) => c.req_packed_commands(pipe, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Own(c) => c.get_db(),
        }
    }
}

/// How the handle is used: key layout and the durability asked of every write.
#[derive(Debug, Clone)]
pub struct Options {
    /// The prefix of every key (`storage.key_prefix`).
    pub prefix: String,
    /// The bound on one call, reconnects included (`storage.op_timeout`).
    pub op_timeout: Duration,
    /// Queue streams per lane (`storage.shards`; 1 on a single Redis).
    pub shards: u32,
    /// Replicas that must confirm an enqueue (`storage.wait_replicas`).
    pub wait_replicas: u32,
}

impl Options {
    /// One stream per lane, no `WAIT`.
    pub fn new(prefix: &str, op_timeout: Duration) -> Options {
        Options {
            prefix: prefix.into(),
            op_timeout,
            shards: 1,
            wait_replicas: 0,
        }
    }
}

impl Redis {
    /// Prepares a lazily connected handle: the gateway starts even while Redis is down and
    /// answers 503 until it is back. Needs a tokio runtime.
    pub fn connect(url: &str, prefix: &str, op_timeout: Duration) -> Result<Redis, RedisError> {
        Self::single(url, Options::new(prefix, op_timeout))
    }

    /// A lazily connected handle to one Redis.
    pub fn single(url: &str, options: Options) -> Result<Redis, RedisError> {
        let client = redis::Client::open(url)?;
        let op_timeout = options.op_timeout;
        // Few, quick reconnect attempts: callers give up after op_timeout anyway, and the next
        // call starts a new attempt, so service resumes soon after Redis does.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(op_timeout))
            .set_response_timeout(Some(op_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self::build(
            Target::Single(client),
            Conn::Single(conn),
            options,
        ))
    }

    /// A lazily connected handle to the Redis Cluster that `seeds` belong to.
    pub fn cluster(seeds: &[&str], options: Options) -> Result<Redis, RedisError> {
        let op_timeout = options.op_timeout;
        // Retries (with a short backoff) ride out MOVED, ASK and TRYAGAIN during a slot
        // migration, and the slot map refresh after a failover; op_timeout bounds them all.
        let client = ClusterClient::builder(seeds.iter().copied())
            .connection_timeout(op_timeout)
            .response_timeout(op_timeout)
            .retries(cluster_retries(op_timeout))
            .min_retry_wait(RETRY_WAIT_MIN_MS)
            .max_retry_wait(RETRY_WAIT_MAX_MS)
            .build()?;
        let conn = client.get_pending_async_connection_with_config(cluster_config(op_timeout));
        Ok(Self::build(
            Target::Cluster(client),
            Conn::Cluster(conn),
            options,
        ))
    }

    fn build(target: Target, conn: Conn, options: Options) -> Redis {
        Redis(Arc::new(Inner {
            target,
            conn,
            prefix: options.prefix,
            op_timeout: options.op_timeout,
            shards: options.shards.max(1),
            wait_replicas: options.wait_replicas,
            writers: std::sync::Mutex::default(),
        }))
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.0.target, Target::Cluster(_))
    }

    /// The shared multiplexed connection, for short commands.
    pub(crate) fn conn(&self) -> Conn {
        self.0.conn.clone()
    }

    /// The bound on one call.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.0.op_timeout
    }

    /// Sends one command on the shared connection, within `op_timeout`.
    pub(crate) async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> Result<T, RedisError> {
        let mut conn = self.conn();
        self.run(cmd.query_async(&mut conn)).await
    }

    /// Sends a pipeline (a MULTI/EXEC transaction if `atomic`) within `op_timeout`.
    pub(crate) async fn query_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn();
        self.send_pipe(&mut conn, pipe).await
    }

    /// Sends `pipe` on `conn` within `op_timeout`, sending a transaction again while a Redis
    /// Cluster refuses it because its slot is migrating (ASK, TRYAGAIN) or moved (MOVED).
    ///
    /// redis-rs follows those redirects for single commands and scripts, but a MULTI whose
    /// queued commands were refused comes back whole as an aborted transaction (`Transaction
    /// aborted: [(Index 0, error: Moved: 98 …)]`, answered 503 during a reshard in
    /// `tests/it/cluster.rs`). Nothing of an aborted transaction ran, so sending it again is
    /// safe. A migrating slot is waited out (it turns into MOVED once its keys have moved); on
    /// MOVED a single command on the transaction's key has the client follow the redirect and
    /// refresh its slot map first.
    async fn send_pipe<T: redis::FromRedisValue>(
        &self,
        conn: &mut Conn,
        pipe: &Pipeline,
    ) -> Result<T, RedisError> {
        let deadline = tokio::time::Instant::now() + self.0.op_timeout;
        let mut wait = Duration::from_millis(RETRY_WAIT_MIN_MS);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let err = match self.within(left, pipe.query_async(conn)).await {
                Err(RedisError::Command(e)) if self.is_cluster() => e,
                other => return other,
            };
            let Some(redirect) = refused_by_slot(&err) else {
                return Err(err.into());
            };
            if tokio::time::Instant::now() + wait >= deadline {
                return Err(err.into());
            }
            if redirect == SlotRefusal::Moved
                && let Some(key) = first_key(pipe)
            {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let mut exists = redis::cmd("EXISTS");
                exists.arg(key);
                // Only the redirect it follows matters; the next attempt reports any failure.
                let _ = self.within(left, exists.query_async::<Value>(conn)).await;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(RETRY_WAIT_MAX_MS));
        }
    }

    /// Runs one Redis call within `op_timeout`.
    pub(crate) fn run<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> impl Future<Output = Result<T, RedisError>> {
        self.within(self.0.op_timeout, call)
    }

    /// Runs one Redis call within `limit`.
    ///
    /// The call is boxed before anything holds it: the redis crate's futures are kilobytes,
    /// and every future awaiting one would be as large and be copied whole each time it is
    /// created or moved, up to the spawned admission task and the request's own future; one
    /// allocation is cheaper (docs/performance.md, "Futures copied by value").
    pub(crate) fn within<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> impl Future<Output = Result<T, RedisError>> {
        let call = Box::pin(call);
        async move {
            match tokio::time::timeout(limit, call).await {
                Ok(result) => Ok(result?),
                Err(_) => Err(RedisError::Timeout(limit)),
            }
        }
    }

    /// A connection of its own for a blocking read of up to `block`.
    pub(crate) async fn blocking(&self, block: Duration) -> Result<Conn, RedisError> {
        self.own(block + self.0.op_timeout).await
    }

    /// A connection of its own whose answers may take up to `limit`.
    async fn own(&self, limit: Duration) -> Result<Conn, RedisError> {
        match &self.0.target {
            Target::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.0.op_timeout))
                    .set_response_timeout(Some(limit));
                let connect = client.get_multiplexed_async_connection_with_config(&config);
                Ok(Conn::Own(self.run(connect).await?))
            }
            // A cluster connection of its own: it follows the key's slot wherever it moves.
            Target::Cluster(client) => {
                let config = cluster_config(self.0.op_timeout).set_response_timeout(limit);
                Ok(Conn::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
    }

    /// Runs a write transaction on `key`'s slot and, with `storage.wait_replicas` = N, then
    /// `WAIT N op_timeout`: Ok only once N replicas hold it.
    ///
    /// `WAIT` counts the writes of its own connection, and Redis blocks that whole connection
    /// while it waits, so the pair runs on a pooled connection of its own: a replica that is
    /// slow or gone stalls only the requests waiting for it, never the shared connection.
    pub(crate) async fn query_pipe_replicated<T: redis::FromRedisValue>(
        &self,
        pipe: &Pipeline,
        key: &str,
    ) -> Result<T, RedisError> {
        if self.0.wait_replicas == 0 {
            return self.query_pipe(pipe).await;
        }
        let mut conn = self.writer().await?;
        let out: T = self.send_pipe(&mut conn, pipe).await?;
        self.wait_for_replicas(conn, key).await?;
        Ok(out)
    }

    /// Like [`Redis::query_pipe_replicated`], for a script on `key`'s slot.
    pub(crate) async fn script_replicated<T: redis::FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
        key: &str,
    ) -> Result<T, RedisError> {
        if self.0.wait_replicas == 0 {
            let mut conn = self.conn();
            return self.run(call.invoke_async(&mut conn)).await;
        }
        let mut conn = self.writer().await?;
        let out: T = self.run(call.invoke_async(&mut conn)).await?;
        self.wait_for_replicas(conn, key).await?;
        Ok(out)
    }

    /// A pooled connection for writes that `WAIT`.
    async fn writer(&self) -> Result<Conn, RedisError> {
        let popped = self
            .0
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        match popped {
            Some(conn) => Ok(conn),
            None => self.own(2 * self.0.op_timeout).await,
        }
    }

    /// `WAIT N op_timeout` on `conn`, the connection that just wrote on `key`'s slot; then
    /// `conn` goes back to the pool.
    async fn wait_for_replicas(&self, mut conn: Conn, key: &str) -> Result<(), RedisError> {
        let wanted = self.0.wait_replicas;
        let timeout_ms = self.0.op_timeout.as_millis().max(1) as u64;
        let mut wait = redis::cmd("WAIT");
        wait.arg(wanted).arg(timeout_ms);
        let limit = 2 * self.0.op_timeout;
        let got: u32 = match &mut conn {
            Conn::Cluster(c) => {
                // WAIT has no key: routed by hand to the master that took the write.
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_redis_value(self.within(limit, c.route_command(wait, routing)).await?)?
            }
            other => self.within(limit, wait.query_async(other)).await?,
        };
        // Only a connection whose calls all completed goes back (a failed one is dropped).
        let mut idle = self.0.writers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_WRITERS {
            idle.push(conn);
        }
        drop(idle);
        if got < wanted {
            return Err(RedisError::Replicas { wanted, got });
        }
        Ok(())
    }

    /// The prefix of every key (`storage.key_prefix`).
    pub(crate) fn prefix(&self) -> &str {
        &self.0.prefix
    }

    /// Queue streams per lane.
    pub(crate) fn shards(&self) -> u32 {
        self.0.shards
    }

    /// The shard an event id belongs to: FNV-1a of its bytes, fixed forever because every
    /// replica (and every later version) must find the same shard for the same id.
    pub(crate) fn shard_of(&self, id: &str) -> u32 {
        if self.0.shards == 1 {
            return 0;
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % u64::from(self.0.shards)) as u32
    }

    /// The key `{prefix}:{<scope>}:<rest>` with one stream per lane, else
    /// `{prefix}:{<scope>/<shard>}:<rest>`. The braces are a Redis Cluster hash tag: every key of
    /// a (scope, shard) lives in one slot, so one transaction or script may touch several of
    /// them, and distinct shards land on distinct slots (and so on every master).
    pub(crate) fn key(&self, scope: &str, shard: u32, rest: &str) -> String {
        match self.0.shards {
            1 => format!("{}:{{{scope}}}:{rest}", self.0.prefix),
            _ => format!("{}:{{{scope}/{shard}}}:{rest}", self.0.prefix),
        }
    }

    /// The addresses of the cluster's masters (`CLUSTER NODES`), or None on a single Redis.
    pub(crate) async fn masters(&self) -> Result<Option<Vec<(String, u16)>>, RedisError> {
        if !self.is_cluster() {
            return Ok(None);
        }
        let text: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(Some(parse_masters(&text)))
    }

    /// Sends `cmd` to the node at `host:port` of the cluster.
    pub(crate) async fn on_node<T: redis::FromRedisValue>(
        &self,
        (host, port): &(String, u16),
        cmd: Cmd,
    ) -> Result<T, RedisError> {
        let Conn::Cluster(c) = &self.0.conn else {
            return self.query(&cmd).await;
        };
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        let mut c = c.clone();
        let reply = self.run(c.route_command(cmd, routing)).await?;
        Ok(redis::from_redis_value(reply)?)
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

/// Why a cluster refused a transaction's queued commands: the slot moved, or is migrating.
#[derive(Debug, PartialEq, Eq)]
enum SlotRefusal {
    Moved,
    Migrating,
}

/// Whether `err` is a transaction aborted because a cluster refused its commands' slot.
fn refused_by_slot(err: &redis::RedisError) -> Option<SlotRefusal> {
    use redis::{ErrorKind, ServerErrorKind};
    if err.kind() != ErrorKind::Server(ServerErrorKind::ExecAbort) {
        return None;
    }
    let errors = err.clone().into_server_errors()?;
    let mut refusal = None;
    for (_, e) in errors.iter() {
        match e.kind() {
            Some(ServerErrorKind::Moved) => refusal = Some(SlotRefusal::Moved),
            Some(ServerErrorKind::Ask | ServerErrorKind::TryAgain) => {
                refusal = refusal.or(Some(SlotRefusal::Migrating));
            }
            // Any other refusal is the transaction's own fault: sending it again cannot help.
            _ => return None,
        }
    }
    refusal
}

/// The key of a pipeline's first command (its second argument: every command this crate sends
/// in a transaction names its key first).
fn first_key(pipe: &Pipeline) -> Option<Vec<u8>> {
    match pipe.cmd_iter().next()?.args_iter().nth(1)? {
        redis::Arg::Simple(key) => Some(key.to_vec()),
        _ => None,
    }
}

/// Shortest wait between two retries of a cluster command, in ms.
const RETRY_WAIT_MIN_MS: u64 = 20;
/// Longest wait between two retries of a cluster command, in ms.
const RETRY_WAIT_MAX_MS: u64 = 250;

/// Retries of a cluster command: enough that they outlast `op_timeout`, which is what bounds a
/// command. The client waits a random time between the minimum and a doubling ceiling (capped
/// at `RETRY_WAIT_MAX_MS`) before each, ~135 ms on average once capped: a fixed 8 retries gave
/// up after ~0.6 s, so a slot migration that held a key busy for longer was answered 503 with
/// time left. (A transaction refused mid-migration is not retried by the client at all:
/// [`Redis::send_pipe`] does that.)
fn cluster_retries(op_timeout: Duration) -> u32 {
    let mean_wait = (RETRY_WAIT_MIN_MS + RETRY_WAIT_MAX_MS) / 2;
    let covering = op_timeout.as_millis() as u64 / mean_wait;
    // The first few waits are shorter than the mean: a margin of 8 covers them.
    u32::try_from(covering + 8).unwrap_or(u32::MAX)
}

/// The cluster connection's own bounds: connect and answer within `op_timeout`.
fn cluster_config(op_timeout: Duration) -> redis::cluster::ClusterConfig {
    redis::cluster::ClusterConfig::new()
        .set_connection_timeout(op_timeout)
        .set_response_timeout(op_timeout)
}

/// The masters that answer, from `CLUSTER NODES` lines `id host:port@bus[,hostname] flags …`.
fn parse_masters(text: &str) -> Vec<(String, u16)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = fields.nth(1)?;
            let flags = fields.next()?;
            let is_live_master = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
            let hostport = addr.split(['@', ',']).next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            let port = port.parse().ok()?;
            (is_live_master && !host.is_empty()).then(|| (host.to_owned(), port))
        })
        .collect()
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
        sharded(test, 1)
    }

    /// Like [`redis`], with `shards` streams per lane (the cluster layout, on one Redis).
    pub(crate) fn sharded(test: &str, shards: u32) -> Redis {
        let prefix = format!(
            "hgtest-{test}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let options = Options {
            shards,
            ..Options::new(&prefix, Duration::from_secs(2))
        };
        Redis::single(&url(), options).expect("redis url parses")
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

    #[test]
    fn a_transactions_key_is_its_first_commands_first_argument() {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XADD")
            .arg("hg:{stripe/3}:q:stripe")
            .arg("*")
            .arg("j")
            .arg("x");
        pipe.cmd("XDEL").arg("hg:{stripe/3}:q:other").arg("1-0");
        assert_eq!(
            first_key(&pipe).as_deref(),
            Some(&b"hg:{stripe/3}:q:stripe"[..])
        );
        assert_eq!(first_key(&redis::pipe()), None);
    }

    /// A transaction Redis aborts for a fault of its own (here a command queued with the
    /// wrong arity), and a plain command error, are not slot refusals: `send_pipe` returns
    /// them at once instead of sending them again.
    #[tokio::test]
    async fn an_abort_for_the_transactions_own_fault_is_no_slot_refusal() {
        let client = redis::Client::open(testing::url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("XADD").arg("hgtest-aborted");
        let err = pipe.query_async::<()>(&mut conn).await.unwrap_err();
        assert_eq!(
            err.kind(),
            redis::ErrorKind::Server(redis::ServerErrorKind::ExecAbort),
            "{err}"
        );
        assert_eq!(refused_by_slot(&err), None);
        let mut single = redis::cmd("XADD");
        single.arg("hgtest-aborted");
        let err = single.query_async::<()>(&mut conn).await.unwrap_err();
        assert_eq!(refused_by_slot(&err), None);
    }

    fn config(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The redis crate's mean wait before retry `i`: uniform between the minimum and a
    /// ceiling of 10 ms × 2^i kept within [min, max] (its `RetryParams::wait_time_for_retry`).
    fn mean_wait_ms(i: u32) -> u64 {
        let ceiling = (10u64 << i.min(20)).clamp(RETRY_WAIT_MIN_MS, RETRY_WAIT_MAX_MS);
        (RETRY_WAIT_MIN_MS + ceiling) / 2
    }

    #[test]
    fn cluster_retries_outlast_the_op_timeout() {
        for ms in [100, 500, 1_000, 2_000, 5_000, 30_000] {
            let retries = cluster_retries(Duration::from_millis(ms));
            let waited: u64 = (0..retries).map(mean_wait_ms).sum();
            assert!(
                waited >= ms,
                "{retries} retries wait {waited} ms on average, op_timeout {ms} ms"
            );
            // And not far beyond: the op_timeout, not the count, ends a command.
            assert!(waited <= ms + 2_000, "{retries} retries for {ms} ms");
        }
    }

    #[test]
    fn live_masters_are_read_from_cluster_nodes() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,node-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 master,fail - 0 0 3 connected
d4 127.0.0.1:7003@17003 slave a1 0 0 1 connected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";
        assert_eq!(
            parse_masters(text),
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7001)
            ]
        );
    }

    #[test]
    fn shards_spread_ids_and_single_redis_keeps_one_stream() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let opts = |shards| Options {
            shards,
            ..Options::new("hg", Duration::from_secs(1))
        };
        let one = Redis::single("redis://127.0.0.1:1", opts(1)).unwrap();
        assert_eq!(one.key("r", one.shard_of("evt_1"), "q:r"), "hg:{r}:q:r");
        let many = Redis::single("redis://127.0.0.1:1", opts(16)).unwrap();
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| many.shard_of(&format!("evt_{i}")))
            .collect();
        assert_eq!(used.len(), 16, "1000 ids reach every shard");
        assert_eq!(many.shard_of("evt_7"), many.shard_of("evt_7"));
        assert_eq!(many.key("r", 3, "q:r/a"), "hg:{r/3}:q:r/a");
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
