//! Delivery towards the upstream: retries, dead letters, restart recovery.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::*;

async fn failing_upstream_is_retried_until_it_recovers(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(2, Ordering::SeqCst);
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    assert_eq!(gw.post_stripe("evt_retry").await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got[0].headers["x-hookgate-attempt"], "3");
    assert_eq!(sink.hits.load(Ordering::SeqCst), 3);
    gw.finish().await;
}

async fn exhausted_events_go_to_the_dead_letter_store(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(store, sink.url(""));
    o.max_attempts = 3;
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_dead").await.0, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sink.hits.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not retried 3 times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The move to the dead-letter store is an fsync'd commit: on a loaded CI machine it may
    // come well after the last attempt, so wait for it rather than for a fixed time.
    let dead = r#"hookgate_deliveries_total{route="stripe",outcome="dead",kind="status_5xx"} 1"#;
    let mut metrics = gw.metrics().await;
    while !metrics.contains(dead) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not dead: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = gw.metrics().await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        sink.hits.load(Ordering::SeqCst),
        3,
        "no attempt beyond max_attempts"
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"hookgate_queue_depth{route="stripe"} 0"#),
        "{metrics}"
    );
    gw.finish().await;
}

async fn undelivered_events_survive_a_graceful_restart(store: Store) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // upstream down: nothing listens here yet
    let up = format!("http://127.0.0.1:{port}");
    let mut o = Opts::new(store, up.clone());
    o.schedule = r#"["200ms"]"#;
    o.max_attempts = 1000;
    let gw = Gateway::start(o.clone()).await;
    for i in 0..5 {
        assert_eq!(gw.post_stripe(&format!("evt_restart_{i}")).await.0, 200);
    }
    let dir = gw.stop().await;
    let sink = Sink::start_at(port).await;
    let gw = Gateway::start_in(dir, o).await; // same data directory or Redis prefix
    let got = sink.wait_for(5, Duration::from_secs(15)).await;
    let mut ids: Vec<_> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5);
    // The dedup record survived too.
    assert!(
        gw.post_stripe("evt_restart_0")
            .await
            .1
            .contains("duplicate")
    );
    gw.finish().await;
}

crate::both_backends!(
    failing_upstream_is_retried_until_it_recovers,
    exhausted_events_go_to_the_dead_letter_store,
    undelivered_events_survive_a_graceful_restart,
);
