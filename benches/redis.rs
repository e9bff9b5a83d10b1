//! Acknowledged enqueue throughput on the Redis Streams queue (one XADD in MULTI/EXEC per
//! event, concurrent writers pipelined on one multiplexed connection), plus a full
//! enqueue → receive → ack cycle.
//!
//! `HOOKGATE_BENCH_REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench redis` prints one row per
//! number of writers. What a 200 is worth depends on the server's `appendfsync` (docs/redis.md).

mod common;

use std::time::Duration;

use common::{BODY, RUN, event, measure};

use hookgate::queue::Queue;
use hookgate::queue::redis_stream::RedisQueue;
use hookgate::redis_conn::Redis;

/// Deletes the bench's keys.
async fn clean(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut keys = redis::cmd("KEYS");
    keys.arg(format!("{prefix}:*"));
    let keys: Vec<String> = keys.query_async(&mut conn).await.expect("KEYS");
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .exec_async(&mut conn)
            .await
            .expect("DEL");
    }
}

#[tokio::main]
async fn main() {
    let url = std::env::var("HOOKGATE_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("hgbench-{}", std::process::id());
    let redis = Redis::connect(&url, &prefix, Duration::from_secs(5)).expect("redis url");
    let queue = RedisQueue::new(redis, Duration::from_secs(60));
    println!(
        "Redis Streams queue at {url}, {BODY} B bodies, {} s per row",
        RUN.as_secs()
    );
    println!(
        "{:>8} | {:>16} | {:>18}",
        "writers", "enqueues/s", "enqueue+recv+ack/s"
    );
    for writers in [1, 16, 64] {
        let q = queue.clone();
        let enqueue = measure(writers, move |i| {
            let q = q.clone();
            async move {
                q.enqueue(event(i)).await.expect("enqueue");
            }
        })
        .await;
        clean(&url, &prefix).await;
        let q = queue.clone();
        let cycle = measure(writers, move |i| {
            let q = q.clone();
            async move {
                q.enqueue(event(i)).await.expect("enqueue");
                let job = q.receive("bench").await.expect("receive");
                q.ack(&job).await.expect("ack");
            }
        })
        .await;
        clean(&url, &prefix).await;
        println!("{writers:>8} | {enqueue:>16.0} | {cycle:>18.0}");
    }
}
