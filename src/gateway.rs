//! Wiring: storage, listeners and delivery workers, and the reload loop.
//!
//! A reload (SIGHUP) swaps whole pieces rather than patching them: a new route table (secrets,
//! limits, schemes), a new admin view and a new TLS certificate for new connections at once,
//! and a new generation of delivery workers once the old one has retired (see `generation`).
//! Lane health survives the swap (`deliver::KnownLanes`). Listen addresses, storage and
//! listener limits are bound at start: a reload that changes one of them is refused as a whole,
//! naming the key, so nothing is half-applied; in particular the Redis `visibility_timeout`
//! stays the one every upstream timeout was checked against when the file was loaded.
//!
//! Every task has an owner here, and shutdown has one deadline: `server.shutdown_grace` from
//! the moment it begins, for the listeners' drain and the workers' drain together; then flush.

mod generation;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::server::tls::{self, Reloadable};
use crate::{Listeners, RunError, Storage, admin, deliver, ingest, metrics, open_storage, server};
use generation::Delivery;

/// What outlives a reload.
struct Base {
    storage_queue: crate::queue::Backend,
    dedup: crate::dedup::Dedup,
    metrics: Arc<metrics::Metrics>,
    client: deliver::forward::HttpClient,
    /// `server.max_inflight_body`, shared by every generation of the ingress.
    body_budget: ingest::body::Budget,
    shutdown: watch::Receiver<bool>,
    /// Admission tasks of every generation of the ingress (they outlive dropped requests).
    admissions: TaskTracker,
    known: deliver::KnownLanes,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// With `server.tls.acme`: the ingress certificate, for `/readyz`.
    certificate: Option<Arc<server::acme::CertResolver>>,
    /// The console's charts: sampled counters, kept across reloads.
    timeseries: Arc<admin::timeseries::TimeSeries>,
    /// The delivery workers' own threads.
    delivery: deliver::Runtime,
}

impl Base {
    fn shared(&self) -> deliver::Shared {
        deliver::Shared {
            queue: self.storage_queue.clone(),
            client: self.client.clone(),
            metrics: self.metrics.clone(),
            telemetry: self.telemetry.clone(),
            runtime: self.delivery.handle(),
        }
    }

    fn ingress(&self, config: &Config) -> ingest::Ingress {
        ingest::Ingress {
            routes: ingest::route::RouteTable::new(&config.routes),
            queue: self.storage_queue.clone(),
            dedup: self.dedup.clone(),
            metrics: self.metrics.clone(),
            trusted_proxies: config.server.trusted_proxies.clone(),
            body_timeout: config.server.body_timeout,
            tasks: self.admissions.clone(),
            body_budget: self.body_budget.clone(),
            telemetry: self.telemetry.clone(),
        }
    }

    fn admin(
        &self,
        config: &Config,
        lanes: Arc<deliver::Lanes>,
        ingress: &Arc<ArcSwap<ingest::Ingress>>,
    ) -> admin::Admin {
        admin::Admin {
            token: config.admin.token.clone(),
            metrics: self.metrics.clone(),
            queue: self.storage_queue.clone(),
            lanes,
            routes: config.routes.iter().map(|r| r.name.clone()).collect(),
            ordered: (config.routes.iter())
                .filter(|r| r.order.is_some())
                .map(|r| r.name.clone())
                .collect(),
            shutdown: self.shutdown.clone(),
            certificate: self.certificate.clone(),
            ingress: ingress.clone(),
            timeseries: self.timeseries.clone(),
        }
    }
}

/// Runs until `shutdown` turns true, applying each configuration received on `reloads`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<(), RunError> {
    let acme = config.server.tls.as_ref().and_then(|t| t.acme.as_ref());
    let acme = acme.map(server::acme::Acme::new);
    let tls = match (&config.server.tls, &acme) {
        (Some(_), Some(a)) => Some(Arc::new(Reloadable::new(
            a.server_config().map_err(tls::TlsError::from)?,
        ))),
        (Some(t), None) => Some(Arc::new(Reloadable::new(tls::server_config(t)?))),
        (None, _) => None,
    };
    let Storage {
        queue,
        dedup,
        db,
        redis,
    } = open_storage(&config.storage)?;
    let mut tasks = Tasks::default();
    if let Some(redis) = redis {
        // Redis connects lazily: the check waits for it (within op_timeout) beside serving.
        tasks.push(tokio::spawn(async move { redis.check_persistence().await }));
    }
    if let Some(db) = &db {
        tasks.push(db.spawn_sweeper(Duration::from_secs(60), shutdown.clone()));
    }
    let storage_errors = db.as_ref().map(|d| d.errors()).unwrap_or_default();
    let base = Base {
        storage_queue: queue.clone(),
        dedup,
        metrics: Arc::new(metrics::Metrics::with_storage(storage_errors)),
        client: deliver::forward::client(),
        body_budget: ingest::body::Budget::new(config.server.max_inflight_body),
        shutdown: shutdown.clone(),
        admissions: TaskTracker::new(),
        known: deliver::KnownLanes::default(),
        telemetry: crate::telemetry::start(config.telemetry.as_ref())?,
        certificate: acme.as_ref().map(|a| a.resolver()),
        timeseries: Arc::default(),
        delivery: deliver::Runtime::start().map_err(RunError::Runtime)?,
    };
    note_cert_expiry(&base.metrics, &config);
    let configured = Arc::new(base.known.lanes(&config.routes));
    let ingress = Arc::new(ArcSwap::from_pointee(base.ingress(&config)));
    let admin = base.admin(&config, configured, &ingress);
    let admin = Arc::new(ArcSwap::from_pointee(admin));
    let (admin_task, ingress_task) =
        serve(&config, listeners, &admin, &ingress, tls.clone(), &shutdown);
    tasks.push(admin_task);
    tasks.push(ingress_task);
    tasks.push(spawn_housekeeping(ingress.clone(), shutdown.clone()));
    tasks.push(admin::timeseries::spawn(admin.clone(), shutdown.clone()));
    if let Some(acme) = acme {
        tasks.push(acme.spawn(base.metrics.clone(), shutdown.clone()));
    }
    // Listing the stored lanes may take a while (a SCAN on Redis): ingress is already up.
    let mut delivery = Delivery::start(&config, &base).await;
    admin.store(Arc::new(base.admin(
        &config,
        delivery.lanes.clone(),
        &ingress,
    )));

    let mut current = config;
    let mut stopping = shutdown.clone();
    loop {
        tokio::select! {
            () = crate::shutdown::requested(&mut stopping) => break,
            Some(next) = reloads.recv() => {
                if !reload(&current, &next, tls.as_deref()) {
                    continue;
                }
                note_cert_expiry(&base.metrics, &next);
                let fresh = Arc::new(base.known.lanes(&next.routes));
                ingress.store(Arc::new(base.ingress(&next)));
                admin.store(Arc::new(base.admin(&next, fresh.clone(), &ingress)));
                let grace = current.server.shutdown_grace;
                current = next;
                if !delivery.hand_over(&current, fresh, &base, grace).await {
                    break;
                }
                tracing::info!(routes = current.routes.len(), "configuration reloaded");
            }
        }
    }
    let deadline = Instant::now() + current.server.shutdown_grace;
    let listeners_then_admissions = async {
        tasks.join_by(deadline).await;
        // Events whose client went away may still be completing their dedup records.
        base.admissions.close();
        if tokio::time::timeout_at(deadline, base.admissions.wait())
            .await
            .is_err()
        {
            tracing::warn!("admissions still running at the shutdown deadline");
        }
    };
    tokio::join!(delivery.drain(deadline), listeners_then_admissions);
    // History lines and dedup done-records ride along with later commits; write them now.
    queue.shutdown().await;
    if let Some(t) = &base.telemetry {
        t.shutdown(crate::telemetry::FLUSH_TIMEOUT).await;
    }
    if let Some(db) = db {
        let flushed = db.flush().await;
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
        flushed?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Publishes the ingress certificate's notAfter (read after `server_config` made or loaded it;
/// under ACME the stored one, which the ACME task also publishes after each renewal).
fn note_cert_expiry(metrics: &metrics::Metrics, config: &Config) {
    let tls = config.server.tls.as_ref();
    if let Some(not_after) = tls.and_then(|t| crate::config::tls::cert_not_after(&t.cert)) {
        metrics.set_cert_not_after(not_after);
    }
}

type Task = tokio::task::JoinHandle<()>;

/// The gateway's long-lived tasks besides the workers: listeners and chores. Each of them ends
/// by itself once shutdown begins; whatever still runs at the deadline is aborted.
#[derive(Default)]
struct Tasks(Vec<Task>);

impl Tasks {
    fn push(&mut self, task: Task) {
        self.0.push(task);
    }

    async fn join_by(self, deadline: Instant) {
        for mut task in self.0 {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!("a task still ran at the shutdown deadline; aborting it");
                task.abort();
            }
        }
    }
}

/// Starts the admin and ingress listeners; each request uses the configuration in force.
fn serve(
    config: &Config,
    listeners: Listeners,
    admin: &Arc<ArcSwap<admin::Admin>>,
    ingress: &Arc<ArcSwap<ingest::Ingress>>,
    tls: Option<Arc<Reloadable>>,
    shutdown: &watch::Receiver<bool>,
) -> (Task, Task) {
    let s = &config.server;
    let limits = server::Limits {
        max_connections: s.max_connections,
        max_per_ip: Some(s.max_connections_per_ip),
        per_ip_exempt: s.trusted_proxies.clone(),
        header_timeout: s.header_timeout,
        idle_timeout: s.idle_timeout,
        grace: s.shutdown_grace,
        max_body: config.routes.iter().map(|r| r.max_body).max().unwrap_or(0),
        h2_ping: server::H2_PING,
    };
    // The admin listener is meant for loopback, where every client is one address.
    let admin_limits = server::Limits {
        max_connections: 64,
        max_per_ip: None,
        ..limits.clone()
    };
    let admin = admin.clone();
    let admin_task = tokio::spawn(server::serve(
        listeners.admin,
        None,
        admin_limits,
        move |req, _| admin.load_full().handle(req),
        shutdown.clone(),
    ));
    let addr = listeners
        .ingress
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(%addr, tls = tls.is_some(), "ingress listening");
    let ingress = ingress.clone();
    let ingress_task = tokio::spawn(server::serve(
        listeners.ingress,
        tls,
        limits,
        move |req, peer| ingress.load_full().handle(req, peer),
        shutdown.clone(),
    ));
    (admin_task, ingress_task)
}

/// Checks what a reload can apply and puts a new certificate in force; false refuses the
/// reload (the running configuration stays, and the log says why). A key bound at start refuses
/// the whole file: applying the rest would run a configuration that is in no file.
fn reload(current: &Config, next: &Config, tls: Option<&Reloadable>) -> bool {
    let fixed = fixed_changes(current, next);
    if !fixed.is_empty() {
        tracing::error!(
            keys = %fixed.join(", "),
            "reload refused: these keys only change with a restart; keeping the running configuration"
        );
        return false;
    }
    // Under ACME the resolver is the certificate's owner: nothing to swap here.
    if let (Some(swap), Some(t)) = (tls, &next.server.tls)
        && t.acme.is_none()
    {
        match tls::server_config(t) {
            Ok(cfg) => swap.replace(cfg),
            Err(e) => {
                tracing::error!(error = %e, "reload refused: keeping the running configuration");
                return false;
            }
        }
    }
    true
}

/// Keys bound at start that differ in `next`.
fn fixed_changes(a: &Config, b: &Config) -> Vec<&'static str> {
    let (s, t) = (&a.storage, &b.storage);
    let checks = [
        ("server.listen", a.server.listen != b.server.listen),
        ("admin.listen", a.admin.listen != b.admin.listen),
        (
            "server.tls",
            a.server.tls.is_some() != b.server.tls.is_some(),
        ),
        ("server.tls.acme", acme(a) != acme(b)),
        (
            "server.max_connections",
            a.server.max_connections != b.server.max_connections,
        ),
        (
            "server.header_timeout",
            a.server.header_timeout != b.server.header_timeout,
        ),
        (
            "server.idle_timeout",
            a.server.idle_timeout != b.server.idle_timeout,
        ),
        (
            "server.max_connections_per_ip",
            a.server.max_connections_per_ip != b.server.max_connections_per_ip,
        ),
        (
            "server.max_inflight_body",
            a.server.max_inflight_body != b.server.max_inflight_body,
        ),
        (
            "server.shutdown_grace",
            a.server.shutdown_grace != b.server.shutdown_grace,
        ),
        ("telemetry", a.telemetry != b.telemetry),
        ("storage.backend", s.backend != t.backend),
        ("storage.path", s.path != t.path),
        ("storage.redis_url", s.redis_url != t.redis_url),
        ("storage.redis_cluster", s.redis_cluster != t.redis_cluster),
        ("storage.shards", s.shards != t.shards),
        ("storage.wait_replicas", s.wait_replicas != t.wait_replicas),
        ("storage.key_prefix", s.key_prefix != t.key_prefix),
        ("storage.dedup_ttl", s.dedup_ttl != t.dedup_ttl),
        ("storage.claim_ttl", s.claim_ttl != t.claim_ttl),
        (
            "storage.visibility_timeout",
            s.visibility_timeout != t.visibility_timeout,
        ),
        ("storage.op_timeout", s.op_timeout != t.op_timeout),
        ("storage.cache", s.cache_bytes != t.cache_bytes),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(k, _)| k)
        .collect()
}

fn acme(c: &Config) -> Option<&crate::config::acme::AcmeConfig> {
    c.server.tls.as_ref().and_then(|t| t.acme.as_ref())
}

/// Periodically trims per-IP rate-limit state of the routes in force.
fn spawn_housekeeping(
    ingress: Arc<ArcSwap<ingest::Ingress>>,
    mut shutdown: watch::Receiver<bool>,
) -> Task {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                _ = tick.tick() => {
                    let current = ingress.load();
                    current.routes.all().filter_map(|r| r.limiter.as_ref()).for_each(|l| l.housekeeping());
                }
            }
        }
    })
}

#[cfg(test)]
mod tests;
