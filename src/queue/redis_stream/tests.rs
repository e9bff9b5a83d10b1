//! Against the real Redis of `HOOKGATE_TEST_REDIS_URL` (default 127.0.0.1:6379); each test
//! has its own key prefix and deletes its keys.

mod dlq;
mod lease;
mod order;
mod shards;

use std::time::{Duration, SystemTime};

use super::*;
pub(super) use crate::queue::testing::{attempt, event, nothing_for, recv};
use crate::redis_conn::testing;

pub(super) fn queue(redis: &Redis) -> RedisQueue {
    RedisQueue::new(redis.clone(), Duration::from_secs(60))
}

#[test]
fn seq_round_trips_stream_ids_in_order() {
    for id in [
        "0-0",
        "1700000000000-0",
        "1700000000000-7",
        "1700000000001-0",
    ] {
        assert_eq!(id_of(seq_of(id).unwrap()), id);
    }
    assert!(seq_of("1700000000000-7").unwrap() < seq_of("1700000000001-0").unwrap());
    assert!(seq_of("nonsense").is_err());
    assert!(seq_of("1-99999999").is_err(), "n beyond SEQ_BITS");
}

#[tokio::test]
async fn enqueue_receive_ack() {
    let r = testing::redis("q-basic");
    let q = queue(&r);
    let seq = q.enqueue(event("r", "e1")).await.unwrap();
    assert_eq!(q.depth("r").await.unwrap(), 1);
    let job = recv(&q, "r").await;
    assert_eq!(
        (job.seq, job.attempts, job.event.id.as_str()),
        (seq, 0, "e1")
    );
    assert_eq!(
        job.event,
        event("r", "e1").with_received(job.event.received_at_ms)
    );
    assert_eq!(q.depth("r").await.unwrap(), 1, "leased jobs still count");
    q.ack(&job).await.unwrap();
    assert_eq!(q.depth("r").await.unwrap(), 0);
    assert!(nothing_for(&q, "r", 300).await);
    testing::cleanup(&r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acks_and_history_lines_share_transactions_and_all_land() {
    let r = testing::redis("q-batch");
    let q = queue(&r);
    const N: usize = 40;
    for i in 0..N {
        q.enqueue(event("r", &format!("e{i}"))).await.unwrap();
    }
    let mut jobs = Vec::new();
    for _ in 0..N {
        jobs.push(recv(&q, "r").await);
    }
    let mut settling = tokio::task::JoinSet::new();
    for job in jobs {
        let q = q.clone();
        settling.spawn(async move {
            q.ack(&job).await.unwrap();
            q.record_attempt("r", attempt(&job.event.id, 1))
                .await
                .unwrap();
        });
    }
    while let Some(done) = settling.join_next().await {
        done.unwrap();
    }
    let sent = q.batch.sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent <= N as u64,
        "{sent} transactions for {N} acks and {N} lines (5 seen here; one each would be 80)"
    );
    assert_eq!(q.depth("r").await.unwrap(), 0, "every entry deleted");
    let mut pending = redis::cmd("XPENDING");
    pending.arg(&q.keys("r", 0).stream).arg(GROUP);
    let (leased, ..): (u64, redis::Value, redis::Value, redis::Value) =
        r.query(&pending).await.unwrap();
    assert_eq!(leased, 0, "every entry acknowledged");
    let history = q.history("r", None, usize::MAX).await.unwrap();
    let mut ids: Vec<&str> = history.iter().map(|a| a.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), N, "one line per attempt");
    assert!(nothing_for(&q, "r", 300).await);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn delivers_in_order_of_arrival_per_lane() {
    let r = testing::redis("q-order");
    let q = queue(&r);
    for i in 0..10 {
        q.enqueue(event("r", &format!("e{i}"))).await.unwrap();
    }
    q.enqueue(event("other", "x")).await.unwrap();
    for i in 0..10 {
        let job = recv(&q, "r").await;
        assert_eq!(job.event.id, format!("e{i}"));
        q.ack(&job).await.unwrap();
    }
    assert_eq!(recv(&q, "other").await.event.id, "x");
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn enqueue_all_fills_every_lane_of_a_fan_out() {
    let r = testing::redis("q-fanout");
    let q = queue(&r);
    let lanes = ["a", "b"].map(|u| Event {
        upstream: Some(u.into()),
        traceparent: None,
        order_key: None,
        ..event("r", "e")
    });
    let seqs = q.enqueue_all(lanes.to_vec()).await.unwrap();
    assert_eq!(seqs.len(), 2);
    for lane in ["r/a", "r/b"] {
        assert_eq!(recv(&q, lane).await.event.lane(), lane);
    }
    assert!(
        nothing_for(&q, "r", 300).await,
        "the route's own lane is empty"
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn retry_is_due_later_with_one_more_attempt() {
    let r = testing::redis("q-retry");
    let q = queue(&r);
    q.enqueue(event("r", "e")).await.unwrap();
    let job = recv(&q, "r").await;
    let at = SystemTime::now() + Duration::from_millis(400);
    q.retry(&job, at, "upstream 503").await.unwrap();
    assert_eq!(q.depth("r").await.unwrap(), 1, "a waiting retry counts");
    assert!(nothing_for(&q, "r", 250).await, "not due yet");
    let again = recv(&q, "r").await;
    assert!(SystemTime::now() + Duration::from_millis(1) >= at);
    assert_eq!((again.event.id.as_str(), again.attempts), ("e", 1));
    assert_eq!(again.last_error.as_deref(), Some("upstream 503"));
    q.ack(&again).await.unwrap();
    assert_eq!(q.depth("r").await.unwrap(), 0);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn another_replica_moves_a_due_retry() {
    let r = testing::redis("q-retry-x");
    let (a, b) = (queue(&r), queue(&r));
    a.enqueue(event("r", "e")).await.unwrap();
    let job = recv(&a, "r").await;
    a.retry(&job, SystemTime::now() + Duration::from_millis(100), "x")
        .await
        .unwrap();
    let again = recv(&b, "r").await;
    assert_eq!((again.event.id.as_str(), again.attempts), ("e", 1));
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn an_undecodable_entry_is_set_aside() {
    let r = testing::redis("q-corrupt");
    let q = queue(&r);
    let keys = q.keys("r", 0);
    let mut add = redis::cmd("XADD");
    add.arg(&keys.stream)
        .arg("*")
        .arg("j")
        .arg(b"\xff\xff garbage".as_slice());
    let _: String = r.query(&add).await.unwrap();
    q.enqueue(event("r", "good")).await.unwrap();
    assert_eq!(recv(&q, "r").await.event.id, "good");
    let corrupt: usize = r
        .query(redis::cmd("XLEN").arg(&keys.corrupt))
        .await
        .unwrap();
    assert_eq!(corrupt, 1);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_vanished_stream_is_recreated() {
    let r = testing::redis("q-nogroup");
    let q = queue(&r);
    q.enqueue(event("r", "a")).await.unwrap();
    q.ack(&recv(&q, "r").await).await.unwrap();
    let _: () = r
        .query(redis::cmd("DEL").arg(&q.keys("r", 0).stream))
        .await
        .unwrap();
    q.enqueue(event("r", "b")).await.unwrap();
    assert_eq!(recv(&q, "r").await.event.id, "b");
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn unreachable_redis_fails_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let q = RedisQueue::new(
        Redis::connect(&url, "x", Duration::from_millis(300)).unwrap(),
        Duration::from_secs(60),
    );
    let started = std::time::Instant::now();
    assert!(matches!(
        q.enqueue(event("r", "e")).await,
        Err(QueueError::Redis(_))
    ));
    assert!(q.receive("r").await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

trait WithReceived {
    fn with_received(self, at: u64) -> Self;
}

impl WithReceived for Event {
    fn with_received(self, received_at_ms: u64) -> Self {
        Event {
            received_at_ms,
            ..self
        }
    }
}
