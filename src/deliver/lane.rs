//! A lane is one (route, upstream) pair: its own queue position, retries and dead letters, and
//! its own health. After `suspend_after` consecutive failures the lane is suspended: events keep
//! queueing, and a single probe goes out at growing intervals until one succeeds or an operator
//! resumes it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest wait between two probes of a suspended upstream.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(300);

/// Health of one lane, shared by its worker and the admin API. It outlives a reload that keeps
/// the lane's upstream (see `deliver::known`), so each setting that may change is an atomic.
#[derive(Debug)]
pub struct LaneState {
    pub route: String,
    pub upstream: Option<String>,
    pub lane: String,
    suspend_after: AtomicU32,
    consecutive_failures: AtomicU32,
    suspended: AtomicBool,
    /// The wait before the next probe while suspended, in ms; 0 until the first probe.
    probe_wait_ms: AtomicU64,
    resumed: Notify,
    /// Attempts waiting for the upstream now (see [`InFlight`]).
    in_flight: AtomicUsize,
    /// The worker's `concurrency`, the most `in_flight` can be; 0 before a worker starts.
    concurrency: AtomicUsize,
}

/// One attempt waiting for its upstream, counted in its lane's `in_flight` while it lives.
///
/// Exported as `hookgate_upstream_in_flight` beside `hookgate_upstream_concurrency`: a lane
/// that stays at its concurrency while its oldest event ages is held back by that setting, not
/// by the upstream or the gateway (docs/performance.md, "Upstream concurrency").
pub struct InFlight(Arc<LaneState>);

impl InFlight {
    /// Counts an attempt on `lane` until dropped.
    pub fn begin(lane: &Arc<LaneState>) -> InFlight {
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(lane))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LaneState {
    /// A healthy lane.
    pub fn new(route: &str, upstream: Option<&str>, lane: String, suspend_after: u32) -> LaneState {
        LaneState {
            route: route.to_owned(),
            upstream: upstream.map(str::to_owned),
            lane,
            suspend_after: AtomicU32::new(suspend_after),
            consecutive_failures: AtomicU32::new(0),
            suspended: AtomicBool::new(false),
            probe_wait_ms: AtomicU64::new(0),
            resumed: Notify::new(),
            in_flight: AtomicUsize::new(0),
            concurrency: AtomicUsize::new(0),
        }
    }

    /// Records the `concurrency` of the worker now delivering this lane (a reload may change it).
    pub fn set_concurrency(&self, n: usize) {
        self.concurrency.store(n, Ordering::Relaxed);
    }

    /// Attempts in flight now, and the most the lane's worker allows.
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.in_flight.load(Ordering::Relaxed),
            self.concurrency.load(Ordering::Relaxed),
        )
    }

    /// Applies a reloaded `suspend_after`; the failures counted so far still count.
    pub fn set_suspend_after(&self, n: u32) {
        self.suspend_after.store(n, Ordering::Relaxed);
    }

    /// The wait before the next probe, starting at `first`; each call grows the next one
    /// (see [`next_probe`]), so the schedule carries on across a reload.
    pub fn next_probe_wait(&self, first: Duration) -> Duration {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let stored = self.probe_wait_ms.load(Ordering::Relaxed);
        let wait = match stored {
            0 => first,
            ms => Duration::from_millis(ms),
        };
        self.probe_wait_ms
            .store(ms(next_probe(wait)).max(1), Ordering::Relaxed);
        wait
    }

    /// Whether deliveries are paused.
    pub fn is_suspended(&self) -> bool {
        self.suspended.load(Ordering::Acquire)
    }

    /// Failures in a row since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Counts a delivered attempt: the lane is healthy again.
    pub fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.probe_wait_ms.store(0, Ordering::Relaxed);
        if self.suspended.swap(false, Ordering::AcqRel) {
            tracing::info!(lane = %self.lane, "upstream answered again; resuming deliveries");
        }
    }

    /// Counts a failed attempt; returns true when this failure suspended the lane.
    pub fn failure(&self) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.suspend_after.load(Ordering::Relaxed)
            && !self.suspended.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(lane = %self.lane, failures = n, "upstream suspended; probing it at growing intervals");
            return true;
        }
        false
    }

    /// Operator resume: deliveries restart now.
    pub fn resume(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.probe_wait_ms.store(0, Ordering::Relaxed);
        self.suspended.store(false, Ordering::Release);
        self.resumed.notify_waiters();
        tracing::info!(lane = %self.lane, "upstream resumed by an operator");
    }

    /// Waits for an operator resume.
    pub async fn resumed(&self) {
        self.resumed.notified().await
    }
}

/// Every lane of the gateway, by route, for the admin API: the lanes of the configuration in
/// force, and the lanes a reload removed (their queued and dead events stay reachable).
#[derive(Debug, Default)]
pub struct Lanes {
    by_route: BTreeMap<String, Vec<Arc<LaneState>>>,
    removed: BTreeMap<String, Vec<Arc<LaneState>>>,
}

impl Lanes {
    /// Registers a lane of the configuration in force.
    pub fn add(&mut self, lane: Arc<LaneState>) {
        push(&mut self.by_route, lane);
    }

    /// Registers a lane that a reload removed.
    pub fn add_removed(&mut self, lane: Arc<LaneState>) {
        push(&mut self.removed, lane);
    }

    /// The lanes of `route`, in config order.
    pub fn of(&self, route: &str) -> &[Arc<LaneState>] {
        self.by_route
            .get(route)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The removed lanes of `route` (which may itself be gone).
    pub fn removed_of(&self, route: &str) -> &[Arc<LaneState>] {
        self.removed
            .get(route)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Every lane in force.
    pub fn all(&self) -> impl Iterator<Item = &Arc<LaneState>> {
        self.by_route.values().flatten()
    }

    /// Every removed lane.
    pub fn removed(&self) -> impl Iterator<Item = &Arc<LaneState>> {
        self.removed.values().flatten()
    }
}

fn push(map: &mut BTreeMap<String, Vec<Arc<LaneState>>>, lane: Arc<LaneState>) {
    map.entry(lane.route.clone()).or_default().push(lane);
}

/// The next probe interval: doubled, capped at `MAX_PROBE_INTERVAL`.
pub fn next_probe(current: Duration) -> Duration {
    current.saturating_mul(2).min(MAX_PROBE_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspends_after_threshold_and_recovers_on_success() {
        let l = LaneState::new("r", None, "r".into(), 3);
        assert!(!l.failure() && !l.failure());
        assert!(l.failure(), "third failure suspends");
        assert!(l.is_suspended());
        assert!(!l.failure(), "already suspended");
        l.success();
        assert!(!l.is_suspended());
        assert_eq!(l.consecutive_failures(), 0);
    }

    #[test]
    fn the_probe_schedule_lives_in_the_state_and_restarts_on_success() {
        let l = LaneState::new("r", None, "r".into(), 1);
        let first = Duration::from_secs(5);
        assert_eq!(l.next_probe_wait(first), first);
        assert_eq!(l.next_probe_wait(first), Duration::from_secs(10));
        assert_eq!(l.next_probe_wait(first), Duration::from_secs(20));
        l.success();
        assert_eq!(l.next_probe_wait(first), first);
    }

    #[test]
    fn probe_interval_grows_to_a_cap() {
        assert_eq!(next_probe(Duration::from_secs(5)), Duration::from_secs(10));
        assert_eq!(next_probe(Duration::from_secs(200)), MAX_PROBE_INTERVAL);
    }
}
