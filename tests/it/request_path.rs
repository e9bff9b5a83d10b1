//! The end of the request path as a hostile or unlucky sender meets it: a connection reset
//! right after the enqueue, forged `X-Hookgate-*` headers, a replay under a fresh id, and the
//! permissions of what the gateway writes to disk.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::support::*;

/// Events sent and reset in one burst.
const RESETS: usize = 40;

/// Sends a signed Stripe event over HTTP/1.1 on TLS, waits `delay`, then resets the connection
/// (SO_LINGER 0: an RST, not a FIN), whatever the gateway was doing with the request.
async fn send_and_reset(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    id: String,
    delay: Duration,
) {
    let body = stripe_body(&id);
    let sig = stripe_header(STRIPE_SECRET, now(), &body);
    let head = format!(
        "POST /webhooks/stripe HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         stripe-signature: {sig}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls);
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream
        .write_all(&[head.as_bytes(), &body].concat())
        .await
        .unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(delay).await;
    let (tcp, _) = stream.into_inner();
    tcp.set_zero_linger().unwrap();
}

/// The sender's retry: repeated while the gateway answers 409 (the id is in flight).
async fn retry_until_answered(gw: &Gateway, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, text) = gw.post_stripe(id).await;
        if status == 200 {
            return text;
        }
        assert!(
            status == 409 && Instant::now() < deadline,
            "{status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many times each event id reached the sink.
fn deliveries_per_id(sink: &Sink) -> HashMap<String, usize> {
    let mut per_id = HashMap::new();
    for r in sink.delivered() {
        let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        *per_id
            .entry(doc["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    per_id
}

/// The counter of answered requests with these labels, from the admin metrics.
async fn answered(gw: &Gateway, reason: &str) -> usize {
    let needle =
        format!(r#"hookgate_requests_total{{route="stripe",status="200",reason="{reason}"}} "#);
    let text = gw.metrics().await;
    let line = text.lines().find(|l| l.starts_with(&needle));
    line.map_or(0, |l| l[needle.len()..].trim().parse().unwrap())
}

async fn a_client_reset_after_the_enqueue_then_the_retry_is_delivered_once(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.claim_ttl = "1s";
    let gw = Gateway::start(o).await;
    let tls = Arc::new(client_tls(&gw.dir.path().join("test.crt"), &[b"http/1.1"]));
    let ids: Vec<String> = (0..RESETS).map(|i| format!("evt_reset_{i}")).collect();
    let mut resets = tokio::task::JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        // Spread over the few ms an enqueue takes (a group commit's fsync, a Redis round trip),
        // so that some resets land while the event is being made durable.
        let delay = Duration::from_micros((i as u64 * 700) % 12_000);
        resets.spawn(send_and_reset(gw.addr, tls.clone(), id.clone(), delay));
    }
    while let Some(r) = resets.join_next().await {
        r.unwrap();
    }
    // Past claim_ttl: a claim left pending by a dropped request would no longer hold the retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answered_before = answered(&gw, "accepted").await;
    let mut retried_as_duplicate = 0;
    for id in &ids {
        retried_as_duplicate +=
            usize::from(retry_until_answered(&gw, id).await.contains("duplicate"));
    }
    sink.wait_for(RESETS, Duration::from_secs(20)).await;
    // A second delivery of an id would follow within the 100 ms retry schedule.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_id = deliveries_per_id(&sink);
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(per_id.len(), RESETS);
    // Enqueued events whose answer was never counted: the handler was dropped mid-way.
    let cut_short = retried_as_duplicate.saturating_sub(answered_before);
    eprintln!(
        "{store:?}: {retried_as_duplicate} of {RESETS} reset events were enqueued, {cut_short} of them by a dropped handler"
    );
    gw.finish().await;
}

async fn a_senders_x_hookgate_headers_never_reach_the_upstream(store: Store) {
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    let body = stripe_body("evt_forged_headers");
    let h: Vec<(String, String)> = [
        (
            "stripe-signature",
            stripe_header(STRIPE_SECRET, now(), &body).as_str(),
        ),
        ("X-Hookgate-Dedup", "unavailable"),
        ("X-Hookgate-Route", "evil"),
        ("x-hookgate-attempt", "99"),
        ("X-HOOKGATE-Received-At", "1970-01-01T00:00:00Z"),
        ("X-Hookgate-Anything", "1"),
        ("x-request-id", "kept"),
    ]
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .to_vec();
    assert_eq!(gw.post("/webhooks/stripe", &h, body).await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let all = |n: &str| {
        got.headers
            .get_all(n)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-hookgate-route"), ["stripe"]);
    assert_eq!(all("x-hookgate-attempt"), ["1"]);
    assert_eq!(all("x-hookgate-dedup"), Vec::<String>::new());
    assert_eq!(all("x-hookgate-anything"), Vec::<String>::new());
    assert_eq!(all("x-hookgate-received-at").len(), 1);
    assert_ne!(all("x-hookgate-received-at")[0], "1970-01-01T00:00:00Z");
    assert_eq!(
        all("x-request-id"),
        ["kept"],
        "other sender headers still pass"
    );
    gw.finish().await;
}

/// A GitHub route that also dedups on the body (GitHub does not sign `X-GitHub-Delivery`).
fn strict_github_route(upstream: &str) -> String {
    format!(
        r#"[[route]]
name = "github-strict"
path = "/webhooks/github-strict"
scheme = "github"
secrets = ["{GITHUB_SECRET}"]
dedup = "id+body"
upstream = {{ url = "{upstream}/github-strict", timeout = "2s" }}
retry = {{ schedule = ["100ms"] }}
"#
    )
}

async fn id_plus_body_refuses_a_replay_under_a_fresh_delivery_id(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = strict_github_route(&sink.url(""));
    let gw = Gateway::start(o).await;
    let post = |path: &'static str, id: &str, body: &[u8]| {
        let h = github_headers(id, body);
        let gw = &gw;
        let body = body.to_vec();
        async move { gw.post(path, &h, body).await }
    };
    let push = br#"{"ref":"refs/heads/main","after":"abc"}"#;
    let strict = "/webhooks/github-strict";
    assert!(post(strict, "d-1", push).await.1.contains("accepted"));
    let replay = post(strict, "d-2-fresh", push).await;
    assert_eq!(replay.0, 200);
    assert!(replay.1.contains("duplicate"), "{}", replay.1);
    // The honest retry is still a duplicate; another body under another id is a new event.
    assert!(post(strict, "d-1", push).await.1.contains("duplicate"));
    let other = br#"{"ref":"refs/heads/main","after":"def"}"#;
    assert!(post(strict, "d-3", other).await.1.contains("accepted"));
    // The refused replay released its id claim: that id with a new body is accepted.
    let third = br#"{"ref":"refs/heads/main","after":"123"}"#;
    assert!(
        post(strict, "d-2-fresh", third)
            .await
            .1
            .contains("accepted")
    );
    // The default route (dedup = "id") still takes the replay: that is what id+body is for.
    assert!(
        post("/webhooks/github", "d-2-fresh", push)
            .await
            .1
            .contains("accepted")
    );
    sink.wait_for(4, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let strict_bodies: Vec<_> = sink
        .delivered()
        .into_iter()
        .filter(|r| r.path == "/github-strict")
        .map(|r| r.body)
        .collect();
    assert_eq!(strict_bodies.len(), 3, "each body delivered once");
    assert_eq!(
        strict_bodies.iter().filter(|b| b.as_ref() == push).count(),
        1
    );
    gw.finish().await;
}

#[tokio::test]
async fn the_data_directory_is_0700_and_the_database_0600() {
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(Store::Embedded, sink.url(""))).await;
    assert_eq!(gw.post_stripe("evt_perm").await.0, 200);
    let data = gw.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    gw.finish().await;
}

crate::both_backends!(
    a_client_reset_after_the_enqueue_then_the_retry_is_delivered_once,
    a_senders_x_hookgate_headers_never_reach_the_upstream,
    id_plus_body_refuses_a_replay_under_a_fresh_delivery_id,
);
