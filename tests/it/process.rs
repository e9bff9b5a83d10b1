//! The real binary: `check` exit codes, SIGKILL durability, SIGTERM drain, `send-test`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// A port nothing listens on now, for a server a test starts later at a configured address.
///
/// Taken below the kernel's ephemeral range: a port from that range, free when picked, could be
/// handed out as the source port of an outgoing connection (the gateway's to Redis, a test's
/// client) before the test binds it, and the bind then failed with `AddrInUse`. A counter
/// keeps this process's picks apart; the bind checks that no other process holds the port.
pub(crate) fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|&low| low >= 1024)
        .unwrap_or(32768);
    let base = 10_000u16.min(low / 2);
    let span = low - base;
    let start = u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0);
    for _ in 0..span {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = base + (start.wrapping_add(n) % span);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range {low}");
}

pub(crate) struct Proc {
    pub(crate) child: Child,
    admin: u16,
}

impl Proc {
    pub(crate) fn spawn(config: &Path, admin: u16) -> Proc {
        Self::spawn_with(config, admin, Stdio::inherit())
    }

    /// Like `spawn`, with the log (stderr) written to `log`.
    pub(crate) fn spawn_logged(config: &Path, admin: u16, log: &Path) -> Proc {
        let file = std::fs::File::create(log).unwrap();
        Self::spawn_with(config, admin, file.into())
    }

    fn spawn_with(config: &Path, admin: u16, stderr: Stdio) -> Proc {
        let child = Command::new(BIN)
            .args(["serve", "-c"])
            .arg(config)
            .env("HOOKGATE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("binary starts");
        Proc { child, admin }
    }

    pub(crate) async fn wait_healthy(&mut self, client: &reqwest::Client) {
        for _ in 0..200 {
            if let Ok(r) = client
                .get(format!("http://127.0.0.1:{}/healthz", self.admin))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "gateway exited early"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway never became healthy");
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    opts: Opts,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    client: reqwest::Client,
    ingress: u16,
    admin: u16,
    upstream: u16,
}

fn setup(store: Store, max_attempts: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let upstream = free_port();
    let mut o = Opts::new(store, format!("http://127.0.0.1:{upstream}"));
    o.schedule = r#"["200ms"]"#;
    o.max_attempts = max_attempts;
    let (config, ingress, admin) = write_config(dir.path(), &o);
    let client = client(&dir.path().join("test.crt"));
    Setup {
        opts: o,
        dir,
        config,
        client,
        ingress,
        admin,
        upstream,
    }
}

async fn post_stripe(s: &Setup, id: &str) -> u16 {
    let url = format!("https://localhost:{}/webhooks/stripe", s.ingress);
    let resp = send_stripe(&s.client, &url, STRIPE_SECRET, id)
        .await
        .unwrap();
    resp.status().as_u16()
}

async fn sigkill_loses_no_accepted_event(store: Store) {
    let s = setup(store, 10_000);
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    let sends = (0..40).map(|i| {
        let (client, port) = (s.client.clone(), s.ingress);
        tokio::spawn(async move {
            let url = format!("https://localhost:{port}/webhooks/stripe");
            let id = format!("evt_kill_{i}");
            let resp = send_stripe(&client, &url, STRIPE_SECRET, &id).await;
            resp.map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    gw.child.kill().unwrap(); // SIGKILL: no flush, no goodbye
    gw.child.wait().unwrap();

    let sink = Sink::start_at(s.upstream).await;
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    let got = sink.wait_for(40, Duration::from_secs(30)).await;
    let mut bodies: Vec<_> = got.iter().map(|r| r.body.clone()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        40,
        "every accepted event is delivered after the crash"
    );
    drop(gw);
    s.opts.clean().await;
}

/// Senders keep sending while the gateway is SIGKILLed, its upstream up (deliveries and their
/// acknowledgements are in flight): every event answered 200 is delivered, after the restart if
/// not before.
async fn sigkill_under_load_loses_no_accepted_event(store: Store) {
    let s = setup(store, 10_000);
    let sink = Sink::start_at(s.upstream).await;
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let senders = (0..8).map(|task| {
        let (client, port, stopped) = (s.client.clone(), s.ingress, stopped.clone());
        tokio::spawn(async move {
            let url = format!("https://localhost:{port}/webhooks/stripe");
            let mut accepted = Vec::new();
            for n in 0.. {
                if *stopped.borrow() {
                    break;
                }
                let id = format!("evt_load_{task}_{n}");
                match send_stripe(&client, &url, STRIPE_SECRET, &id).await {
                    Ok(r) if r.status() == 200 => accepted.push(id),
                    Ok(_) => {}
                    // The gateway is gone: wait for the test to say stop.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            accepted
        })
    });
    let senders: Vec<_> = senders.collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gw.child.kill().unwrap(); // SIGKILL mid-load
    gw.child.wait().unwrap();
    stop.send(true).unwrap();
    let accepted: Vec<String> = futures_util::future::join_all(senders)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    assert!(accepted.len() >= 20, "only {} accepted", accepted.len());

    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    let delivered = |sink: &Sink| -> std::collections::HashSet<String> {
        let bodies = sink.delivered().into_iter().map(|r| r.body);
        bodies
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = delivered(&sink);
        let missing: Vec<_> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} accepted events never delivered, e.g. {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(gw);
    s.opts.clean().await;
}

async fn sigterm_drains_and_exits_zero(store: Store) {
    let s = setup(store, 5);
    let _sink = Sink::start_at(s.upstream).await;
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    assert_eq!(post_stripe(&s, "evt_term").await, 200);
    gw.signal("-TERM");
    let status = tokio::task::spawn_blocking(move || {
        let st = gw.child.wait().unwrap();
        drop(gw);
        st
    });
    let status = tokio::time::timeout(Duration::from_secs(20), status)
        .await
        .expect("exits in time")
        .unwrap();
    assert!(status.success(), "{status:?}");
    s.opts.clean().await;
}

async fn send_test_signs_like_the_provider(store: Store) {
    let s = setup(store, 5);
    let sink = Sink::start_at(s.upstream).await;
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    for route in ["stripe", "standard", "github"] {
        let out = Command::new(BIN)
            .args(["send-test", "--route", route, "-c"])
            .arg(&s.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{route}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("accepted"));
    }
    sink.wait_for(3, Duration::from_secs(10)).await;
    drop(gw);
    s.opts.clean().await;
}

#[test]
fn check_accepts_good_and_refuses_bad_config_with_64() {
    let s = setup(Store::Embedded, 5);
    let ok = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&s.config)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = s.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("dedup_ttl = \"24h\"", "dedup_ttl = \"forever\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("storage.dedup_ttl")
            && err.contains("bad duration"),
        "{err}"
    );
}

crate::both_backends!(
    sigkill_loses_no_accepted_event,
    sigkill_under_load_loses_no_accepted_event,
    sigterm_drains_and_exits_zero,
    send_test_signs_like_the_provider,
);

async fn post_signed(client: &reqwest::Client, port: u16, secret: &str, id: &str) -> Option<u16> {
    let url = format!("https://localhost:{port}/webhooks/stripe");
    let resp = send_stripe(client, &url, secret, id).await.ok()?;
    Some(resp.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_secrets_and_certificate_and_keeps_a_good_config_over_a_bad_one() {
    let s = setup(Store::Embedded, 5);
    let _sink = Sink::start_at(s.upstream).await;
    let mut gw = Proc::spawn(&s.config, s.admin);
    gw.wait_healthy(&s.client).await;
    assert_eq!(post_stripe(&s, "evt_before_hup").await, 200);

    // Rotate: only a new secret, and a new certificate pair on disk.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let rotated = text.replace(
        &format!("\"{STRIPE_SECRET}\", \"{STRIPE_OLD_SECRET}\""),
        "\"whsec_rotated_in\"",
    );
    assert_ne!(text, rotated);
    write_cert(s.dir.path());
    std::fs::write(&s.config, &rotated).unwrap();
    gw.signal("-HUP");
    let fresh = client(&s.dir.path().join("test.crt")); // trusts only the new certificate
    let mut status = None;
    for i in 0..100 {
        status = post_signed(
            &fresh,
            s.ingress,
            "whsec_rotated_in",
            &format!("evt_after_hup_{i}"),
        )
        .await;
        if status == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, Some(200), "new secret and new certificate in force");
    assert_eq!(
        post_signed(&fresh, s.ingress, STRIPE_SECRET, "evt_old_secret").await,
        Some(401)
    );

    // A broken file is refused; the running configuration stays.
    std::fs::write(
        &s.config,
        rotated.replace("dedup_ttl = \"24h\"", "dedup_ttl = \"forever\""),
    )
    .unwrap();
    gw.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(gw.child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(
        post_signed(&fresh, s.ingress, "whsec_rotated_in", "evt_after_bad").await,
        Some(200)
    );
    s.opts.clean().await;
}
