//! The delivery engine through the running gateway: dead letters and their admin API and CLI,
//! delivery history, suspension and resume, fan-out with filters, re-signing, Retry-After.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

async fn admin(gw: &Gateway, method: reqwest::Method, path: &str) -> (u16, Value) {
    let url = format!("http://{}{path}", gw.admin);
    let resp = gw
        .client
        .request(method, url)
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(gw: &Gateway, path: &str) -> Value {
    let (status, v) = admin(gw, reqwest::Method::GET, path).await;
    assert_eq!(status, 200, "{path}: {v}");
    v
}

async fn dead_ids(gw: &Gateway) -> Vec<String> {
    let v = get(gw, "/admin/dlq?route=stripe").await;
    v["dead"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn dead_letters_can_be_listed_shown_replayed_and_purged(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(store, sink.url(""));
    o.max_attempts = 2;
    let gw = Gateway::start(o).await;
    for id in ["evt_dlq_a", "evt_dlq_b"] {
        assert_eq!(gw.post_stripe(id).await.0, 200);
    }
    eventually(Duration::from_secs(15), "two dead letters", async || {
        dead_ids(&gw).await.len() == 2
    })
    .await;

    let list = get(&gw, "/admin/dlq?route=stripe").await;
    let first = &list["dead"][0];
    assert_eq!(first["attempts"], 2);
    assert_eq!(first["last_status"], 503);
    assert!(
        first["last_error"].as_str().unwrap().contains("503"),
        "{first}"
    );
    assert_eq!(first["last_error_kind"], "status_5xx", "{first}");

    let one = get(&gw, "/admin/dlq/stripe/evt_dlq_a").await;
    let tries = one["attempts_detail"].as_array().unwrap();
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0]["answer"], "sink says no");

    let (status, _) = admin(&gw, reqwest::Method::GET, "/admin/dlq/stripe/evt_nope").await;
    assert_eq!(status, 404);

    sink.fail_first.store(0, Ordering::SeqCst);
    let (status, v) = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/dlq/stripe/evt_dlq_a/replay",
    )
    .await;
    assert_eq!((status, v["replayed"].as_u64()), (200, Some(1)));
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        got[0].body.as_ref(),
        stripe_body("evt_dlq_a").as_slice(),
        "replayed with the same id and body"
    );
    assert_eq!(got[0].headers["x-hookgate-attempt"], "1");
    assert_eq!(dead_ids(&gw).await, vec!["evt_dlq_b".to_string()]);

    let (status, v) = admin(&gw, reqwest::Method::DELETE, "/admin/dlq/stripe").await;
    assert_eq!((status, v["purged"].as_u64()), (200, Some(1)));
    assert!(dead_ids(&gw).await.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), 1, "a purged event is not delivered");
    gw.finish().await;
}

async fn delivery_history_keeps_status_latency_and_answer(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(1, Ordering::SeqCst);
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    assert_eq!(gw.post_stripe("evt_hist").await.0, 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    let mut rows = Vec::new();
    eventually(Duration::from_secs(5), "two history rows", async || {
        rows = get(&gw, "/admin/deliveries?route=stripe").await["deliveries"]
            .as_array()
            .unwrap()
            .clone();
        rows.len() == 2
    })
    .await;
    assert_eq!(
        (rows[0]["attempt"].as_u64(), rows[0]["status"].as_u64()),
        (Some(2), Some(200))
    );
    assert_eq!(rows[0]["answer"], "ok");
    assert_eq!(
        (&rows[0]["kind"], &rows[0]["error"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(
        (rows[1]["attempt"].as_u64(), rows[1]["status"].as_u64()),
        (Some(1), Some(503))
    );
    assert_eq!(
        (&rows[1]["kind"], &rows[1]["fault"]),
        (&"status_5xx".into(), &"upstream".into())
    );
    assert!(
        rows[1]["error"].as_str().unwrap().contains("503"),
        "{}",
        rows[1]
    );
    assert_eq!(rows[1]["answer"], "sink says no");
    assert!(rows[0]["latency_ms"].is_u64());
    gw.finish().await;
}

/// One route as `GET /admin/routes` shows it.
async fn route_json(gw: &Gateway, name: &str) -> Value {
    let v = get(gw, "/admin/routes").await;
    v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == name)
        .unwrap()
        .clone()
}

async fn lane_state(gw: &Gateway) -> String {
    let stripe = route_json(gw, "stripe").await;
    stripe["upstreams"][0]["state"].as_str().unwrap().to_owned()
}

async fn suspended_gateway(store: Store) -> (Gateway, Sink) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(store, sink.url(""));
    o.suspend_after = 2;
    o.max_attempts = 1000;
    o.schedule = r#"["50ms"]"#;
    let gw = Gateway::start(o).await;
    for i in 0..5 {
        assert_eq!(gw.post_stripe(&format!("evt_susp_{i}")).await.0, 200);
    }
    eventually(Duration::from_secs(10), "suspension", async || {
        lane_state(&gw).await == "suspended"
    })
    .await;
    (gw, sink)
}

async fn suspended_upstream_is_probed_not_hammered_and_resumed_by_the_api(store: Store) {
    let (gw, sink) = suspended_gateway(store).await;
    let before = sink.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let probes = sink.hits.load(Ordering::SeqCst) - before;
    // Probes at 300 ms, then 600 ms, then 1.2 s: at most three in 1.5 s (50 ms retries would be ~30).
    assert!(probes <= 3, "{probes} attempts while suspended");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"hookgate_upstream_suspended{lane="stripe"} 1"#),
        "{metrics}"
    );

    sink.fail_first.store(0, Ordering::SeqCst);
    let (status, v) = admin(&gw, reqwest::Method::POST, "/admin/upstreams/stripe/resume").await;
    assert_eq!((status, v["resumed"][0].as_str()), (200, Some("stripe")));
    sink.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(lane_state(&gw).await, "ok");
    gw.finish().await;
}

async fn suspended_upstream_resumes_by_itself_when_a_probe_succeeds(store: Store) {
    let (gw, sink) = suspended_gateway(store).await;
    sink.fail_first.store(0, Ordering::SeqCst);
    sink.wait_for(5, Duration::from_secs(15)).await;
    assert_eq!(lane_state(&gw).await, "ok");
    gw.finish().await;
}

async fn fan_out_delivers_to_each_upstream_by_event_type(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = format!(
        r#"[[route]]
name = "fan"
path = "/webhooks/fan"
scheme = "stripe"
secrets = ["{STRIPE_SECRET}"]
retry = {{ schedule = ["100ms"] }}
upstreams = [
  {{ name = "billing", url = "{up}/billing", events = ["invoice.*"], timeout = "2s" }},
  {{ name = "everything", url = "{up}/all", timeout = "2s" }},
]
"#,
        up = sink.url("")
    );
    let gw = Gateway::start(o).await;
    let invoice = stripe_body("evt_fan_invoice");
    let customer = String::from_utf8(stripe_body("evt_fan_customer"))
        .unwrap()
        .replace("invoice.paid", "customer.created");
    for body in [invoice, customer.into_bytes()] {
        let h = vec![(
            "stripe-signature".to_string(),
            stripe_header(STRIPE_SECRET, now(), &body),
        )];
        assert_eq!(gw.post("/webhooks/fan", &h, body).await.0, 200);
    }
    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen: Vec<(String, bool)> = sink
        .delivered()
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                String::from_utf8_lossy(&r.body).contains("invoice"),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("/all".into(), false),
            ("/all".into(), true),
            ("/billing".into(), true)
        ],
        "{got:?}"
    );
    assert!(got.iter().all(|r| r.headers["x-hookgate-route"] == "fan"));
    let fan = route_json(&gw, "fan").await;
    assert_eq!(fan["upstreams"].as_array().unwrap().len(), 2);
    assert_eq!(fan["upstreams"][0]["lane"], "fan/billing");
    gw.finish().await;
}

async fn no_retry_statuses_dead_letter_at_once(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    sink.fail_status.store(410, Ordering::SeqCst);
    let mut o = Opts::new(store, sink.url(""));
    o.schedule = r#"["100ms"], no_retry_on = [410]"#;
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_gone").await.0, 200);
    eventually(Duration::from_secs(10), "dead letter", async || {
        dead_ids(&gw).await.len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.hits.load(Ordering::SeqCst), 1);
    gw.finish().await;
}

async fn retry_after_from_the_upstream_is_honoured(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(1, Ordering::SeqCst);
    *sink.retry_after.lock().unwrap() = Some("1".into());
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    assert_eq!(gw.post_stripe("evt_later").await.0, 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    let times = sink.times.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_millis(950),
        "{:?}",
        times[1] - times[0]
    );
    gw.finish().await;
}

async fn forward_secret_resigns_with_standard_webhooks_headers(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.stripe_extra = format!(r#"forward_secret = "{}""#, standard_secret());
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_resign").await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let h = &got[0].headers;
    assert_eq!(h["webhook-id"], "evt_resign");
    let ts: i64 = h["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((now() - ts).abs() < 60);
    // Verified independently of the gateway's code: v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}")).
    let expected = standard_headers("evt_resign", ts, &got[0].body, "webhook");
    assert_eq!(h["webhook-signature"].to_str().unwrap(), expected[2].1);
    assert!(
        h.contains_key("stripe-signature"),
        "the provider's own headers stay"
    );
    gw.finish().await;
}

async fn cli_talks_to_the_admin_api(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let mut o = Opts::new(store, sink.url(""));
    o.max_attempts = 1;
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_cli").await.0, 200);
    eventually(Duration::from_secs(10), "dead letter", async || {
        dead_ids(&gw).await.len() == 1
    })
    .await;
    let config = gw.dir.path().join("hookgate.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(args)
            .arg("-c")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = tokio::task::block_in_place(|| run(&["dlq", "list", "--route", "stripe"]));
    assert!(list.contains("evt_cli") && list.contains("503"), "{list}");
    assert!(list.contains("status_5xx"), "{list}");
    let show = tokio::task::block_in_place(|| {
        run(&["dlq", "show", "--route", "stripe", "--id", "evt_cli"])
    });
    assert!(show.contains("sink says no"), "{show}");
    let hist = tokio::task::block_in_place(|| run(&["deliveries", "--route", "stripe"]));
    assert!(
        hist.contains("evt_cli") && hist.contains("status_5xx"),
        "{hist}"
    );
    sink.fail_first.store(0, Ordering::SeqCst);
    let replay =
        tokio::task::block_in_place(|| run(&["dlq", "replay", "--route", "stripe", "--all"]));
    assert!(replay.contains("\"replayed\": 1"), "{replay}");
    sink.wait_for(1, Duration::from_secs(10)).await;
    gw.finish().await;
}

async fn https_upstream_with_its_own_ca_gets_h2(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_tls(dir.path()).await;
    let ca = dir.path().join("sink-ca.pem");
    let mut o = Opts::new(store, format!("https://localhost:{}", sink.addr.port()));
    o.upstream_extra = format!(r#", ca = "{}""#, ca.display());
    let gw = Gateway::start_in(dir, o).await;
    assert_eq!(gw.post_stripe("evt_https").await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].version, http::Version::HTTP_2, "ALPN picked h2");
    assert_eq!(got[0].body.as_ref(), stripe_body("evt_https").as_slice());
    gw.finish().await;
}

async fn https_upstream_with_an_unknown_ca_is_retried_not_delivered(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start_tls(dir.path()).await;
    let mut o = Opts::new(store, format!("https://localhost:{}", sink.addr.port()));
    o.max_attempts = 2;
    let gw = Gateway::start_in(dir, o).await;
    assert_eq!(gw.post_stripe("evt_untrusted").await.0, 200);
    eventually(Duration::from_secs(10), "dead letter", async || {
        dead_ids(&gw).await.len() == 1
    })
    .await;
    let one = get(&gw, "/admin/dlq/stripe/evt_untrusted").await;
    assert!(
        one["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{one}"
    );
    assert_eq!(one["last_error_kind"], "tls", "{one}");
    let rows = get(&gw, "/admin/deliveries?route=stripe").await["deliveries"].clone();
    assert_eq!(
        (&rows[0]["kind"], &rows[0]["status"]),
        (&"tls".into(), &Value::Null),
        "{rows}"
    );
    assert_eq!(sink.hits.load(Ordering::SeqCst), 0);
    gw.finish().await;
}

async fn graceful_stop_lets_an_inflight_delivery_finish(store: Store) {
    let sink = Sink::start().await;
    sink.delay_ms.store(700, Ordering::SeqCst);
    let o = Opts::new(store, sink.url(""));
    let gw = Gateway::start(o.clone()).await;
    assert_eq!(gw.post_stripe("evt_inflight").await.0, 200);
    eventually(Duration::from_secs(5), "delivery started", async || {
        !sink.times.lock().unwrap().is_empty()
    })
    .await;
    let dir = gw.stop().await;
    assert_eq!(
        sink.delivered().len(),
        1,
        "the in-flight attempt finished before exit"
    );
    // And it was acknowledged: a restart does not deliver it again.
    let gw = Gateway::start_in(dir, o).await; // same data directory or Redis prefix
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.delivered().len(), 1);
    gw.finish().await;
}

/// A slow upstream: the lane has its `concurrency` (4 in the test config) attempts in flight
/// and no more, in `/metrics` and in the admin API; once the upstream answers, none.
async fn attempts_in_flight_are_exported_and_capped_at_the_concurrency(store: Store) {
    let sink = Sink::start().await;
    sink.delay_ms.store(1500, Ordering::SeqCst);
    let gw = Gateway::start(Opts::new(store, sink.url(""))).await;
    for i in 0..6 {
        assert_eq!(gw.post_stripe(&format!("evt_flight_{i}")).await.0, 200);
    }
    let in_flight = r#"hookgate_upstream_in_flight{lane="stripe"} "#;
    let gauge = |metrics: &str, name: &str| -> Option<i64> {
        let line = metrics.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].trim().parse().ok()
    };
    eventually(Duration::from_secs(5), "4 attempts in flight", async || {
        gauge(&gw.metrics().await, in_flight) == Some(4)
    })
    .await;
    let metrics = gw.metrics().await;
    assert_eq!(
        gauge(&metrics, r#"hookgate_upstream_concurrency{lane="stripe"} "#),
        Some(4),
        "{metrics}"
    );
    let stripe = route_json(&gw, "stripe").await["upstreams"][0].clone();
    assert_eq!(
        (stripe["in_flight"].as_u64(), stripe["concurrency"].as_u64()),
        (Some(4), Some(4)),
        "{stripe}"
    );
    sink.delay_ms.store(0, Ordering::SeqCst);
    sink.wait_for(6, Duration::from_secs(10)).await;
    eventually(Duration::from_secs(5), "nothing in flight", async || {
        gauge(&gw.metrics().await, in_flight) == Some(0)
    })
    .await;
    gw.finish().await;
}

crate::both_backends!(
    attempts_in_flight_are_exported_and_capped_at_the_concurrency,
    dead_letters_can_be_listed_shown_replayed_and_purged,
    delivery_history_keeps_status_latency_and_answer,
    suspended_upstream_is_probed_not_hammered_and_resumed_by_the_api,
    suspended_upstream_resumes_by_itself_when_a_probe_succeeds,
    fan_out_delivers_to_each_upstream_by_event_type,
    no_retry_statuses_dead_letter_at_once,
    retry_after_from_the_upstream_is_honoured,
    forward_secret_resigns_with_standard_webhooks_headers,
    cli_talks_to_the_admin_api,
    https_upstream_with_its_own_ca_gets_h2,
    https_upstream_with_an_unknown_ca_is_retried_not_delivered,
    graceful_stop_lets_an_inflight_delivery_finish,
);

async fn an_event_no_upstream_wants_is_accepted_and_not_delivered(store: Store) {
    let sink = Sink::start().await;
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = format!(
        r#"[[route]]
name = "billing"
path = "/webhooks/billing"
scheme = "stripe"
secrets = ["{STRIPE_SECRET}"]
upstreams = [{{ name = "invoices", url = "{up}/billing", events = ["invoice.*"], timeout = "2s" }}]
"#,
        up = sink.url("")
    );
    let gw = Gateway::start(o).await;
    let body = String::from_utf8(stripe_body("evt_unwanted"))
        .unwrap()
        .replace("invoice.paid", "customer.created");
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header(STRIPE_SECRET, now(), body.as_bytes()),
    )];
    let (status, text) = gw
        .post("/webhooks/billing", &h, body.clone().into_bytes())
        .await;
    assert_eq!(
        (status, text.as_str()),
        (200, r#"{"id":"evt_unwanted","status":"accepted"}"#)
    );
    let (status, text) = gw.post("/webhooks/billing", &h, body.into_bytes()).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.hits.load(Ordering::SeqCst), 0);
    gw.finish().await;
}

crate::both_backends!(an_event_no_upstream_wants_is_accepted_and_not_delivered);
