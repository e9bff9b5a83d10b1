//! Delivery workers: one per lane (route × upstream), at most `concurrency` attempts in flight
//! (a `Semaphore`), jobs taken in order of arrival, every outcome recorded in the queue (ack,
//! retry at a time, or dead letter) and in the lane's delivery history.
//!
//! On a stop (shutdown or reload) no new job is leased and attempts in flight run to their end;
//! the owner of the worker set bounds that with its deadline and aborts what is left, whose
//! jobs stay unacknowledged in the queue and are delivered again (see `src/gateway.rs`).

pub mod error;
pub mod forward;
pub mod known;
pub mod lane;
pub mod retry;
mod runtime;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::{OnDead, RetryPolicy, Route, Upstream};
use crate::ingest::unix_ms;
use crate::metrics::Metrics;
use crate::queue::{AttemptRecord, Backend, Job, Queue};
use crate::telemetry::{Telemetry, TraceSpan};
use crate::verify::Scheme;
pub use error::{ErrorKind, Failure, Fault};
use forward::{Attempt, HttpClient};
pub use known::KnownLanes;
use lane::InFlight;
pub use lane::{LaneState, Lanes};
use opentelemetry::KeyValue;
use retry::Next;
pub use runtime::Runtime;

/// What every lane worker shares.
#[derive(Clone)]
pub struct Shared {
    pub queue: Backend,
    pub client: HttpClient,
    pub metrics: Arc<Metrics>,
    /// OpenTelemetry traces; None = off, and no span is built.
    pub telemetry: Option<Arc<Telemetry>>,
    /// Where the lane workers and their attempts run (see [`Runtime`]).
    pub runtime: tokio::runtime::Handle,
}

/// One lane's delivery settings, prepared once.
struct LaneWorker {
    upstream: Upstream,
    retry: RetryPolicy,
    /// The route's `on_dead` when it orders by key (release otherwise: nothing to hold).
    on_dead: OnDead,
    resign: Option<Arc<dyn Scheme>>,
    client: HttpClient,
    state: Arc<LaneState>,
    shared: Shared,
}

/// Starts a worker per lane of `routes` (its state taken from `lanes`); the set finishes once
/// `stop` turned true and the attempts in flight ended.
pub fn spawn(
    routes: &[Route],
    lanes: &Lanes,
    shared: Shared,
    stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for route in routes {
        for up in &route.upstreams {
            let lane = up.lane(&route.name);
            let Some(state) = lanes.of(&route.name).iter().find(|l| l.lane == lane) else {
                continue; // `lanes` is built from the same routes: never taken
            };
            let w = LaneWorker {
                upstream: up.clone(),
                retry: route.retry.clone(),
                on_dead: route.order.as_ref().map_or(OnDead::Release, |o| o.on_dead),
                resign: route.forward_signer.clone(),
                client: client_for(up, &shared.client),
                state: state.clone(),
                shared: shared.clone(),
            };
            set.spawn_on(Arc::new(w).run(stop.clone()), &shared.runtime);
        }
    }
    set
}

/// The shared client, or one that also trusts the upstream's own CA bundle.
/// (Its TLS config was compiled at load, so nothing here can fail or fall back.)
fn client_for(up: &Upstream, shared: &HttpClient) -> HttpClient {
    match &up.tls {
        Some(tls) => forward::client_with_tls((*tls.client).clone()),
        None => shared.clone(),
    }
}

impl LaneWorker {
    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.upstream.concurrency));
        self.state.set_concurrency(self.upstream.concurrency);
        let mut inflight = JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            if self.state.is_suspended() {
                let wait = self.state.next_probe_wait(self.upstream.probe_interval);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => break,
                    _ = self.state.resumed() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let job = tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                j = self.shared.queue.receive(&self.state.lane) => j,
            };
            // Counted from here: a permit held while waiting for a job is no attempt.
            let permit = (permit, InFlight::begin(&self.state));
            match job {
                // While suspended, the one probe runs inline so nothing else goes out meanwhile.
                Ok(job) if self.state.is_suspended() => self.clone().deliver(job, permit).await,
                Ok(job) => {
                    // Boxed: the attempt's future is kilobytes, and a task moves its future by
                    // value a few times when spawned and when it finishes.
                    inflight.spawn(Box::pin(self.clone().deliver(job, permit)));
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(lane = %self.state.lane, error = %e, "queue receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            while inflight.try_join_next().is_some() {}
        }
        // Dropping this future (the owner's deadline) drops `inflight`, which aborts the rest.
        while inflight.join_next().await.is_some() {}
    }

    /// One attempt, then its bookkeeping. The permit bounds requests in flight to the upstream,
    /// so it goes back as soon as the answer is in: waiting for the outcome's write (the next
    /// group commit) while holding it would cap the lane at `concurrency` per commit interval,
    /// whatever the upstream could take (docs/performance.md).
    async fn deliver(self: Arc<Self>, job: Job, permit: (OwnedSemaphorePermit, InFlight)) {
        let mut req = forward::request(
            &self.upstream.url,
            &job,
            self.resign.as_deref(),
            SystemTime::now(),
        );
        let telemetry = self.shared.telemetry.as_ref();
        let span = telemetry.map(|t| t.attempt_span(job.event.traceparent.as_deref()));
        if let Some(s) = &span {
            s.inject(req.headers_mut());
        }
        let attempt = forward::send(&self.client, req, self.upstream.timeout).await;
        drop(permit);
        let number = job.attempts + 1;
        let outcome = self.settle(&job, &attempt).await;
        if let Some(s) = span {
            self.end_span(s, &job, &attempt, outcome);
        }
        let kind = attempt.error.as_ref().map(|f| f.kind);
        self.shared.metrics.delivery(
            &self.state.lane,
            outcome,
            kind,
            attempt.latency.as_secs_f64(),
        );
        self.record(&job, &attempt).await;
        tracing::info!(
            route = %self.state.route,
            lane = %self.state.lane,
            event_id = %job.event.id,
            attempt = number,
            status = attempt.status.map(|s| s.as_u16()).unwrap_or(0),
            outcome,
            kind = kind.map_or("", ErrorKind::name),
            error = attempt.error.as_ref().map_or("", |f| f.detail.as_str()),
            latency_ms = attempt.latency.as_millis() as u64,
            "delivery"
        );
    }

    /// Acks, reschedules or dead-letters the job; returns the outcome's name.
    async fn settle(&self, job: &Job, attempt: &Attempt) -> &'static str {
        let q = &self.shared.queue;
        if attempt.delivered() {
            self.state.success();
            return log_err(q.ack(job).await, "delivered");
        }
        self.state.failure();
        let error = attempt
            .error
            .clone()
            .unwrap_or_else(|| Failure::new(ErrorKind::Unknown, "no answer"));
        let status = attempt.status.map(|s| s.as_u16());
        let next = match status {
            _ if !error.kind.retried() => Next::Dead,
            Some(s) if self.retry.no_retry_on.contains(&s) => Next::Dead,
            _ => retry::next(
                &self.retry,
                job.attempts + 1,
                attempt.retry_after,
                rand::random::<f64>(),
            ),
        };
        match next {
            Next::RetryIn(d) => log_err(q.retry(job, retry::at(d), &error.detail).await, "retry"),
            Next::Dead => log_err(q.dead_letter(job, &error, self.on_dead).await, "dead"),
        }
    }

    /// Ends the attempt's span (attribute names: docs/telemetry.md).
    fn end_span(&self, span: TraceSpan, job: &Job, a: &Attempt, outcome: &'static str) {
        let url = &self.upstream.url;
        let mut attrs = vec![
            KeyValue::new("hookgate.route", self.state.route.clone()),
            KeyValue::new("hookgate.lane", self.state.lane.clone()),
            KeyValue::new("hookgate.event_id", job.event.id.clone()),
            KeyValue::new("hookgate.attempt", i64::from(job.attempts + 1)),
            KeyValue::new("hookgate.outcome", outcome),
            // Host and port only: a URL's userinfo or query may hold a credential.
            KeyValue::new("server.address", url.host().unwrap_or("").to_owned()),
            KeyValue::new("hookgate.latency_ms", a.latency.as_secs_f64() * 1000.0),
        ];
        if let Some(port) = url.port_u16() {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
        if let Some(name) = &self.upstream.name {
            attrs.push(KeyValue::new("hookgate.upstream", name.clone()));
        }
        if let Some(s) = a.status {
            attrs.push(KeyValue::new(
                "http.response.status_code",
                i64::from(s.as_u16()),
            ));
        }
        if let Some(f) = &a.error {
            attrs.push(KeyValue::new("error.type", f.kind.name()));
            if let Some(fault) = f.kind.fault() {
                attrs.push(KeyValue::new("hookgate.error.fault", fault.name()));
            }
        }
        // A 2xx with a broken body is delivered: its kind is on record, the span is no error.
        let failed = match &a.error {
            Some(f) if !a.delivered() => Some(f.detail.clone()),
            _ => None,
        };
        span.end(attrs, failed);
    }

    /// Appends the attempt to the lane's delivery history (best effort).
    async fn record(&self, job: &Job, a: &Attempt) {
        let rec = AttemptRecord {
            event_id: job.event.id.clone(),
            attempt: job.attempts + 1,
            status: a.status.map(|s| s.as_u16()),
            latency_ms: a.latency.as_millis() as u64,
            at_ms: unix_ms(SystemTime::now()),
            error: a.error.as_ref().map(|f| f.detail.clone()),
            answer: a.answer.clone(),
            kind: a.error.as_ref().map(|f| f.kind),
        };
        if let Err(e) = self
            .shared
            .queue
            .record_attempt(&self.state.lane, rec)
            .await
        {
            tracing::warn!(lane = %self.state.lane, error = %e, "could not record delivery history");
        }
    }
}

/// Logs a failed bookkeeping write; the job then comes back (at-least-once).
fn log_err<E: std::fmt::Display>(r: Result<(), E>, outcome: &'static str) -> &'static str {
    if let Err(e) = r {
        tracing::error!(error = %e, outcome, "could not record delivery outcome");
    }
    outcome
}
