//! Several gateway processes on one Redis (or one Redis Cluster): one delivery per event id,
//! and a killed replica's events delivered by another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::support::*;

impl Replica {
    async fn post_stripe(&self, id: &str) -> u16 {
        let url = format!("https://localhost:{}/webhooks/stripe", self.ingress);
        let resp = send_stripe(&self.client, &url, STRIPE_SECRET, id)
            .await
            .unwrap();
        resp.status().as_u16()
    }
}

/// Distinct bodies received, and the total count.
fn distinct(sink: &Sink) -> (usize, usize) {
    let mut bodies: Vec<_> = sink.delivered().into_iter().map(|r| r.body).collect();
    let total = bodies.len();
    bodies.sort();
    bodies.dedup();
    (bodies.len(), total)
}

crate::redis_backends!(
    one_id_sent_to_two_replicas_is_delivered_once,
    a_killed_replicas_events_are_delivered_by_another,
);

async fn one_id_sent_to_two_replicas_is_delivered_once(store: Store) {
    let sink = Sink::start().await;
    let o = Opts::new(store, sink.url(""));
    let (a, b) = (Arc::new(Replica::new(&o)), Arc::new(Replica::new(&o)));
    let (_pa, _pb) = (a.start().await, b.start().await);
    let mut sends = Vec::new();
    for i in 0..10 {
        for r in [&a, &b] {
            let r = Arc::clone(r);
            sends.push(tokio::spawn(async move {
                r.post_stripe(&format!("evt_pair_{i}")).await
            }));
        }
    }
    for s in sends {
        let status = s.await.unwrap();
        assert!(status == 200 || status == 409, "{status}");
    }
    sink.wait_for(10, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(distinct(&sink), (10, 10), "every id exactly once");
    o.clean().await;
}

/// An upstream that accepts connections and never answers; counts them.
async fn hanging_upstream(
    listener: TcpListener,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (seen, task)
}

async fn a_killed_replicas_events_are_delivered_by_another(store: Store) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, hang) = hanging_upstream(listener).await;
    let mut o = Opts::new(store, format!("http://127.0.0.1:{port}"));
    o.max_attempts = 1000;
    let (a, b) = (Replica::new(&o), Replica::new(&o));
    let mut pa = a.start().await;
    for i in 0..10 {
        assert_eq!(a.post_stripe(&format!("evt_orphan_{i}")).await, 200);
    }
    // Replica A now holds leases: its deliveries hang in the upstream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never tried to deliver"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pa.child.kill().unwrap(); // SIGKILL: no goodbye, leases stay with A
    pa.child.wait().unwrap();
    hang.abort();
    let _ = hang.await;
    let sink = Sink::start_at(port).await;
    let started = std::time::Instant::now();
    let _pb = b.start().await;
    // Unleased events at once; A's leases after the 9 s visibility timeout.
    sink.wait_for(10, Duration::from_secs(30)).await;
    assert_eq!(distinct(&sink).0, 10);
    eprintln!("B delivered A's 10 events in {:?}", started.elapsed());
    o.clean().await;
}
