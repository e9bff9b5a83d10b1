//! Dead letters, history and age in Redis.

use super::*;
use crate::config::OnDead;
use crate::deliver::{ErrorKind, Failure};
use crate::queue::HISTORY_MAX;

/// Enqueues `id` on lane "r", leases it and dead-letters it.
async fn kill(q: &RedisQueue, id: &str, error: &str) {
    q.enqueue(event("r", id)).await.unwrap();
    let job = recv(q, "r").await;
    q.dead_letter(
        &job,
        &Failure::new(ErrorKind::Status5xx, error),
        OnDead::Release,
    )
    .await
    .unwrap();
    // Distinct death times, so "newest first" is well defined.
    tokio::time::sleep(Duration::from_millis(3)).await;
}

#[tokio::test]
async fn dead_letters_newest_first_by_id_and_replaced() {
    let r = testing::redis("dlq-list");
    let q = queue(&r);
    kill(&q, "a", "first").await;
    kill(&q, "b", "second").await;
    assert_eq!(q.depth("r").await.unwrap(), 0);
    let ids: Vec<_> = q
        .dead("r", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event.id)
        .collect();
    assert_eq!(ids, ["b", "a"]);
    assert_eq!(q.dead("r", 1).await.unwrap().len(), 1);
    let a = q.dead_by_id("r", "a").await.unwrap().expect("a is dead");
    assert_eq!((a.attempts, a.last_error.as_str()), (1, "first"));
    assert!(q.dead_by_id("r", "zzz").await.unwrap().is_none());
    kill(&q, "a", "again").await;
    let dead = q.dead("r", 10).await.unwrap();
    assert_eq!(dead.len(), 2, "one dead letter per id");
    assert_eq!(
        (dead[0].event.id.as_str(), dead[0].last_error.as_str()),
        ("a", "again")
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn replay_one_and_all() {
    let r = testing::redis("dlq-replay");
    let q = queue(&r);
    for id in ["a", "b", "c"] {
        kill(&q, id, "x").await;
    }
    assert!(q.replay("r", "a").await.unwrap());
    assert!(!q.replay("r", "a").await.unwrap(), "no longer dead");
    let back = recv(&q, "r").await;
    assert_eq!((back.event.id.as_str(), back.attempts), ("a", 0));
    q.ack(&back).await.unwrap();
    assert_eq!(q.replay_all("r").await.unwrap(), 2);
    assert!(q.dead("r", 10).await.unwrap().is_empty());
    let mut ids = vec![recv(&q, "r").await.event.id, recv(&q, "r").await.event.id];
    ids.sort();
    assert_eq!(ids, ["b", "c"]);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn purge_one_then_all() {
    let r = testing::redis("dlq-purge");
    let q = queue(&r);
    for id in ["a", "b", "c"] {
        kill(&q, id, "x").await;
    }
    assert!(q.purge("r", "a").await.unwrap());
    assert!(!q.purge("r", "a").await.unwrap());
    assert_eq!(q.purge_all("r").await.unwrap(), 2);
    assert!(q.dead("r", 10).await.unwrap().is_empty());
    assert!(!q.replay("r", "b").await.unwrap());
    assert_eq!(q.purge_all("r").await.unwrap(), 0);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn history_is_capped_newest_first_and_filtered() {
    let r = testing::redis("history");
    let q = queue(&r);
    let total = HISTORY_MAX as u32 + 5;
    for n in 1..=total {
        let id = if n % 2 == 0 { "even" } else { "odd" };
        q.record_attempt("r", attempt(id, n)).await.unwrap();
    }
    let all = q.history("r", None, usize::MAX).await.unwrap();
    assert_eq!(all.len(), HISTORY_MAX);
    assert_eq!((all[0].attempt, all[HISTORY_MAX - 1].attempt), (total, 6));
    assert_eq!(
        all[0],
        AttemptRecord {
            at_ms: all[0].at_ms,
            ..attempt("odd", total)
        }
    );
    let even = q.history("r", Some("even"), 2).await.unwrap();
    let got: Vec<_> = even.iter().map(|r| r.attempt).collect();
    assert_eq!(got, [total - 1, total - 3]);
    assert!(q.history("r", None, 0).await.unwrap().is_empty());
    assert!(q.history("other", None, 10).await.unwrap().is_empty());
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn oldest_age_counts_waiting_retries() {
    let r = testing::redis("age");
    let q = queue(&r);
    assert_eq!(q.oldest_age("r").await.unwrap(), None);
    let old = Event {
        received_at_ms: now_ms() - 60_000,
        ..event("r", "old")
    };
    q.enqueue(old).await.unwrap();
    let job = recv(&q, "r").await;
    q.retry(&job, SystemTime::now() + Duration::from_secs(3600), "x")
        .await
        .unwrap();
    q.enqueue(event("r", "new")).await.unwrap();
    let age = q.oldest_age("r").await.unwrap().expect("not empty");
    assert!(
        age >= Duration::from_secs(60) && age < Duration::from_secs(70),
        "{age:?}"
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn stored_lanes_finds_queued_retrying_and_dead() {
    let r = testing::redis("stored-lanes");
    let q = queue(&r);
    crate::queue::testing::stored_lanes_finds_queued_retrying_and_dead(&q).await;
    testing::cleanup(&r).await;
}
