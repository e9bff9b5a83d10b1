//! hookgate on a real Redis Cluster (tests/it/support/cluster.rs): sharding, failover, resharding.
//! The end-to-end suite's `::cluster` variants cover everything else on the shared cluster.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::*;

/// The helper forms a healthy 3+3 cluster, finds slot owners, and survives a SIGKILLed master.
#[test]
fn the_test_cluster_forms_and_fails_over() {
    let cluster = Cluster::start();
    assert_eq!(cluster.masters().len(), 3);
    let slot = cluster.keyslot("{probe}");
    let master = cluster.master_of_slot(slot);
    assert!(cluster.masters().contains(&master));
    cluster.kill(master);
    cluster.wait_healthy();
    let promoted = cluster.master_of_slot(slot);
    assert_ne!(promoted, master);
    assert_eq!(cluster.masters().len(), 3);
}

/// A gateway config on `cluster` (one of its own, for tests that kill or move nodes).
fn on(cluster: &Arc<Cluster>, upstream: String) -> Opts {
    let mut o = Opts::new(Store::Redis, upstream);
    o.store = Store::Cluster;
    o.cluster = Some(Arc::clone(cluster));
    o
}

/// The shard tags (`stripe/N`) of the stripe lane, as `storage.shards` = 16 lays them out.
fn stripe_tags() -> Vec<String> {
    (0..16).map(|n| format!("stripe/{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lanes_events_are_stored_on_every_master() {
    // Nothing listens upstream: every event stays queued (stream or retry set).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut o = Opts::new(Store::Cluster, format!("http://127.0.0.1:{port}"));
    o.max_attempts = 1000;
    let cluster = o.cluster.clone().unwrap();
    let gw = Gateway::start(o).await;
    for i in 0..64 {
        assert_eq!(gw.post_stripe(&format!("evt_spread_{i}")).await.0, 200);
    }
    let prefix = gw.opts.key_prefix.clone();
    for master in cluster.masters() {
        let mut held = 0;
        for key in cluster.keys_on(master, &format!("{prefix}:*:stripe")) {
            let kind = key.rsplit(':').nth(1).unwrap_or_default();
            let count = match kind {
                "q" => cluster.cli(master, &["xlen", &key]),
                "retry" => cluster.cli(master, &["zcard", &key]),
                _ => continue,
            };
            held += count
                .and_then(|c| c.trim().parse::<usize>().ok())
                .unwrap_or(0);
        }
        assert!(
            held > 0,
            "master {master} holds none of the lane's 64 events"
        );
    }
    gw.finish().await;
}

/// One sender's outcome for one event.
struct Sent {
    id: String,
    status: u16,
    retry_after: bool,
}

/// Posts distinct Stripe events from `senders` tasks until `stop` is set; every outcome.
async fn load(gw: &Gateway, tag: &str, senders: usize, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (client, url) = (gw.client.clone(), gw.url("/webhooks/stripe"));
        let (stop, tag) = (Arc::clone(&stop), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("evt_{tag}_{s}_{i}");
                let resp = send_stripe(&client, &url, STRIPE_SECRET, &id).await;
                let resp = resp.expect("the gateway answers");
                let retry_after = resp.headers().contains_key("retry-after");
                let status = resp.status().as_u16();
                sent.push(Sent {
                    id,
                    status,
                    retry_after,
                });
            }
            sent
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Waits until the sink received every id in `accepted` (each at least once). A timeout names
/// the missing ids and what the cluster's streams hold, so a failure in CI explains itself.
async fn all_delivered(gw: &Gateway, cluster: &Cluster, sink: &Sink, accepted: &HashSet<String>) {
    let within = Duration::from_secs(30);
    let delivered = || -> HashSet<String> {
        sink.delivered()
            .iter()
            .filter_map(|r| {
                let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                Some(v["id"].as_str()?.to_owned())
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = delivered();
        let mut missing: Vec<&String> = accepted.difference(&seen).collect();
        if missing.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            missing.sort();
            let streams = tokio::task::block_in_place(|| cluster.streams(&gw.opts.key_prefix));
            panic!(
                "{} of {} acknowledged events not delivered within {within:?}: {:?}\n{streams}",
                missing.len(),
                accepted.len(),
                &missing[..missing.len().min(10)]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A master is SIGKILLed mid-load with `wait_replicas = 1`: its slots answer 503 +
/// `Retry-After` (never another 5xx, never a 200 that was not replicated) until its replica
/// takes over and a replica is back; then 200s again without a restart, and every event that
/// got a 200 is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_load_loses_no_acknowledged_event() {
    let cluster = Arc::new(tokio::task::block_in_place(Cluster::start));
    let sink = Sink::start().await;
    let mut o = on(&cluster, sink.url(""));
    o.storage_extra = "wait_replicas = 1".into();
    let gw = Gateway::start(o).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sending = {
        let (gw, stop) = (&gw, Arc::clone(&stop));
        load(gw, "failover", 4, stop)
    };
    let faults = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let victim = cluster.master_of_slot(cluster.keyslot(&stripe_tags()[0]));
        cluster.kill(victim);
        // The replica is promoted; the old master comes back as its replica, so WAIT 1 can
        // be met again.
        tokio::task::block_in_place(|| {
            cluster.wait_healthy();
            cluster.restart(victim);
            cluster.wait_healthy();
        });
        // Load keeps flowing a while after the cluster healed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (sent, ()) = tokio::join!(sending, faults);
    for s in &sent {
        assert!(
            s.status == 200 || (s.status == 503 && s.retry_after),
            "{}: {} (retry-after: {})",
            s.id,
            s.status,
            s.retry_after
        );
    }
    let refused = sent.iter().filter(|s| s.status == 503).count();
    assert!(
        refused > 0,
        "the dead master's slots answered 503 meanwhile"
    );
    let tail = &sent[sent.len().saturating_sub(40)..];
    assert!(
        tail.iter().all(|s| s.status == 200),
        "200s again once the cluster healed"
    );
    let accepted: HashSet<String> = sent
        .iter()
        .filter(|s| s.status == 200)
        .map(|s| s.id.clone())
        .collect();
    eprintln!(
        "{} accepted, {refused} refused during the failover",
        accepted.len()
    );
    all_delivered(&gw, &cluster, &sink, &accepted).await;
    gw.finish().await;
}

/// A busy shard's slot is moved to another master with `redis-cli --cluster reshard` while
/// events flow: the client follows MOVED/ASK, so no sender sees an error and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_migrated_under_load_loses_nothing_and_refuses_nothing() {
    let cluster = Arc::new(tokio::task::block_in_place(Cluster::start));
    let sink = Sink::start().await;
    let gw = Gateway::start(on(&cluster, sink.url(""))).await;
    // `reshard` moves a source's lowest slots first: pick the shard whose slot is the fewest
    // slots into its master's range, and move up to and including it.
    let topo = cluster.topology();
    let (slot, from, count) = stripe_tags()
        .iter()
        .map(|tag| {
            let slot = cluster.keyslot(tag);
            let owner = topo
                .iter()
                .find(|n| n.master && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
                .expect("an owner");
            let below: u16 = owner
                .slots
                .iter()
                // Slots of each range below `slot` (a range past it counts none).
                .map(|&(a, b)| {
                    b.min(slot.saturating_sub(1)).saturating_sub(a) + u16::from(a < slot)
                })
                .sum();
            (slot, owner.port, below + 1)
        })
        .min_by_key(|&(_, _, count)| count)
        .unwrap();
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sending = load(&gw, "reshard", 4, Arc::clone(&stop));
    let moving = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.reshard(from, to, count).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (sent, ()) = tokio::join!(sending, moving);
    assert_eq!(cluster.master_of_slot(slot), to, "the busy slot moved");
    let bad: Vec<_> = sent
        .iter()
        .filter(|s| s.status != 200)
        .map(|s| (&s.id, s.status))
        .collect();
    assert!(
        bad.is_empty(),
        "answers other than 200 during the migration: {bad:?}"
    );
    let accepted: HashSet<String> = sent.iter().map(|s| s.id.clone()).collect();
    eprintln!(
        "{} events sent across the migration of {count} slots",
        accepted.len()
    );
    all_delivered(&gw, &cluster, &sink, &accepted).await;
    gw.finish().await;
}

/// Ordered events with `wait_replicas = 1` on the cluster: the enqueue script is followed by a
/// `WAIT` on the master of the key's slot, every event gets a 200, and each key's events reach
/// the upstream in the order they were accepted, retries included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_events_wait_for_replicas_and_keep_their_order() {
    const KEYS: usize = 4;
    const PER_KEY: usize = 10;
    let sink = Sink::start().await;
    sink.fail_first.store(6, Ordering::SeqCst);
    let mut o = Opts::new(Store::Cluster, sink.url(""));
    o.storage_extra = "wait_replicas = 1".into();
    o.stripe_extra = r#"order_by = "header:x-order-key""#.into();
    let gw = Gateway::start(o).await;
    let senders = (0..KEYS).map(|k| {
        let gw = &gw;
        async move {
            for i in 0..PER_KEY {
                let id = format!("ord_{k}_{i:02}");
                let body = stripe_body(&id);
                let headers = [
                    (
                        "stripe-signature",
                        stripe_header(STRIPE_SECRET, now(), &body),
                    ),
                    ("x-order-key", format!("key-{k}")),
                ]
                .map(|(n, v)| (n.to_owned(), v));
                let (status, text) = gw.post("/webhooks/stripe", &headers, body).await;
                assert_eq!(status, 200, "{id}: {text}");
            }
        }
    });
    futures_util::future::join_all(senders).await;
    let ids = || -> Vec<String> {
        let received = sink.received.lock().unwrap();
        received
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect()
    };
    eventually(
        Duration::from_secs(30),
        "every event delivered",
        async || ids().iter().collect::<HashSet<_>>().len() == KEYS * PER_KEY,
    )
    .await;
    let seen = ids();
    for k in 0..KEYS {
        let mut firsts: Vec<&str> = Vec::new();
        for id in seen
            .iter()
            .filter(|id| id.starts_with(&format!("ord_{k}_")))
        {
            if !firsts.contains(&id.as_str()) {
                firsts.push(id);
            }
        }
        let sent: Vec<String> = (0..PER_KEY).map(|i| format!("ord_{k}_{i:02}")).collect();
        assert_eq!(firsts, sent, "key-{k} out of acceptance order");
    }
    gw.finish().await;
}
