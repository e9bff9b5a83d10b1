//! Ordered delivery per key (`order_by`, docs/ordering.md), end to end with the real binary: per
//! key one attempt at a time and successes in order of acceptance, other keys in parallel; the
//! same across a SIGKILL and with two replicas on one Redis; `on_dead = "block"` until a replay.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::*;

const KEYS: usize = 20;
const PER_KEY: usize = 50;
const ROUTE_ORDER: &str = r#"order_by = "/data/object/customer""#;

crate::both_backends!(
    each_key_is_delivered_one_at_a_time_in_acceptance_order,
    the_order_holds_across_a_sigkill,
    a_blocked_key_waits_for_its_replay_then_drains_in_order,
);

crate::redis_backends!(two_replicas_on_one_redis_keep_each_keys_order);

/// One delivery attempt as the upstream saw it.
#[derive(Clone, Debug)]
struct Attempt {
    key: String,
    id: String,
    start: Instant,
    end: Option<Instant>,
    ok: bool,
}

/// An upstream that records the start and end of every attempt per key, answers after
/// `delay`, and fails a `fail_rate` share of attempts (and every attempt of `failing` ids).
#[derive(Clone)]
struct OrderSink {
    url: String,
    log: Arc<Mutex<Vec<Attempt>>>,
    /// Attempts in flight per key.
    inflight: Arc<Mutex<HashMap<String, usize>>>,
    /// Times an attempt started while another of its key was in flight.
    overlaps: Arc<AtomicUsize>,
    /// The most distinct keys ever in flight at once.
    max_keys: Arc<AtomicUsize>,
    failing: Arc<Mutex<HashSet<String>>>,
    fail_rate: f64,
    delay: Duration,
}

/// Ends an attempt when the answer goes out, or when the gateway drops the connection (killed).
struct Finish {
    sink: OrderSink,
    index: usize,
    key: String,
}

impl Drop for Finish {
    fn drop(&mut self) {
        let mut inflight = self.sink.inflight.lock().unwrap();
        if let Some(n) = inflight.get_mut(&self.key) {
            *n -= 1;
        }
        self.sink.log.lock().unwrap()[self.index].end = Some(Instant::now());
    }
}

impl OrderSink {
    async fn start(fail_rate: f64, delay: Duration) -> OrderSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = OrderSink {
            url: format!("http://{}", listener.local_addr().unwrap()),
            log: Arc::default(),
            inflight: Arc::default(),
            overlaps: Arc::default(),
            max_keys: Arc::default(),
            failing: Arc::default(),
            fail_rate,
            delay,
        };
        let s = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| s.clone().answer(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        sink
    }

    async fn answer(
        self,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
        let body = req.into_body().collect().await?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let key = v["data"]["object"]["customer"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let index = {
            let mut inflight = self.inflight.lock().unwrap();
            let n = inflight.entry(key.clone()).or_default();
            *n += 1;
            if *n > 1 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            let busy = inflight.values().filter(|n| **n > 0).count();
            self.max_keys.fetch_max(busy, Ordering::SeqCst);
            let mut log = self.log.lock().unwrap();
            log.push(Attempt {
                key: key.clone(),
                id: id.clone(),
                start: Instant::now(),
                end: None,
                ok: false,
            });
            log.len() - 1
        };
        let _finish = Finish {
            sink: self.clone(),
            index,
            key,
        };
        tokio::time::sleep(self.delay).await;
        let fail =
            self.failing.lock().unwrap().contains(&id) || rand::random::<f64>() < self.fail_rate;
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"ok")));
        if fail {
            *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        } else {
            self.log.lock().unwrap()[index].ok = true;
        }
        Ok(resp)
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// Distinct event ids delivered with a 2xx.
    fn delivered(&self) -> HashSet<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|a| a.ok).map(|a| a.id.clone()).collect()
    }

    /// Waits until `ids` distinct events were delivered and no attempt is in flight.
    async fn wait_delivered(&self, ids: usize, within: Duration) {
        eventually(within, "every event delivered", async || {
            let settled = self.log.lock().unwrap().iter().all(|a| a.end.is_some());
            settled && self.delivered().len() >= ids
        })
        .await;
    }
}

/// The id of the `i`th event of `key`.
fn id_of(key: &str, i: usize) -> String {
    format!("evt_{key}_{i:03}")
}

fn body_of(key: &str, i: usize) -> Vec<u8> {
    let id = id_of(key, i);
    format!(r#"{{"id":"{id}","object":"event","type":"invoice.paid","data":{{"object":{{"customer":"{key}","n":{i}}}}}}}"#)
        .into_bytes()
}

impl Replica {
    /// Sends the `i`th event of `key` until the gateway answers 200 (accepted, or a duplicate
    /// of one it accepted before a crash cut the answer off): then it is accepted, once.
    async fn send(&self, key: &str, i: usize) {
        let body = body_of(key, i);
        let url = format!("https://localhost:{}/webhooks/stripe", self.ingress);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let sig = stripe_header(STRIPE_SECRET, now(), &body);
            let sent = self
                .client
                .post(&url)
                .header("stripe-signature", sig)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            if sent.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never accepted",
                id_of(key, i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn admin_get(&self, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.admin))
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    async fn admin_post(&self, path: &str) -> u16 {
        let resp = self
            .client
            .post(format!("http://127.0.0.1:{}{path}", self.admin))
            .bearer_auth("test-admin-token")
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.admin);
        let resp = self.client.get(url).send().await.unwrap();
        resp.text().await.unwrap()
    }
}

/// The ordered route's config: quick retries, never dead (so every event is delivered).
fn opts(store: Store, sink: &OrderSink) -> Opts {
    let mut o = Opts::new(store, sink.url.clone());
    o.schedule = r#"["50ms"]"#;
    o.max_attempts = 100_000;
    o.stripe_extra = ROUTE_ORDER.into();
    o
}

fn key(k: usize) -> String {
    format!("cus_{k:02}")
}

/// Sends `PER_KEY` events for each of `KEYS` keys: keys concurrently, each key's events one
/// after the other (each waits for its 200), so a key's acceptance order is its send order.
/// Event `i` goes to `nodes[i % nodes.len()]`.
async fn send_all(nodes: Vec<Arc<Replica>>) {
    let senders = (0..KEYS).map(|k| {
        let nodes = nodes.clone();
        tokio::spawn(async move {
            for i in 0..PER_KEY {
                nodes[i % nodes.len()].send(&key(k), i).await;
            }
        })
    });
    for s in futures_util::future::join_all(senders).await {
        s.unwrap();
    }
}

/// The guarantee, checked on what the upstream saw: no two attempts of one key overlap; per
/// key, the first successful deliveries come in acceptance order, and no attempt of an event
/// starts before the previous event of its key was first delivered. `redelivered`: across one
/// crash a key may go back once and deliver again, in order, from an event already delivered
/// (at-least-once, docs/ordering.md); otherwise each event is delivered exactly once.
fn check_order(sink: &OrderSink, keys: usize, per_key: usize, redelivered: bool) {
    assert_eq!(
        sink.overlaps.load(Ordering::SeqCst),
        0,
        "two attempts of one key overlapped"
    );
    let attempts = sink.attempts();
    for k in 0..keys {
        let key = key(k);
        let mine: Vec<&Attempt> = attempts.iter().filter(|a| a.key == key).collect();
        // Attempts are logged in order of arrival; each one ended before the next began.
        for pair in mine.windows(2) {
            let end = pair[0].end.expect("an attempt that ended");
            assert!(end <= pair[1].start, "{key}: {pair:?} overlap");
        }
        let successes: Vec<&str> = mine
            .iter()
            .filter(|a| a.ok)
            .map(|a| a.id.as_str())
            .collect();
        let mut firsts: Vec<&str> = Vec::new();
        for id in &successes {
            if !firsts.contains(id) {
                firsts.push(id);
            }
        }
        let expected: Vec<String> = (0..per_key).map(|i| id_of(&key, i)).collect();
        assert_eq!(
            firsts, expected,
            "{key}: first deliveries out of acceptance order"
        );
        if redelivered {
            // A crash undoes the last acks (and cuts an attempt short): the key starts again
            // from its first event not acknowledged on disk, in order. So the deliveries go
            // forward one event at a time, with at most one step back (the single crash). An
            // event whose answer the kill swallowed is sent again, and accepted again if its
            // done-record was not on disk yet: delivered twice in a row, not a step back.
            let at: Vec<usize> = successes
                .iter()
                .map(|id| expected.iter().position(|e| e == id).unwrap())
                .collect();
            assert_eq!(at.first(), Some(&0), "{key}: {successes:?}");
            let back = at.windows(2).filter(|w| w[1] < w[0]).count();
            let forward = at.windows(2).all(|w| w[1] == w[0] + 1 || w[1] <= w[0]);
            assert!(forward && back <= 1, "{key}: {successes:?}");
        } else {
            assert_eq!(successes.len(), per_key, "{key}: an event delivered twice");
        }
        for i in 1..per_key {
            let first_ok = mine
                .iter()
                .position(|a| a.ok && a.id == expected[i - 1])
                .unwrap();
            let first_try = mine.iter().position(|a| a.id == expected[i]).unwrap();
            assert!(
                first_try > first_ok,
                "{key}: {} was tried before {} was delivered",
                expected[i],
                expected[i - 1]
            );
        }
    }
    let parallel = sink.max_keys.load(Ordering::SeqCst);
    assert!(
        parallel >= 2,
        "keys went one at a time ({parallel}): no parallelism"
    );
}

/// 1,000 events over 20 keys, an upstream that answers slowly and fails a random 20 %.
async fn each_key_is_delivered_one_at_a_time_in_acceptance_order(store: Store) {
    let sink = OrderSink::start(0.2, Duration::from_millis(3)).await;
    let o = opts(store, &sink);
    let node = Arc::new(Replica::new(&o));
    let _gw = node.start().await;
    send_all(vec![Arc::clone(&node)]).await;
    sink.wait_delivered(KEYS * PER_KEY, Duration::from_secs(60))
        .await;
    check_order(&sink, KEYS, PER_KEY, false);
    let failed = sink.attempts().iter().filter(|a| !a.ok).count();
    assert!(failed > 0, "the upstream failed some attempts");
    o.clean().await;
}

/// The same, with the gateway SIGKILLed mid-run and restarted on its data (or Redis keys):
/// senders retry until accepted, the order of first deliveries holds.
async fn the_order_holds_across_a_sigkill(store: Store) {
    let sink = OrderSink::start(0.2, Duration::from_millis(3)).await;
    let o = opts(store, &sink);
    let node = Arc::new(Replica::new(&o));
    let mut gw = node.start().await;
    let sending = tokio::spawn(send_all(vec![Arc::clone(&node)]));
    eventually(Duration::from_secs(60), "300 deliveries", async || {
        sink.delivered().len() >= 300
    })
    .await;
    gw.child.kill().unwrap(); // SIGKILL: no drain, leases abandoned
    gw.child.wait().unwrap();
    let before = sink.delivered().len();
    assert!(before < KEYS * PER_KEY, "killed mid-run");
    let _gw = node.start().await;
    sending.await.unwrap();
    sink.wait_delivered(KEYS * PER_KEY, Duration::from_secs(60))
        .await;
    check_order(&sink, KEYS, PER_KEY, true);
    o.clean().await;
}

/// Two gateways on one Redis, each key's events sent to both in turn.
async fn two_replicas_on_one_redis_keep_each_keys_order(store: Store) {
    let sink = OrderSink::start(0.2, Duration::from_millis(3)).await;
    let o = opts(store, &sink);
    let (a, b) = (Arc::new(Replica::new(&o)), Arc::new(Replica::new(&o)));
    let (_pa, _pb) = (a.start().await, b.start().await);
    send_all(vec![a, b]).await;
    sink.wait_delivered(KEYS * PER_KEY, Duration::from_secs(60))
        .await;
    check_order(&sink, KEYS, PER_KEY, false);
    o.clean().await;
}

/// The `ordering` object of the stripe lane in `/admin/routes`.
async fn ordering_of(node: &Replica) -> serde_json::Value {
    let (status, v) = node.admin_get("/admin/routes").await;
    assert_eq!(status, 200, "{v}");
    let route = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "stripe")
        .unwrap();
    route["upstreams"][0]["ordering"].clone()
}

/// `on_dead = "block"`: a dead event holds its key (other keys go on) until it is replayed
/// through the admin API; then the key drains in order, the replayed event first.
async fn a_blocked_key_waits_for_its_replay_then_drains_in_order(store: Store) {
    let sink = OrderSink::start(0.0, Duration::from_millis(1)).await;
    let mut o = opts(store, &sink);
    o.max_attempts = 2;
    o.stripe_extra = format!("{ROUTE_ORDER}\non_dead = \"block\"");
    let node = Replica::new(&o);
    let _gw = node.start().await;
    let (a, b) = (key(0), key(1));
    sink.failing.lock().unwrap().insert(id_of(&a, 0));
    for i in 0..3 {
        node.send(&a, i).await;
    }
    for i in 0..2 {
        node.send(&b, i).await;
    }
    let dead = format!("/admin/dlq/stripe/{}", id_of(&a, 0));
    eventually(
        Duration::from_secs(20),
        "a's first event dead",
        async || node.admin_get(&dead).await.0 == 200,
    )
    .await;
    sink.wait_delivered(2, Duration::from_secs(20)).await;
    let ordering = ordering_of(&node).await;
    assert_eq!(ordering["blocked_keys"], 1, "{ordering}");
    assert_eq!(ordering["waiting_keys"], 1, "{ordering}");
    assert_eq!(ordering["waiting_events"], 2, "{ordering}");
    assert_eq!(ordering["oldest_blocked"]["key"], a.as_str(), "{ordering}");
    assert_eq!(
        ordering["oldest_blocked"]["event_id"],
        id_of(&a, 0).as_str(),
        "{ordering}"
    );
    assert!(ordering["oldest_blocked"]["age_s"].as_f64().unwrap() >= 0.0);
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("hookgate_ordered_keys_blocked{lane=\"stripe\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookgate_ordered_keys_waiting{lane=\"stripe\"} 1"),
        "{metrics}"
    );
    // Still blocked a while later: a's later events are not even tried.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tried: HashSet<String> = sink.attempts().into_iter().map(|a| a.id).collect();
    assert!(
        !tried.contains(&id_of(&a, 1)),
        "a blocked key's event was tried"
    );
    assert_eq!(
        sink.delivered(),
        HashSet::from([id_of(&b, 0), id_of(&b, 1)])
    );

    sink.failing.lock().unwrap().clear();
    let replay = format!("/admin/dlq/stripe/{}/replay", id_of(&a, 0));
    assert_eq!(node.admin_post(&replay).await, 200);
    sink.wait_delivered(5, Duration::from_secs(20)).await;
    let attempts = sink.attempts();
    let a_ok: Vec<&str> = attempts
        .iter()
        .filter(|x| x.ok && x.key == a)
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(a_ok, [id_of(&a, 0), id_of(&a, 1), id_of(&a, 2)]);
    assert_eq!(sink.overlaps.load(Ordering::SeqCst), 0);
    eventually(Duration::from_secs(10), "the key unblocked", async || {
        ordering_of(&node).await["blocked_keys"] == 0
    })
    .await;
    o.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_without_the_key_is_delivered_unordered() {
    let sink = OrderSink::start(0.0, Duration::from_millis(1)).await;
    let o = opts(Store::Embedded, &sink);
    let node = Replica::new(&o);
    let _gw = node.start().await;
    // No data.object.customer: accepted and delivered, outside any key's order.
    let body = br#"{"id":"evt_nokey","object":"event","type":"invoice.paid","data":{}}"#.to_vec();
    let url = format!("https://localhost:{}/webhooks/stripe", node.ingress);
    let sig = stripe_header(STRIPE_SECRET, now(), &body);
    let resp = node
        .client
        .post(url)
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sink.wait_delivered(1, Duration::from_secs(10)).await;
    o.clean().await;
}
