//! End-to-end ingest: hookgate (TLS, Stripe verification, dedup, durable enqueue, delivery to a
//! sink) on each storage backend, against a baseline TLS server that reads the body and answers
//! 200 with no verification and no durability — what an app that "just answers 200" costs — and
//! a `proxy` baseline that forwards each request to a sink with hookgate's own upstream client
//! before answering: the two HTTP exchanges every hookgate event makes, with nothing verified or
//! stored, so the floor under hookgate's CPU per event on this machine. All are measured in the
//! same run, one after the other at each concurrency, so machine noise hits them alike.
//!
//! `cargo bench --bench gateway`; `HOOKGATE_BENCH_SECS` (default 5) sets each row's duration,
//! `HOOKGATE_BENCH_CONNS` (default `1,16,64`) the concurrent connections, and
//! `HOOKGATE_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`) the Redis of the `redis` rows
//! (skipped when none answers). `HOOKGATE_BENCH_LOG=json` (or `text`) has hookgate log as
//! `hookgate serve` does, into a pipe. `HOOKGATE_BENCH_RATE=8000` offers the measured rows that
//! many requests per second in all, spread over the connections, instead of back to back (below
//! saturation each event pays its own wake-ups: docs/performance.md, 2026-12-07).
//! `HOOKGATE_BENCH_BACKLOG=1000000` runs the standing-backlog scenario instead: that many events
//! queued, the upstream down (see `backlog`). The embedded data directory is a temp dir
//! (`TMPDIR` picks the disk whose fsync is measured).
//!
//! Each server runs in a child process (this binary re-executed with `HOOKGATE_BENCH_ROLE`), so
//! its CPU time, its threads' sleeps (voluntary context switches) and its peak memory are read
//! from its own `/proc/<pid>/` apart from the load generator's. The load generator and the
//! sinks (hookgate's upstreams) run in this process.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const ROLE: &str = "HOOKGATE_BENCH_ROLE";
const DIR: &str = "HOOKGATE_BENCH_DIR";
/// `text` or `json`: hookgate logs as `hookgate serve` does, its stderr a pipe this process
/// drains; unset, no subscriber is installed.
const LOG: &str = "HOOKGATE_BENCH_LOG";
const SECRET: &str = "whsec_bench_stripe";
/// File in the bench directory naming the `proxy` baseline's upstream (its sink's URL).
const PROXY_UPSTREAM: &str = "proxy.upstream";
/// Request body size: a typical Stripe event.
const BODY: usize = 1024;

/// Next event id; unique across rows and targets so hookgate never answers "duplicate".
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// `HOOKGATE_BENCH_RATE`: requests per second offered by a measured row, all connections
/// together; 0 = back to back.
static RATE: AtomicU64 = AtomicU64::new(0);

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The gateway binary's allocator (src/main.rs), so the children measure what it runs.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    match std::env::var(ROLE) {
        Ok(role) => child(&role, Path::new(&std::env::var(DIR)?)).await,
        Err(_) => drive().await,
    }
}

/// Child side: bind 127.0.0.1:0, print the port, serve until stdin closes (the parent is done).
async fn child(role: &str, dir: &Path) -> Result<(), Error> {
    let ingress = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", ingress.local_addr()?.port());
    let stdin_closed = async { tokio::io::stdin().read_to_end(&mut Vec::new()).await };
    if role == "hookgate" {
        let _log = match std::env::var(LOG).as_deref() {
            Ok("text") => Some(hookgate::logging::init(hookgate::logging::Format::Text)),
            Ok("json") => Some(hookgate::logging::init(hookgate::logging::Format::Json)),
            _ => None,
        };
        let config = hookgate::config::Config::load(&dir.join("hookgate.toml"))?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let listeners = hookgate::Listeners { ingress, admin };
        let gateway = tokio::spawn(hookgate::run(config, listeners, rx));
        stdin_closed.await?;
        stop.send(true)?;
        return Ok(gateway.await??);
    }
    // The baselines get hookgate's own rustls settings (TLS 1.3/1.2, ring, ALPN h2 + http/1.1).
    let tls = hookgate::server::tls::load_pair(&dir.join("bench.crt"), &dir.join("bench.key"))?;
    let tls = Some(TlsAcceptor::from(tls));
    match role {
        "proxy" => {
            let upstream: http::Uri = std::fs::read_to_string(dir.join(PROXY_UPSTREAM))?.parse()?;
            let client = hookgate::deliver::forward::client();
            let forward = move |req| forward(req, client.clone(), upstream.clone());
            tokio::spawn(serve(ingress, tls, forward));
        }
        _ => drop(tokio::spawn(serve_200(ingress, tls, Arc::default()))),
    }
    stdin_closed.await?;
    Ok(())
}

/// The `proxy` baseline's handler: the body forwarded to the sink with hookgate's own upstream
/// client, and 200 once the sink answered — a plain TLS reverse proxy, nothing verified, nothing
/// stored: the two HTTP exchanges every hookgate event costs too, and nothing else.
async fn forward(
    req: Request<Incoming>,
    client: hookgate::deliver::forward::HttpClient,
    upstream: http::Uri,
) -> Result<Response<Full<Bytes>>, Error> {
    let (parts, body) = req.into_parts();
    let mut out = Request::new(Full::new(body.collect().await?.to_bytes()));
    *out.method_mut() = http::Method::POST;
    *out.uri_mut() = upstream;
    *out.headers_mut() = parts.headers;
    let answer = client.request(out).await?;
    let status = answer.status();
    answer.into_body().collect().await?;
    Ok(accepted(status))
}

/// The answer of both baselines: the status given, hookgate's JSON body.
fn accepted(status: http::StatusCode) -> Response<Full<Bytes>> {
    let mut ok = Response::new(Full::new(Bytes::from_static(br#"{"status":"accepted"}"#)));
    *ok.status_mut() = status;
    let json = header::HeaderValue::from_static("application/json");
    ok.headers_mut().insert(header::CONTENT_TYPE, json);
    ok
}

/// The baseline server, and (without TLS) hookgate's upstream sink: the same hyper-util auto
/// connection builder hookgate uses, with a handler that only drains the body and answers 200.
async fn serve_200(listener: TcpListener, tls: Option<TlsAcceptor>, answered: Arc<AtomicU64>) {
    async fn answer_200(
        req: Request<Incoming>,
        answered: Arc<AtomicU64>,
    ) -> Result<Response<Full<Bytes>>, Error> {
        req.into_body().collect().await?;
        answered.fetch_add(1, Relaxed);
        Ok(accepted(http::StatusCode::OK))
    }
    serve(listener, tls, move |r| answer_200(r, Arc::clone(&answered))).await;
}

/// Serves `handle` on every connection, over TLS when `tls` is given.
async fn serve<H, F>(listener: TcpListener, tls: Option<TlsAcceptor>, handle: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Error>> + Send + 'static,
{
    while let Ok((tcp, _)) = listener.accept().await {
        let (tls, handle) = (tls.clone(), handle.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let svc = hyper::service::service_fn(handle);
            match tls {
                None => http.serve_connection(TokioIo::new(tcp), svc).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => http.serve_connection(TokioIo::new(tls), svc).await,
                    Err(_) => return,
                },
            }
            .ok();
        });
    }
}

/// One server under test: its child process, address, and (for hookgate) its sink's counter.
struct Target {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    /// Deliveries received by this target's sink; None for the baseline (it delivers nothing).
    delivered: Option<Arc<AtomicU64>>,
    /// Events this target answered `accepted`, warm-up included.
    accepted: u64,
}

/// What one row measured on one target.
struct Row {
    rps: f64,
    lat: Vec<u32>,
    errors: u64,
    backlog: Option<u64>,
    drain_s: Option<f64>,
    cpu_us: f64,
    /// Times a thread of the server went to sleep (voluntary context switches), per event.
    waits: f64,
    peak_mib: f64,
}

async fn drive() -> Result<(), Error> {
    let secs = std::env::var("HOOKGATE_BENCH_SECS").map_or(Ok(5), |s| s.parse())?;
    let conns = std::env::var("HOOKGATE_BENCH_CONNS").unwrap_or_else(|_| "1,16,64".into());
    let conns: Vec<usize> = conns.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let redis_url = std::env::var("HOOKGATE_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if let Ok(rate) = std::env::var("HOOKGATE_BENCH_RATE") {
        RATE.store(rate.parse()?, Relaxed);
    }

    let dir = tempfile::tempdir()?;
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    std::fs::write(dir.path().join("bench.crt"), pair.cert.pem())?;
    std::fs::write(
        dir.path().join("bench.key"),
        pair.signing_key.serialize_pem(),
    )?;
    if let Ok(n) = std::env::var("HOOKGATE_BENCH_BACKLOG") {
        return backlog(dir.path(), n.parse()?, Duration::from_secs(secs)).await;
    }
    let mut targets = vec![
        Target::start("baseline", dir.path(), None).await?,
        Target::proxy(dir.path()).await?,
    ];
    targets.push(Target::start("embedded", dir.path(), Some(storage_embedded(dir.path()))).await?);
    let prefix = format!("hgbench{}", std::process::id());
    let redis = redis_answers(&redis_url).await;
    match redis {
        true => {
            let storage = storage_redis(&redis_url, &prefix);
            targets.push(Target::start("redis", dir.path(), Some(storage)).await?);
        }
        false => println!("(no Redis answers at {redis_url}: the redis rows are skipped)"),
    }
    let tls = client_tls(&dir.path().join("bench.crt"))?;
    // Warm up each (connections, allocator, file growth); not reported.
    for t in &mut targets {
        let (_, warm, _) = load(t.addr, &tls, 4, Duration::from_secs(1)).await;
        t.accepted += warm.len() as u64;
        t.drain().await;
    }
    let reset = targets.iter().all(|t| reset_peak(&t.child));
    header(secs, reset)?;
    let mut verdicts = Vec::new();
    for &n in &conns {
        let mut base_rps = f64::NAN;
        for t in &mut targets {
            let row = t.row(&tls, n, Duration::from_secs(secs)).await;
            print_row(t.name, n, &row);
            if t.delivered.is_none() {
                base_rps = row.rps;
            } else {
                verdicts.push(format!(
                    "{n:>3} conns: {:<8} {:>7.0} req/s = {:.2}x the baseline's {:.0}; {:.1} µs CPU per event",
                    t.name, row.rps, row.rps / base_rps, base_rps, row.cpu_us
                ));
            }
        }
    }
    verdicts.iter().for_each(|v| println!("{v}"));
    for t in &mut targets {
        t.stop().await?;
    }
    if redis {
        // Its dedup records would otherwise sit in the shared Redis for their whole 24 h TTL.
        clean_redis(&redis_url, &prefix).await?;
    }
    Ok(())
}

impl Target {
    /// Starts a server child: the baseline when `storage` is None, else hookgate with that
    /// `[storage]` block and a sink of its own in this process.
    async fn start(name: &'static str, dir: &Path, storage: Option<String>) -> Result<Self, Error> {
        Self::start_with(name, dir, storage, true).await
    }

    /// Like `start`; without `sink` hookgate's upstream is a closed port (it delivers nothing,
    /// its rows do not wait for a drain).
    async fn start_with(
        name: &'static str,
        dir: &Path,
        storage: Option<String>,
        sink: bool,
    ) -> Result<Self, Error> {
        let Some(storage) = storage else {
            let (child, addr) = spawn_server("baseline", dir).await?;
            return Ok(Target {
                name,
                child,
                addr,
                delivered: None,
                accepted: 0,
            });
        };
        let (sink_addr, delivered) = Self::sink(sink).await?;
        let own = dir.join(name);
        std::fs::create_dir_all(&own)?;
        let d = dir.display();
        // Defaults otherwise: upstream concurrency 16, no rate limit, 5 min timestamp tolerance.
        let config = format!(
            r#"[server]
listen = "127.0.0.1:0"
tls = {{ cert = "{d}/bench.crt", key = "{d}/bench.key" }}
{storage}
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["{SECRET}"]
upstream = {{ url = "http://{sink_addr}/hooks/stripe" }}
"#
        );
        std::fs::write(own.join("hookgate.toml"), config)?;
        let (child, addr) = spawn_server("hookgate", &own).await?;
        Ok(Target {
            name,
            child,
            addr,
            delivered: sink.then_some(delivered),
            accepted: 0,
        })
    }

    /// A sink (hookgate's upstream) in this process and the count of what it received; without
    /// `up`, a port that refuses connections.
    async fn sink(up: bool) -> Result<(SocketAddr, Arc<AtomicU64>), Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let delivered = Arc::new(AtomicU64::new(0));
        match up {
            true => drop(tokio::spawn(serve_200(
                listener,
                None,
                Arc::clone(&delivered),
            ))),
            false => drop(listener), // refused from now on: the upstream is down
        }
        Ok((addr, delivered))
    }

    /// The `proxy` baseline: a TLS server that forwards each request to a sink of its own and
    /// answers once the sink did.
    async fn proxy(dir: &Path) -> Result<Self, Error> {
        let (sink_addr, delivered) = Self::sink(true).await?;
        let upstream = format!("http://{sink_addr}/hooks/proxy");
        std::fs::write(dir.join(PROXY_UPSTREAM), upstream)?;
        let (child, addr) = spawn_server("proxy", dir).await?;
        Ok(Target {
            name: "proxy",
            child,
            addr,
            delivered: Some(delivered),
            accepted: 0,
        })
    }

    /// One row: load for `run`, then (hookgate) wait for the sink to get every accepted event;
    /// the CPU figure covers both, so delivery is paid for by the events it delivers.
    async fn row(&mut self, tls: &TlsConnector, conns: usize, run: Duration) -> Row {
        reset_peak(&self.child);
        let cpu0 = cpu_us(&self.child);
        let waits0 = sleeps(&self.child);
        let pace = match RATE.load(Relaxed) {
            0 => None,
            rate => Some(Duration::from_secs_f64(conns as f64 / rate as f64)),
        };
        let (rps, lat, errors) = load_paced(self.addr, tls, conns, run, pace).await;
        self.accepted += lat.len() as u64;
        let backlog = self
            .delivered
            .as_ref()
            .map(|d| self.accepted.saturating_sub(d.load(Relaxed)));
        let drain_s = match self.delivered {
            Some(_) => Some(self.drain().await),
            None => None,
        };
        let cpu = cpu_us(&self.child).saturating_sub(cpu0);
        let peak_mib = status_kib(&self.child, "VmHWM:") as f64 / 1024.0;
        let cpu_us = cpu as f64 / lat.len().max(1) as f64;
        let waits = sleeps(&self.child).saturating_sub(waits0) as f64 / lat.len().max(1) as f64;
        Row {
            rps,
            lat,
            errors,
            backlog,
            drain_s,
            cpu_us,
            waits,
            peak_mib,
        }
    }

    /// Waits (at most 60 s) until the sink has every accepted event; returns the seconds waited.
    async fn drain(&self) -> f64 {
        let Some(delivered) = &self.delivered else {
            return 0.0;
        };
        let t = Instant::now();
        while delivered.load(Relaxed) < self.accepted && t.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if delivered.load(Relaxed) < self.accepted {
            println!(
                "{}: {} of {} accepted events delivered after 60 s",
                self.name,
                delivered.load(Relaxed),
                self.accepted
            );
        }
        t.elapsed().as_secs_f64()
    }

    async fn stop(&mut self) -> Result<(), Error> {
        drop(self.child.stdin.take()); // EOF: the child stops (hookgate drains and flushes)
        tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await??;
        if let Some(d) = &self.delivered {
            println!(
                "{}: {} of {} accepted events delivered",
                self.name,
                d.load(Relaxed),
                self.accepted
            );
        }
        Ok(())
    }
}

fn storage_embedded(dir: &Path) -> String {
    format!("[storage]\npath = \"{}/embedded-data\"", dir.display())
}

fn storage_redis(url: &str, prefix: &str) -> String {
    format!("[storage]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"")
}

async fn redis_answers(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let conn = client.get_multiplexed_async_connection();
    matches!(
        tokio::time::timeout(Duration::from_secs(2), conn).await,
        Ok(Ok(_))
    )
}

/// A standing backlog (the upstream down): ingest at 64 connections on an empty queue and on
/// one holding `n` events, the ready time of a gateway started on that queue, and both peaks.
async fn backlog(dir: &Path, n: u64, secs: Duration) -> Result<(), Error> {
    let data = dir.join("backlog-data");
    let t = Instant::now();
    common::prefill(&data, n, |i| hookgate::queue::Event {
        route: "stripe".into(),
        id: format!("evt_backlog_{i:012}"),
        ..common::event(i)
    })
    .await?;
    let fill_s = t.elapsed().as_secs_f64();
    println!("prefilled {n} queued events of {BODY} B in {fill_s:.1} s (library enqueue_all)");
    let file_mib = std::fs::metadata(data.join("hookgate.redb"))?.len() as f64 / 1048576.0;
    let tls = client_tls(&dir.join("bench.crt"))?;
    header(secs.as_secs(), true)?;
    let empty = storage_embedded(&dir.join("empty"));
    let full = format!("[storage]\npath = \"{}\"", data.display());
    for (name, storage) in [("empty", empty), ("backlog", full)] {
        let started = Instant::now();
        let mut t = Target::start_with(name, dir, Some(storage), false).await?;
        ready(t.addr, &tls).await?;
        let ready_s = started.elapsed().as_secs_f64();
        let row = t.row(&tls, 64, secs).await;
        print_row(name, 64, &row);
        let rss = status_kib(&t.child, "VmRSS:") as f64 / 1024.0;
        println!("{name}: ready {ready_s:.2} s after start; RSS after the row {rss:.1} MiB");
        t.stop().await?;
    }
    println!("backlog file: {file_mib:.0} MiB");
    Ok(())
}

/// Returns once `addr` answers a signed event `200 accepted` (polled every 10 ms, 60 s at most).
async fn ready(addr: SocketAddr, tls: &TlsConnector) -> Result<(), Error> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        let (_, lat, _) = load(addr, tls, 1, Duration::from_millis(1)).await;
        if !lat.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("never ready".into())
}

/// Deletes every key under `prefix`, a SCAN page at a time (KEYS would block the server).
async fn clean_redis(url: &str, prefix: &str) -> Result<(), Error> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(keys).exec_async(&mut conn).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

fn header(secs: u64, reset: bool) -> Result<(), Error> {
    let load_avg = std::fs::read_to_string("/proc/loadavg")?;
    let load_avg = load_avg.split(' ').take(3).collect::<Vec<_>>().join(" ");
    println!("Stripe events, {BODY} B bodies, HTTP/1.1 keep-alive over TLS, {secs} s per row");
    println!("load average before the run: {load_avg}");
    let (cpu, wall) = wake_round_trip();
    println!(
        "one thread waking another and being woken back costs {cpu:.1} µs of CPU here ({wall:.1} µs wall)"
    );
    match RATE.load(Relaxed) {
        0 => println!("each connection sends back to back"),
        rate => println!("offered rate: {rate} req/s per row, all connections together"),
    }
    let since = ["since its start", "during the row (clear_refs)"][usize::from(reset)];
    println!(
        "peak MiB = the server's VmHWM {since}; backlog = accepted, not yet delivered at the row's end;"
    );
    println!(
        "drain s = time until the sink had them all; CPU µs/ev = server process CPU (user + sys) over load and drain / accepted;"
    );
    println!(
        "waits/ev = times a server thread went to sleep (voluntary context switches, all threads) / accepted"
    );
    println!(
        "{:<9}|{:>6} |{:>8} |{:>7} |{:>7} |{:>7} |{:>7} |{:>8} |{:>8} |{:>10} |{:>8} |{:>9}",
        "target",
        "conns",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "backlog",
        "drain s",
        "CPU µs/ev",
        "waits/ev",
        "peak MiB"
    );
    Ok(())
}

fn print_row(name: &str, n: usize, r: &Row) {
    let (p50, p99, max) = (ms(&r.lat, 0.5), ms(&r.lat, 0.99), ms(&r.lat, 1.0));
    let backlog = r.backlog.map_or("-".into(), |b| b.to_string());
    let drain = r.drain_s.map_or("-".into(), |d| format!("{d:.2}"));
    println!(
        "{name:<9}|{n:>6} |{:>8.0} |{p50:>7.2} |{p99:>7.2} |{max:>7.2} |{:>7} |{backlog:>8} |{drain:>8} |{:>10.1} |{:>8.2} |{:>9.1}",
        r.rps, r.errors, r.cpu_us, r.waits, r.peak_mib
    );
}

/// A process's CPU time so far (user + system), in µs, from `/proc/<pid>/stat`.
fn cpu_us(child: &Child) -> u64 {
    cpu_us_of(child.id().unwrap_or(0))
}

fn cpu_us_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    let stat = stat.unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 1_000_000 / CLOCK_TICKS
}

/// CPU and wall time, in µs, of one round trip between two threads that sleep until woken:
/// two sleeps and two wake-ups, what a hand-off from one of the gateway's threads to another
/// and back costs on this machine whatever the work handed over. On a VM this is far more than
/// on bare metal (docs/performance.md, "2026-12-07, night"). Measured in this process before
/// any server starts, while its own runtime is idle.
fn wake_round_trip() -> (f64, f64) {
    const N: u32 = 5_000;
    let (ping, ping_rx) = std::sync::mpsc::sync_channel::<u32>(0);
    let (pong, pong_rx) = std::sync::mpsc::sync_channel::<u32>(0);
    let echo = std::thread::spawn(move || {
        for v in ping_rx {
            if pong.send(v).is_err() {
                break;
            }
        }
    });
    let (cpu0, started) = (cpu_us_of(std::process::id()), Instant::now());
    for i in 0..N {
        if ping.send(i).is_err() || pong_rx.recv().is_err() {
            break;
        }
    }
    let cpu = cpu_us_of(std::process::id()).saturating_sub(cpu0);
    let wall = started.elapsed();
    drop(ping);
    let _ = echo.join();
    let n = f64::from(N);
    (cpu as f64 / n, wall.as_secs_f64() * 1e6 / n)
}

/// Voluntary context switches of every thread of a process so far, from
/// `/proc/<pid>/task/*/status`: each is a thread going to sleep to be woken again, which on a
/// VM costs far more than the work many of them wait for (docs/performance.md, "2026-12-07,
/// night"). Threads that ended during a row take their count with them.
fn sleeps(child: &Child) -> u64 {
    let dir = format!("/proc/{}/task", child.id().unwrap_or(0));
    let Ok(tasks) = std::fs::read_dir(dir) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            let line = s
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (USER_HZ is fixed by the kernel ABI).
const CLOCK_TICKS: u64 = 100;

/// The `q` quantile of sorted microsecond latencies, in milliseconds.
fn ms(sorted: &[u32], q: f64) -> f64 {
    let i = (sorted.len().saturating_sub(1) as f64 * q) as usize;
    sorted.get(i).map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
}

/// Runs `conns` connections sending back to back for `run`: (requests/s, sorted latencies in
/// µs of the successful ones, errors).
async fn load(
    addr: SocketAddr,
    tls: &TlsConnector,
    conns: usize,
    run: Duration,
) -> (f64, Vec<u32>, u64) {
    load_paced(addr, tls, conns, run, None).await
}

/// Like `load`; with `pace`, each connection sends at most one request per `pace`.
async fn load_paced(
    addr: SocketAddr,
    tls: &TlsConnector,
    conns: usize,
    run: Duration,
    pace: Option<Duration>,
) -> (f64, Vec<u32>, u64) {
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(addr, tls.clone(), start + run, pace)))
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.expect("worker");
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    (
        lat.len() as f64 / start.elapsed().as_secs_f64(),
        lat,
        errors,
    )
}

/// One keep-alive connection, one request at a time; reconnects after a transport error.
/// Anything but `200 … "accepted"` is an error (a duplicate would mean the ids are not unique).
async fn worker(
    addr: SocketAddr,
    tls: TlsConnector,
    until: Instant,
    pace: Option<Duration>,
) -> (Vec<u32>, u64) {
    let (mut lat, mut errors, mut conn) = (Vec::new(), 0, None);
    // Connections start spread over one period, so a paced row offers a steady rate.
    let mut next = Instant::now() + pace.map_or(Duration::ZERO, |p| p.mul_f64(rand::random()));
    while Instant::now() < until {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next.into()).await;
            // Behind schedule (a slow answer) is not made up by a burst.
            next = (next + pace).max(Instant::now());
        }
        let mut sender = match conn.take() {
            Some(s) => s,
            None => match connect(addr, &tls).await {
                Ok(s) => s,
                Err(_) => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let req = signed(NEXT_ID.fetch_add(1, Relaxed));
        let t = Instant::now();
        let sent = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let ok = resp.status() == http::StatusCode::OK;
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(ok && body.windows(10).any(|w| w == b"\"accepted\""))
        };
        match sent.await {
            Ok(true) => lat.push(t.elapsed().as_micros() as u32),
            Ok(false) => errors += 1,
            Err(_) => {
                errors += 1;
                continue; // drop the connection, open a new one
            }
        }
        conn = Some(sender);
    }
    (lat, errors)
}

async fn connect(addr: SocketAddr, tls: &TlsConnector) -> Result<SendRequest<Full<Bytes>>, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tls.connect(ServerName::try_from("localhost")?, tcp).await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// A Stripe event with id `n`, padded to `BODY` bytes, signed as Stripe documents it:
/// `Stripe-Signature: t={ts},v1=hex(HMAC-SHA256(secret, "{ts}.{body}"))`.
fn signed(n: u64) -> Request<Full<Bytes>> {
    let head = format!(
        r#"{{"id":"evt_bench_{n:012}","object":"event","type":"invoice.paid","data":{{"object":{{"amount":4200,"description":""#
    );
    let tail = r#""}}}"#;
    let pad = "x".repeat(BODY.saturating_sub(head.len() + tail.len()));
    let body = Bytes::from(format!("{head}{pad}{tail}"));
    let ts = SystemTime::UNIX_EPOCH.elapsed().expect("clock").as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&body);
    let sig = hex::encode(mac.finalize().into_bytes());
    Request::post("/webhooks/stripe")
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/json")
        .header("stripe-signature", format!("t={ts},v1={sig}"))
        .body(Full::new(body))
        .expect("valid request")
}

/// The client trusts the generated certificate only (real verification) and offers http/1.1.
fn client_tls(cert: &Path) -> Result<TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert)? {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(tls)))
}

/// Re-executes this binary as a server; returns it (killed if dropped) and its address.
async fn spawn_server(role: &str, dir: &Path) -> Result<(Child, SocketAddr), Error> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, role)
        .env(DIR, dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(match std::env::var_os(LOG) {
            Some(_) => std::process::Stdio::piped(),
            None => std::process::Stdio::inherit(),
        })
        .kill_on_drop(true)
        .spawn()?;
    if let Some(mut stderr) = child.stderr.take() {
        tokio::spawn(async move { tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await });
    }
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let port = lines.next_line().await?.ok_or("no port")?.parse()?;
    Ok((child, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Resets a process's peak RSS (VmHWM) to its current RSS (Linux `clear_refs` value 5).
fn reset_peak(child: &Child) -> bool {
    let path = format!("/proc/{}/clear_refs", child.id().unwrap_or(0));
    std::fs::write(path, "5").is_ok()
}

fn status_kib(child: &Child, field: &str) -> u64 {
    let path = format!("/proc/{}/status", child.id().unwrap_or(0));
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or("");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
