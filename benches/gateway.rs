//! End-to-end ingest: hookgate (TLS, Stripe verification, dedup, fsync'd enqueue, delivery to a
//! sink) against a baseline TLS server that reads the body and answers 200 with no verification
//! and no durability — what an app that "just answers 200" costs. Both are measured in the same
//! run, one after the other at each concurrency, so machine noise hits them alike.
//!
//! `cargo bench --bench gateway`; `HOOKGATE_BENCH_SECS` (default 5) sets each row's duration and
//! `HOOKGATE_BENCH_CONNS` (default `1,16,64`) the concurrent connections. The data directory is
//! a temp dir (`TMPDIR` picks the disk whose fsync is measured).
//!
//! Each server runs in a child process (this binary re-executed with `HOOKGATE_BENCH_ROLE`), so
//! its peak memory is read from its own `/proc/<pid>/status` apart from the load generator's.
//! The load generator and the sink (hookgate's upstream) run in this process.

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
const SECRET: &str = "whsec_bench_stripe";
/// Request body size: a typical Stripe event.
const BODY: usize = 1024;

/// Requests answered by `answer_200` in this process (in the parent: deliveries to the sink).
static ANSWERED: AtomicU64 = AtomicU64::new(0);
/// Next event id; unique across rows and targets so hookgate never answers "duplicate".
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

type Error = Box<dyn std::error::Error + Send + Sync>;

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
        let config = hookgate::config::Config::load(&dir.join("hookgate.toml"))?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let listeners = hookgate::Listeners { ingress, admin };
        let gateway = tokio::spawn(hookgate::run(config, listeners, rx));
        stdin_closed.await?;
        stop.send(true)?;
        return Ok(gateway.await??);
    }
    // The baseline gets hookgate's own rustls settings (TLS 1.3/1.2, ring, ALPN h2 + http/1.1).
    let tls = hookgate::server::tls::load_pair(&dir.join("bench.crt"), &dir.join("bench.key"))?;
    tokio::spawn(serve_200(ingress, Some(TlsAcceptor::from(tls))));
    stdin_closed.await?;
    Ok(())
}

/// The baseline server, and (without TLS) hookgate's upstream sink: the same hyper-util auto
/// connection builder hookgate uses, with a handler that only drains the body and answers 200.
async fn serve_200(listener: TcpListener, tls: Option<TlsAcceptor>) {
    async fn answer_200(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
        req.into_body().collect().await?;
        ANSWERED.fetch_add(1, Relaxed);
        let mut ok = Response::new(Full::new(Bytes::from_static(br#"{"status":"accepted"}"#)));
        let json = header::HeaderValue::from_static("application/json");
        ok.headers_mut().insert(header::CONTENT_TYPE, json);
        Ok(ok)
    }
    while let Ok((tcp, _)) = listener.accept().await {
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let svc = hyper::service::service_fn(answer_200);
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

async fn drive() -> Result<(), Error> {
    let secs = std::env::var("HOOKGATE_BENCH_SECS").map_or(Ok(5), |s| s.parse())?;
    let conns = std::env::var("HOOKGATE_BENCH_CONNS").unwrap_or_else(|_| "1,16,64".into());
    let conns: Vec<usize> = conns.split(',').map(str::parse).collect::<Result<_, _>>()?;

    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let (crt, key) = (pair.cert.pem(), pair.signing_key.serialize_pem());
    std::fs::write(dir.path().join("bench.crt"), crt)?;
    std::fs::write(dir.path().join("bench.key"), key)?;
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    tokio::spawn(serve_200(sink, None));
    // Defaults otherwise: upstream concurrency 16, no rate limit, 5 min timestamp tolerance.
    let config = format!(
        r#"[server]
listen = "127.0.0.1:0"
tls = {{ cert = "{d}/bench.crt", key = "{d}/bench.key" }}
[storage]
path = "{d}/data"
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["{SECRET}"]
upstream = {{ url = "http://{sink_addr}/hooks/stripe" }}
"#
    );
    std::fs::write(dir.path().join("hookgate.toml"), config)?;
    let mut servers = [
        spawn_server("baseline", dir.path()).await?,
        spawn_server("hookgate", dir.path()).await?,
    ];
    let tls = client_tls(&dir.path().join("bench.crt"))?;
    // Warm up both (connections, allocator, redb file growth); not reported.
    load(servers[0].1, &tls, 4, Duration::from_secs(1)).await;
    let (_, warm, _) = load(servers[1].1, &tls, 4, Duration::from_secs(1)).await;
    let mut accepted = warm.len();
    let reset = servers.iter().all(|(c, _)| reset_peak(c));

    let load_avg = std::fs::read_to_string("/proc/loadavg")?;
    let load_avg = load_avg.split(' ').take(3).collect::<Vec<_>>().join(" ");
    println!("Stripe events, {BODY} B bodies, HTTP/1.1 keep-alive over TLS, {secs} s per row");
    println!("load average before the run: {load_avg}");
    let since = ["since its start", "during the row (clear_refs)"][usize::from(reset)];
    println!("peak MiB = the server's VmHWM {since}; backlog = accepted, not yet delivered");
    println!(
        "{:<9}|{:>6} |{:>8} |{:>7} |{:>7} |{:>7} |{:>7} |{:>8} |{:>9}",
        "target", "conns", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "backlog", "peak MiB"
    );
    let mut verdicts = Vec::new();
    for &n in &conns {
        let mut rates = [0.0; 2];
        for (i, (name, (child, addr))) in ["baseline", "hookgate"].iter().zip(&servers).enumerate()
        {
            reset_peak(child);
            let (rps, lat, errors) = load(*addr, &tls, n, Duration::from_secs(secs)).await;
            let peak = status_kib(child, "VmHWM:") as f64 / 1024.0;
            let backlog = if i == 0 {
                "-".to_string() // the baseline delivers nothing
            } else {
                accepted += lat.len();
                let delivered = ANSWERED.load(Relaxed) as usize;
                accepted.saturating_sub(delivered).to_string()
            };
            rates[i] = rps;
            let (p50, p99, max) = (ms(&lat, 0.5), ms(&lat, 0.99), ms(&lat, 1.0));
            println!(
                "{name:<9}|{n:>6} |{rps:>8.0} |{p50:>7.2} |{p99:>7.2} |{max:>7.2} |{errors:>7} |{backlog:>8} |{peak:>9.1}"
            );
        }
        let pct = 100.0 * rates[1] / rates[0];
        verdicts.push(format!(
            "{n:>3} conns: hookgate {:.0} req/s = {pct:.0} % of the baseline's {:.0} req/s",
            rates[1], rates[0]
        ));
    }
    verdicts.iter().for_each(|v| println!("{v}"));

    // Every accepted event must reach the sink; report how long the backlog took to drain.
    let drain = Instant::now();
    while (ANSWERED.load(Relaxed) as usize) < accepted && drain.elapsed().as_secs() < 60 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "delivered to the sink: {} of {accepted} accepted (warm-up included), {:.1} s after the last row",
        ANSWERED.load(Relaxed),
        drain.elapsed().as_secs_f64()
    );
    for (child, _) in &mut servers {
        drop(child.stdin.take()); // EOF: the child stops (hookgate drains and flushes)
        tokio::time::timeout(Duration::from_secs(20), child.wait()).await??;
    }
    Ok(())
}

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
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(worker(addr, tls.clone(), start + run)))
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
async fn worker(addr: SocketAddr, tls: TlsConnector, until: Instant) -> (Vec<u32>, u64) {
    let (mut lat, mut errors, mut conn) = (Vec::new(), 0, None);
    while Instant::now() < until {
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
        .kill_on_drop(true)
        .spawn()?;
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
