//! Every signature scheme end to end through the running gateway: a request signed as the
//! provider signs it is accepted (200) and delivered, a tampered one refused (401), and the
//! Slack and Zoom handshakes are answered by the gateway without reaching the upstream.
//!
//! The signers below are written from each provider's documented algorithm, independently of
//! the gateway's code.

use std::time::Duration;

use base64::Engine;
use hmac::{KeyInit, Mac};

use crate::support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const PUBLIC: &str = "https://hooks.example.com";
/// standard-webhooks Go library test seed; the route holds its public half only.
const V1A_SEED: &str = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
const V1A_PUBLIC: &str = "whpk_ZlN4eg7dSSqi0moX9hQUk3orrOouK3QVQSlJa248c/g=";

fn mac<M: Mac + KeyInit>(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <M as KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    parts.iter().for_each(|p| m.update(p));
    m.finalize().into_bytes().to_vec()
}

fn h256(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    mac::<hmac::Hmac<sha2::Sha256>>(key, parts)
}

fn h1(key: &str, parts: &[&[u8]]) -> Vec<u8> {
    mac::<hmac::Hmac<sha1::Sha1>>(key, parts)
}

fn route(name: &str, scheme: &str, secret: &str, extra: &str, up: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath = \"/webhooks/{name}\"\nscheme = \"{scheme}\"\nsecrets = [\"{secret}\"]\n{extra}\nupstream = {{ url = \"{up}/{name}\", timeout = \"2s\" }}\nretry = {{ schedule = [\"100ms\"], max_attempts = 5 }}\n"
    )
}

fn routes(up: &str) -> &'static str {
    let all = [
        route("bitbybit", "bitbybit", "bbs_secret", "", up),
        route("paddle", "paddle", "pdl_secret", "", up),
        route("shopify", "shopify", "shp_secret", "", up),
        route("intercom", "intercom", "icm_secret", "", up),
        route("ghlegacy", "github", "gh_secret", "legacy_sha1 = true", up),
        route(
            "square",
            "square",
            "sq_key",
            &format!("public_url = \"{PUBLIC}/webhooks/square\""),
            up,
        ),
        route("linear", "linear", "lin_secret", "", up),
        route("slack", "slack", "slack_secret", "", up),
        route("zoom", "zoom", "zoom_secret", "", up),
        route(
            "twilio",
            "twilio",
            "twilio_token",
            &format!("public_url = \"{PUBLIC}/webhooks/twilio?site=1\""),
            up,
        ),
        route(
            "generic",
            "hmac",
            "seed_secret",
            "hmac = { header = \"X-Webhook-Signature\", prefix = \"sha256=\", id_pointer = \"/id\" }",
            up,
        ),
        route("v1a", "standard", V1A_PUBLIC, "", up),
    ];
    Box::leak(all.concat().into_boxed_str())
}

/// One signed request: route, headers, body, query string.
struct Case {
    route: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    query: Option<&'static str>,
}

fn case(route: &'static str, headers: &[(&str, String)], body: &[u8]) -> Case {
    let headers = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect();
    Case {
        route,
        headers,
        body: body.to_vec(),
        query: None,
    }
}

fn json_cases(ts: i64) -> Vec<Case> {
    let t = ts.to_string();
    let body = br#"{"id":"evt_e2e","event_id":"evt_e2e","type":"t","event":"meeting.started"}"#;
    let v0 = |k: &str| {
        format!(
            "v0={}",
            hex::encode(h256(k, &[b"v0:", t.as_bytes(), b":", body]))
        )
    };
    let linear = format!(r#"{{"type":"Issue","webhookTimestamp":{ts}123}}"#).into_bytes();
    vec![
        case(
            "bitbybit",
            &[
                (
                    "x-bitbybit-webhook-signature",
                    format!(
                        "t={t},v1={}",
                        hex::encode(h256("bbs_secret", &[t.as_bytes(), b".", body]))
                    ),
                ),
                ("x-bitbybit-webhook-id", "evt_bb_1".into()),
            ],
            body,
        ),
        case(
            "paddle",
            &[(
                "paddle-signature",
                format!(
                    "ts={t};h1={}",
                    hex::encode(h256("pdl_secret", &[t.as_bytes(), b":", body]))
                ),
            )],
            body,
        ),
        case(
            "shopify",
            &[(
                "x-shopify-hmac-sha256",
                B64.encode(h256("shp_secret", &[body])),
            )],
            body,
        ),
        case(
            "intercom",
            &[(
                "x-hub-signature",
                format!("sha1={}", hex::encode(h1("icm_secret", &[body]))),
            )],
            body,
        ),
        case(
            "ghlegacy",
            &[(
                "x-hub-signature",
                format!("sha1={}", hex::encode(h1("gh_secret", &[body]))),
            )],
            body,
        ),
        case(
            "square",
            &[(
                "x-square-hmacsha256-signature",
                B64.encode(h256(
                    "sq_key",
                    &[PUBLIC.as_bytes(), b"/webhooks/square", body],
                )),
            )],
            body,
        ),
        case(
            "linear",
            &[(
                "linear-signature",
                hex::encode(h256("lin_secret", &[&linear])),
            )],
            &linear,
        ),
        case(
            "slack",
            &[
                ("x-slack-signature", v0("slack_secret")),
                ("x-slack-request-timestamp", t.clone()),
            ],
            body,
        ),
        case(
            "zoom",
            &[
                ("x-zm-signature", v0("zoom_secret")),
                ("x-zm-request-timestamp", t.clone()),
            ],
            body,
        ),
        case(
            "generic",
            &[(
                "x-webhook-signature",
                format!("sha256={}", hex::encode(h256("seed_secret", &[body]))),
            )],
            body,
        ),
        v1a_case(ts, body),
    ]
}

fn v1a_case(ts: i64, body: &[u8]) -> Case {
    let seed = B64.decode(V1A_SEED).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let signed = [format!("msg_v1a.{ts}.").as_bytes(), body].concat();
    let sig = format!("v1a,{}", B64.encode(pair.sign(&signed).as_ref()));
    let h = [
        ("webhook-id", "msg_v1a".to_string()),
        ("webhook-timestamp", ts.to_string()),
        ("webhook-signature", sig),
    ];
    case("v1a", &h, body)
}

/// Twilio posts a form to the URL it was given, query included, signed over the sorted params.
fn twilio_case() -> Case {
    let body = b"MessageSid=SM1&From=%2B15551234567&Body=hello+world".to_vec();
    let url = format!("{PUBLIC}/webhooks/twilio?site=1");
    let sorted = [
        "Body",
        "hello world",
        "From",
        "+15551234567",
        "MessageSid",
        "SM1",
    ]
    .concat();
    let sig = B64.encode(h1("twilio_token", &[url.as_bytes(), sorted.as_bytes()]));
    let mut c = case("twilio", &[("x-twilio-signature", sig)], &body);
    c.query = Some("site=1");
    c
}

async fn send(gw: &Gateway, c: &Case, body: &[u8]) -> (u16, String) {
    let query = c.query.map(|q| format!("?{q}")).unwrap_or_default();
    let mut req = gw
        .client
        .post(gw.url(&format!("/webhooks/{}{query}", c.route)));
    for (n, v) in &c.headers {
        req = req.header(n, v);
    }
    let resp = req
        .body(body.to_vec())
        .send()
        .await
        .expect("gateway answers");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn tampered(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    let last = b.len() - 2;
    b[last] ^= 0x01;
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheme_accepts_its_signature_and_refuses_tampering() {
    let sink = Sink::start().await;
    let mut opts = Opts::new(Store::Embedded, sink.url(""));
    opts.extra_route = routes(&sink.url("")).to_owned();
    let gw = Gateway::start(opts).await;
    let mut cases = json_cases(now());
    cases.push(twilio_case());
    for c in &cases {
        let (status, text) = send(&gw, c, &tampered(&c.body)).await;
        assert_eq!(
            (status, text.as_str()),
            (401, r#"{"error":"signature_mismatch"}"#),
            "{} tampered",
            c.route
        );
        let (status, text) = send(&gw, c, &c.body).await;
        assert_eq!(status, 200, "{}: {text}", c.route);
        assert!(text.contains("accepted"), "{}: {text}", c.route);
    }
    let got = sink.wait_for(cases.len(), Duration::from_secs(15)).await;
    let routes: Vec<_> = got
        .iter()
        .map(|r| r.headers["x-hookgate-route"].to_str().unwrap().to_owned())
        .collect();
    for c in &cases {
        assert!(
            routes.iter().any(|r| r == c.route),
            "{} not delivered",
            c.route
        );
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_zoom_handshakes_are_answered_not_enqueued() {
    let sink = Sink::start().await;
    let mut opts = Opts::new(Store::Embedded, sink.url(""));
    opts.extra_route = routes(&sink.url("")).to_owned();
    let gw = Gateway::start(opts).await;
    let t = now().to_string();
    let slack = br#"{"token":"x","challenge":"chal-123","type":"url_verification"}"#;
    let sig = format!(
        "v0={}",
        hex::encode(h256("slack_secret", &[b"v0:", t.as_bytes(), b":", slack]))
    );
    let c = case(
        "slack",
        &[
            ("x-slack-signature", sig),
            ("x-slack-request-timestamp", t.clone()),
        ],
        slack,
    );
    assert_eq!(
        send(&gw, &c, slack).await,
        (200, r#"{"challenge":"chal-123"}"#.to_string())
    );
    assert_eq!(send(&gw, &c, &tampered(slack)).await.0, 401);

    let zoom = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let sig = format!(
        "v0={}",
        hex::encode(h256("zoom_secret", &[b"v0:", t.as_bytes(), b":", zoom]))
    );
    let c = case(
        "zoom",
        &[("x-zm-signature", sig), ("x-zm-request-timestamp", t)],
        zoom,
    );
    let encrypted = hex::encode(h256("zoom_secret", &[b"qgg8vlvZRS6UYooatFL8Aw"]));
    let expected =
        format!(r#"{{"encryptedToken":"{encrypted}","plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#);
    assert_eq!(send(&gw, &c, zoom).await, (200, expected));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.delivered().is_empty(),
        "a handshake reached the upstream"
    );
    gw.stop().await;
}
