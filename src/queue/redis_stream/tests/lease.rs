//! Leases across replicas: shared lanes, takeover after the visibility timeout, return at
//! shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_lane_without_double_delivery() {
    let r = testing::redis("q-share");
    let (a, b) = (queue(&r), queue(&r));
    for i in 0..40 {
        a.enqueue(event("r", &format!("e{i}"))).await.unwrap();
    }
    let drain = |q: RedisQueue| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            while let Ok(Ok(job)) =
                tokio::time::timeout(Duration::from_millis(600), q.receive("r")).await
            {
                q.ack(&job).await.unwrap();
                ids.push(job.event.id);
            }
            ids
        })
    };
    let (x, y) = (drain(a), drain(b));
    let mut ids = x.await.unwrap();
    ids.extend(y.await.unwrap());
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!((total, ids.len()), (40, 40));
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_dead_replicas_lease_is_taken_over_after_the_visibility_timeout() {
    let r = testing::redis("q-reclaim");
    let short = Duration::from_millis(500);
    let a = RedisQueue::new(r.clone(), short);
    a.enqueue(event("r", "orphan")).await.unwrap();
    let leased = recv(&a, "r").await;
    drop(a); // replica A dies holding the lease
    let b = RedisQueue::new(r.clone(), short);
    let started = std::time::Instant::now();
    let job = recv(&b, "r").await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((job.seq, job.event.id.as_str()), (leased.seq, "orphan"));
    b.ack(&job).await.unwrap();
    assert_eq!(b.depth("r").await.unwrap(), 0);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn leases_returned_at_shutdown_are_received_at_once() {
    let r = testing::redis("q-return");
    let (a, b) = (queue(&r), queue(&r));
    a.enqueue(event("r", "held")).await.unwrap();
    a.enqueue(event("r", "next")).await.unwrap();
    let held = recv(&a, "r").await;
    a.return_leases().await;
    let mut ids = vec![recv(&b, "r").await.event.id, recv(&b, "r").await.event.id];
    ids.sort();
    assert_eq!(ids, ["held", "next"]);
    assert_eq!(held.event.id, "held");
    let consumers: Vec<redis::Value> = r
        .query(
            redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(&a.keys("r", 0).stream)
                .arg(GROUP),
        )
        .await
        .unwrap();
    assert_eq!(consumers.len(), 1, "the stopped consumer left the group");
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_live_lease_is_not_taken_over_early() {
    let r = testing::redis("q-lease");
    let (a, b) = (queue(&r), queue(&r));
    a.enqueue(event("r", "mine")).await.unwrap();
    let _job = recv(&a, "r").await;
    assert!(nothing_for(&b, "r", 1500).await);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn one_read_leases_a_few_entries_and_hands_them_out_in_order() {
    let r = testing::redis("q-batch");
    let (a, b) = (queue(&r), queue(&r));
    for i in 0..5 {
        a.enqueue(event("r", &format!("e{i}"))).await.unwrap();
    }
    assert_eq!(recv(&a, "r").await.event.id, "e0");
    assert!(
        nothing_for(&b, "r", 300).await,
        "the read leased the others to A"
    );
    let mut rest = Vec::new();
    for _ in 0..4 {
        let job = recv(&a, "r").await;
        a.ack(&job).await.unwrap();
        rest.push(job.event.id);
    }
    assert_eq!(rest, ["e1", "e2", "e3", "e4"]);
    assert!(nothing_for(&a, "r", 300).await);
    testing::cleanup(&r).await;
}

/// A buffered entry kept past half the visibility timeout is not handed out from the buffer
/// (another replica may be taking it over); it comes back by a reclaim, once.
#[tokio::test]
async fn a_stale_buffered_entry_comes_back_by_a_reclaim_once() {
    let r = testing::redis("q-stale");
    let visibility = Duration::from_millis(600);
    let a = RedisQueue::new(r.clone(), visibility);
    a.enqueue(event("r", "first")).await.unwrap();
    a.enqueue(event("r", "kept")).await.unwrap();
    let first = recv(&a, "r").await;
    let read_at = std::time::Instant::now();
    a.ack(&first).await.unwrap();
    tokio::time::sleep(visibility / 2 + Duration::from_millis(50)).await;
    let kept = recv(&a, "r").await;
    assert_eq!(kept.event.id, "kept");
    assert!(
        read_at.elapsed() >= visibility,
        "reclaimed after the visibility timeout, not taken from the buffer: {:?}",
        read_at.elapsed()
    );
    a.ack(&kept).await.unwrap();
    assert!(nothing_for(&a, "r", 800).await, "once");
    testing::cleanup(&r).await;
}
