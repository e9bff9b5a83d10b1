//! `GET /admin/timeseries`: the gateway's own counters sampled every few seconds into a ring
//! (the console's charts), so a few minutes of history need no Prometheus. Memory is bounded:
//! `CAPACITY` samples of (routes × reason codes + lanes) numbers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::watch;

use super::Admin;
use crate::queue::Queue;

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Ten minutes of samples.
const CAPACITY: usize = 300;

/// One sample: running totals per route (the console draws their differences) and queue depths.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// ms since the Unix epoch.
    pub at_ms: u64,
    /// Per route: requests by reason code, totals since start.
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per route: delivery attempts by outcome (`delivered`, `retry`, `dead`), totals since start.
    pub deliveries: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Per lane: events stored and not yet delivered.
    pub queue_depth: BTreeMap<String, usize>,
}

/// The last `CAPACITY` samples, oldest first.
#[derive(Debug, Default)]
pub struct TimeSeries(Mutex<VecDeque<Sample>>);

impl TimeSeries {
    /// Appends a sample, dropping the oldest past capacity.
    pub fn push(&self, s: Sample) {
        let mut ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    /// The samples as the endpoint's JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let ring = self.0.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({ "interval_s": INTERVAL.as_secs(), "samples": *ring })
    }
}

/// Samples the admin view in force every `INTERVAL` until shutdown.
pub fn spawn(
    admin: Arc<ArcSwap<Admin>>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let admin = admin.load_full();
            let sample = sample(&admin).await;
            admin.timeseries.push(sample);
        }
    })
}

async fn sample(admin: &Admin) -> Sample {
    let mut s = Sample {
        at_ms: crate::ingest::unix_ms(SystemTime::now()),
        requests: BTreeMap::new(),
        deliveries: BTreeMap::new(),
        queue_depth: BTreeMap::new(),
    };
    for (route, c) in admin.metrics.all_route_counts() {
        let d = [
            ("delivered", c.delivered),
            ("retry", c.retried),
            ("dead", c.dead),
        ];
        s.deliveries.insert(route.clone(), d.into_iter().collect());
        s.requests.insert(route, c.reasons);
    }
    for lane in admin.lanes.all() {
        match admin.queue.depth(&lane.lane).await {
            Ok(n) => {
                s.queue_depth.insert(lane.lane.clone(), n);
            }
            // A gap in the chart says it; /readyz and the log say why.
            Err(e) => tracing::debug!(lane = %lane.lane, error = %e, "queue depth unavailable"),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64) -> Sample {
        Sample {
            at_ms,
            requests: BTreeMap::new(),
            deliveries: BTreeMap::new(),
            queue_depth: BTreeMap::new(),
        }
    }

    #[test]
    fn the_ring_keeps_the_last_samples_only() {
        let ts = TimeSeries::default();
        for i in 0..(CAPACITY as u64 + 5) {
            ts.push(sample(i));
        }
        let v = ts.to_json();
        let samples = v["samples"].as_array().unwrap();
        assert_eq!(samples.len(), CAPACITY);
        assert_eq!(samples[0]["at_ms"], 5);
        assert_eq!(samples[CAPACITY - 1]["at_ms"], CAPACITY as u64 + 4);
    }
}
