//! Ordered delivery's cost: delivery throughput of one lane on the embedded store, unordered and
//! ordered (`order_by`) with 1, 10 and 1,000 distinct keys, in the same run, against an upstream
//! that answers after a small delay (an ordered key allows one attempt at a time, so its
//! throughput is bounded by the upstream's latency, and a lane's by `concurrency` × keys).
//!
//! Each row queues events with the library (no ingest in the measurement), starts the gateway
//! in this process on that queue, and counts what the upstream answered over the row's window.
//!
//! `cargo bench --bench ordering`; `HOOKGATE_BENCH_SECS` (default 5) sets each row's window,
//! `HOOKGATE_BENCH_DELAY_MS` (default 1) the upstream's answer delay, `HOOKGATE_BENCH_EVENTS`
//! (default 60000) the events queued per row. The data directory is a temp dir (`TMPDIR`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The route's upstream `concurrency` (hookgate's default).
const CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let secs: u64 = std::env::var("HOOKGATE_BENCH_SECS").map_or(Ok(5), |s| s.parse())?;
    let delay: u64 = std::env::var("HOOKGATE_BENCH_DELAY_MS").map_or(Ok(1), |s| s.parse())?;
    let events: u64 = std::env::var("HOOKGATE_BENCH_EVENTS").map_or(Ok(60_000), |s| s.parse())?;
    let (delay, window) = (Duration::from_millis(delay), Duration::from_secs(secs));
    println!(
        "embedded store, upstream answers after {} ms, concurrency {CONCURRENCY}, {secs} s per row, {events} events queued per row",
        delay.as_millis()
    );
    println!(
        "{:<10}|{:>7} |{:>12} |{:>13}",
        "lane", "keys", "delivered/s", "vs unordered"
    );
    let mut unordered = None;
    for keys in [None, Some(1), Some(10), Some(1000)] {
        let dir = tempfile::tempdir()?;
        let rate = row(dir.path(), keys, events, delay, window).await?;
        let base = *unordered.get_or_insert(rate);
        let (name, n) = match keys {
            None => ("unordered", "-".to_owned()),
            Some(k) => ("ordered", k.to_string()),
        };
        println!(
            "{name:<10}|{n:>7} |{rate:>12.0} |{:>12.0}%",
            100.0 * rate / base
        );
    }
    Ok(())
}

/// One row: `events` queued (over `keys` order keys, or unordered), then the gateway's
/// deliveries per second over `window`, after a short warm-up.
async fn row(
    dir: &Path,
    keys: Option<u64>,
    events: u64,
    delay: Duration,
    window: Duration,
) -> Result<f64, Error> {
    let data = dir.join("data");
    common::prefill(&data, events, |i| hookgate::queue::Event {
        order_key: keys.map(|k| format!("cus_{}", i % k)),
        ..common::event(i)
    })
    .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let sink = listener.local_addr()?;
    let answered = Arc::new(AtomicU64::new(0));
    let sink_task = tokio::spawn(serve(listener, delay, Arc::clone(&answered)));
    let order = match keys {
        Some(_) => r#"order_by = "/data/object/customer""#,
        None => "",
    };
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
insecure_http = true
[storage]
path = "{data}"
[[route]]
name = "bench"
path = "/webhooks/bench"
scheme = "stripe"
secrets = ["whsec_bench"]
{order}
upstream = {{ url = "http://{sink}/hooks", concurrency = {CONCURRENCY} }}
"#,
        data = data.display()
    );
    let file = dir.join("hookgate.toml");
    std::fs::write(&file, config)?;
    let config = hookgate::config::Config::load(&file)?;
    let listeners = hookgate::Listeners {
        ingress: TcpListener::bind("127.0.0.1:0").await?,
        admin: TcpListener::bind("127.0.0.1:0").await?,
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let gateway = tokio::spawn(hookgate::run(config, listeners, rx));
    // Warm-up: connections opened, the first keys in flight.
    while answered.load(Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start, before) = (Instant::now(), answered.load(Relaxed));
    tokio::time::sleep(window).await;
    let done = answered.load(Relaxed) - before;
    let rate = done as f64 / start.elapsed().as_secs_f64();
    if answered.load(Relaxed) >= events {
        eprintln!("warning: the lane drained before the window ended; raise HOOKGATE_BENCH_EVENTS");
    }
    stop.send(true)?;
    gateway.await??;
    sink_task.abort();
    Ok(rate)
}

/// The upstream: drains the body, waits `delay`, answers 200, counts.
async fn serve(listener: TcpListener, delay: Duration, answered: Arc<AtomicU64>) {
    async fn answer(
        req: Request<Incoming>,
        delay: Duration,
        answered: Arc<AtomicU64>,
    ) -> Result<Response<Full<Bytes>>, hyper::Error> {
        req.into_body().collect().await?;
        tokio::time::sleep(delay).await;
        answered.fetch_add(1, Relaxed);
        Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
    }
    while let Ok((tcp, _)) = listener.accept().await {
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let svc = hyper::service::service_fn(move |r| answer(r, delay, Arc::clone(&answered)));
            http.serve_connection(TokioIo::new(tcp), svc).await.ok();
        });
    }
}
