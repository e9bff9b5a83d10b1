//! What the benches share: the sample event, the fixed-duration throughput loop, and a store
//! filled through the library.

// Each bench compiles this module on its own and uses only a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookgate::queue::Event;

/// How long each configuration runs.
pub const RUN: Duration = Duration::from_secs(3);
/// Body size of each event: a typical webhook.
pub const BODY: usize = 1024;

/// The sample event `i`: a 1 KiB JSON body on the `bench` route.
pub fn event(i: u64) -> Event {
    Event {
        route: "bench".into(),
        id: format!("evt_{i}"),
        received_at_ms: 0,
        headers: vec![("content-type".into(), "application/json".into())],
        body: bytes::Bytes::from(vec![b'x'; BODY]),
        dedup_unavailable: false,
        event_type: None,
        upstream: None,
        traceparent: None,
        order_key: None,
    }
}

/// Runs `writers` tasks that call `op` back to back for `RUN`; returns calls per second.
pub async fn measure<F, Fut>(writers: usize, op: F) -> f64
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (op, count) = (op.clone(), Arc::clone(&count));
            tokio::spawn(async move {
                while start.elapsed() < RUN {
                    op(count.fetch_add(1, Ordering::Relaxed)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer task");
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Queues `n` events, event `i` built by `event(i)`, in a fresh embedded store in `data`, 1,000
/// per transaction (a standing backlog for a bench to start on).
pub async fn prefill(
    data: &Path,
    n: u64,
    event: impl Fn(u64) -> Event,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use hookgate::queue::Queue;
    let db = hookgate::embedded::Db::open(data)?;
    let queue = hookgate::queue::embedded::EmbeddedQueue::open(db.clone())?;
    let mut next = 0;
    while next < n {
        let batch = (next..n.min(next + 1000)).map(&event).collect();
        next += 1000;
        queue.enqueue_all(batch).await?;
    }
    db.close();
    Ok(())
}
