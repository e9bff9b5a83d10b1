//! Connection lifecycle at the edge: silent, half-open and idle connections are closed on time,
//! and one address holding many connections does not lock other clients out.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::support::*;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How late a close may come on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn gateway(server_keys: &str) -> Gateway {
    let sink = Sink::start().await;
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.server_extra = server_keys.to_owned();
    Gateway::start(o).await
}

async fn short_timeouts() -> Gateway {
    gateway("header_timeout = \"2s\"\nidle_timeout = \"3s\"").await
}

/// A TCP connection to `to` from the local address `from` (any 127.x works on loopback).
pub(crate) async fn tcp_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A TLS connection trusting the test certificate, offering `alpn`.
pub(crate) async fn tls_from(
    dir: &Path,
    from: IpAddr,
    to: SocketAddr,
    alpn: &[u8],
) -> TlsStream<TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("test.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector
        .connect(name, tcp_from(from, to).await)
        .await
        .unwrap()
}

fn local() -> IpAddr {
    [127, 0, 0, 1].into()
}

/// Reads and discards until the server closes; how long that took from `since`.
async fn closed_after<S: AsyncRead + Unpin>(
    mut s: S,
    since: Instant,
    within: Duration,
) -> Duration {
    let mut buf = [0u8; 1024];
    let until_eof = async {
        while let Ok(n) = s.read(&mut buf).await
            && n > 0
        {}
    };
    tokio::time::timeout(within, until_eof)
        .await
        .expect("the server closed the connection in time");
    since.elapsed()
}

/// Asserts the close came at `deadline` (never before it) and at most `SLACK` after.
fn assert_closed_at(what: &str, took: Duration, deadline: Duration) {
    eprintln!("{what}: closed after {took:?}");
    assert!(
        took >= deadline,
        "{what} closed before its deadline: {took:?}"
    );
    assert!(took <= deadline + SLACK, "{what} closed late: {took:?}");
}

/// A signed Stripe POST for a client-side hyper connection; h2 wants the absolute URI.
fn stripe_request(gw: &Gateway, id: &str, absolute: bool) -> http::Request<Full<Bytes>> {
    let body = stripe_body(id);
    let uri = match absolute {
        true => gw.url("/webhooks/stripe"),
        false => "/webhooks/stripe".to_owned(),
    };
    http::Request::post(uri)
        .header("host", format!("localhost:{}", gw.addr.port()))
        .header(
            "stripe-signature",
            stripe_header(STRIPE_SECRET, now(), &body),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// Ways to hold a connection open without ever completing a request.
#[derive(Clone, Copy, Debug)]
enum Stall {
    SilentTls,
    NoTls,
    TlsPartialPreface,
    AdminPartialPreface,
    TlsPartialHead,
}

/// Stalls one connection the `how` way; how long until the server closed it.
async fn stall(how: Stall, gw: (Arc<Path>, SocketAddr, SocketAddr)) -> Duration {
    let (dir, addr, admin) = gw;
    let t = Instant::now();
    let within = HEADER_TIMEOUT + SLACK * 2;
    match how {
        Stall::SilentTls => {
            closed_after(tls_from(&dir, local(), addr, b"h2").await, t, within).await
        }
        Stall::NoTls => closed_after(tcp_from(local(), addr).await, t, within).await,
        Stall::TlsPartialPreface => {
            let mut tls = tls_from(&dir, local(), addr, b"h2").await;
            tls.write_all(&H2_PREFACE[..23]).await.unwrap();
            closed_after(tls, t, within).await
        }
        Stall::AdminPartialPreface => {
            let mut plain = tcp_from(local(), admin).await;
            plain.write_all(&H2_PREFACE[..23]).await.unwrap();
            closed_after(plain, t, within).await
        }
        Stall::TlsPartialHead => {
            let mut tls = tls_from(&dir, local(), addr, b"http/1.1").await;
            let head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n";
            tls.write_all(head).await.unwrap();
            closed_after(tls, t, within).await
        }
    }
}

#[tokio::test]
async fn silent_and_half_open_connections_are_closed_within_header_timeout() {
    let gw = short_timeouts().await;
    let target = (Arc::<Path>::from(gw.dir.path()), gw.addr, gw.admin);
    let mut checks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        for how in [
            Stall::SilentTls,
            Stall::NoTls,
            Stall::TlsPartialPreface,
            Stall::AdminPartialPreface,
            Stall::TlsPartialHead,
        ] {
            let target = target.clone();
            checks.spawn(async move { (how, stall(how, target).await) });
        }
    }
    while let Some(done) = checks.join_next().await {
        let (how, took) = done.unwrap();
        assert_closed_at(&format!("{how:?}"), took, HEADER_TIMEOUT);
    }
    assert_eq!(gw.post_stripe("evt_after_silence").await.0, 200);
    gw.finish().await;
}

#[tokio::test]
async fn h2_connection_without_a_stream_is_closed_within_header_timeout() {
    let gw = short_timeouts().await;
    let t = Instant::now();
    let tls = tls_from(gw.dir.path(), local(), gw.addr, b"h2").await;
    let (_send, conn) = hyper::client::conn::http2::handshake::<_, _, Full<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("preface and SETTINGS exchanged");
    tokio::time::timeout(HEADER_TIMEOUT + SLACK * 2, conn)
        .await
        .expect("the server closed the connection in time")
        .ok();
    assert_closed_at("h2 without a stream", t.elapsed(), HEADER_TIMEOUT);
    gw.finish().await;
}

/// Sends one request on a fresh connection speaking `alpn`, then waits until the server closes
/// it; returns the time since the request was sent (the server's idle clock starts later).
async fn closed_when_idle(gw: &Gateway, alpn: &[u8], id: &str) -> Duration {
    let tls = TokioIo::new(tls_from(gw.dir.path(), local(), gw.addr, alpn).await);
    let sent = Instant::now();
    // The client half is kept: a client drops its connection once no handle can send on it.
    let (conn, _client): (_, Box<dyn std::any::Any>) = if alpn == b"h2" {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), tls)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let resp = send.send_request(stripe_request(gw, id, true)).await;
        assert_eq!(resp.unwrap().status(), 200);
        (conn, Box::new(send))
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(tls).await.unwrap();
        let conn = tokio::spawn(conn);
        let resp = send.send_request(stripe_request(gw, id, false)).await;
        assert_eq!(resp.unwrap().status(), 200);
        (conn, Box::new(send))
    };
    tokio::time::timeout(IDLE_TIMEOUT + SLACK * 2, conn)
        .await
        .expect("the server closed the idle connection in time")
        .ok();
    sent.elapsed()
}

#[tokio::test]
async fn idle_h2_and_h1_connections_are_closed_after_idle_timeout() {
    let gw = short_timeouts().await;
    let h2 = closed_when_idle(&gw, b"h2", "evt_h2_idle").await;
    assert_closed_at("idle h2", h2, IDLE_TIMEOUT);
    let h1 = closed_when_idle(&gw, b"http/1.1", "evt_h1_idle").await;
    assert_closed_at("idle h1 keep-alive", h1, IDLE_TIMEOUT);
    gw.finish().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    // Without the per-address limit, ten silent sockets would hold all eight slots for 10 s.
    let keys = "header_timeout = \"10s\"\nmax_connections = 8\nmax_connections_per_ip = 4";
    let gw = gateway(keys).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp_from(local(), gw.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // let the server count them
    let t = Instant::now();
    let mut over = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let extra = tcp_from(local(), gw.addr).await;
        over.spawn(closed_after(extra, t, Duration::from_secs(3)));
    }
    while let Some(took) = over.join_next().await {
        eprintln!(
            "connection over the per-IP limit closed after {:?}",
            took.unwrap()
        );
    }
    for s in &held {
        let mut probe = [0u8; 1];
        let open =
            matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(open, "a connection within the limit was closed early");
    }
    let other: IpAddr = [127, 0, 0, 2].into();
    let t = Instant::now();
    let tls = tls_from(gw.dir.path(), other, gw.addr, b"http/1.1").await;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(stripe_request(&gw, "evt_other_ip", false))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eprintln!("client from 127.0.0.2 served in {:?}", t.elapsed());
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the other client waited"
    );
    drop(held);
    gw.finish().await;
}
