//! The admin listener (loopback by default): health, readiness and metrics for everyone, and the
//! JSON API of README.md, "Operations", behind `Authorization: Bearer <token>` (the CLI uses it too).

mod api;
mod console;
mod routes;
mod send_test;
pub mod timeseries;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::sync::watch;

use crate::config::Secret;
use crate::deliver::Lanes;
use crate::ingest::Ingress;
use crate::ingest::error::json;
use crate::metrics::Metrics;
use crate::queue::{Backend, Queue};
use crate::server::acme::CertResolver;

/// What the admin endpoints read and act on.
pub struct Admin {
    pub token: Option<Secret>,
    pub metrics: Arc<Metrics>,
    pub queue: Backend,
    pub lanes: Arc<Lanes>,
    /// Route names in config order.
    pub routes: Vec<String>,
    /// The routes with `order_by`: their lanes show (and export) ordering state.
    pub ordered: Vec<String>,
    /// Turns true when shutdown starts, so `/readyz` tells load balancers to stop sending.
    pub shutdown: watch::Receiver<bool>,
    /// With `server.tls.acme`: until it holds a certificate the ingress refuses TLS.
    pub certificate: Option<Arc<CertResolver>>,
    /// The ingress in force, through which `send-test` posts its signed sample.
    pub ingress: Arc<ArcSwap<Ingress>>,
    /// The sampled counters of `GET /admin/timeseries` (kept across reloads).
    pub timeseries: Arc<timeseries::TimeSeries>,
}

impl Admin {
    /// Answers one admin request.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        match (req.method(), path) {
            (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#.into()),
            (&Method::GET, "/readyz") if *self.shutdown.borrow() => json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"draining"}"#.into(),
            ),
            (&Method::GET, "/readyz") => self.readiness().await,
            (&Method::GET, "/metrics") => self.metrics_text().await,
            // The console's login probe: a wrong token is a 200 too, so a browser logs no error.
            (&Method::GET, "/admin/session") => json(
                StatusCode::OK,
                format!(r#"{{"authorized":{}}}"#, self.authorized(&req)),
            ),
            (&Method::GET, p) if self.token.is_some() && console::serves(p) => console::asset(p),
            (_, p) if p.starts_with("/admin/") => {
                if !self.authorized(&req) {
                    return json(
                        StatusCode::UNAUTHORIZED,
                        r#"{"error":"unauthorized"}"#.into(),
                    );
                }
                api::handle(&self, req.method(), req.uri()).await
            }
            _ => json(StatusCode::NOT_FOUND, r#"{"error":"not_found"}"#.into()),
        }
    }

    /// 200 while events can be stored; 503 with the reason while storage is failing, or while
    /// the ACME certificate is yet to be issued (or has expired).
    async fn readiness(&self) -> Response<Full<Bytes>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let cert = self
            .certificate
            .as_ref()
            .map_or(Ok(()), |c| c.readiness(now));
        let ready = match cert {
            Ok(()) => self.queue.ready().await,
            Err(reason) => Err(reason),
        };
        match ready {
            Ok(()) => json(StatusCode::OK, r#"{"status":"ready"}"#.into()),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(r#"{{"status":"unavailable","reason":"{reason}"}}"#),
            ),
        }
    }

    async fn metrics_text(&self) -> Response<Full<Bytes>> {
        self.routes.iter().for_each(|r| self.metrics.init_route(r));
        for lane in self.lanes.all() {
            match self.queue.depth(&lane.lane).await {
                Ok(depth) => self.metrics.set_queue_depth(&lane.lane, depth),
                Err(e) => tracing::warn!(lane = %lane.lane, error = %e, "queue depth unavailable"),
            }
            match self.queue.oldest_age(&lane.lane).await {
                Ok(age) => self.metrics.set_oldest_age(&lane.lane, age),
                Err(e) => {
                    tracing::warn!(lane = %lane.lane, error = %e, "oldest event age unavailable")
                }
            }
            self.metrics.set_suspended(&lane.lane, lane.is_suspended());
            self.metrics.set_in_flight(&lane.lane, lane.in_flight());
            if self.ordered.contains(&lane.route) {
                match self.queue.ordering(&lane.lane).await {
                    Ok(stats) => {
                        let now = crate::ingest::unix_ms(std::time::SystemTime::now());
                        self.metrics.set_ordering(&lane.lane, &stats, now);
                    }
                    Err(e) => tracing::warn!(lane = %lane.lane, error = %e, "ordering unavailable"),
                }
            }
        }
        let mut resp = Response::new(Full::new(Bytes::from(self.metrics.render())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
        );
        resp
    }

    /// Constant-time bearer check; no token configured means the API is off.
    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.expose())
    }
}

/// Compares without an early exit, so the answer time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
