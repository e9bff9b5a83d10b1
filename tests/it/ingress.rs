//! The request pipeline (README.md, "What happens to a request") seen from a sender.

use std::time::Duration;

use crate::support::*;

async fn setup(store: Store) -> (Gateway, Sink) {
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    (gw, sink)
}

async fn valid_event_is_accepted_and_delivered_byte_identical(store: Store) {
    let (gw, sink) = setup(store).await;
    let body = stripe_body("evt_identical");
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_SECRET, now(), &body),
    )];
    let (status, text) = gw.post("/webhooks/stripe", &h, body.clone()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, r#"{"id":"evt_identical","status":"accepted"}"#);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body.as_ref(), body.as_slice());
    assert_eq!(got[0].headers["x-hookgate-route"], "stripe");
    assert_eq!(got[0].headers["x-hookgate-attempt"], "1");
    assert_eq!(got[0].headers["content-type"], "application/json");
    assert!(
        got[0].headers.contains_key("stripe-signature"),
        "provider headers are forwarded"
    );
    assert!(got[0].headers.contains_key("x-hookgate-received-at"));
    assert!(!got[0].headers.contains_key("x-hookgate-dedup"));
    gw.finish().await;
}

async fn same_event_twice_is_a_duplicate_delivered_once(store: Store) {
    let (gw, sink) = setup(store).await;
    assert_eq!(gw.post_stripe("evt_twice").await.0, 200);
    let (status, text) = gw.post_stripe("evt_twice").await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"id":"evt_twice","status":"duplicate"}"#)
    );
    sink.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 1);
    gw.finish().await;
}

async fn twenty_concurrent_sends_of_one_id_deliver_once(store: Store) {
    let (gw, sink) = setup(store).await;
    let gw = std::sync::Arc::new(gw);
    let sends = (0..20).map(|_| {
        let gw = gw.clone();
        tokio::spawn(async move { gw.post_stripe("evt_race").await })
    });
    let results = futures_util::future::join_all(sends).await;
    let statuses: Vec<u16> = results.into_iter().map(|r| r.unwrap().0).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200));
    sink.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 1, "statuses: {statuses:?}");
    let gw = std::sync::Arc::into_inner(gw).expect("no other handle");
    gw.finish().await;
}

async fn forged_and_stale_events_are_refused_with_reasons(store: Store) {
    let (gw, sink) = setup(store).await;
    let body = stripe_body("evt_forged");
    let cases = [
        (
            "tampered body",
            stripe_header(STRIPE_SECRET, now(), b"{\"id\":\"evt_other\"}"),
            "signature_mismatch",
        ),
        (
            "wrong secret",
            stripe_header("whsec_wrong", now(), &body),
            "signature_mismatch",
        ),
        (
            "stale",
            stripe_header(STRIPE_SECRET, now() - 600, &body),
            "timestamp_out_of_tolerance",
        ),
        (
            "future",
            stripe_header(STRIPE_SECRET, now() + 600, &body),
            "timestamp_out_of_tolerance",
        ),
        ("garbage", "t=abc,v1=zz".to_string(), "malformed_signature"),
    ];
    for (what, sig, reason) in cases {
        let (status, text) = gw
            .post(
                "/webhooks/stripe",
                &[("stripe-signature".into(), sig)],
                body.clone(),
            )
            .await;
        assert_eq!(status, 401, "{what}: {text}");
        assert_eq!(text, format!(r#"{{"error":"{reason}"}}"#), "{what}");
        assert!(!text.contains(STRIPE_SECRET), "{what}: secret leaked");
    }
    let (status, text) = gw.post("/webhooks/stripe", &[], body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (401, r#"{"error":"missing_signature"}"#)
    );
    // A forged request must not have poisoned dedup: the genuine event is still accepted.
    let (status, text) = gw.post_stripe("evt_forged").await;
    assert!(status == 200 && text.contains("accepted"), "{text}");
    sink.wait_for(1, Duration::from_secs(10)).await;
    gw.finish().await;
}

async fn rotated_secret_is_accepted(store: Store) {
    let (gw, sink) = setup(store).await;
    let body = stripe_body("evt_rotated");
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_OLD_SECRET, now(), &body),
    )];
    assert_eq!(gw.post("/webhooks/stripe", &h, body).await.0, 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    gw.finish().await;
}

/// A stripe-signed body of exactly `len` bytes (JSON padded with spaces).
fn padded(id: &str, len: usize) -> Vec<u8> {
    let mut body = stripe_body(id);
    body.truncate(body.len() - 1);
    body.resize(len - 1, b' ');
    body.push(b'}');
    body
}

async fn size_limit_with_content_length_and_chunked(store: Store) {
    let (gw, sink) = setup(store).await;
    let limit = 64 * 1024;
    let over = padded("evt_big", limit + 1);
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_SECRET, now(), &over),
    )];
    let (status, text) = gw.post("/webhooks/stripe", &h, over.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (413, r#"{"error":"payload_too_large"}"#)
    );

    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        over.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    let resp = gw
        .client
        .post(gw.url("/webhooks/stripe"))
        .header("stripe-signature", &h[0].1)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413, "chunked body over the limit");

    let exact = padded("evt_exact", limit);
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_SECRET, now(), &exact),
    )];
    let (status, text) = gw.post("/webhooks/stripe", &h, exact.clone()).await;
    assert_eq!(status, 200, "{text}");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body.len(), limit);
    gw.finish().await;
}

async fn unknown_path_and_wrong_method(store: Store) {
    let (gw, _sink) = setup(store).await;
    let (status, text) = gw.post("/nope", &[], b"{}".to_vec()).await;
    assert_eq!((status, text.as_str()), (404, r#"{"error":"no_route"}"#));
    let resp = gw
        .client
        .get(gw.url("/webhooks/stripe"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    gw.finish().await;
}

async fn standard_webhooks_and_svix_aliases_are_verified(store: Store) {
    let (gw, sink) = setup(store).await;
    let body = br#"{"type":"user.created","data":{"id":1}}"#.to_vec();
    let h = standard_headers("msg_std_1", now(), &body, "webhook");
    let (status, text) = gw.post("/webhooks/standard", &h, body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"id":"msg_std_1","status":"accepted"}"#)
    );
    let h = standard_headers("msg_svix_1", now(), &body, "svix");
    assert_eq!(gw.post("/webhooks/standard", &h, body.clone()).await.0, 200);
    let h = standard_headers("msg_stale", now() - 3600, &body, "webhook");
    assert_eq!(gw.post("/webhooks/standard", &h, body.clone()).await.0, 401);
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(
        got.iter()
            .all(|r| r.headers["x-hookgate-route"] == "standard")
    );
    gw.finish().await;
}

async fn github_events_are_verified_and_deduped_on_delivery_id(store: Store) {
    let (gw, sink) = setup(store).await;
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let h = github_headers("72d3162e-cc78-11e3-81ab-4c9367dc0958", &body);
    let (status, text) = gw.post("/webhooks/github", &h, body.clone()).await;
    assert_eq!(
        (status, text.as_str()),
        (
            200,
            r#"{"id":"72d3162e-cc78-11e3-81ab-4c9367dc0958","status":"accepted"}"#
        )
    );
    assert!(
        gw.post("/webhooks/github", &h, body.clone())
            .await
            .1
            .contains("duplicate")
    );
    let mut bad = h.clone();
    bad[0].1 = format!("sha256={}", "0".repeat(64));
    assert_eq!(gw.post("/webhooks/github", &bad, body).await.0, 401);
    sink.wait_for(1, Duration::from_secs(10)).await;
    gw.finish().await;
}

async fn http2_is_negotiated_by_alpn(store: Store) {
    let (gw, sink) = setup(store).await;
    let url = gw.url("/webhooks/stripe");
    let resp = send_stripe(&gw.client, &url, STRIPE_SECRET, "evt_h2")
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    gw.finish().await;
}

async fn admin_health_and_token(store: Store) {
    let (gw, _sink) = setup(store).await;
    let get = async |path: &str, token: Option<&str>| {
        let mut req = gw.client.get(format!("http://{}{path}", gw.admin));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    assert_eq!(get("/healthz", None).await.0, 200);
    assert_eq!(get("/readyz", None).await.0, 200);
    assert_eq!(get("/admin/routes", None).await.0, 401);
    assert_eq!(get("/admin/routes", Some("wrong-token")).await.0, 401);
    assert_eq!(get("/admin/routes", Some("test-admin-token")).await.0, 200);
    let (_, metrics) = get("/metrics", None).await;
    assert!(metrics.contains("hookgate_queue_depth"), "{metrics}");
    gw.finish().await;
}

fn guarded_route(extra: &str) -> String {
    format!(
        r#"[[route]]
name = "guarded"
path = "/webhooks/guarded"
scheme = "stripe"
secrets = ["{STRIPE_SECRET}"]
upstream = {{ url = "http://127.0.0.1:9/never", timeout = "2s" }}
{extra}
"#
    )
}

async fn source_ip_outside_the_allow_list_is_forbidden(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = guarded_route(r#"allow_ips = ["10.0.0.0/8"]"#);
    let gw = Gateway::start(o).await;
    let body = stripe_body("evt_ip");
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_SECRET, now(), &body),
    )];
    let (status, text) = gw.post("/webhooks/guarded", &h, body).await;
    assert_eq!(
        (status, text.as_str()),
        (403, r#"{"error":"ip_not_allowed"}"#)
    );
    gw.finish().await;
}

async fn rate_limit_answers_429_with_retry_after(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = guarded_route("rate_limit = { rps = 1, burst = 2 }");
    let gw = Gateway::start(o).await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let body = stripe_body(&format!("evt_rate_{i}"));
        let resp = gw
            .client
            .post(gw.url("/webhooks/guarded"))
            .header(
                "stripe-signature",
                stripe_header(STRIPE_SECRET, now(), &body),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        statuses.push((
            resp.status().as_u16(),
            resp.headers().get("retry-after").cloned(),
        ));
    }
    assert_eq!(statuses[0].0, 200);
    assert_eq!(statuses[1].0, 200);
    assert_eq!(statuses[2].0, 429);
    assert_eq!(statuses[2].1.as_ref().unwrap(), "1");
    gw.finish().await;
}

async fn a_body_that_never_arrives_gets_408(store: Store) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let mut tls = tls_connect(&gw, tcp).await;
    let head =
        "POST /webhooks/stripe HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{\"id\":";
    tls.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the gateway did not give up on the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#"{"error":"body_timeout"}"#), "{text}");
    gw.finish().await;
}

async fn tls_connect(
    gw: &Gateway,
    tcp: tokio::net::TcpStream,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(gw.dir.path().join("test.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap()
}
async fn dedup_ttl_is_honoured(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.dedup_ttl = "2s";
    let gw = Gateway::start(o).await;
    assert!(gw.post_stripe("evt_ttl").await.1.contains("accepted"));
    assert!(gw.post_stripe("evt_ttl").await.1.contains("duplicate"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, text) = gw.post_stripe("evt_ttl").await;
    assert_eq!((status, text.contains("accepted")), (200, true), "{text}");
    sink.wait_for(2, Duration::from_secs(10)).await;
    gw.finish().await;
}

crate::both_backends!(
    dedup_ttl_is_honoured,
    valid_event_is_accepted_and_delivered_byte_identical,
    same_event_twice_is_a_duplicate_delivered_once,
    twenty_concurrent_sends_of_one_id_deliver_once,
    forged_and_stale_events_are_refused_with_reasons,
    rotated_secret_is_accepted,
    size_limit_with_content_length_and_chunked,
    unknown_path_and_wrong_method,
    standard_webhooks_and_svix_aliases_are_verified,
    github_events_are_verified_and_deduped_on_delivery_id,
    http2_is_negotiated_by_alpn,
    admin_health_and_token,
    source_ip_outside_the_allow_list_is_forbidden,
    rate_limit_answers_429_with_retry_after,
    a_body_that_never_arrives_gets_408,
);
