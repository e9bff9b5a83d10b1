//! `POST /admin/routes/{route}/send-test`: the console's "Send test event" button, the same signed
//! sample as `hookgate send-test` (src/ingest/sample.rs), run through the route's own pipeline.

use http::StatusCode;
use serde_json::{Value, json};

use super::Admin;
use super::api::Answer;
use crate::ingest::sample::TestEvent;

/// Runs a signed sample through the route's own pipeline, as if a provider had sent it (allow
/// lists see 127.0.0.1; a `client_cert` route refuses it, as it refuses any sender without one).
pub(super) async fn send_test(admin: &Admin, route: &str) -> Answer {
    let ingress = admin.ingress.load_full();
    let Some(r) = ingress.routes.all().find(|r| r.cfg.name == route) else {
        return Err((StatusCode::NOT_FOUND, "no_such_route"));
    };
    let event = TestEvent::new(&r.cfg, None, std::time::SystemTime::now());
    let mut req = event
        .request(&r.cfg.path)
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "test_event_unbuildable"))?;
    // A route bound to a host is found by its Host header, as a sender's request would be.
    if let Some(h) = (r.cfg.host.as_deref()).and_then(|h| http::HeaderValue::from_str(h).ok()) {
        req.headers_mut().insert(http::header::HOST, h);
    }
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let resp = ingress.handle(req, peer).await;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    Ok(json!({ "id": event.id, "status": status, "answer": answer }))
}
