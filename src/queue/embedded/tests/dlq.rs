//! Dead letters: newest first, by id, replay and purge.

use super::*;
use crate::config::OnDead;
use crate::deliver::{ErrorKind, Failure};

/// Enqueues `id` on `lane` "r", leases it and dead-letters it.
async fn kill(q: &EmbeddedQueue, id: &str, error: &str) -> Job {
    q.enqueue(event("r", id)).await.unwrap();
    let job = recv(q, "r").await;
    q.dead_letter(
        &job,
        &Failure::new(ErrorKind::Status5xx, error),
        OnDead::Release,
    )
    .await
    .unwrap();
    job
}

#[tokio::test]
async fn dead_letters_are_listed_newest_first_and_found_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    kill(&q, "a", "first").await;
    kill(&q, "b", "second").await;
    assert_eq!(q.depth("r").await.unwrap(), 0);
    let dead = q.dead("r", 10).await.unwrap();
    let ids: Vec<_> = dead.iter().map(|d| d.event.id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(q.dead("r", 1).await.unwrap().len(), 1);
    let a = q.dead_by_id("r", "a").await.unwrap().expect("a is dead");
    assert_eq!((a.attempts, a.last_error.as_str()), (1, "first"));
    assert!(q.dead_by_id("r", "zzz").await.unwrap().is_none());
    assert!(q.dead_by_id("other", "a").await.unwrap().is_none());
}

#[tokio::test]
async fn dying_again_replaces_the_older_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    kill(&q, "a", "first").await;
    kill(&q, "a", "again").await;
    let dead = q.dead("r", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error, "again");
}

#[tokio::test]
async fn replay_puts_it_back_with_attempts_reset() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    let job = kill(&q, "doomed", "gave up").await;
    assert!(q.replay("r", "doomed").await.unwrap());
    assert!(q.dead("r", 10).await.unwrap().is_empty());
    let back = recv(&q, "r").await;
    assert_eq!((back.event.id.as_str(), back.attempts), ("doomed", 0));
    assert!(back.seq > job.seq);
    assert!(!q.replay("r", "doomed").await.unwrap(), "no longer dead");
}

#[tokio::test]
async fn replay_all_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    for id in ["a", "b", "c"] {
        kill(&q, id, "x").await;
    }
    assert_eq!(q.replay_all("r").await.unwrap(), 3);
    assert_eq!(q.replay_all("r").await.unwrap(), 0);
    drop(q);
    let q = open(&dir);
    assert_eq!(q.depth("r").await.unwrap(), 3, "replayed jobs are durable");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(recv(&q, "r").await.event.id);
    }
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[tokio::test]
async fn purge_one_then_all() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    for id in ["a", "b", "c"] {
        kill(&q, id, "x").await;
    }
    assert!(q.purge("r", "a").await.unwrap());
    assert!(!q.purge("r", "a").await.unwrap());
    assert_eq!(q.purge_all("r").await.unwrap(), 2);
    assert!(q.dead("r", 10).await.unwrap().is_empty());
    assert!(q.dead_by_id("r", "b").await.unwrap().is_none());
    assert!(
        !q.replay("r", "b").await.unwrap(),
        "purged ids are gone from the index"
    );
}

#[tokio::test]
async fn dead_letters_of_other_lanes_are_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    kill(&q, "a", "x").await;
    q.enqueue(Event {
        upstream: Some("u".into()),
        traceparent: None,
        order_key: None,
        ..event("r", "a")
    })
    .await
    .unwrap();
    let job = recv(&q, "r/u").await;
    q.dead_letter(
        &job,
        &Failure::new(ErrorKind::Status5xx, "y"),
        OnDead::Release,
    )
    .await
    .unwrap();
    assert_eq!(q.purge_all("r").await.unwrap(), 1);
    let other = q.dead_by_id("r/u", "a").await.unwrap().expect("kept");
    assert_eq!(other.last_error, "y");
}

#[tokio::test]
async fn stored_lanes_finds_queued_retrying_and_dead() {
    let dir = tempfile::tempdir().unwrap();
    let q = open(&dir);
    crate::queue::testing::stored_lanes_finds_queued_retrying_and_dead(&q).await;
    drop(q);
    let q = open(&dir);
    crate::queue::testing::stored_lanes_finds_queued_retrying_and_dead(&q).await;
}
