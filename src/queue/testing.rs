//! Test helpers shared by the backends' unit tests, so both are exercised the same way.

use std::time::Duration;

use super::{AttemptRecord, Event, Job, Queue};
use crate::embedded::now_ms;

/// A small JSON event of `route` with `id`.
pub(crate) fn event(route: &str, id: &str) -> Event {
    Event {
        route: route.into(),
        id: id.into(),
        received_at_ms: now_ms(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: bytes::Bytes::from(format!("{{\"id\":\"{id}\"}}")),
        dedup_unavailable: false,
        event_type: None,
        upstream: None,
        traceparent: None,
    }
}

/// A failed attempt `n` of event `id`.
pub(crate) fn attempt(id: &str, n: u32) -> AttemptRecord {
    AttemptRecord {
        event_id: id.into(),
        attempt: n,
        status: Some(503),
        latency_ms: 12,
        at_ms: now_ms(),
        error: Some("upstream answered 503".into()),
        answer: bytes::Bytes::from_static(b"busy"),
        kind: Some(crate::deliver::ErrorKind::Status5xx),
    }
}

/// Receives with a deadline, so a bug fails the test instead of hanging it.
pub(crate) async fn recv(q: &impl Queue, lane: &str) -> Job {
    tokio::time::timeout(Duration::from_secs(5), q.receive(lane))
        .await
        .expect("a job within 5 s")
        .unwrap()
}

/// Whether `receive` stays empty for `ms`.
pub(crate) async fn nothing_for(q: &impl Queue, lane: &str, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), q.receive(lane))
        .await
        .is_err()
}

/// `stored_lanes` finds a lane with a queued event, one with a retry due later and one with only
/// a dead letter, with no configuration to tell it their names.
pub(crate) async fn stored_lanes_finds_queued_retrying_and_dead(q: &impl Queue) {
    q.enqueue(event("queued", "a")).await.unwrap();
    q.enqueue(event("later", "b")).await.unwrap();
    let job = recv(q, "later").await;
    let at = std::time::SystemTime::now() + Duration::from_secs(3600);
    q.retry(&job, at, "503").await.unwrap();
    q.enqueue(event("dead", "c")).await.unwrap();
    let job = recv(q, "dead").await;
    q.dead_letter(
        &job,
        &crate::deliver::Failure::new(crate::deliver::ErrorKind::Timeout, "gone"),
    )
    .await
    .unwrap();
    let lanes = q.stored_lanes().await.unwrap();
    for lane in ["queued", "later", "dead"] {
        assert!(lanes.iter().any(|l| l == lane), "{lane} missing: {lanes:?}");
    }
}
