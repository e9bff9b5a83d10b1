//! Delivery workers: per route, at most `concurrency` attempts in flight (a `Semaphore`), jobs taken
//! in order of arrival, each attempt's outcome recorded in the queue (ack, retry at a time, or dead).
//!
//! On shutdown no new job is leased; attempts in flight get the grace period, and whatever is
//! still unacknowledged then stays in the queue and is delivered after the restart.

pub mod forward;
pub mod retry;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Route;
use crate::metrics::Metrics;
use crate::queue::{Backend, Job, Queue};
use crate::verify::{self, Scheme};
use forward::HttpClient;
use retry::Next;

/// What every route worker shares.
#[derive(Clone)]
pub struct Shared {
    pub queue: Backend,
    pub client: HttpClient,
    pub metrics: Arc<Metrics>,
}

/// One route's delivery settings, prepared once.
struct RouteWorker {
    route: Route,
    resign: Option<Box<dyn Scheme>>,
    shared: Shared,
}

/// Starts a worker per route; the returned set finishes once shutdown has drained them.
pub fn spawn(
    routes: &[Route],
    shared: Shared,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for route in routes {
        // The forward secret is a Standard Webhooks key, so every consumer needs a single verifier.
        let resign = route.forward_secret.as_ref().and_then(|s| {
            verify::build(
                "standard",
                vec![s.clone()],
                Duration::from_secs(300),
                &Default::default(),
            )
            .inspect_err(
                |e| tracing::error!(route = %route.name, error = %e, "forward_secret unusable"),
            )
            .ok()
        });
        let w = Arc::new(RouteWorker {
            route: route.clone(),
            resign,
            shared: shared.clone(),
        });
        set.spawn(w.run(shutdown.clone(), grace));
    }
    set
}

impl RouteWorker {
    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let permits = Arc::new(Semaphore::new(self.route.upstream.concurrency));
        let mut inflight = JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
            };
            let job = tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break,
                j = self.shared.queue.receive(&self.route.name) => j,
            };
            match job {
                Ok(job) => {
                    inflight.spawn(self.clone().deliver(job, permit));
                }
                Err(e) => {
                    tracing::error!(route = %self.route.name, error = %e, "queue receive failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            while inflight.try_join_next().is_some() {}
        }
        let drained = tokio::time::timeout(grace, async {
            while inflight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(route = %self.route.name, "deliveries still running at the deadline; they stay queued");
            inflight.abort_all();
        }
    }

    async fn deliver(self: Arc<Self>, job: Job, _permit: OwnedSemaphorePermit) {
        let up = &self.route.upstream;
        let req = forward::request(&up.url, &job, self.resign.as_deref());
        let attempt = forward::send(&self.shared.client, req, up.timeout).await;
        let number = job.attempts + 1;
        let outcome = if attempt.delivered() {
            self.settle(self.shared.queue.ack(&job).await, "delivered")
        } else {
            let error = attempt.error.clone().unwrap_or_default();
            match retry::next(
                &self.route.retry,
                number,
                attempt.retry_after,
                rand::random::<f64>(),
            ) {
                Next::RetryIn(d) => self.settle(
                    self.shared
                        .queue
                        .retry(&job, SystemTime::now() + d, &error)
                        .await,
                    "retry",
                ),
                Next::Dead => {
                    self.settle(self.shared.queue.dead_letter(&job, &error).await, "dead")
                }
            }
        };
        self.shared
            .metrics
            .delivery(&self.route.name, outcome, attempt.latency.as_secs_f64());
        tracing::info!(
            route = %self.route.name,
            event_id = %job.event.id,
            attempt = number,
            status = attempt.status.map(|s| s.as_u16()).unwrap_or(0),
            outcome,
            error = attempt.error.as_deref().unwrap_or(""),
            latency_ms = attempt.latency.as_millis() as u64,
            "delivery"
        );
    }

    /// Logs a failed bookkeeping write; the job then stays leased until restart (at-least-once).
    fn settle<E: std::fmt::Display>(
        &self,
        r: Result<(), E>,
        outcome: &'static str,
    ) -> &'static str {
        if let Err(e) = r {
            tracing::error!(route = %self.route.name, error = %e, outcome, "could not record delivery outcome");
        }
        outcome
    }
}
