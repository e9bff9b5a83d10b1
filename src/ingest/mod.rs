//! The ingress pipeline (README.md, "What happens to a request"), as named steps in order: route, IP, rate, size, body,
//! signature + timestamp, id, dedup claim, durable enqueue, answer.
//!
//! Nothing is trusted before the signature holds: dedup is asked only for verified ids, so forged
//! requests cannot poison it. The upstream is never on this path.

mod accept;
pub mod body;
pub mod client_cert;
pub mod error;
pub mod limit;
pub mod route;
pub mod sample;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use hyper::{Request, Response};
use ipnet::IpNet;
use tokio_util::task::TaskTracker;

use accept::{Admission, Admitter, Outcome};
pub use error::IngestError;
use route::{RouteState, RouteTable};

use crate::config::Route;
use crate::dedup::Dedup;
use crate::metrics::Metrics;
use crate::queue::{Backend, Event};
use crate::server::tls::PeerCert;
use crate::telemetry::{Telemetry, TraceSpan};
use crate::verify::{Unverified, Verified};
use opentelemetry::KeyValue;

/// Headers that describe one hop, not the event; never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers the gateway sets for the upstream (`X-Hookgate-Route`, `-Dedup`, …): a sender's own are
/// dropped, so an upstream can trust them. `HeaderName`s are lower case.
const OWN_PREFIX: &str = "x-hookgate-";

/// Everything the pipeline needs, shared by all connections.
pub struct Ingress {
    pub routes: RouteTable,
    pub queue: Backend,
    pub dedup: Dedup,
    pub metrics: Arc<Metrics>,
    pub trusted_proxies: Vec<IpNet>,
    pub body_timeout: Duration,
    /// Owns the admission tasks, which outlive a client that goes away (see `accept`).
    pub tasks: TaskTracker,
    /// `server.max_inflight_body`: body bytes held in memory, all requests together.
    pub body_budget: body::Budget,
    /// OpenTelemetry traces; None = off, and no span is built.
    pub telemetry: Option<Arc<Telemetry>>,
}

/// A successful answer.
enum Answer {
    Accepted(String),
    Duplicate(String),
    /// A provider handshake (Slack, Zoom) answered by the gateway: nothing is enqueued.
    Handshake(String),
}

impl Ingress {
    /// Runs the pipeline for one request and logs one line about it. Generic over the body so
    /// the admin's test event (`POST /admin/routes/{route}/send-test`) takes the same path.
    pub async fn handle<B>(
        self: Arc<Self>,
        req: Request<B>,
        peer: SocketAddr,
    ) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let started = Instant::now();
        let mut log = LogFields::default();
        let span = self
            .telemetry
            .as_ref()
            .map(|t| t.ingest_span(req.headers()));
        log.traceparent = span.as_ref().and_then(TraceSpan::traceparent);
        let result = self.pipeline(req, peer, &mut log).await;
        let route = log.route.as_deref().unwrap_or("-");
        let (resp, reason) = match result {
            Ok(Answer::Accepted(id)) => (answer("accepted", &id), "accepted"),
            Ok(Answer::Duplicate(id)) => (answer("duplicate", &id), "duplicate"),
            Ok(Answer::Handshake(body)) => (error::json(StatusCode::OK, body), "handshake"),
            Err(e) => {
                let code = e.code();
                (e.into_response(), code)
            }
        };
        self.metrics.request(route, resp.status().as_u16(), reason);
        if let Some(span) = span {
            end_span(span, &log, resp.status(), reason);
        }
        tracing::info!(
            route,
            status = resp.status().as_u16(),
            reason,
            event_id = log.id.as_deref().unwrap_or("-"),
            latency_us = started.elapsed().as_micros() as u64,
            client = %peer.ip(),
            "webhook"
        );
        resp
    }

    async fn pipeline<B>(
        &self,
        req: Request<B>,
        peer: SocketAddr,
        log: &mut LogFields,
    ) -> Result<Answer, IngestError>
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let route = self.routes.find(&req).ok_or(IngestError::NotFound)?.clone();
        log.route = Some(route.cfg.name.clone());
        if req.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        self.admit(&route, &req, peer)?;
        let (parts, body) = req.into_parts();
        let max = route.cfg.max_body;
        // `_held` keeps the body's bytes reserved until the request is answered.
        let (body, _held) = body::read_body(
            &parts.headers,
            body,
            max,
            self.body_timeout,
            &self.body_budget,
        )
        .await?;
        let unverified = Unverified {
            headers: &parts.headers,
            body: &body,
            query: parts.uri.query(),
            now: SystemTime::now(),
        };
        let verified = route
            .cfg
            .scheme
            .verify(&unverified)
            .map_err(IngestError::from);
        log.verification = Some(verified.as_ref().map_or_else(IngestError::code, |_| "ok"));
        let verified = verified?;
        log.id = Some(verified.id().to_owned());
        if let Some(answer) = verified.handshake() {
            return Ok(Answer::Handshake(answer.to_owned()));
        }
        self.accept(&route, &parts.headers, body, verified, log)
            .await
    }

    /// Allow-list, client certificate, then rate limit: the cheap checks before any body byte is read.
    fn admit<B>(
        &self,
        route: &RouteState,
        req: &Request<B>,
        peer: SocketAddr,
    ) -> Result<(), IngestError> {
        let ip = limit::client_ip(peer, req.headers(), &self.trusted_proxies);
        if !route.allows(ip) {
            return Err(IngestError::Forbidden);
        }
        if let Some(rule) = &route.cfg.client_cert {
            let cert = req.extensions().get::<PeerCert>();
            if !cert.is_some_and(|c| rule.allows(c.0.as_ref())) {
                return Err(IngestError::ClientCertForbidden);
            }
        }
        match &route.limiter {
            Some(l) => l
                .check(ip)
                .map_err(|retry_after| IngestError::RateLimited { retry_after }),
            None => Ok(()),
        }
    }

    /// Builds the event and hands it to an admission task: claim → durable enqueue → done.
    async fn accept(
        &self,
        route: &RouteState,
        headers: &HeaderMap,
        body: Bytes,
        v: Verified,
        log: &mut LogFields,
    ) -> Result<Answer, IngestError> {
        let name = route.cfg.name.as_str();
        let keys = accept::keys(name, v.id(), route.cfg.dedup, &body);
        let doc = body_json(&route.cfg, &body);
        let base = Event {
            route: name.to_owned(),
            id: v.id().to_owned(),
            received_at_ms: unix_ms(SystemTime::now()),
            headers: forwardable(headers),
            event_type: event_type(&route.cfg, doc.as_ref(), &v),
            body,
            dedup_unavailable: false,
            upstream: None,
            traceparent: log.traceparent.clone(),
            order_key: route
                .cfg
                .order
                .as_ref()
                .and_then(|o| o.by.key(headers, doc.as_ref())),
        };
        let admission = Admission {
            route: name.to_owned(),
            keys,
            events: fan_out(&route.cfg, base, doc.as_ref()),
        };
        let started = Instant::now();
        let outcome = self.admitter().admit(admission).await;
        log.admit_time = Some(started.elapsed());
        log.dedup = Some(match &outcome {
            Ok(Outcome::Accepted) => "accepted",
            Ok(Outcome::Duplicate) => "duplicate",
            Err(e) => e.code(),
        });
        match outcome? {
            Outcome::Accepted => Ok(Answer::Accepted(v.id().to_owned())),
            Outcome::Duplicate => Ok(Answer::Duplicate(v.id().to_owned())),
        }
    }

    fn admitter(&self) -> Admitter {
        Admitter {
            dedup: self.dedup.clone(),
            queue: self.queue.clone(),
            metrics: Arc::clone(&self.metrics),
            tasks: self.tasks.clone(),
        }
    }
}

/// What the pipeline learned about a request, for its log line and its span.
#[derive(Default)]
struct LogFields {
    route: Option<String>,
    id: Option<String>,
    /// `ok` or the verification failure's reason code; None when not reached.
    verification: Option<&'static str>,
    /// `accepted`, `duplicate` or the admission failure's reason code; None when not reached.
    dedup: Option<&'static str>,
    /// Dedup claim + durable enqueue (+ done), as the request waited for them.
    admit_time: Option<Duration>,
    /// The request span's context, stored with the event when telemetry is on.
    traceparent: Option<String>,
}

/// Ends the request's span with what the pipeline learned (attribute names: docs/telemetry.md).
fn end_span(span: TraceSpan, log: &LogFields, status: StatusCode, reason: &str) {
    let mut attrs = vec![
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        KeyValue::new("hookgate.reason", reason.to_owned()),
    ];
    let strings = [
        ("hookgate.route", log.route.clone()),
        ("hookgate.event_id", log.id.clone()),
        ("hookgate.verification", log.verification.map(str::to_owned)),
        ("hookgate.dedup", log.dedup.map(str::to_owned)),
    ];
    for (key, value) in strings {
        if let Some(v) = value {
            attrs.push(KeyValue::new(key, v));
        }
    }
    if let Some(t) = log.admit_time {
        attrs.push(KeyValue::new(
            "hookgate.enqueue_ms",
            t.as_secs_f64() * 1000.0,
        ));
    }
    let failed = status.is_server_error().then(|| reason.to_owned());
    span.end(attrs, failed);
}

/// The body as JSON, parsed once and only when the route's `event_type` or `order_by` pointer
/// or an upstream's `filter` reads it; `None` also when it is not JSON.
fn body_json(route: &Route, body: &[u8]) -> Option<serde_json::Value> {
    let needed = route.event_type.is_some()
        || route.order.as_ref().is_some_and(|o| o.by.reads_body())
        || route.upstreams.iter().any(|u| !u.filter.is_empty());
    needed.then(|| serde_json::from_slice(body).ok()).flatten()
}

/// The event type for `events` filters: the route's JSON pointer, else the scheme's own.
fn event_type(route: &Route, doc: Option<&serde_json::Value>, v: &Verified) -> Option<String> {
    let from_body = route
        .event_type
        .as_deref()
        .and_then(|ptr| doc?.pointer(ptr)?.as_str().map(str::to_owned));
    from_body.or_else(|| v.event_type().map(str::to_owned))
}

/// One event per upstream that wants it; an event no upstream wants is accepted and dropped.
fn fan_out(route: &Route, base: Event, doc: Option<&serde_json::Value>) -> Vec<Event> {
    let wanted: Vec<_> = route
        .upstreams
        .iter()
        .filter(|u| u.wants(base.event_type.as_deref(), doc))
        .collect();
    let Some((last, others)) = wanted.split_last() else {
        return Vec::new();
    };
    // The last upstream takes the event itself: with one upstream (the common case) its
    // headers and strings are not copied at all.
    let mut events: Vec<Event> = others
        .iter()
        .map(|u| Event {
            upstream: u.name.clone(),
            ..base.clone()
        })
        .collect();
    events.push(Event {
        upstream: last.name.clone(),
        ..base
    });
    events
}

/// The provider's headers as the upstream should see them: no hop-by-hop, no `X-Hookgate-*`.
fn forwardable(headers: &HeaderMap) -> Vec<(String, Bytes)> {
    let named_in_connection: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(n, _)| {
            !HOP_BY_HOP.contains(&n.as_str())
                && !n.as_str().starts_with(OWN_PREFIX)
                && !named_in_connection.iter().any(|c| c == n.as_str())
        })
        .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
        .collect()
}

fn answer(status: &str, id: &str) -> Response<Full<Bytes>> {
    /// Serialized as is, not through a `json!` map: one allocation per answer, not five.
    #[derive(serde::Serialize)]
    struct Body<'a> {
        id: &'a str,
        status: &'a str,
    }
    let body = serde_json::to_string(&Body { id, status }).unwrap_or_default();
    error::json(StatusCode::OK, body)
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
