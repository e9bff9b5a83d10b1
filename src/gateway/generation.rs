//! Generations of delivery workers. A reload retires the running generation before the next
//! one starts: the old workers stop leasing, their attempts in flight end (within the grace
//! period, else they are aborted) and their leases go back to the queue, so an upstream never
//! sees more than its `concurrency` attempts at once. Ingress keeps accepting meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Base;
use crate::config::{Config, Route};
use crate::deliver::{self, LaneState, Lanes};
use crate::queue::{Backend, Queue};

/// The delivery side in force: the lanes the admin view shows and the workers on them.
pub(super) struct Delivery {
    pub(super) lanes: Arc<Lanes>,
    generation: Generation,
}

impl Delivery {
    /// Workers for the lanes of `config`; lanes the store holds for no route are listed as
    /// removed (and warned about), so their events stay reachable after a restart.
    pub(super) async fn start(config: &Config, base: &Base) -> Delivery {
        match base.storage_queue.stored_lanes().await {
            Ok(stored) => base.known.remember(&stored),
            Err(e) => {
                tracing::warn!(error = %e, "could not list the lanes in storage; those of removed routes stay hidden")
            }
        }
        let lanes = Arc::new(base.known.lanes(&config.routes));
        let stranded: Vec<_> = lanes.removed().cloned().collect();
        warn_stranded(&base.storage_queue, &stranded, "in storage but in no route").await;
        let generation = Generation::start(&config.routes, &lanes, base.shared());
        Delivery { lanes, generation }
    }

    /// Hands the lanes over to workers for `next` (`fresh`: its lanes), once the running ones
    /// retired within `grace`. False when shutdown began meanwhile (nothing new started).
    pub(super) async fn hand_over(
        &mut self,
        next: &Config,
        fresh: Arc<Lanes>,
        base: &Base,
        grace: Duration,
    ) -> bool {
        let queue = &base.storage_queue;
        let removed = removed_by(&self.lanes, &fresh);
        warn_stranded(queue, &removed, "removed by the reload").await;
        self.lanes = fresh;
        let mut shutdown = base.shutdown.clone();
        if !retire(&mut self.generation, grace, queue, &mut shutdown).await {
            return false;
        }
        self.generation = Generation::start(&next.routes, &self.lanes, base.shared());
        true
    }

    /// Shutdown: see [`Generation::drain`].
    pub(super) async fn drain(&mut self, deadline: Instant) {
        self.generation.drain(deadline).await
    }
}

/// One configuration's delivery workers and their own stop signal.
struct Generation {
    workers: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Generation {
    /// Starts a worker per lane of `routes`.
    fn start(routes: &[Route], lanes: &Lanes, shared: deliver::Shared) -> Generation {
        let (stop, rx) = watch::channel(false);
        Generation {
            workers: deliver::spawn(routes, lanes, shared, rx),
            stop,
        }
    }

    /// Stops leasing new jobs; attempts in flight go on.
    fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops the workers and waits for them until `deadline`, then aborts the rest (their jobs
    /// stay unacknowledged in the queue). Cancel safe: a later call carries on.
    async fn drain(&mut self, deadline: Instant) {
        self.stop();
        let drained = tokio::time::timeout_at(deadline, async {
            while self.workers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                workers = self.workers.len(),
                "deliveries still running at the deadline; their events stay queued"
            );
            self.workers.shutdown().await;
        }
    }
}

/// Retires `old` (see the module doc) within `grace`. False when shutdown began meanwhile: `old`
/// is then left to the shutdown, which drains it under its own deadline.
async fn retire(
    old: &mut Generation,
    grace: Duration,
    queue: &Backend,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let deadline = Instant::now() + grace;
    tokio::select! {
        () = old.drain(deadline) => {}
        () = crate::shutdown::requested(shutdown) => return false,
    }
    queue.return_leases().await;
    true
}

/// Warns about each lane in `lanes` that still holds events although no route delivers them:
/// they wait until a reload brings the lane back, and stay in the admin API meanwhile.
async fn warn_stranded(queue: &Backend, lanes: &[Arc<LaneState>], why: &str) {
    for lane in lanes {
        let queued = queue.depth(&lane.lane).await.unwrap_or_default();
        let dead = queue
            .dead(&lane.lane, DEAD_COUNTED)
            .await
            .map_or(0, |d| d.len());
        if queued + dead > 0 {
            tracing::warn!(
                lane = %lane.lane,
                queued,
                dead,
                "{why} with events left: they wait (see /admin/routes and /admin/dlq) until the lane is configured again or they are purged"
            );
        }
    }
}

/// The lanes in force in `before` that `after` removed.
fn removed_by(before: &Lanes, after: &Lanes) -> Vec<Arc<LaneState>> {
    let gone = after
        .removed()
        .filter(|l| before.all().any(|b| Arc::ptr_eq(b, l)));
    gone.cloned().collect()
}

/// Dead letters counted for the warning (the admin API lists them all).
const DEAD_COUNTED: usize = 1000;
