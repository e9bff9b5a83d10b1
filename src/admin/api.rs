//! The bearer-token JSON API (README.md, "Operations"): routes, dead letters, delivery history, resume.
//! Route-level calls act on every lane of the route (its fan-out upstreams).

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::Full;
use hyper::Response;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::{Admin, routes, send_test};
use crate::deliver::LaneState;
use crate::deliver::{ErrorKind, Fault};
use crate::ingest::error;
use crate::queue::{AttemptRecord, DeadEvent, Queue, QueueError};

/// How much of a dead event's body `GET /admin/dlq/R/ID` shows.
const BODY_SHOWN: usize = 64 << 10;

/// Header names that hint at a credential (or a signature, which proves nothing once the event
/// is verified but could help a replay): shown as `***`, never as their value.
const MASKED: &[&str] = &[
    "auth",
    "cookie",
    "token",
    "secret",
    "key",
    "password",
    "signature",
    "session",
];

/// Default and maximum `limit` of list calls.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// An error answer: status and reason code.
pub(super) type Fail = (StatusCode, &'static str);
pub(super) type Answer = Result<Value, Fail>;

/// Dispatches one authorized `/admin/…` call.
pub(super) async fn handle(admin: &Admin, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
    let segs: Vec<Cow<str>> = uri
        .path()
        .split('/')
        .skip(2)
        .map(|s| percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segs: Vec<&str> = segs.iter().map(|s| s.as_ref()).collect();
    let q = Query::parse(uri.query());
    let answer = match (method, segs.as_slice()) {
        (&Method::GET, ["routes"]) => routes::routes(admin).await,
        (&Method::POST, ["routes", r, "send-test"]) => send_test::send_test(admin, r).await,
        (&Method::GET, ["timeseries"]) => Ok(admin.timeseries.to_json()),
        (&Method::GET, ["dlq"]) => dlq_list(admin, &q).await,
        (&Method::GET, ["dlq", r, id]) => dlq_show(admin, r, id).await,
        (&Method::POST, ["dlq", r, id, "replay"]) => {
            dlq_op(admin, r, Some(id), DlqOp::Replay).await
        }
        (&Method::POST, ["dlq", r, "replay"]) => dlq_op(admin, r, None, DlqOp::Replay).await,
        (&Method::DELETE, ["dlq", r, id]) => dlq_op(admin, r, Some(id), DlqOp::Purge).await,
        (&Method::DELETE, ["dlq", r]) => dlq_op(admin, r, None, DlqOp::Purge).await,
        (&Method::GET, ["deliveries"]) => deliveries(admin, &q).await,
        (&Method::POST, ["upstreams", r, "resume"]) => resume(admin, r, None),
        (&Method::POST, ["upstreams", r, u, "resume"]) => resume(admin, r, Some(u)),
        _ => Err((StatusCode::NOT_FOUND, "not_found")),
    };
    match answer {
        Ok(v) => error::json(StatusCode::OK, v.to_string()),
        Err((status, code)) => error::json(status, json!({ "error": code }).to_string()),
    }
}

/// `route=` and `limit=` from the query string.
struct Query {
    route: Option<String>,
    limit: usize,
}

impl Query {
    /// The `route=` parameter, required by list calls.
    fn route(&self) -> Result<&str, (StatusCode, &'static str)> {
        self.route
            .as_deref()
            .ok_or((StatusCode::BAD_REQUEST, "route_required"))
    }

    fn parse(q: Option<&str>) -> Query {
        let mut out = Query {
            route: None,
            limit: DEFAULT_LIMIT,
        };
        for pair in q.unwrap_or("").split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode_str(v).decode_utf8_lossy().into_owned();
            match k {
                "route" => out.route = Some(v),
                "limit" => out.limit = v.parse().unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
                _ => {}
            }
        }
        out
    }
}

/// The lanes of a route, those a reload removed included (their dead letters and history stay
/// reachable), or 404.
fn lanes(admin: &Admin, route: &str) -> Result<Vec<Arc<LaneState>>, Fail> {
    let all: Vec<_> = (admin.lanes.of(route).iter())
        .chain(admin.lanes.removed_of(route))
        .cloned()
        .collect();
    match all.is_empty() {
        true => Err((StatusCode::NOT_FOUND, "no_such_route")),
        false => Ok(all),
    }
}

/// The lanes of a route in force (with a worker), or why not: 404, or 409 for a route that only
/// lives on in lanes a reload removed.
fn live_lanes<'a>(admin: &'a Admin, route: &str) -> Result<&'a [Arc<LaneState>], Fail> {
    match admin.lanes.of(route) {
        [] if !admin.lanes.removed_of(route).is_empty() => {
            Err((StatusCode::CONFLICT, "route_removed"))
        }
        [] => Err((StatusCode::NOT_FOUND, "no_such_route")),
        l => Ok(l),
    }
}

pub(super) fn unavailable(e: QueueError) -> Fail {
    tracing::error!(error = %e, "admin call failed in the queue");
    (StatusCode::SERVICE_UNAVAILABLE, "queue_unavailable")
}

fn dead_json(lane: &LaneState, d: &DeadEvent, last_status: Option<u16>) -> Value {
    json!({
        "id": d.event.id,
        "route": lane.route,
        "upstream": lane.upstream,
        "lane": lane.lane,
        "attempts": d.attempts,
        "last_status": last_status,
        "last_error": d.last_error,
        "last_error_kind": d.last_error_kind.name(),
        "died_at": rfc3339(d.died_at_ms),
    })
}

async fn dlq_list(admin: &Admin, q: &Query) -> Answer {
    let route = q.route()?;
    let mut out = Vec::new();
    for l in &lanes(admin, route)? {
        for d in admin
            .queue
            .dead(&l.lane, q.limit)
            .await
            .map_err(unavailable)?
        {
            let last = admin
                .queue
                .history(&l.lane, Some(&d.event.id), 1)
                .await
                .map_err(unavailable)?;
            out.push(dead_json(l, &d, last.first().and_then(|a| a.status)));
        }
    }
    out.truncate(q.limit);
    Ok(json!({ "dead": out }))
}

async fn dlq_show(admin: &Admin, route: &str, id: &str) -> Answer {
    for l in &lanes(admin, route)? {
        if let Some(d) = admin
            .queue
            .dead_by_id(&l.lane, id)
            .await
            .map_err(unavailable)?
        {
            let attempts = admin
                .queue
                .history(&l.lane, Some(id), MAX_LIMIT)
                .await
                .map_err(unavailable)?;
            let mut v = dead_json(l, &d, attempts.first().and_then(|a| a.status));
            v["attempts_detail"] = attempts.iter().map(attempt_json).collect();
            v["content_type"] = json!(header_of(&d, "content-type"));
            v["headers"] = d.event.headers.iter().map(|(n, v)| masked(n, v)).collect();
            v["received_at"] = json!(rfc3339(d.event.received_at_ms));
            v["event_type"] = json!(d.event.event_type);
            let shown = &d.event.body[..d.event.body.len().min(BODY_SHOWN)];
            v["body"] = json!(String::from_utf8_lossy(shown));
            v["body_bytes"] = json!(d.event.body.len());
            v["body_truncated"] = json!(shown.len() < d.event.body.len());
            // A cut can split a character: only the untruncated body can fail to be UTF-8.
            v["body_utf8"] = json!(std::str::from_utf8(&d.event.body).is_ok());
            return Ok(v);
        }
    }
    Err((StatusCode::NOT_FOUND, "no_such_dead_event"))
}

/// A dead-letter operation on one event or on all of a route.
#[derive(Clone, Copy)]
enum DlqOp {
    Replay,
    Purge,
}

/// Applies `op` to the event `id` (or all dead events) in every lane of the route. A replay
/// only goes to lanes in force: in a removed lane nothing would deliver it.
async fn dlq_op(admin: &Admin, route: &str, id: Option<&str>, op: DlqOp) -> Answer {
    let mut n = 0;
    let targets = match op {
        DlqOp::Replay => live_lanes(admin, route)?.to_vec(),
        DlqOp::Purge => lanes(admin, route)?,
    };
    for l in &targets {
        let q = &admin.queue;
        n += match (op, id) {
            (DlqOp::Replay, Some(id)) => q.replay(&l.lane, id).await.map(usize::from),
            (DlqOp::Replay, None) => q.replay_all(&l.lane).await,
            (DlqOp::Purge, Some(id)) => q.purge(&l.lane, id).await.map(usize::from),
            (DlqOp::Purge, None) => q.purge_all(&l.lane).await,
        }
        .map_err(unavailable)?;
    }
    if id.is_some() && n == 0 {
        return Err((StatusCode::NOT_FOUND, "no_such_dead_event"));
    }
    let key = match op {
        DlqOp::Replay => "replayed",
        DlqOp::Purge => "purged",
    };
    Ok(json!({ key: n }))
}

async fn deliveries(admin: &Admin, q: &Query) -> Answer {
    let route = q.route()?;
    let mut out = Vec::new();
    for l in &lanes(admin, route)? {
        for a in admin
            .queue
            .history(&l.lane, None, q.limit)
            .await
            .map_err(unavailable)?
        {
            let mut v = attempt_json(&a);
            v["upstream"] = json!(l.upstream);
            out.push((a.at_ms, v));
        }
    }
    out.sort_by_key(|row| std::cmp::Reverse(row.0));
    let out: Vec<Value> = out.into_iter().take(q.limit).map(|(_, v)| v).collect();
    Ok(json!({ "deliveries": out }))
}

fn resume(admin: &Admin, route: &str, upstream: Option<&str>) -> Answer {
    let mut resumed = Vec::new();
    for l in live_lanes(admin, route)? {
        if upstream.is_none() || l.upstream.as_deref() == upstream {
            l.resume();
            resumed.push(l.lane.clone());
        }
    }
    if resumed.is_empty() {
        return Err((StatusCode::NOT_FOUND, "no_such_upstream"));
    }
    Ok(json!({ "resumed": resumed }))
}

fn attempt_json(a: &AttemptRecord) -> Value {
    json!({
        "id": a.event_id,
        "attempt": a.attempt,
        "status": a.status,
        "latency_ms": a.latency_ms,
        "at": rfc3339(a.at_ms),
        "kind": a.kind.map(ErrorKind::name),
        "fault": a.kind.and_then(ErrorKind::fault).map(Fault::name),
        "error": a.error,
        "answer": String::from_utf8_lossy(&a.answer),
    })
}

/// A stored header as `{name, value}`, its value masked when the name hints at a secret.
fn masked(name: &str, value: &[u8]) -> Value {
    let lower = name.to_ascii_lowercase();
    match MASKED.iter().any(|m| lower.contains(m)) {
        true => json!({ "name": name, "value": "***", "masked": true }),
        false => json!({ "name": name, "value": String::from_utf8_lossy(value) }),
    }
}

fn header_of<'a>(d: &'a DeadEvent, name: &str) -> Option<Cow<'a, str>> {
    d.event
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| String::from_utf8_lossy(v))
}

/// Milliseconds since the epoch as RFC 3339.
pub(super) fn rfc3339(ms: u64) -> String {
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_may_hold_a_secret_are_masked() {
        for name in [
            "Authorization",
            "cookie",
            "x-api-key",
            "stripe-signature",
            "x-auth-token",
            "x-shopify-hmac-sha256-secret",
        ] {
            let v = masked(name, b"s3cr3t");
            assert_eq!(v["value"], "***", "{name}");
            assert_eq!(v["masked"], true);
        }
        let v = masked("content-type", b"application/json");
        assert_eq!(
            v,
            json!({ "name": "content-type", "value": "application/json" })
        );
    }
}
