//! hookgate: a webhook receiving gateway. It terminates TLS, verifies each webhook (signature,
//! timestamp, size, rate, duplicates), answers the sender once the event is durable, and delivers
//! verified events to internal upstreams with retries and a dead-letter queue.
//!
//! Layout:
//! - `config`   — TOML → validated, typed `Config` (secrets resolved, durations parsed)
//! - `server`   — accept loop, connection limits and deadlines, TLS (files or ACME), graceful drain
//! - `ingest`   — the pipeline for one request (README.md, "What happens to a request"), and its error → status mapping
//! - `verify`   — the `Scheme` seam: provider signature schemes (`Unverified` → `Verified`)
//! - `dedup`    — the `Store` seam: two-phase claim → done | release
//! - `queue`    — the `Queue` seam: durable enqueue, lease, ack, retry, dead letters
//! - `embedded` — the redb database behind the embedded dedup store and queue (group commit)
//! - `redis_conn` — the Redis connection behind the Redis dedup store and Streams queue
//! - `deliver`  — per-lane delivery workers, lane health, forwarding, typed attempt errors and
//!   the retry schedule
//! - `gateway`  — wiring: storage, listeners, workers; SIGHUP retires a generation of workers
//!   before the next starts; one shutdown deadline
//! - `admin`    — health, readiness, metrics, the admin API, its time series and the web console (docs/console.md)
//! - `metrics`  — Prometheus counters
//! - `shutdown` — signals → the shutdown watch
//! - `telemetry` — OpenTelemetry spans per webhook and per attempt, exported over OTLP/HTTP

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod dedup;
pub mod deliver;
pub mod embedded;
mod gateway;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod verify;

/// Like [`run`], also applying every configuration received on a channel (SIGHUP reload).
pub use gateway::run as run_reloadable;

use tokio::net::TcpListener;
use tokio::sync::watch;

use config::{Backend as StorageBackend, Config};

/// The bound sockets `run` serves; binding is the caller's job so tests can use port 0.
pub struct Listeners {
    pub ingress: TcpListener,
    pub admin: TcpListener,
}

/// Why the gateway could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// TLS material unusable.
    #[error(transparent)]
    Tls(#[from] server::tls::TlsError),
    /// The data directory could not be opened or flushed.
    #[error("storage: {0}")]
    Storage(#[from] embedded::StorageError),
    /// The Redis URL is unusable.
    #[error("storage: {0}")]
    Redis(#[from] redis_conn::RedisError),
    /// The trace exporter could not be built.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The delivery workers' threads could not be started.
    #[error("starting the delivery threads: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The configured storage: queue and dedup, plus the embedded database when there is one.
pub(crate) struct Storage {
    pub(crate) queue: queue::Backend,
    pub(crate) dedup: dedup::Dedup,
    pub(crate) db: Option<embedded::Db>,
    /// The Redis connection, when that is the backend (for the persistence check at start).
    pub(crate) redis: Option<redis_conn::Redis>,
}

/// Opens the configured backend. Redis connects lazily: the gateway starts while Redis is down
/// and answers 503 until it is back.
pub(crate) fn open_storage(s: &config::StorageConfig) -> Result<Storage, RunError> {
    match s.backend {
        StorageBackend::Embedded => {
            let db = embedded::Db::open_with_cache(&s.path, s.cache_bytes)?;
            let queue = queue::embedded::EmbeddedQueue::open(db.clone())?;
            let dedup = dedup::embedded::EmbeddedDedup::new(db.clone(), s.dedup_ttl, s.claim_ttl);
            Ok(Storage {
                queue: queue::Backend::Embedded(queue),
                dedup: dedup::Dedup::Embedded(dedup),
                db: Some(db),
                redis: None,
            })
        }
        StorageBackend::Redis => {
            let options = redis_conn::Options {
                prefix: s.key_prefix.clone(),
                op_timeout: s.op_timeout,
                shards: s.shards,
                wait_replicas: s.wait_replicas,
            };
            let redis = if s.redis_cluster.is_empty() {
                redis_conn::Redis::single(s.redis_url.expose(), options)?
            } else {
                let seeds: Vec<&str> = s.redis_cluster.iter().map(|u| u.expose()).collect();
                redis_conn::Redis::cluster(&seeds, options)?
            };
            let queue = queue::redis_stream::RedisQueue::new(redis.clone(), s.visibility_timeout);
            let dedup = dedup::redis::RedisDedup::new(redis.clone(), s.dedup_ttl, s.claim_ttl);
            Ok(Storage {
                queue: queue::Backend::Redis(queue),
                dedup: dedup::Dedup::Redis(dedup),
                db: None,
                redis: Some(redis),
            })
        }
    }
}

/// Runs the gateway until `shutdown` turns true, then drains and flushes.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    // Nothing ever sends on it: this gateway keeps its configuration.
    let (_keep, reloads) = tokio::sync::mpsc::channel(1);
    gateway::run(config, listeners, shutdown, reloads).await
}
