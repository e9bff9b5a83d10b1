//! hookgate on a real Redis Cluster (tests/it/support/cluster.rs): sharding, failover, resharding.
//! The end-to-end suite's `::cluster` variants cover everything else on the shared cluster.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    /// The answer's body when it was not a 200 (its reason code says why).
    refusal: String,
}

/// Posts distinct Stripe events from `senders` tasks until `stop` is set; every outcome.
/// `streak` counts the 200s answered since the last other answer, across all senders.
async fn load(
    gw: &Gateway,
    tag: &str,
    senders: usize,
    stop: Arc<AtomicBool>,
    streak: Arc<AtomicUsize>,
) -> Vec<Sent> {
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (client, url) = (gw.client.clone(), gw.url("/webhooks/stripe"));
        let (stop, tag, streak) = (Arc::clone(&stop), tag.to_owned(), Arc::clone(&streak));
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
                let refusal = match status {
                    200 => {
                        streak.fetch_add(1, Ordering::SeqCst);
                        String::new()
                    }
                    _ => {
                        streak.store(0, Ordering::SeqCst);
                        resp.text().await.unwrap_or_default()
                    }
                };
                sent.push(Sent {
                    id,
                    status,
                    retry_after,
                    refusal,
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
    let streak = Arc::new(AtomicUsize::new(0));
    let sending = {
        let (gw, stop, streak) = (&gw, Arc::clone(&stop), Arc::clone(&streak));
        load(gw, "failover", 4, stop, streak)
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
        // Load keeps flowing until the gateway answers 200s again: 40 in a row, counted from
        // the heal (a sender's request that was already waiting on the dead master may still
        // end in a 503 just after it).
        streak.store(0, Ordering::SeqCst);
        let healed = async || streak.load(Ordering::SeqCst) >= 40;
        eventually(
            Duration::from_secs(20),
            "40 200s in a row once healed",
            healed,
        )
        .await;
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
    let sending = load(&gw, "reshard", 4, Arc::clone(&stop), Arc::default());
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
        .map(|s| (&s.id, s.status, &s.refusal))
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

/// The shard `storage.shards` = 16 gives an event id: FNV-1a of its bytes (`src/redis_conn.rs`,
/// fixed forever).
fn shard_of(id: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 16) as u32
}

/// An event's transaction meets a slot caught mid-migration, by hand: its keys already on the
/// importing master (the source answers ASK), then the slot handed over while the gateway's
/// slot map still names the source (MOVED). The enqueue waits the migration out and follows
/// it, and the sender gets a 200, not a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_follows_its_slot_through_a_migration() {
    let cluster = Arc::new(tokio::task::block_in_place(Cluster::start));
    let sink = Sink::start().await;
    let gw = Gateway::start(on(&cluster, sink.url(""))).await;
    let shard = shard_of("evt_moving_0");
    let ids: Vec<String> = (0..)
        .map(|i| format!("evt_moving_{i}"))
        .filter(|id| shard_of(id) == shard)
        .take(3)
        .collect();
    // The first event creates the shard's stream and consumer group on the source.
    assert_eq!(gw.post_stripe(&ids[0]).await.0, 200);
    let slot = cluster.keyslot(&format!("{{stripe/{shard}}}"));
    let from = cluster.master_of_slot(slot);
    let to = *cluster.masters().iter().find(|&&m| m != from).unwrap();
    let topo = cluster.topology();
    let id = |port: u16| topo.iter().find(|n| n.port == port).unwrap().id.clone();
    let (from_id, to_id, slot_arg) = (id(from), id(to), slot.to_string());
    let ok = |port: u16, args: &[&str]| {
        let out = cluster.cli(port, args).unwrap_or_default();
        assert!(!out.contains("ERR"), "{args:?} on {port}: {out}");
    };
    ok(
        to,
        &["cluster", "setslot", &slot_arg, "importing", &from_id],
    );
    ok(
        from,
        &["cluster", "setslot", &slot_arg, "migrating", &to_id],
    );
    let keys = cluster
        .cli(from, &["cluster", "getkeysinslot", &slot_arg, "1000"])
        .unwrap_or_default();
    let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
    assert!(!keys.is_empty(), "the shard's keys are on the source");
    let port = to.to_string();
    let mut migrate = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
    migrate.extend(&keys);
    ok(from, &migrate);
    // The source now answers ASK for the slot: the enqueue is refused until the slot is
    // handed over, which happens while it waits.
    let posting = gw.post_stripe(&ids[1]);
    let handing_over = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for port in [to, from] {
            ok(port, &["cluster", "setslot", &slot_arg, "node", &to_id]);
        }
    };
    let ((status, text), ()) = tokio::join!(posting, handing_over);
    assert_eq!(status, 200, "{text}");
    assert_eq!(cluster.master_of_slot(slot), to, "the slot moved");
    // With the slot map possibly still stale (MOVED): a 200 as well.
    let (status, text) = gw.post_stripe(&ids[2]).await;
    assert_eq!(status, 200, "{text}");
    let accepted: HashSet<String> = ids.into_iter().collect();
    all_delivered(&gw, &cluster, &sink, &accepted).await;
    gw.finish().await;
}
