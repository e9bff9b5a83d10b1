//! Test helpers shared by the backends' unit tests, so both are exercised the same way.

use std::time::Duration;

use std::collections::BTreeSet;

use super::{AttemptRecord, BlockedKey, Event, Job, OrderStats, Queue};
use crate::config::OnDead;
use crate::deliver::{ErrorKind, Failure};
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
        order_key: None,
    }
}

/// An event of `route` with `id` whose `order_by` key is `key`.
pub(crate) fn keyed(route: &str, id: &str, key: &str) -> Event {
    Event {
        order_key: Some(key.into()),
        ..event(route, id)
    }
}

/// The failure of a last attempt.
pub(crate) fn gone() -> Failure {
    Failure::new(ErrorKind::Timeout, "gone")
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
    q.dead_letter(&job, &gone(), OnDead::Release).await.unwrap();
    let lanes = q.stored_lanes().await.unwrap();
    for lane in ["queued", "later", "dead"] {
        assert!(lanes.iter().any(|l| l == lane), "{lane} missing: {lanes:?}");
    }
}

/// Receives `n` jobs (in whatever order the backend hands out different keys) and returns
/// them by event id; then checks that nothing else is receivable.
async fn recv_set(q: &impl Queue, lane: &str, n: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    for _ in 0..n {
        jobs.push(recv(q, lane).await);
    }
    jobs.sort_by(|a, b| a.event.id.cmp(&b.event.id));
    jobs
}

fn ids(jobs: &[Job]) -> BTreeSet<&str> {
    jobs.iter().map(|j| j.event.id.as_str()).collect()
}

/// Only the oldest event of a key is receivable; other keys and unordered events are not held
/// back; an ack hands the key to its next event, in order of acceptance.
pub(crate) async fn ordered_keys_go_one_at_a_time_in_order(q: &impl Queue) {
    let lane = "ord";
    for ev in [
        keyed(lane, "a1", "A"),
        keyed(lane, "a2", "A"),
        keyed(lane, "b1", "B"),
        event(lane, "u1"),
        keyed(lane, "a3", "A"),
    ] {
        q.enqueue(ev).await.unwrap();
    }
    let first = recv_set(q, lane, 3).await;
    assert_eq!(ids(&first), BTreeSet::from(["a1", "b1", "u1"]));
    assert!(nothing_for(q, lane, 300).await, "a2 waits for a1");
    assert_eq!(
        q.depth(lane).await.unwrap(),
        5,
        "held events count in the depth"
    );
    let stats = q.ordering(lane).await.unwrap();
    assert_eq!(
        (stats.waiting_keys, stats.waiting_events),
        (1, 2),
        "{stats:?}"
    );
    assert_eq!(stats.blocked_keys, 0);
    q.ack(&first[0]).await.unwrap(); // a1
    let a2 = recv(q, lane).await;
    assert_eq!(a2.event.id, "a2");
    assert!(nothing_for(q, lane, 200).await, "a3 waits for a2");
    q.ack(&a2).await.unwrap();
    assert_eq!(recv(q, lane).await.event.id, "a3");
}

/// A retry keeps the key: the retried event is delivered again before the next one of its key,
/// while the other keys go on.
pub(crate) async fn a_retry_holds_only_its_own_key(q: &impl Queue) {
    let lane = "ord-retry";
    for ev in [
        keyed(lane, "a1", "A"),
        keyed(lane, "a2", "A"),
        keyed(lane, "b1", "B"),
    ] {
        q.enqueue(ev).await.unwrap();
    }
    let jobs = recv_set(q, lane, 2).await;
    assert_eq!(ids(&jobs), BTreeSet::from(["a1", "b1"]));
    let later = std::time::SystemTime::now() + Duration::from_millis(1500);
    q.retry(&jobs[0], later, "503").await.unwrap();
    q.ack(&jobs[1]).await.unwrap();
    q.enqueue(keyed(lane, "b2", "B")).await.unwrap();
    assert_eq!(recv(q, lane).await.event.id, "b2", "B is not held by A");
    assert!(
        nothing_for(q, lane, 300).await,
        "a2 waits behind a1's retry"
    );
    // Due again: a1 comes back, still ahead of a2.
    let again = recv(q, lane).await;
    assert_eq!((again.event.id.as_str(), again.attempts), ("a1", 1));
    q.ack(&again).await.unwrap();
    assert_eq!(recv(q, lane).await.event.id, "a2");
}

/// `on_dead = "release"`: the next event of the key goes on; a replay queues the dead event
/// behind the key's events accepted since.
pub(crate) async fn release_hands_the_key_on_and_a_replay_queues_at_its_tail(q: &impl Queue) {
    let lane = "ord-release";
    q.enqueue(keyed(lane, "a1", "A")).await.unwrap();
    q.enqueue(keyed(lane, "a2", "A")).await.unwrap();
    let a1 = recv(q, lane).await;
    q.dead_letter(&a1, &gone(), OnDead::Release).await.unwrap();
    let dead = q.dead_by_id(lane, "a1").await.unwrap().unwrap();
    assert!(!dead.holds_key);
    assert_eq!(dead.event.order_key.as_deref(), Some("A"));
    let a2 = recv(q, lane).await;
    assert_eq!(a2.event.id, "a2");
    assert!(q.replay(lane, "a1").await.unwrap());
    assert!(
        nothing_for(q, lane, 300).await,
        "the replayed a1 waits behind a2"
    );
    q.ack(&a2).await.unwrap();
    let again = recv(q, lane).await;
    assert_eq!((again.event.id.as_str(), again.attempts), ("a1", 0));
    assert_eq!(q.ordering(lane).await.unwrap(), OrderStats::default());
}

/// `on_dead = "block"`: the key's later events wait, other keys go on, the admin stats show the
/// block; a replay puts the dead event first again, then the key drains in order.
pub(crate) async fn block_holds_the_key_until_a_replay(q: &impl Queue) {
    let lane = "ord-block";
    q.enqueue(keyed(lane, "a1", "A")).await.unwrap();
    q.enqueue(keyed(lane, "a2", "A")).await.unwrap();
    q.enqueue(keyed(lane, "a3", "A")).await.unwrap();
    let a1 = recv(q, lane).await;
    assert_eq!(a1.event.id, "a1");
    q.dead_letter(&a1, &gone(), OnDead::Block).await.unwrap();
    assert!(q.dead_by_id(lane, "a1").await.unwrap().unwrap().holds_key);
    q.enqueue(keyed(lane, "b1", "B")).await.unwrap();
    let b1 = recv(q, lane).await;
    assert_eq!(b1.event.id, "b1", "other keys go on");
    q.ack(&b1).await.unwrap();
    assert!(
        nothing_for(q, lane, 300).await,
        "A is blocked by its dead letter"
    );
    let stats = q.ordering(lane).await.unwrap();
    assert_eq!(
        (stats.waiting_keys, stats.waiting_events, stats.blocked_keys),
        (1, 2, 1),
        "{stats:?}"
    );
    let oldest = stats.oldest_blocked.expect("a blocked key");
    assert_eq!((oldest.key.as_str(), oldest.event_id.as_str()), ("A", "a1"));
    assert!(oldest.since_ms > 0);
    assert!(q.replay(lane, "a1").await.unwrap());
    let mut order = Vec::new();
    for _ in 0..3 {
        let job = recv(q, lane).await;
        assert!(nothing_for(q, lane, 100).await, "one at a time");
        order.push(job.event.id.clone());
        q.ack(&job).await.unwrap();
    }
    assert_eq!(order, ["a1", "a2", "a3"]);
    assert_eq!(q.ordering(lane).await.unwrap(), OrderStats::default());
}

/// A purge (one or all) releases a blocked key; `replay_all` unblocks every key.
pub(crate) async fn purge_releases_a_blocked_key_and_replay_all_unblocks_all(q: &impl Queue) {
    let lane = "ord-purge";
    for (id, key) in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")] {
        q.enqueue(keyed(lane, id, key)).await.unwrap();
    }
    for job in recv_set(q, lane, 2).await {
        q.dead_letter(&job, &gone(), OnDead::Block).await.unwrap();
    }
    assert!(nothing_for(q, lane, 300).await, "both keys blocked");
    assert_eq!(q.ordering(lane).await.unwrap().blocked_keys, 2);
    assert!(q.purge(lane, "a1").await.unwrap());
    let a2 = recv(q, lane).await;
    assert_eq!(a2.event.id, "a2", "purging a1 released A");
    q.ack(&a2).await.unwrap();
    let stats = q.ordering(lane).await.unwrap();
    assert_eq!(stats.blocked_keys, 1);
    assert_eq!(
        stats.oldest_blocked.map(|b: BlockedKey| b.event_id),
        Some("b1".to_owned())
    );
    q.enqueue(keyed(lane, "c1", "C")).await.unwrap();
    let c1 = recv(q, lane).await;
    q.dead_letter(&c1, &gone(), OnDead::Block).await.unwrap();
    assert_eq!(q.replay_all(lane).await.unwrap(), 2);
    let firsts = recv_set(q, lane, 2).await;
    assert_eq!(ids(&firsts), BTreeSet::from(["b1", "c1"]));
    for job in &firsts {
        q.ack(job).await.unwrap();
    }
    assert_eq!(recv(q, lane).await.event.id, "b2");
    // purge_all releases too.
    q.enqueue(keyed(lane, "d1", "D")).await.unwrap();
    q.enqueue(keyed(lane, "d2", "D")).await.unwrap();
    let d1 = recv(q, lane).await;
    q.dead_letter(&d1, &gone(), OnDead::Block).await.unwrap();
    assert!(nothing_for(q, lane, 200).await);
    assert_eq!(q.purge_all(lane).await.unwrap(), 1);
    assert_eq!(recv(q, lane).await.event.id, "d2");
}
