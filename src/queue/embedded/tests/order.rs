//! Ordered delivery per key: the shared contract, and its state across a reopen.

use super::*;
use crate::config::OnDead;
use crate::queue::testing::{self, gone, keyed};

#[tokio::test]
async fn ordered_keys_go_one_at_a_time_in_order() {
    let dir = tempfile::tempdir().unwrap();
    testing::ordered_keys_go_one_at_a_time_in_order(&open(&dir)).await;
}

#[tokio::test]
async fn a_retry_holds_only_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    testing::a_retry_holds_only_its_own_key(&open(&dir)).await;
}

#[tokio::test]
async fn release_hands_the_key_on_and_a_replay_queues_at_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    testing::release_hands_the_key_on_and_a_replay_queues_at_its_tail(&open(&dir)).await;
}

#[tokio::test]
async fn block_holds_the_key_until_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    testing::block_holds_the_key_until_a_replay(&open(&dir)).await;
}

#[tokio::test]
async fn purge_releases_a_blocked_key_and_replay_all_unblocks_all() {
    let dir = tempfile::tempdir().unwrap();
    testing::purge_releases_a_blocked_key_and_replay_all_unblocks_all(&open(&dir)).await;
}

#[tokio::test]
async fn held_events_stay_behind_their_head_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    for (id, key) in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("a3", "A")] {
        q.enqueue(keyed("r", id, key)).await.unwrap();
    }
    // a1 leased and retried later, never acked: after the reopen it is still first of A.
    let a1 = recv(&q, "r").await;
    assert_eq!(a1.event.id, "a1");
    let later = SystemTime::now() + Duration::from_millis(300);
    q.retry(&a1, later, "503").await.unwrap();
    drop(q);

    let q = open(&dir);
    assert_eq!(q.depth("r").await.unwrap(), 4);
    let stats = q.ordering("r").await.unwrap();
    assert_eq!((stats.waiting_keys, stats.waiting_events), (1, 2));
    assert_eq!(recv(&q, "r").await.event.id, "b1", "B is not held by A");
    assert!(
        nothing_for(&q, "r", 100).await,
        "a2 waits behind a1's retry"
    );
    let mut order = Vec::new();
    for _ in 0..3 {
        let job = recv(&q, "r").await;
        assert!(nothing_for(&q, "r", 50).await, "one at a time");
        order.push(job.event.id.clone());
        q.ack(&job).await.unwrap();
    }
    assert_eq!(order, ["a1", "a2", "a3"]);
}

#[tokio::test]
async fn a_blocked_key_stays_blocked_across_a_reopen_and_its_replay_goes_first() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    for id in ["a1", "a2", "a3"] {
        q.enqueue(keyed("r", id, "A")).await.unwrap();
    }
    let a1 = recv(&q, "r").await;
    q.dead_letter(&a1, &gone(), OnDead::Block).await.unwrap();
    drop(q);

    let q = open(&dir);
    assert!(nothing_for(&q, "r", 100).await, "A is still blocked");
    let stats = q.ordering("r").await.unwrap();
    assert_eq!((stats.waiting_events, stats.blocked_keys), (2, 1));
    assert_eq!(
        stats.oldest_blocked.map(|b| b.event_id).as_deref(),
        Some("a1")
    );
    assert!(q.replay("r", "a1").await.unwrap());
    drop(q);

    // The replayed a1 is first of A also when the chain is rebuilt from disk.
    let q = open(&dir);
    let mut order = Vec::new();
    for _ in 0..3 {
        let job = recv(&q, "r").await;
        assert!(nothing_for(&q, "r", 50).await, "one at a time");
        order.push(job.event.id.clone());
        q.ack(&job).await.unwrap();
    }
    assert_eq!(order, ["a1", "a2", "a3"]);
    assert_eq!(q.ordering("r").await.unwrap(), OrderStats::default());
}

#[tokio::test]
async fn a_purge_releases_a_blocked_key_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    q.enqueue(keyed("r", "a1", "A")).await.unwrap();
    q.enqueue(keyed("r", "a2", "A")).await.unwrap();
    let a1 = recv(&q, "r").await;
    q.dead_letter(&a1, &gone(), OnDead::Block).await.unwrap();
    drop(q);
    let q = open(&dir);
    assert!(nothing_for(&q, "r", 100).await);
    assert!(q.purge("r", "a1").await.unwrap());
    assert_eq!(recv(&q, "r").await.event.id, "a2");
}
