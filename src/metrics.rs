//! Prometheus metrics. `prometheus-client` is the Prometheus project's own Rust client: typed
//! label sets and text encoding without a global registry, so tests can run gateways side by side.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::deliver::ErrorKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    /// A reason code: a closed set of static names, so nothing is allocated for it.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    route: String,
    outcome: String,
    /// An `ErrorKind` name, or `none` when delivered: a closed set, so cardinality stays bounded.
    kind: &'static str,
}

/// The gateway's counters; cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    dedup_unavailable: Family<RouteLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_seconds: Family<RouteLabels, Histogram>,
    queue_depth: Family<RouteLabels, Gauge>,
    suspended: Family<LaneLabels, Gauge>,
    in_flight: Family<LaneLabels, Gauge>,
    concurrency: Family<LaneLabels, Gauge>,
    oldest_age: Family<LaneLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Ordered lanes (`order_by`): keys waiting behind an earlier event, keys blocked by a dead
    /// letter, and how long the oldest block has lasted. Per lane, never per key: keys are
    /// unbounded (and may be customer ids).
    keys_waiting: Family<LaneLabels, Gauge>,
    keys_blocked: Family<LaneLabels, Gauge>,
    oldest_blocked: Family<LaneLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Unix seconds at which the ingress certificate expires (its notAfter).
    cert_not_after: Gauge,
    /// Per-route totals for `/admin/routes` (the families above cannot be read back by route).
    counts: Mutex<HashMap<String, RouteCounts>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabels {
    lane: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: &'static str,
}

/// The operations `StorageErrors` counts.
const STORAGE_OPS: [&str; 2] = ["commit", "reopen"];

/// Storage errors by operation (`commit`: a write failed on the file; `reopen`: a recovery
/// attempt failed). Owned by the store that counts them; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct StorageErrors(Family<OpLabels, Counter>);

impl StorageErrors {
    /// Counts one error of `op`.
    pub fn inc(&self, op: &'static str) {
        self.0.get_or_create(&OpLabels { op }).inc();
    }

    /// The count of `op` so far.
    pub fn get(&self, op: &'static str) -> u64 {
        self.0.get_or_create(&OpLabels { op }).get()
    }
}

/// Totals of one route since start.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RouteCounts {
    pub accepted: u64,
    pub duplicate: u64,
    pub refused: u64,
    pub unavailable: u64,
    pub delivered: u64,
    pub retried: u64,
    pub dead: u64,
    /// Answered requests by reason code (`accepted`, `bad_signature`, …): a closed set of codes,
    /// so the map stays small.
    pub reasons: std::collections::BTreeMap<String, u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        Self::with_storage(StorageErrors::default())
    }

    /// Registers every metric; `storage` is counted by the store (the embedded database).
    pub fn with_storage(storage: StorageErrors) -> Metrics {
        let mut registry = Registry::with_prefix("hookgate");
        let requests = Family::<RequestLabels, Counter>::default();
        let dedup_unavailable = Family::<RouteLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let delivery_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        let queue_depth = Family::<RouteLabels, Gauge>::default();
        let suspended = Family::<LaneLabels, Gauge>::default();
        let in_flight = Family::<LaneLabels, Gauge>::default();
        let concurrency = Family::<LaneLabels, Gauge>::default();
        let oldest_age = Family::<LaneLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        let keys_waiting = Family::<LaneLabels, Gauge>::default();
        let keys_blocked = Family::<LaneLabels, Gauge>::default();
        let oldest_blocked =
            Family::<LaneLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "ordered_keys_waiting",
            "Keys of an ordered lane with events held behind an earlier one of the key",
            keys_waiting.clone(),
        );
        registry.register(
            "ordered_keys_blocked",
            "Keys of an ordered lane held by a dead letter (on_dead = \"block\")",
            keys_blocked.clone(),
        );
        registry.register(
            "ordered_oldest_blocked_seconds",
            "How long an ordered lane's oldest blocked key has been blocked (0 when none)",
            oldest_blocked.clone(),
        );
        let cert_not_after = Gauge::default();
        registry.register(
            "queue_oldest_age_seconds",
            "Age of a lane's oldest event not yet delivered (0 when empty)",
            oldest_age.clone(),
        );
        registry.register(
            "tls_cert_not_after_seconds",
            "Unix time at which the ingress TLS certificate expires (absent without TLS)",
            cert_not_after.clone(),
        );
        registry.register(
            "requests",
            "Webhook requests by route, status and reason",
            requests.clone(),
        );
        registry.register(
            "dedup_unavailable",
            "Events accepted while the dedup store was down",
            dedup_unavailable.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by outcome",
            deliveries.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Upstream delivery latency",
            delivery_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Events stored and not yet delivered",
            queue_depth.clone(),
        );
        registry.register(
            "upstream_suspended",
            "1 while a lane's upstream is suspended",
            suspended.clone(),
        );
        registry.register(
            "upstream_in_flight",
            "Delivery attempts of a lane waiting for its upstream now",
            in_flight.clone(),
        );
        registry.register(
            "upstream_concurrency",
            "The most attempts a lane may have in flight (its upstream's concurrency)",
            concurrency.clone(),
        );
        // Zero samples for the ops the store counts: a counter that springs into being at its
        // first error is missed by `increase()` in the alert (deploy/prometheus/alerts.yml).
        for op in STORAGE_OPS {
            let _ = storage.0.get_or_create(&OpLabels { op });
        }
        registry.register(
            "storage_errors",
            "Storage errors by operation (a full disk, an I/O error)",
            storage.0,
        );
        Metrics {
            registry,
            requests,
            dedup_unavailable,
            deliveries,
            delivery_seconds,
            queue_depth,
            suspended,
            in_flight,
            concurrency,
            oldest_age,
            keys_waiting,
            keys_blocked,
            oldest_blocked,
            cert_not_after,
            counts: Mutex::default(),
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16, reason: &'static str) {
        let labels = RequestLabels {
            route: route.into(),
            status,
            reason,
        };
        self.requests.get_or_create(&labels).inc();
        self.count(route, |c| {
            match (status, reason) {
                (200, "duplicate") => c.duplicate += 1,
                (200, _) => c.accepted += 1,
                (503, _) => c.unavailable += 1,
                _ => c.refused += 1,
            }
            match c.reasons.get_mut(reason) {
                Some(n) => *n += 1,
                None => drop(c.reasons.insert(reason.to_owned(), 1)),
            }
        });
    }

    fn count(&self, route: &str, f: impl FnOnce(&mut RouteCounts)) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        // A lookup first: the route is nearly always there, and its name need not be copied.
        match counts.get_mut(route) {
            Some(c) => f(c),
            None => f(counts.entry(route.to_owned()).or_default()),
        }
    }

    /// A route's totals as JSON.
    pub fn route_counters(&self, route: &str) -> serde_json::Value {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::to_value(counts.get(route).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Every route's totals, for the time series sampler.
    pub fn all_route_counts(&self) -> HashMap<String, RouteCounts> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets a lane's suspension gauge.
    pub fn set_suspended(&self, lane: &str, suspended: bool) {
        self.suspended
            .get_or_create(&LaneLabels { lane: lane.into() })
            .set(i64::from(suspended));
    }

    /// Sets a lane's attempts in flight and the most it may have.
    pub fn set_in_flight(&self, lane: &str, (in_flight, concurrency): (usize, usize)) {
        let labels = LaneLabels { lane: lane.into() };
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.in_flight.get_or_create(&labels).set(gauge(in_flight));
        self.concurrency
            .get_or_create(&labels)
            .set(gauge(concurrency));
    }

    /// Gives a configured route its zero samples, so rates and alerts see its first increment.
    pub fn init_route(&self, route: &str) {
        let _ = self.dedup_unavailable.get_or_create(&RouteLabels {
            route: route.into(),
        });
    }

    /// Counts an event accepted without dedup.
    pub fn dedup_unavailable(&self, route: &str) {
        self.dedup_unavailable
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .inc();
    }

    /// Counts one delivery attempt (`delivered`, `retry`, `dead`) of a lane, its error kind and
    /// its latency.
    pub fn delivery(&self, route: &str, outcome: &str, kind: Option<ErrorKind>, seconds: f64) {
        let name = route.split('/').next().unwrap_or(route);
        self.count(name, |c| match outcome {
            "delivered" => c.delivered += 1,
            "retry" => c.retried += 1,
            _ => c.dead += 1,
        });
        let labels = DeliveryLabels {
            route: route.into(),
            outcome: outcome.into(),
            kind: kind.map_or("none", ErrorKind::name),
        };
        self.deliveries.get_or_create(&labels).inc();
        self.delivery_seconds
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .observe(seconds);
    }

    /// Sets a route's queue depth (refreshed at scrape time).
    pub fn set_queue_depth(&self, route: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .set(depth as i64);
    }

    /// Sets a lane's oldest-event age (refreshed at scrape time); `None` for an empty lane.
    pub fn set_oldest_age(&self, lane: &str, age: Option<std::time::Duration>) {
        self.oldest_age
            .get_or_create(&LaneLabels { lane: lane.into() })
            .set(age.map_or(0.0, |a| a.as_secs_f64()));
    }

    /// Sets an ordered lane's key gauges (refreshed at scrape time).
    pub fn set_ordering(&self, lane: &str, stats: &crate::queue::OrderStats, now_ms: u64) {
        let labels = LaneLabels { lane: lane.into() };
        let waiting = self.keys_waiting.get_or_create(&labels);
        waiting.set(stats.waiting_keys as i64);
        let blocked = self.keys_blocked.get_or_create(&labels);
        blocked.set(stats.blocked_keys as i64);
        let since = stats.oldest_blocked.as_ref().map(|b| b.since_ms);
        let age = since.map_or(0, |s| now_ms.saturating_sub(s));
        self.oldest_blocked
            .get_or_create(&labels)
            .set(age as f64 / 1000.0);
    }

    /// Sets the ingress certificate's expiry, in Unix seconds.
    pub fn set_cert_not_after(&self, unix_secs: i64) {
        self.cert_not_after.set(unix_secs);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_totals_count_requests_by_reason() {
        let m = Metrics::new();
        m.request("stripe", 200, "accepted");
        m.request("stripe", 200, "duplicate");
        m.request("stripe", 401, "bad_signature");
        m.request("stripe", 401, "bad_signature");
        m.delivery("stripe", "dead", Some(ErrorKind::Status5xx), 0.01);
        let v = m.route_counters("stripe");
        assert_eq!(
            (v["accepted"].as_u64(), v["refused"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(v["reasons"]["bad_signature"], 2);
        assert_eq!(v["reasons"]["duplicate"], 1);
        assert_eq!(m.all_route_counts()["stripe"].dead, 1);
    }
}
