//! hookgate: a webhook receiving gateway. It terminates TLS, verifies each webhook (signature,
//! timestamp, size, rate, duplicates), answers the sender once the event is durable, and delivers
//! verified events to internal upstreams with retries and a dead-letter queue.
//!
//! Layout:
//! - `config`   — TOML → validated, typed `Config` (secrets resolved, durations parsed)
//! - `server`   — accept loop, connection limits, TLS, graceful drain
//! - `ingest`   — the SPEC §1 pipeline for one request, and its error → status mapping
//! - `verify`   — the `Scheme` seam: provider signature schemes (`Unverified` → `Verified`)
//! - `dedup`    — the `Store` seam: two-phase claim → done | release
//! - `queue`    — the `Queue` seam: durable enqueue, lease, ack, retry, dead letters
//! - `embedded` — the redb database behind the embedded dedup store and queue (group commit)
//! - `redis_conn` — the Redis connection behind the Redis dedup store and Streams queue
//! - `deliver`  — per-route delivery workers, forwarding and the retry schedule
//! - `admin`    — health, readiness, metrics and the admin API
//! - `metrics`  — Prometheus counters
//! - `shutdown` — signals → the shutdown watch

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod dedup;
pub mod deliver;
pub mod embedded;
pub mod ingest;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod server;
pub mod shutdown;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

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
}

/// The configured storage: queue and dedup, plus the embedded database when there is one.
struct Storage {
    queue: queue::Backend,
    dedup: dedup::Dedup,
    db: Option<embedded::Db>,
}

/// Opens the configured backend. Redis connects lazily: the gateway starts while Redis is down
/// and answers 503 until it is back.
fn open_storage(s: &config::StorageConfig) -> Result<Storage, RunError> {
    match s.backend {
        StorageBackend::Embedded => {
            let db = embedded::Db::open(&s.path)?;
            let queue = queue::embedded::EmbeddedQueue::open(db.clone())?;
            let dedup = dedup::embedded::EmbeddedDedup::new(db.clone(), s.dedup_ttl, s.claim_ttl);
            Ok(Storage {
                queue: queue::Backend::Embedded(queue),
                dedup: dedup::Dedup::Embedded(dedup),
                db: Some(db),
            })
        }
        StorageBackend::Redis => {
            let redis = redis_conn::Redis::connect(&s.redis_url, &s.key_prefix, s.op_timeout)?;
            let queue = queue::redis_stream::RedisQueue::new(redis.clone(), s.visibility_timeout);
            tokio::spawn({
                let redis = redis.clone();
                async move { redis.check_persistence().await }
            });
            let dedup = dedup::redis::RedisDedup::new(redis, s.dedup_ttl, s.claim_ttl);
            Ok(Storage {
                queue: queue::Backend::Redis(queue),
                dedup: dedup::Dedup::Redis(dedup),
                db: None,
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
    let tls = match &config.server.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(server::tls::server_config(
            t,
        )?)),
        None => None,
    };
    let Storage { queue, dedup, db } = open_storage(&config.storage)?;
    if let Some(db) = &db {
        db.spawn_sweeper(Duration::from_secs(60), shutdown.clone());
    }
    let metrics = Arc::new(metrics::Metrics::new());
    let grace = config.server.shutdown_grace;

    let shared = deliver::Shared {
        queue: queue.clone(),
        client: deliver::forward::client(),
        metrics: metrics.clone(),
    };
    let (lanes, mut workers) = deliver::spawn(&config.routes, shared, shutdown.clone(), grace);

    let admin = Arc::new(admin::Admin {
        token: config.admin.token.clone(),
        metrics: metrics.clone(),
        queue: queue.clone(),
        lanes,
        routes: config.routes.iter().map(|r| r.name.clone()).collect(),
        shutdown: shutdown.clone(),
    });
    let limits = server::Limits {
        max_connections: config.server.max_connections,
        header_timeout: config.server.header_timeout,
        grace,
    };
    let admin_task = tokio::spawn(server::serve(
        listeners.admin,
        None,
        server::Limits {
            max_connections: 64,
            ..limits.clone()
        },
        move |req, _| admin.clone().handle(req),
        shutdown.clone(),
    ));

    let ingress = Arc::new(ingest::Ingress {
        routes: ingest::route::RouteTable::new(&config.routes),
        queue: queue.clone(),
        dedup,
        metrics,
        trusted_proxies: config.server.trusted_proxies.clone(),
        body_timeout: config.server.body_timeout,
    });
    spawn_housekeeping(ingress.clone(), shutdown.clone());
    tracing::info!(addr = %listeners.ingress.local_addr().map(|a| a.to_string()).unwrap_or_default(), tls = tls.is_some(), "ingress listening");
    server::serve(
        listeners.ingress,
        tls,
        limits,
        move |req, peer| ingress.clone().handle(req, peer),
        shutdown,
    )
    .await;
    while workers.join_next().await.is_some() {}
    let _ = admin_task.await;
    // History lines and dedup done-records ride along with later commits; write them now.
    queue.shutdown().await;
    if let Some(db) = db {
        let flushed = db.flush().await;
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
        flushed?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Periodically trims per-IP rate-limit state.
fn spawn_housekeeping(ingress: Arc<ingest::Ingress>, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                _ = tick.tick() => ingress.routes.all().filter_map(|r| r.limiter.as_ref()).for_each(|l| l.housekeeping()),
            }
        }
    });
}
