//! OpenTelemetry traces end to end: the gateway exports to a real OTLP/HTTP receiver on
//! loopback; the spans, their parent links and the `traceparent` the upstream got are checked.

use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::Span;

use crate::support::otlp::{Collector, attr};
use crate::support::*;

/// A sender's own trace: the ingest span must become its child.
const SENDER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SENDER_SPAN: &str = "00f067aa0ba902b7";

fn traced(store: Store, sink: &Sink, collector: &Collector) -> Opts {
    let mut o = Opts::new(store, sink.url(""));
    o.extra_route = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nexport_interval = \"100ms\"\nservice_name = \"hookgate-it\"\n",
        collector.url
    );
    o
}

/// Splits a `traceparent` into (trace id, parent span id).
fn ids_of(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!((parts.len(), parts[0]), (4, "00"), "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// Waits until the collector holds `webhooks` request spans and `attempts` attempt spans.
async fn spans(c: &Collector, webhooks: usize, attempts: usize) -> (Vec<Span>, Vec<Span>) {
    eventually(
        Duration::from_secs(15),
        "spans at the collector",
        async || {
            c.named("webhook").len() >= webhooks && c.named("delivery attempt").len() >= attempts
        },
    )
    .await;
    (c.named("webhook"), c.named("delivery attempt"))
}

async fn attempts_are_children_of_the_request_and_the_upstream_continues(store: Store) {
    let collector = Collector::start().await;
    let sink = Sink::start().await;
    sink.fail_first.store(1, Ordering::SeqCst);
    let gw = Gateway::start(traced(store, &sink, &collector)).await;
    assert_eq!(gw.post_stripe("evt_traced").await.0, 200);
    // The sink keeps only the requests it accepted: the second attempt's.
    let got = sink.wait_for(1, Duration::from_secs(10)).await;

    let (webhooks, attempts) = spans(&collector, 1, 2).await;
    let ingest = &webhooks[0];
    for (key, want) in [
        ("hookgate.route", "stripe"),
        ("hookgate.event_id", "evt_traced"),
        ("hookgate.verification", "ok"),
        ("hookgate.dedup", "accepted"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            attr(ingest, key).as_deref(),
            Some(want),
            "{key}: {ingest:?}"
        );
    }
    let enqueue_ms: f64 = attr(ingest, "hookgate.enqueue_ms")
        .unwrap()
        .parse()
        .unwrap();
    assert!(enqueue_ms >= 0.0);
    assert!(
        ingest.parent_span_id.is_empty(),
        "no sender trace: a root span"
    );
    assert!(
        collector
            .services
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "hookgate-it")
    );

    for a in &attempts {
        assert_eq!(
            a.trace_id, ingest.trace_id,
            "one trace from request to upstream"
        );
        assert_eq!(
            a.parent_span_id, ingest.span_id,
            "an attempt is the request's child"
        );
        assert_eq!(attr(a, "hookgate.event_id").as_deref(), Some("evt_traced"));
        assert_eq!(attr(a, "hookgate.lane").as_deref(), Some("stripe"));
        assert_eq!(attr(a, "server.address").as_deref(), Some("127.0.0.1"));
    }
    let by_number = |n: &str| {
        let a = attempts
            .iter()
            .find(|a| attr(a, "hookgate.attempt").as_deref() == Some(n));
        a.unwrap_or_else(|| panic!("no attempt {n}: {attempts:?}"))
            .clone()
    };
    let (first, second) = (by_number("1"), by_number("2"));
    assert_eq!(
        attr(&first, "http.response.status_code").as_deref(),
        Some("503")
    );
    assert_eq!(attr(&first, "error.type").as_deref(), Some("status_5xx"));
    assert_eq!(attr(&first, "hookgate.outcome").as_deref(), Some("retry"));
    assert_eq!(
        attr(&second, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(&second, "error.type"), None);
    assert_eq!(
        attr(&second, "hookgate.outcome").as_deref(),
        Some("delivered")
    );

    // The request the upstream took carries its own attempt span as the parent.
    assert_eq!(got[0].headers["x-hookgate-attempt"], "2");
    let (trace, parent) = ids_of(got[0].headers["traceparent"].to_str().unwrap());
    assert_eq!(trace, hex::encode(&ingest.trace_id));
    assert_eq!(parent, hex::encode(&second.span_id));
    assert_ne!(first.span_id, second.span_id);
    gw.finish().await;
}

crate::both_backends!(attempts_are_children_of_the_request_and_the_upstream_continues);

/// A dead letter keeps the request's trace context: its replay is one more child of it.
async fn a_replayed_dead_letter_continues_the_trace(store: Store) {
    let collector = Collector::start().await;
    let sink = Sink::start().await;
    sink.fail_first.store(1, Ordering::SeqCst);
    let mut o = traced(store, &sink, &collector);
    o.max_attempts = 1;
    let gw = Gateway::start(o).await;
    assert_eq!(gw.post_stripe("evt_dead_traced").await.0, 200);
    let (webhooks, _) = spans(&collector, 1, 1).await;
    let replay = format!(
        "http://{}/admin/dlq/stripe/evt_dead_traced/replay",
        gw.admin
    );
    eventually(
        Duration::from_secs(10),
        "the dead letter replayed",
        async || {
            let resp = gw
                .client
                .post(&replay)
                .bearer_auth("test-admin-token")
                .send()
                .await;
            resp.is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let (_, attempts) = spans(&collector, 1, 2).await;
    let ingest = &webhooks[0];
    assert!(
        attempts.iter().all(|a| a.parent_span_id == ingest.span_id),
        "{attempts:?}"
    );
    let (trace, _) = ids_of(got[0].headers["traceparent"].to_str().unwrap());
    assert_eq!(trace, hex::encode(&ingest.trace_id));
    gw.finish().await;
}

crate::both_backends!(a_replayed_dead_letter_continues_the_trace);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_traceparent_is_honoured_and_replaced_for_the_upstream() {
    let collector = Collector::start().await;
    let sink = Sink::start().await;
    let gw = Gateway::start(traced(Store::Embedded, &sink, &collector)).await;
    let body = stripe_body("evt_sender_traced");
    let headers = vec![
        (
            "stripe-signature".to_string(),
            stripe_header(STRIPE_SECRET, now(), &body),
        ),
        (
            "traceparent".to_string(),
            format!("00-{SENDER_TRACE}-{SENDER_SPAN}-01"),
        ),
    ];
    assert_eq!(gw.post("/webhooks/stripe", &headers, body).await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let (webhooks, attempts) = spans(&collector, 1, 1).await;
    let ingest = &webhooks[0];
    assert_eq!(hex::encode(&ingest.trace_id), SENDER_TRACE);
    assert_eq!(hex::encode(&ingest.parent_span_id), SENDER_SPAN);
    assert_eq!(attempts[0].parent_span_id, ingest.span_id);
    let sent = got[0].headers.get_all("traceparent");
    assert_eq!(
        sent.iter().count(),
        1,
        "the sender's value is replaced, not repeated"
    );
    let (trace, parent) = ids_of(got[0].headers["traceparent"].to_str().unwrap());
    assert_eq!(
        (trace.as_str(), parent),
        (SENDER_TRACE, hex::encode(&attempts[0].span_id))
    );
    gw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_has_a_span_with_its_verification_result() {
    let collector = Collector::start().await;
    let sink = Sink::start().await;
    let gw = Gateway::start(traced(Store::Embedded, &sink, &collector)).await;
    let body = stripe_body("evt_forged");
    let h = vec![(
        "stripe-signature".to_string(),
        stripe_header("whsec_wrong", now(), &body),
    )];
    assert_eq!(gw.post("/webhooks/stripe", &h, body).await.0, 401);
    let (webhooks, _) = spans(&collector, 1, 0).await;
    let span = &webhooks[0];
    assert_eq!(
        attr(span, "hookgate.verification").as_deref(),
        Some("signature_mismatch")
    );
    assert_eq!(
        attr(span, "hookgate.dedup"),
        None,
        "dedup is never asked for a forgery"
    );
    assert_eq!(
        attr(span, "http.response.status_code").as_deref(),
        Some("401")
    );
    gw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_telemetry_off_no_traceparent_is_sent() {
    let sink = Sink::start().await;
    let gw = Gateway::start(Opts::new(Store::Embedded, sink.url(""))).await;
    assert_eq!(gw.post_stripe("evt_untraced").await.0, 200);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(
        got[0].headers.get("traceparent").is_none(),
        "{:?}",
        got[0].headers
    );
    gw.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_the_requests_nothing() {
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let sink = Sink::start().await;
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.extra_route =
        format!("[telemetry]\notlp_endpoint = \"{down}\"\nexport_interval = \"50ms\"\n");
    let gw = Gateway::start(o).await;
    for i in 0..5 {
        assert_eq!(gw.post_stripe(&format!("evt_down_{i}")).await.0, 200);
    }
    let got = sink.wait_for(5, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| r.headers.contains_key("traceparent")));
    gw.finish().await;
}
