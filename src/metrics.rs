//! Prometheus metrics. `prometheus-client` is the Prometheus project's own Rust client: typed
//! label sets and text encoding without a global registry, so tests can run gateways side by side.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    route: String,
    outcome: String,
}

/// The gateway's counters; cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    dedup_unavailable: Family<RouteLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    delivery_seconds: Family<RouteLabels, Histogram>,
    queue_depth: Family<RouteLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
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
        Metrics {
            registry,
            requests,
            dedup_unavailable,
            deliveries,
            delivery_seconds,
            queue_depth,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &str, status: u16, reason: &str) {
        let labels = RequestLabels {
            route: route.into(),
            status,
            reason: reason.into(),
        };
        self.requests.get_or_create(&labels).inc();
    }

    /// Counts an event accepted without dedup.
    pub fn dedup_unavailable(&self, route: &str) {
        self.dedup_unavailable
            .get_or_create(&RouteLabels {
                route: route.into(),
            })
            .inc();
    }

    /// Counts one delivery attempt (`delivered`, `retry`, `dead`) and its latency.
    pub fn delivery(&self, route: &str, outcome: &str, seconds: f64) {
        let labels = DeliveryLabels {
            route: route.into(),
            outcome: outcome.into(),
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
