//! Redis stops (SIGKILL) and comes back mid-run: 503 + Retry-After while it is down, no
//! acknowledged event lost (AOF with appendfsync always), service resumes without a restart.
//! And what the start-up check reads from Redis's persistence settings.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::free_port;
use crate::support::*;

/// A private redis-server in a directory of its own.
struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    persistence: &'static [&'static str],
}

/// The append-only file on, fsynced before every answer.
const AOF_ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        PrivateRedis::start_with(AOF_ALWAYS).await
    }

    /// Started with these persistence arguments.
    async fn start_with(persistence: &'static [&'static str]) -> PrivateRedis {
        let mut r = PrivateRedis {
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            child: None,
            persistence,
        };
        r.restart().await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts redis-server on the same port and directory (replaying its AOF) and waits for it.
    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .args(self.persistence)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("private redis-server did not start");
    }

    /// SIGKILL: no shutdown save, only what the AOF already holds survives.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_loses_no_acknowledged_event_and_service_resumes() {
    let mut redis = PrivateRedis::start().await;
    let port = free_port(); // the upstream is down until the end: events stay in Redis
    let mut o = Opts::new(Store::Redis, format!("http://127.0.0.1:{port}"));
    o.redis_url = redis.url();
    o.schedule = r#"["200ms"]"#;
    o.max_attempts = 1000;
    let gw = Gateway::start(o).await;
    let mut accepted = Vec::new();
    for i in 0..10 {
        let id = format!("evt_before_{i}");
        assert_eq!(gw.post_stripe(&id).await.0, 200);
        accepted.push(id);
    }

    redis.kill();
    let down = post_with_retry_after(&gw, "evt_during_0").await;
    assert_eq!(down, (503, true), "503 + Retry-After while Redis is down");
    for i in 1..3 {
        assert_eq!(gw.post_stripe(&format!("evt_during_{i}")).await.0, 503);
    }
    let (status, body) = gw.readyz().await;
    assert_eq!(status, 503, "/readyz while Redis is down: {body}");
    assert!(body.contains("redis_unavailable"), "{body}");

    redis.restart().await;
    let back = tokio::time::Instant::now();
    loop {
        if gw.post_stripe("evt_after_0").await.0 == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "service did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("accepting again {:?} after Redis came back", back.elapsed());
    assert_eq!(gw.readyz().await.0, 200, "/readyz once Redis is back");
    accepted.push("evt_after_0".into());
    for i in 0..3 {
        // The senders' retries of what was refused are accepted now.
        let id = format!("evt_during_{i}");
        assert_eq!(gw.post_stripe(&id).await.0, 200);
        accepted.push(id);
    }

    let sink = Sink::start_at(port).await;
    let got = sink.wait_for(accepted.len(), Duration::from_secs(30)).await;
    let bodies: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    for id in &accepted {
        assert!(
            bodies.iter().any(|b| b.contains(&format!("\"{id}\""))),
            "{id} was lost"
        );
    }
    gw.stop().await;
}

/// Posts one Stripe event; returns its status and whether a Retry-After header came with it.
async fn post_with_retry_after(gw: &Gateway, id: &str) -> (u16, bool) {
    let url = gw.url("/webhooks/stripe");
    let resp = send_stripe(&gw.client, &url, STRIPE_SECRET, id)
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.headers().contains_key("retry-after"),
    )
}

/// The start-up check (`Redis::check_persistence`) reads what a real Redis says: the warning
/// "Redis has appendonly no" is for exactly the first case.
#[tokio::test]
async fn persistence_is_read_from_a_real_redis() {
    use hookgate::redis_conn::{Persistence, Redis};
    let cases: [(&'static [&'static str], Persistence); 3] = [
        (&["--appendonly", "no"], Persistence::NoAof),
        (
            &["--appendonly", "yes", "--appendfsync", "everysec"],
            Persistence::LazyFsync("everysec".into()),
        ),
        (AOF_ALWAYS, Persistence::Always),
    ];
    for (args, want) in cases {
        let server = PrivateRedis::start_with(args).await;
        let redis = Redis::connect(&server.url(), "hgtest", Duration::from_secs(5)).unwrap();
        assert_eq!(redis.persistence().await.unwrap(), want, "{args:?}");
    }
}
