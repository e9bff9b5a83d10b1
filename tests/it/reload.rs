//! SIGHUP on the real binary: two generations of workers never run side by side, lane health
//! survives, lanes a reload removed stay reachable, a restart-only key refuses the reload, and
//! shutdown (during a reload or not) keeps one deadline.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::process::Proc;
use crate::support::*;

struct Setup {
    opts: Opts,
    _dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    client: reqwest::Client,
    ingress: u16,
    admin: u16,
}

impl Setup {
    /// A config delivering to `sink`, after `tweak` of its knobs.
    fn new(store: Store, sink: &Sink, tweak: impl FnOnce(&mut Opts)) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Opts::new(store, format!("http://{}", sink.addr));
        tweak(&mut o);
        let (config, ingress, admin) = write_config(dir.path(), &o);
        Setup {
            opts: o,
            client: client(&dir.path().join("test.crt")),
            log: dir.path().join("gateway.log"),
            _dir: dir,
            config,
            ingress,
            admin,
        }
    }

    /// Rewrites the config file with `f` applied to its text (asserting it changed).
    fn edit(&self, f: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let next = f(&text);
        assert_ne!(text, next, "the edit changed nothing");
        std::fs::write(&self.config, next).unwrap();
    }

    async fn start(&self) -> Proc {
        let mut gw = Proc::spawn_logged(&self.config, self.admin, &self.log);
        gw.wait_healthy(&self.client).await;
        gw
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.admin);
        let req = self.client.request(method, url);
        let resp = req.bearer_auth("test-admin-token").send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, v) = self.admin(reqwest::Method::GET, path).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// The `/admin/routes` entry of `route`, if listed.
    async fn route(&self, route: &str) -> Option<Value> {
        let v = self.get("/admin/routes").await;
        let all = v["routes"].as_array().unwrap().clone();
        all.into_iter().find(|r| r["route"] == route)
    }

    /// Posts a signed GitHub event `id` with `body`; returns the status.
    async fn post_github(&self, id: &str, body: &[u8]) -> u16 {
        let url = format!("https://localhost:{}/webhooks/github", self.ingress);
        let mut req = self.client.post(url).body(body.to_vec());
        for (n, v) in github_headers(id, body) {
            req = req.header(n, v);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// Drops the `github` route from the config, SIGHUPs `gw` and waits until the admin API
    /// lists the route as removed.
    async fn remove_github_by_reload(&self, gw: &Proc) {
        self.edit(|t| {
            t.split("[[route]]\nname = \"github\"")
                .next()
                .unwrap()
                .to_owned()
        });
        gw.signal("-HUP");
        eventually(
            Duration::from_secs(10),
            "github listed as removed",
            async || {
                self.route("github")
                    .await
                    .is_some_and(|r| r["removed"] == true)
            },
        )
        .await;
    }

    async fn post_stripe(&self, secret: &str, id: &str) -> u16 {
        let url = format!("https://localhost:{}/webhooks/stripe", self.ingress);
        let resp = send_stripe(&self.client, &url, secret, id).await.unwrap();
        resp.status().as_u16()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

async fn sighup_during_deliveries_never_doubles_upstream_concurrency(store: Store) {
    let sink = Sink::start().await;
    sink.delay_ms.store(1000, Ordering::SeqCst);
    let s = Setup::new(store, &sink, |_| {});
    s.edit(|t| t.replace("concurrency = 4", "concurrency = 2"));
    let gw = s.start().await;
    for i in 0..10 {
        assert_eq!(
            s.post_stripe(STRIPE_SECRET, &format!("evt_hup_{i}")).await,
            200
        );
    }
    for _ in 0..2 {
        eventually(
            Duration::from_secs(20),
            "two attempts in flight",
            async || sink.inflight.load(Ordering::SeqCst) == 2,
        )
        .await;
        gw.signal("-HUP");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = sink.wait_for(10, Duration::from_secs(60)).await;
    let mut bodies: Vec<_> = got.iter().map(|r| r.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 10, "every event delivered");
    assert_eq!(
        sink.max_inflight.load(Ordering::SeqCst),
        2,
        "in-flight attempts to the upstream never exceed its concurrency"
    );
    drop(gw);
    s.opts.clean().await;
}

async fn a_suspended_upstream_stays_suspended_across_a_sighup(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let s = Setup::new(store, &sink, |o| {
        o.suspend_after = 2;
        o.max_attempts = 1000;
    });
    s.edit(|t| t.replace(r#"probe_interval = "300ms""#, r#"probe_interval = "60s""#));
    let gw = s.start().await;
    assert_eq!(s.post_stripe(STRIPE_SECRET, "evt_suspend").await, 200);
    let lane_state = async || s.route("stripe").await.unwrap()["upstreams"][0].clone();
    eventually(Duration::from_secs(20), "stripe suspended", async || {
        lane_state().await["state"] == "suspended"
    })
    .await;
    let hits = sink.hits.load(Ordering::SeqCst);

    // A reload that visibly applies (a new route) and keeps the stripe upstream as it is.
    s.edit(|t| format!("{t}\n{LATER_ROUTE}"));
    gw.signal("-HUP");
    eventually(Duration::from_secs(10), "the reload applied", async || {
        s.route("later").await.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = lane_state().await;
    assert_eq!(after["state"], "suspended", "{after}");
    assert!(
        after["consecutive_failures"].as_u64().unwrap() >= 2,
        "{after}"
    );
    assert_eq!(
        sink.hits.load(Ordering::SeqCst),
        hits,
        "a suspended upstream is not hammered after a reload"
    );
    drop(gw);
    s.opts.clean().await;
}

const LATER_ROUTE: &str = r#"
[[route]]
name = "later"
path = "/webhooks/later"
scheme = "github"
secrets = ["a-literal-test-secret"]
upstream = { url = "http://127.0.0.1:9/later", timeout = "2s" }
"#;

async fn a_route_removed_by_a_reload_keeps_its_dead_letters_reachable(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let s = Setup::new(store, &sink, |o| o.max_attempts = 1);
    let gw = s.start().await;
    let body = br#"{"zen":"removed"}"#;
    assert_eq!(s.post_github("gh-removed-1", body).await, 200);
    eventually(
        Duration::from_secs(20),
        "the github event is dead",
        async || {
            let v = s.get("/admin/dlq?route=github").await;
            v["dead"].as_array().is_some_and(|d| d.len() == 1)
        },
    )
    .await;

    s.remove_github_by_reload(&gw).await;
    let route = s.route("github").await.unwrap();
    assert_eq!(route["upstreams"][0]["removed"], true, "{route}");
    let dead = s.get("/admin/dlq?route=github").await;
    assert_eq!(dead["dead"][0]["id"], "gh-removed-1", "{dead}");
    s.get("/admin/dlq/github/gh-removed-1").await;
    let (status, v) = s
        .admin(reqwest::Method::POST, "/admin/dlq/github/replay")
        .await;
    assert_eq!((status, &v["error"]), (409, &Value::from("route_removed")));
    let log = s.log();
    assert!(
        log.contains("removed by the reload") && log.contains("github"),
        "{log}"
    );

    // After a restart the lane is found in storage: still listed, still reachable.
    drop(gw);
    let gw = s.start().await;
    eventually(
        Duration::from_secs(10),
        "github listed after a restart",
        async || {
            s.route("github")
                .await
                .is_some_and(|r| r["removed"] == true)
        },
    )
    .await;
    let dead = s.get("/admin/dlq?route=github").await;
    assert_eq!(dead["dead"][0]["id"], "gh-removed-1", "{dead}");
    let log = s.log();
    assert!(
        log.contains("in no route") && log.contains("github"),
        "{log}"
    );

    let (status, v) = s.admin(reqwest::Method::DELETE, "/admin/dlq/github").await;
    assert_eq!((status, &v["purged"]), (200, &Value::from(1)), "{v}");
    assert!(s.route("github").await.is_none(), "nothing left to show");
    drop(gw);
    s.opts.clean().await;
}

/// A route removed while its event still waits for a retry: the lane stays listed with its
/// queue depth (nothing delivers it any more), and the log says so.
async fn a_route_removed_by_a_reload_keeps_its_queued_events_visible(store: Store) {
    let sink = Sink::start().await;
    sink.fail_first.store(usize::MAX, Ordering::SeqCst);
    let s = Setup::new(store, &sink, |o| {
        o.max_attempts = 1000;
        o.schedule = r#"["1s"]"#;
    });
    let gw = s.start().await;
    let body = br#"{"zen":"queued"}"#;
    assert_eq!(s.post_github("gh-queued-1", body).await, 200);
    eventually(Duration::from_secs(20), "a failed attempt", async || {
        sink.hits.load(Ordering::SeqCst) >= 1
    })
    .await;

    s.remove_github_by_reload(&gw).await;
    let route = s.route("github").await.unwrap();
    let lane = &route["upstreams"][0];
    assert_eq!(
        (&lane["removed"], &lane["queue_depth"]),
        (&Value::from(true), &Value::from(1)),
        "{route}"
    );
    let log = s.log();
    assert!(
        log.contains("removed by the reload") && log.contains("github"),
        "{log}"
    );
    drop(gw);
    s.opts.clean().await;
}

/// SIGTERM while a reload retires a generation: its attempts in flight end and are acknowledged
/// before the exit (nothing is delivered again after a restart), within the one deadline.
async fn shutdown_during_a_reload_waits_for_the_retiring_workers(store: Store) {
    let sink = Sink::start().await;
    sink.delay_ms.store(1500, Ordering::SeqCst);
    let s = Setup::new(store, &sink, |_| {});
    let mut gw = s.start().await;
    for i in 0..2 {
        assert_eq!(
            s.post_stripe(STRIPE_SECRET, &format!("evt_term_{i}")).await,
            200
        );
    }
    eventually(
        Duration::from_secs(20),
        "two attempts in flight",
        async || sink.inflight.load(Ordering::SeqCst) == 2,
    )
    .await;
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.signal("-TERM");
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let st = gw.child.wait().unwrap();
        (gw, st)
    });
    let (gw, status) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "5 s grace, one deadline"
    );
    drop(gw);
    assert_eq!(sink.delivered().len(), 2);

    sink.delay_ms.store(0, Ordering::SeqCst);
    let gw = s.start().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sink.hits.load(Ordering::SeqCst),
        2,
        "nothing delivered twice"
    );
    drop(gw);
    s.opts.clean().await;
}

/// SIGTERM with a delivery that outlasts the grace period, a request body still arriving, an
/// idle keep-alive connection and a silent one: every drain shares one deadline, so the process
/// exits at `shutdown_grace` plus a little, not at twice it (listeners, then workers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_has_one_deadline_for_connections_and_deliveries() {
    use tokio::io::AsyncWriteExt;
    const GRACE: Duration = Duration::from_secs(6);
    let sink = Sink::start().await;
    // Far longer than the grace: the attempt is still running at the deadline.
    sink.delay_ms.store(60_000, Ordering::SeqCst);
    let s = Setup::new(Store::Embedded, &sink, |o| {
        o.server_extra = "header_timeout = \"60s\"".into();
    });
    s.edit(|t| {
        t.replace("shutdown_grace = \"5s\"", "shutdown_grace = \"6s\"")
            .replace("body_timeout = \"2s\"", "body_timeout = \"60s\"")
            .replacen(
                "/stripe\", timeout = \"2s\"",
                "/stripe\", timeout = \"60s\"",
                1,
            )
    });
    let mut gw = s.start().await;
    assert_eq!(s.post_stripe(STRIPE_SECRET, "evt_slow").await, 200);
    eventually(
        Duration::from_secs(20),
        "the attempt in flight",
        async || sink.inflight.load(Ordering::SeqCst) == 1,
    )
    .await;
    let (dir, ingress) = (s._dir.path(), ([127, 0, 0, 1], s.ingress).into());
    let local = [127, 0, 0, 1].into();
    // Silent: no TLS handshake, and its header_timeout is a minute away.
    let _silent = crate::edge::tcp_from(local, ingress).await;
    let mut idle = crate::edge::tls_from(dir, local, ingress, b"http/1.1").await;
    idle.write_all(b"GET /nowhere HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut uploading = crate::edge::tls_from(dir, local, ingress, b"http/1.1").await;
    let head = "POST /webhooks/stripe HTTP/1.1\r\nhost: localhost\r\ncontent-length: 1000\r\n\r\n";
    uploading.write_all(head.as_bytes()).await.unwrap();
    uploading.write_all(&[b'{'; 10]).await.unwrap();
    uploading.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    gw.signal("-TERM");
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let st = gw.child.wait().unwrap();
        (gw, st)
    });
    let (gw, status) = tokio::time::timeout(GRACE * 4, status)
        .await
        .expect("the gateway exits")
        .unwrap();
    let took = started.elapsed();
    eprintln!("exit {took:?} after SIGTERM, grace {GRACE:?}");
    assert!(status.success(), "{status:?}");
    // The attempt held the gateway to the deadline; past it, 4 s of slack for a loaded
    // machine, still 2 s short of a second grace period.
    assert!(took >= GRACE - Duration::from_secs(1), "{took:?}");
    assert!(
        took < GRACE + Duration::from_secs(4),
        "{took:?}: more than one deadline"
    );
    assert!(
        s.log().contains("deliveries still running at the deadline"),
        "{}",
        s.log()
    );
    drop((gw, idle, uploading));
}

crate::both_backends!(
    shutdown_during_a_reload_waits_for_the_retiring_workers,
    sighup_during_deliveries_never_doubles_upstream_concurrency,
    a_suspended_upstream_stays_suspended_across_a_sighup,
    a_route_removed_by_a_reload_keeps_its_dead_letters_reachable,
    a_route_removed_by_a_reload_keeps_its_queued_events_visible,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changing_a_restart_only_key_is_refused_whole() {
    let sink = Sink::start().await;
    let s = Setup::new(Store::Embedded, &sink, |_| {});
    let gw = s.start().await;
    // A reloadable change (the secret) together with one that needs a restart.
    s.edit(|t| {
        t.replace(
            &format!("\"{STRIPE_SECRET}\", \"{STRIPE_OLD_SECRET}\""),
            "\"whsec_rotated_in\"",
        )
        .replace(r#"shutdown_grace = "5s""#, r#"shutdown_grace = "6s""#)
    });
    gw.signal("-HUP");
    eventually(
        Duration::from_secs(10),
        "the refusal is logged",
        async || {
            let log = s.log();
            log.contains("reload refused") && log.contains("server.shutdown_grace")
        },
    )
    .await;
    assert_eq!(s.post_stripe(STRIPE_SECRET, "evt_old_secret").await, 200);
    assert_eq!(
        s.post_stripe("whsec_rotated_in", "evt_new_secret").await,
        401
    );
    sink.wait_for(1, Duration::from_secs(20)).await;
    drop(gw);
}
