//! Durable enqueue throughput: the redb group-commit queue against the same group-commit scheme
//! on fjall. Every event is fsync'd before its enqueue returns, in both.
//!
//! `cargo bench --bench store` prints one row per number of concurrent writers.

mod common;

use std::sync::Arc;

use common::{BODY, RUN, event, measure};

use hookgate::embedded::Db;
use hookgate::queue::embedded::EmbeddedQueue;
use hookgate::queue::{Event, Queue};
use tokio::sync::{mpsc, oneshot};

async fn bench_redb(writers: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path()).expect("open redb");
    let queue = Arc::new(EmbeddedQueue::open(db.clone()).expect("open queue"));
    let before = db.commits();
    let rate = measure(writers, move |i| {
        let queue = Arc::clone(&queue);
        async move {
            queue.enqueue(event(i)).await.expect("enqueue");
        }
    })
    .await;
    let commits = (db.commits() - before) as f64 / RUN.as_secs_f64();
    (rate, rate / commits.max(1.0))
}

/// The fjall side: the same writer-thread group commit, one `SyncAll` batch per drain.
struct FjallQueue {
    ops: mpsc::Sender<(Vec<u8>, Vec<u8>, oneshot::Sender<()>)>,
}

impl FjallQueue {
    fn open(dir: &std::path::Path) -> FjallQueue {
        let db = fjall::Database::builder(dir).open().expect("open fjall");
        let queue = db
            .keyspace("queue", fjall::KeyspaceCreateOptions::default)
            .expect("keyspace");
        let (tx, mut rx) = mpsc::channel::<(Vec<u8>, Vec<u8>, oneshot::Sender<()>)>(8192);
        std::thread::spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while let (true, Ok(op)) = (batch.len() < 1024, rx.try_recv()) {
                    batch.push(op);
                }
                let mut write = db.batch().durability(Some(fjall::PersistMode::SyncAll));
                for (key, value, _) in &batch {
                    write.insert(&queue, key.as_slice(), value.as_slice());
                }
                write.commit().expect("fjall commit");
                for (_, _, done) in batch {
                    let _ = done.send(());
                }
            }
        });
        FjallQueue { ops: tx }
    }

    async fn enqueue(&self, seq: u64, event: &Event) {
        let value = postcard::to_stdvec(event).expect("encode");
        let (tx, rx) = oneshot::channel();
        let op = (seq.to_be_bytes().to_vec(), value, tx);
        self.ops.send(op).await.expect("writer alive");
        rx.await.expect("committed");
    }
}

async fn bench_fjall(writers: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = Arc::new(FjallQueue::open(dir.path()));
    measure(writers, move |i| {
        let queue = Arc::clone(&queue);
        async move { queue.enqueue(i, &event(i)).await }
    })
    .await
}

#[tokio::main]
async fn main() {
    println!(
        "durable enqueue, {BODY} B bodies, {} s per row",
        RUN.as_secs()
    );
    println!(
        "{:>8} | {:>14} | {:>14} | {:>16}",
        "writers", "redb events/s", "fjall events/s", "redb events/commit"
    );
    for writers in [1, 16, 64] {
        let (redb, per_commit) = bench_redb(writers).await;
        let fjall = bench_fjall(writers).await;
        println!("{writers:>8} | {redb:>14.0} | {fjall:>14.0} | {per_commit:>16.1}");
    }
}
