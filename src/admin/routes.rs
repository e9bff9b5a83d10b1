//! `GET /admin/routes`: per route and lane, queue depth, oldest event age, health, counters, and
//! for a route with `order_by` its keys waiting and blocked (`ordering`).
//! Lanes that a reload removed are listed too, marked `"removed": true`, as long as events
//! remain in them (queued or dead); a route left with only such lanes is marked the same way.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::Admin;
use super::api::{Answer, Fail, unavailable};
use crate::deliver::LaneState;
use crate::queue::{OrderStats, Queue};

/// Configured routes in config order, then routes that live on only in removed lanes.
pub(super) async fn routes(admin: &Admin) -> Answer {
    let mut out = Vec::new();
    for route in &admin.routes {
        let mut ups = Vec::new();
        for l in admin.lanes.of(route) {
            ups.push(lane_json(admin, l, false).await?);
        }
        ups.extend(removed_with_events(admin, route).await?);
        out.push(json!({ "route": route, "counters": admin.metrics.route_counters(route), "upstreams": ups }));
    }
    let gone: BTreeSet<&str> = (admin.lanes.removed())
        .map(|l| l.route.as_str())
        .filter(|r| !admin.routes.iter().any(|c| c == r))
        .collect();
    for route in gone {
        let ups = removed_with_events(admin, route).await?;
        if !ups.is_empty() {
            out.push(json!({ "route": route, "removed": true, "counters": admin.metrics.route_counters(route), "upstreams": ups }));
        }
    }
    Ok(json!({ "routes": out }))
}

/// The removed lanes of `route` that still hold events.
async fn removed_with_events(admin: &Admin, route: &str) -> Result<Vec<Value>, Fail> {
    let mut ups = Vec::new();
    for l in admin.lanes.removed_of(route) {
        let v = lane_json(admin, l, true).await?;
        let dead = admin.queue.dead(&l.lane, 1).await.map_err(unavailable)?;
        if v["queue_depth"] != json!(0) || !dead.is_empty() {
            ups.push(v);
        }
    }
    Ok(ups)
}

async fn lane_json(admin: &Admin, l: &LaneState, removed: bool) -> Result<Value, Fail> {
    let age = admin.queue.oldest_age(&l.lane).await.map_err(unavailable)?;
    let (in_flight, concurrency) = l.in_flight();
    let mut v = json!({
        "lane": l.lane,
        "upstream": l.upstream,
        "state": if l.is_suspended() { "suspended" } else { "ok" },
        "consecutive_failures": l.consecutive_failures(),
        "in_flight": in_flight,
        "concurrency": concurrency,
        "queue_depth": admin.queue.depth(&l.lane).await.map_err(unavailable)?,
        "oldest_event_age_s": age.map(|d| d.as_secs_f64()),
    });
    if removed {
        v["removed"] = json!(true);
    }
    // The upstream's health stays in `state`: a blocked key holds back only its own events.
    if admin.ordered.contains(&l.route) {
        let stats = admin.queue.ordering(&l.lane).await.map_err(unavailable)?;
        let now = crate::ingest::unix_ms(std::time::SystemTime::now());
        v["ordering"] = ordering_json(&stats, now);
    }
    Ok(v)
}

/// A lane's ordered keys: waiting, blocked, and the oldest blocked with its age.
fn ordering_json(stats: &OrderStats, now_ms: u64) -> Value {
    let oldest = stats.oldest_blocked.as_ref().map(|b| {
        let age_ms = now_ms.saturating_sub(b.since_ms);
        json!({ "key": b.key, "event_id": b.event_id, "since_ms": b.since_ms, "age_s": age_ms as f64 / 1000.0 })
    });
    json!({
        "waiting_keys": stats.waiting_keys,
        "waiting_events": stats.waiting_events,
        "blocked_keys": stats.blocked_keys,
        "oldest_blocked": oldest,
    })
}
