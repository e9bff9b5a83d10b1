//! Ordered delivery in Redis: the shared conformance cases on one stream per lane and on a
//! sharded lane, replicas sharing a prefix, lease takeover and restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::queue::testing::{gone, keyed};
use crate::redis_conn::Options;

const SHARDS: u32 = 4;

/// A conformance case of `crate::queue::testing` per name, on a queue of `$shards` shards.
macro_rules! conformance {
    ($shards:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            let r = testing::sharded(stringify!($case), $shards);
            crate::queue::testing::$case(&queue(&r)).await;
            testing::cleanup(&r).await;
        }
    )*};
}

mod single {
    use super::*;
    conformance!(1;
        ordered_keys_go_one_at_a_time_in_order,
        a_retry_holds_only_its_own_key,
        release_hands_the_key_on_and_a_replay_queues_at_its_tail,
        block_holds_the_key_until_a_replay,
        purge_releases_a_blocked_key_and_replay_all_unblocks_all,
    );
}

mod sharded {
    use super::*;
    conformance!(SHARDS;
        ordered_keys_go_one_at_a_time_in_order,
        a_retry_holds_only_its_own_key,
        release_hands_the_key_on_and_a_replay_queues_at_its_tail,
        block_holds_the_key_until_a_replay,
        purge_releases_a_blocked_key_and_replay_all_unblocks_all,
    );
}

/// A second handle on `r`'s prefix, as a restarted process would open it.
fn reopen(r: &Redis, shards: u32) -> Redis {
    let options = Options {
        shards,
        ..Options::new(r.prefix(), Duration::from_secs(2))
    };
    Redis::single(&testing::url(), options).unwrap()
}

/// What the workers of every replica saw: the key each leased event holds, and per key the
/// events delivered, in order.
#[derive(Default)]
struct Seen {
    leased: HashMap<String, String>,
    delivered: HashMap<String, Vec<String>>,
    unordered: usize,
}

/// Receives until the lane stays empty for a second; fails a retry of every 4th event's first
/// attempt, and panics if an event is leased while another of its key is.
async fn work(q: RedisQueue, seen: Arc<Mutex<Seen>>) {
    while let Ok(Ok(job)) = tokio::time::timeout(Duration::from_secs(1), q.receive("r")).await {
        let Some(key) = job.event.order_key.clone() else {
            seen.lock().unwrap().unordered += 1;
            q.ack(&job).await.unwrap();
            continue;
        };
        let other = seen
            .lock()
            .unwrap()
            .leased
            .insert(key.clone(), job.event.id.clone());
        assert_eq!(
            other, None,
            "{} leased beside another of {key}",
            job.event.id
        );
        tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % 4)).await;
        let fail = job.attempts == 0 && job.event.id.ends_with(['0', '4', '8']);
        {
            // Released before the settle: once it is done, the next of the key may go out.
            let mut seen = seen.lock().unwrap();
            seen.leased.remove(&key);
            if !fail {
                let ids = seen.delivered.entry(key).or_default();
                ids.push(job.event.id.clone());
            }
        }
        if fail {
            let at = SystemTime::now() + Duration::from_millis(20);
            q.retry(&job, at, "503").await.unwrap();
        } else {
            q.ack(&job).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_never_lease_two_events_of_one_key_at_once() {
    const KEYS: usize = 6;
    const PER_KEY: usize = 12;
    for shards in [1, SHARDS] {
        let r = testing::sharded("ord-replicas", shards);
        let ingress = queue(&r);
        let mut accepted: HashMap<String, Vec<String>> = HashMap::new();
        for n in 0..PER_KEY {
            for k in 0..KEYS {
                let (id, key) = (format!("k{k}-{n:02}"), format!("K{k}"));
                ingress.enqueue(keyed("r", &id, &key)).await.unwrap();
                accepted.entry(key).or_default().push(id);
            }
            ingress.enqueue(event("r", &format!("u{n}"))).await.unwrap();
        }
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut workers = tokio::task::JoinSet::new();
        // Two replicas (each a queue over a handle of its own), three workers each.
        for _ in 0..2 {
            let q = queue(&reopen(&r, shards));
            for _ in 0..3 {
                workers.spawn(work(q.clone(), seen.clone()));
            }
        }
        while let Some(done) = workers.join_next().await {
            done.unwrap();
        }
        let (delivered, unordered) = {
            let seen = seen.lock().unwrap();
            (seen.delivered.clone(), seen.unordered)
        };
        assert_eq!(delivered, accepted, "every key in order ({shards} shards)");
        assert_eq!(unordered, PER_KEY);
        assert_eq!(ingress.depth("r").await.unwrap(), 0);
        assert_eq!(ingress.ordering("r").await.unwrap(), OrderStats::default());
        testing::cleanup(&r).await;
    }
}

#[tokio::test]
async fn a_dead_replicas_head_is_taken_over_and_a_late_settle_releases_nothing() {
    let r = testing::sharded("ord-takeover", SHARDS);
    let short = Duration::from_millis(500);
    let a = RedisQueue::new(r.clone(), short);
    for id in ["a1", "a2", "a3"] {
        a.enqueue(keyed("r", id, "A")).await.unwrap();
    }
    let leased = recv(&a, "r").await;
    drop(a); // replica A stops answering while holding a1
    let b = RedisQueue::new(reopen(&r, SHARDS), short);
    let taken = recv(&b, "r").await;
    assert_eq!((taken.seq, taken.event.id.as_str()), (leased.seq, "a1"));
    assert!(
        nothing_for(&b, "r", 300).await,
        "a2 waits for the taken-over a1"
    );
    b.ack(&taken).await.unwrap();
    let a2 = recv(&b, "r").await;
    assert_eq!(a2.event.id, "a2");
    // A was only slow: its outcomes for a1 come late and must not let a3 out beside a2.
    let late = queue(&r);
    late.ack(&leased).await.unwrap();
    late.retry(&leased, SystemTime::now(), "503").await.unwrap();
    late.dead_letter(&leased, &gone(), OnDead::Release)
        .await
        .unwrap();
    assert!(nothing_for(&b, "r", 400).await, "a3 waits for a2");
    assert!(b.dead("r", 10).await.unwrap().is_empty());
    b.ack(&a2).await.unwrap();
    assert_eq!(recv(&b, "r").await.event.id, "a3");
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_restarted_instance_sees_the_held_and_blocked_keys() {
    let r = testing::sharded("ord-restart", SHARDS);
    let q = queue(&r);
    for (id, key) in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")] {
        q.enqueue(keyed("r", id, key)).await.unwrap();
    }
    let mut heads = [recv(&q, "r").await, recv(&q, "r").await];
    heads.sort_by(|x, y| x.event.id.cmp(&y.event.id));
    q.dead_letter(&heads[0], &gone(), OnDead::Block)
        .await
        .unwrap();
    drop(q); // killed (-9) holding b1's lease
    let q = RedisQueue::new(reopen(&r, SHARDS), Duration::from_millis(300));
    let stats = q.ordering("r").await.unwrap();
    assert_eq!(
        (stats.waiting_keys, stats.waiting_events, stats.blocked_keys),
        (2, 2, 1),
        "{stats:?}"
    );
    assert_eq!(stats.oldest_blocked.unwrap().event_id, "a1");
    assert_eq!(q.depth("r").await.unwrap(), 3, "b1 leased, a2 and b2 held");
    let b1 = recv(&q, "r").await;
    assert_eq!(b1.event.id, "b1", "taken over after the visibility timeout");
    assert!(nothing_for(&q, "r", 200).await, "b2 behind b1, A blocked");
    q.ack(&b1).await.unwrap();
    q.ack(&recv(&q, "r").await).await.unwrap();
    assert!(q.replay("r", "a1").await.unwrap());
    for id in ["a1", "a2"] {
        let job = recv(&q, "r").await;
        assert_eq!(job.event.id, id);
        q.ack(&job).await.unwrap();
    }
    assert_eq!(q.ordering("r").await.unwrap(), OrderStats::default());
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_fan_out_orders_each_lane_on_its_own() {
    let r = testing::sharded("ord-fanout", SHARDS);
    let q = queue(&r);
    for id in ["e1", "e2"] {
        let lanes = ["a", "b"].map(|u| Event {
            upstream: Some(u.into()),
            ..keyed("r", id, "K")
        });
        let seqs = q.enqueue_all(lanes.to_vec()).await.unwrap();
        assert_eq!(seqs.iter().all(|&s| s > 0), id == "e1", "held: no seq yet");
    }
    let a1 = recv(&q, "r/a").await;
    let b1 = recv(&q, "r/b").await;
    assert_eq!((a1.event.id.as_str(), b1.event.id.as_str()), ("e1", "e1"));
    q.ack(&a1).await.unwrap();
    assert_eq!(recv(&q, "r/a").await.event.id, "e2");
    assert!(
        nothing_for(&q, "r/b", 300).await,
        "lane b still delivers e1"
    );
    assert_eq!(q.ordering("r/b").await.unwrap().waiting_events, 1);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn the_age_counts_events_held_behind_a_blocked_key() {
    let r = testing::redis("ord-age");
    let q = queue(&r);
    q.enqueue(keyed("r", "a1", "A")).await.unwrap();
    q.enqueue(keyed("r", "a2", "A")).await.unwrap();
    let a1 = recv(&q, "r").await;
    q.dead_letter(&a1, &gone(), OnDead::Block).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let age = q.oldest_age("r").await.unwrap().expect("a2 is waiting");
    assert!(age >= Duration::from_millis(50), "{age:?}");
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn an_ordered_enqueue_waits_for_replicas_too() {
    let prefix = format!(
        "hgtest-ord-wait-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let options = Options {
        wait_replicas: 1,
        ..Options::new(&prefix, Duration::from_millis(500))
    };
    let r = Redis::single(&testing::url(), options).unwrap();
    let q = queue(&r);
    // The test Redis has no replica: WAIT 1 can never be met.
    match q.enqueue(keyed("r", "a1", "A")).await {
        Err(QueueError::Redis(RedisError::Replicas { wanted: 1, got: 0 })) => {}
        other => panic!("expected a replicas error, got {other:?}"),
    }
    assert_eq!(
        q.depth("r").await.unwrap(),
        1,
        "the write reached the master"
    );
    testing::cleanup(&r).await;
}
