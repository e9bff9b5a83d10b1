//! Content filters per upstream: a fan-out delivers each event only where every condition of
//! the upstream's `filter` holds, and `check` refuses a bad condition naming its key.

use std::process::Command;
use std::time::Duration;

use crate::process::free_port;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// `concurrency = 1`: each lane delivers in enqueue order, so once the last event sent reached
/// an upstream, every earlier one it wanted has too and an absent one was never queued there.
fn fan_route(up: &str) -> String {
    format!(
        r#"[[route]]
name = "fan"
path = "/webhooks/fan"
scheme = "stripe"
secrets = ["{STRIPE_SECRET}"]
upstreams = [
  {{ name = "big", url = "{up}/big", concurrency = 1, timeout = "2s", filter = [
    {{ pointer = "/type", prefix = "invoice." }},
    {{ pointer = "/data/object/amount", gt = 1000 }},
  ] }},
  {{ name = "eur", url = "{up}/eur", concurrency = 1, timeout = "2s", filter = [
    {{ pointer = "/data/object/currency", one_of = ["eur", "chf"] }},
  ] }},
]
"#
    )
}

fn body(id: &str, kind: &str, amount: u64, currency: &str) -> Vec<u8> {
    serde_json::json!({
        "id": id, "object": "event", "type": kind,
        "data": { "object": { "amount": amount, "currency": currency } }
    })
    .to_string()
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_delivers_only_where_the_filters_hold() {
    let sink = Sink::start().await;
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.extra_route = fan_route(&sink.url(""));
    let gw = Gateway::start(o).await;
    let events = [
        body("evt_nobody", "invoice.paid", 10, "usd"),
        body("evt_big", "invoice.paid", 5000, "usd"),
        body("evt_both", "invoice.paid", 5000, "eur"),
        body("evt_eur", "customer.created", 5000, "chf"),
    ];
    for b in events {
        let h = vec![(
            "stripe-signature".to_string(),
            stripe_header(STRIPE_SECRET, now(), &b),
        )];
        let (status, text) = gw.post("/webhooks/fan", &h, b).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("accepted"), "{text}");
    }
    let got = sink.wait_for(4, Duration::from_secs(15)).await;
    let id = |r: &Received| {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["id"].as_str().unwrap().to_owned()
    };
    let mut seen: Vec<(String, String)> = got.iter().map(|r| (r.path.clone(), id(r))).collect();
    seen.sort();
    let want = [
        ("/big", "evt_big"),
        ("/big", "evt_both"),
        ("/eur", "evt_both"),
        ("/eur", "evt_eur"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, i)| (p.to_string(), i.to_string()))
        .collect();
    assert_eq!(seen, want);
    // The last events of both lanes arrived, so nothing else is queued ahead of them.
    assert_eq!(sink.delivered().len(), 4);
    gw.finish().await;
}

#[test]
fn check_refuses_a_bad_filter_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let up = format!("http://127.0.0.1:{}", free_port());
    let mut o = Opts::new(Store::Embedded, up.clone());
    o.extra_route = fan_route(&up).replace("gt = 1000", "gt = \"1000\"");
    let text = config_text(
        dir.path(),
        &format!("127.0.0.1:{}", free_port()),
        &format!("127.0.0.1:{}", free_port()),
        &o,
    );
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&file)
        .env("HOOKGATE_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("bad.toml") && stderr.contains("route[3].upstreams[0].filter[1].gt"),
        "{stderr}"
    );
    std::fs::write(&file, text.replace("gt = \"1000\"", "gt = 1000")).unwrap();
    let ok = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}
