//! A full disk (docs/security.md, "Storage faults"): the data directory on a 12 MiB tmpfs, the upstream down. Once the
//! disk is full the gateway answers 503 + Retry-After and `/readyz` 503; once space is back it
//! accepts again by itself, and every event that got a 200 is delivered.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::free_port;
use crate::support::*;

/// A tmpfs mounted for the test, unmounted when dropped (lazily, so a busy file cannot stop it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`; fails the test loudly when it cannot (needs root).
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (these tests need root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Bytes of padding per event: big events fill the disk in a few hundred requests.
const PAD: usize = 40 * 1024;

/// POSTs a padded Stripe event; returns its status and `Retry-After`.
async fn send(gw: &Gateway, id: &str) -> (u16, Option<String>) {
    let body = format!(
        r#"{{"id":"{id}","object":"event","type":"invoice.paid","pad":"{}"}}"#,
        "x".repeat(PAD)
    )
    .into_bytes();
    let resp = gw
        .client
        .post(gw.url("/webhooks/stripe"))
        .header(
            "stripe-signature",
            stripe_header(STRIPE_SECRET, now(), &body),
        )
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry_after)
}

/// The value of `hookgate_storage_errors_total{op="commit"}`, 0 when absent.
async fn commit_errors(gw: &Gateway) -> u64 {
    let text = gw.metrics().await;
    let line = text
        .lines()
        .find(|l| l.starts_with(r#"hookgate_storage_errors_total{op="commit"}"#));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Sends events until the disk is full; returns the ids that got a 200.
async fn fill(gw: &Gateway, prefix: &str) -> Vec<String> {
    let mut accepted = Vec::new();
    for i in 0..2000 {
        let id = format!("{prefix}_{i}");
        match send(gw, &id).await {
            (200, _) => accepted.push(id),
            (503, retry_after) => {
                assert!(retry_after.is_some(), "503 without Retry-After");
                return accepted;
            }
            (status, _) => panic!("unexpected status {status} for {id}"),
        }
    }
    panic!("2000 events of {PAD} bytes fit a 12 MiB disk: nothing was stored?");
}

/// A gateway storing on a fresh 12 MiB tmpfs (with `filler` bytes already on it) whose upstream,
/// `127.0.0.1:<port>`, is down; the disk is filled with accepted events until one gets a 503.
struct Full {
    gw: Gateway,
    mount: Tmpfs,
    data: PathBuf,
    port: u16,
    accepted: Vec<String>,
}

impl Full {
    async fn start(filler: usize) -> Full {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mount = Tmpfs::mount(&data, "12m");
        std::fs::write(data.join("filler"), vec![7u8; filler]).unwrap();
        let port = free_port();
        let mut o = Opts::new(Store::Embedded, format!("http://127.0.0.1:{port}"));
        o.schedule = r#"["2s"]"#;
        o.max_attempts = 1000;
        let gw = Gateway::start_in(dir, o).await;
        let accepted = fill(&gw, "evt_full").await;
        let full = Full {
            gw,
            mount,
            data,
            port,
            accepted,
        };
        full.assert_failing().await;
        full
    }

    /// While the disk is full: `/readyz` 503 with the reason, errors counted, still 503.
    async fn assert_failing(&self) {
        let (status, body) = self.gw.readyz().await;
        assert_eq!(status, 503, "/readyz while the disk is full: {body}");
        assert!(body.contains("storage_failing"), "{body}");
        let mut errors = 0;
        for _ in 0..50 {
            errors = commit_errors(&self.gw).await;
            if errors > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            errors > 0,
            "storage errors are counted:\n{}",
            self.gw.metrics().await
        );
        assert_eq!(send(&self.gw, "evt_full_again").await.0, 503, "still full");
    }

    /// Accepting again: a run of fresh events all get 200 and `/readyz` says ready.
    async fn assert_accepting(&mut self) {
        assert_eq!(self.gw.readyz().await.0, 200, "/readyz after recovery");
        for i in 0..5 {
            let id = format!("evt_after_{i}");
            assert_eq!(send(&self.gw, &id).await.0, 200, "accepting again");
            self.accepted.push(id);
        }
    }

    /// Every acknowledgement committed: nothing is left to deliver again.
    async fn assert_queue_empties(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .gw
            .metrics()
            .await
            .contains(r#"hookgate_queue_depth{route="stripe"} 0"#)
        {
            assert!(Instant::now() < deadline, "delivered events stay queued");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn finish(self) {
        let dir = self.gw.stop().await;
        drop(self.mount);
        drop(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_accepts_again_once_space_is_freed() {
    let mut full = Full::start(3 << 20).await;
    let sink = Sink::start_at(full.port).await;
    std::fs::remove_file(full.data.join("filler")).unwrap();
    let space_back = Instant::now();
    let first = wait_for_200(&full.gw, &mut full.accepted).await;
    eprintln!(
        "disk full after {} events, space freed: first 200 after {first:?}",
        full.accepted.len() - 1
    );
    full.assert_accepting().await;
    every_id_delivered(&sink, &full.accepted, space_back).await;
    full.assert_queue_empties().await;
    full.finish().await;
}

/// Nobody frees space: the upstream comes back, the acknowledgements commit and the drained
/// queue leaves room in the database file for new events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_accepts_again_once_the_queue_drains() {
    let mut full = Full::start(1 << 20).await;
    let sink = Sink::start_at(full.port).await;
    let queued = full.accepted.len();
    let upstream_back = Instant::now();
    every_id_delivered(&sink, &full.accepted, upstream_back).await;
    let drained = upstream_back.elapsed();
    let first = wait_for_200(&full.gw, &mut full.accepted).await;
    eprintln!(
        "disk full after {queued} events, queue drained in {drained:?}: first 200 after {first:?} more"
    );
    full.assert_accepting().await;
    every_id_delivered(&sink, &full.accepted, Instant::now()).await;
    full.assert_queue_empties().await;
    full.finish().await;
}

/// Sends fresh events until one gets a 200 (recorded); returns how long that took.
async fn wait_for_200(gw: &Gateway, accepted: &mut Vec<String>) -> Duration {
    let started = Instant::now();
    for i in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no 200 within 60 s of space returning"
        );
        let id = format!("evt_retry_{i}");
        match send(gw, &id).await {
            (200, _) => {
                accepted.push(id);
                return started.elapsed();
            }
            (503, Some(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    unreachable!()
}

/// Waits until every accepted id reached the sink (redeliveries allowed).
async fn every_id_delivered(sink: &Sink, accepted: &[String], since: Instant) {
    let deadline = since + Duration::from_secs(90);
    loop {
        let got: std::collections::HashSet<String> = sink
            .delivered()
            .iter()
            .filter_map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<_> = accepted.iter().filter(|id| !got.contains(*id)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged events never delivered, e.g. {:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
