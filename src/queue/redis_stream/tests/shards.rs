//! A lane spread over several shards (the cluster layout), on one Redis: every operation that
//! reads a whole lane sees every shard, and each event's writes stay on its own shard.

use std::collections::{BTreeSet, HashSet};

use super::*;
use crate::config::OnDead;

const SHARDS: u32 = 4;

/// The hash tags of this prefix's keys whose kind is `kind` (e.g. "q").
async fn tags(r: &Redis, kind: &str) -> BTreeSet<String> {
    let pattern = format!("{}:*", r.prefix());
    let keys: Vec<String> = r.query(redis::cmd("KEYS").arg(&pattern)).await.unwrap();
    keys.iter()
        .filter_map(|k| {
            let (tag, rest) = k.split_once('{')?.1.split_once("}:")?;
            rest.starts_with(&format!("{kind}:"))
                .then(|| tag.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_shard_is_read_and_whole_lane_reads_merge_them() {
    let r = testing::sharded("q-shards", SHARDS);
    let q = queue(&r);
    let ids: Vec<String> = (0..40).map(|i| format!("evt_{i}")).collect();
    for id in &ids {
        q.enqueue(event("r", id)).await.unwrap();
    }
    let expected: BTreeSet<String> = (0..SHARDS).map(|s| format!("r/{s}")).collect();
    assert_eq!(
        tags(&r, "q").await,
        expected,
        "the lane's streams are on every shard"
    );
    assert_eq!(q.depth("r").await.unwrap(), 40);
    assert!(q.oldest_age("r").await.unwrap().is_some());

    let mut seen = HashSet::new();
    let mut jobs = Vec::new();
    for _ in 0..40 {
        let job = recv(&q, "r").await;
        assert!(seen.insert(job.event.id.clone()), "{} twice", job.event.id);
        jobs.push(job);
    }
    assert!(nothing_for(&q, "r", 300).await, "40 enqueued, 40 received");

    // Outcomes: a retry comes back from its shard, dead letters merge newest first.
    let (retried, rest) = jobs.split_first().unwrap();
    q.retry(retried, SystemTime::now(), "503").await.unwrap();
    let again = recv(&q, "r").await;
    assert_eq!(
        (again.event.id.as_str(), again.attempts),
        (retried.event.id.as_str(), 1)
    );
    q.ack(&again).await.unwrap();
    for job in &rest[..10] {
        let gone = crate::deliver::Failure::new(crate::deliver::ErrorKind::Timeout, "gone");
        q.dead_letter(job, &gone, OnDead::Release).await.unwrap();
        q.record_attempt("r", attempt(&job.event.id, 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    for job in &rest[10..] {
        q.ack(job).await.unwrap();
    }
    assert_eq!(q.depth("r").await.unwrap(), 0);
    assert!(
        tags(&r, "dead").await.len() > 1,
        "dead letters stay on their shards"
    );
    let dead: Vec<String> = q
        .dead("r", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.event.id)
        .collect();
    let newest_first: Vec<String> = rest[..10]
        .iter()
        .rev()
        .map(|j| j.event.id.clone())
        .collect();
    assert_eq!(dead, newest_first);
    assert_eq!(q.dead("r", 3).await.unwrap().len(), 3);
    let history: Vec<String> = q
        .history("r", None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.event_id)
        .collect();
    assert_eq!(
        history, newest_first,
        "history merged across shards, newest first"
    );
    let one = &rest[4].event.id;
    assert_eq!(q.history("r", Some(one), 10).await.unwrap().len(), 1);
    assert!(q.dead_by_id("r", one).await.unwrap().is_some());

    // Replay one from its shard, purge one, purge the rest across every shard.
    assert!(q.replay("r", one).await.unwrap());
    let replayed = recv(&q, "r").await;
    assert_eq!((&replayed.event.id, replayed.attempts), (one, 0));
    q.ack(&replayed).await.unwrap();
    assert!(q.purge("r", &rest[0].event.id).await.unwrap());
    assert_eq!(q.purge_all("r").await.unwrap(), 8);
    assert!(q.dead("r", 100).await.unwrap().is_empty());
    assert_eq!(q.stored_lanes().await.unwrap(), ["r"]);
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn a_fan_out_enqueue_and_its_dedup_key_share_one_shard() {
    let r = testing::sharded("q-shard-fanout", SHARDS);
    let q = queue(&r);
    let events: Vec<Event> = ["a", "b"]
        .iter()
        .map(|up| Event {
            upstream: Some((*up).into()),
            ..event("r", "evt_fan")
        })
        .collect();
    q.enqueue_all(events).await.unwrap();
    let shard = r.shard_of("evt_fan");
    assert_eq!(tags(&r, "q").await, BTreeSet::from([format!("r/{shard}")]));
    for lane in ["r/a", "r/b"] {
        let job = recv(&q, lane).await;
        q.ack(&job).await.unwrap();
    }
    let dedup = crate::dedup::redis::RedisDedup::new(
        r.clone(),
        Duration::from_secs(60),
        Duration::from_secs(5),
    );
    crate::dedup::Store::claim(&dedup, "r", "evt_fan")
        .await
        .unwrap();
    assert_eq!(
        tags(&r, "dedup").await,
        BTreeSet::from([format!("r/{shard}")])
    );
    testing::cleanup(&r).await;
}

#[tokio::test]
async fn wait_replicas_refuses_what_no_replica_holds_without_stalling_other_calls() {
    // The test Redis has no replica: WAIT 1 can never be met.
    let prefix = format!(
        "hgtest-wait-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    );
    let options = crate::redis_conn::Options {
        wait_replicas: 1,
        ..crate::redis_conn::Options::new(&prefix, Duration::from_secs(1))
    };
    let r = Redis::single(&testing::url(), options).unwrap();
    let q = queue(&r);
    let waiting = tokio::spawn({
        let q = q.clone();
        async move { q.enqueue(event("r", "evt_unreplicated")).await }
    });
    // Meanwhile the shared connection answers at once: the WAIT blocks a connection of its own.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        q.depth("r").await.unwrap(),
        1,
        "the write reached the master"
    );
    assert!(
        !waiting.is_finished(),
        "depth answered while the enqueue still waits"
    );
    match waiting.await.unwrap() {
        Err(QueueError::Redis(RedisError::Replicas { wanted: 1, got: 0 })) => {}
        other => panic!("expected a replicas error, got {other:?}"),
    }
    testing::cleanup(&r).await;
}
