//! The accept loop shared by the ingress and admin listeners.
//!
//! A connection permit is taken *before* `accept`, so at most `max_connections` sockets are open and
//! excess clients wait in the kernel backlog instead of costing memory. A connection from an
//! address that already holds `max_per_ip` is closed at once, so one client cannot take every
//! permit. Each connection's deadlines live in `conn`. On shutdown the loop stops accepting and
//! in-flight connections get `grace` to finish.

pub mod acme;
mod conn;
pub mod per_ip;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use conn::Conn;
use per_ip::PerIp;

/// Concurrent HTTP/2 streams per connection; bodies are bounded by the ingress budget anyway.
const H2_MAX_STREAMS: u32 = 100;
/// HTTP/2 header block limit (hyper's default, stated): webhook headers are small.
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;
/// HTTP/1 read buffer per connection (hyper's default is 400 KiB): bounds what a request head can
/// occupy, and is plenty for webhook heads.
const H1_MAX_BUF: usize = 64 * 1024;
/// The production HTTP/2 keep-alive period ([`Limits::h2_ping`]): long enough to cost nothing on a
/// busy connection, short enough that a vanished peer is found within a minute.
pub const H2_PING: Duration = Duration::from_secs(20);

/// Listener settings.
#[derive(Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Connections per client address (IPv6: /64); `None` for no per-address limit.
    pub max_per_ip: Option<usize>,
    /// Peers never limited per address: trusted proxies carry many clients.
    pub per_ip_exempt: Vec<ipnet::IpNet>,
    /// From accept to a complete first request head, TLS handshake included.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    pub grace: Duration,
    /// The largest request body a handler accepts: sizes the HTTP/2 flow-control windows.
    pub max_body: u64,
    /// Every this long an HTTP/2 connection is pinged, and closed when the answer takes longer
    /// than this again: a vanished peer does not hold a connection (and its permit) forever.
    /// [`H2_PING`] in production; tests use a short one.
    pub h2_ping: Duration,
}

/// Serves `listener` until `shutdown` turns true, then drains for at most `limits.grace`.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<tls::Reloadable>>,
    limits: Limits,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = limits
        .max_per_ip
        .map(|n| PerIp::new(n, &limits.per_ip_exempt));
    let builder = builder(&limits);
    let limits = Arc::new(limits);
    let mut open = JoinSet::new();
    while let Some((stream, peer, permit)) = accept(&listener, &permits, &mut shutdown).await {
        while open.try_join_next().is_some() {}
        let slot = match per_ip.as_ref().map(|p| p.admit(peer.ip())).transpose() {
            Ok(slot) => slot.flatten(),
            Err(per_ip::AtLimit) => {
                tracing::debug!(%peer, "too many connections from this address; closed");
                continue;
            }
        };
        let conn = Conn {
            builder: builder.clone(),
            limits: limits.clone(),
            handler: handler.clone(),
            shutdown: shutdown.clone(),
        };
        // The certificate in force when the connection arrives (SIGHUP may swap it).
        let tls = tls.as_ref().map(|t| t.acceptor());
        open.spawn(async move {
            conn.run(stream, peer, tls).await;
            drop((permit, slot));
        });
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.grace, async {
        while open.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

/// The next connection with its permit, or `None` once shutdown begins.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return None,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return None,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => return Some((stream, peer, permit)),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// hyper settings for both protocols; `conn` picks one per connection.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own head timer restarts while a keep-alive connection waits, so it must not be
    // shorter than the idle timeout; the first head is bounded in `conn`.
    builder
        .http1()
        .timer(TokioTimer::new())
        .max_buf_size(H1_MAX_BUF)
        .header_read_timeout(limits.header_timeout.max(limits.idle_timeout));
    let (stream_window, conn_window) = h2_windows(limits.max_body);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(stream_window)
        .initial_connection_window_size(conn_window)
        .max_header_list_size(H2_MAX_HEADER_LIST)
        .keep_alive_interval(limits.h2_ping)
        .keep_alive_timeout(limits.h2_ping);
    builder
}

/// Flow-control windows: a stream may send its whole body unacknowledged up to 1 MiB (64 KiB at
/// least, the protocol's default); a connection four streams' worth, between 1 and 4 MiB. They
/// bound what a peer can push into memory before the ingress reads (and budgets) it.
fn h2_windows(max_body: u64) -> (u32, u32) {
    const KIB: u64 = 1024;
    let stream = max_body.clamp(64 * KIB, 1024 * KIB);
    let conn = (stream * 4).clamp(1024 * KIB, 4096 * KIB);
    (stream as u32, conn as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn h2_windows_follow_max_body_within_bounds() {
        assert_eq!(h2_windows(1), (64 << 10, 1 << 20));
        assert_eq!(h2_windows(512 << 10), (512 << 10, 2 << 20));
        assert_eq!(h2_windows(25_000_000), (1 << 20, 4 << 20));
    }

    /// A server on loopback whose handler never answers (a request stays in flight), with
    /// first-request and idle deadlines far away: only the pings can close a connection.
    async fn pinging_server(h2_ping: Duration) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections: 4,
            max_per_ip: None,
            per_ip_exempt: Vec::new(),
            header_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(300),
            grace: Duration::from_secs(1),
            max_body: 1024,
            h2_ping,
        };
        let (tx, rx) = watch::channel(false);
        let handler = |_req, _peer| std::future::pending::<Response<Full<Bytes>>>();
        tokio::spawn(serve(listener, None, limits, handler, rx));
        (addr, tx)
    }

    /// One HTTP/2 frame: 24-bit length, type, flags, stream id.
    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const ACK: u8 = 1;

    /// Opens an h2 connection (prior knowledge) with one GET in flight.
    async fn h2_with_a_request(addr: SocketAddr) -> TcpStream {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        out.extend(frame(SETTINGS, 0, 0, &[]));
        // HPACK: :method GET, :scheme http, :path /, :authority "a"; END_STREAM | END_HEADERS.
        out.extend(frame(1, 0x5, 1, &[0x82, 0x86, 0x84, 0x41, 0x01, b'a']));
        s.write_all(&out).await.unwrap();
        s
    }

    /// Reads frames for at most `within`, acknowledging the server's SETTINGS (and its PINGs
    /// when `answer`). Returns the PINGs seen and whether the server closed the connection.
    async fn watch_pings(s: &mut TcpStream, answer: bool, within: Duration) -> (usize, bool) {
        let mut pings = 0;
        let read = async {
            loop {
                let mut head = [0u8; 9];
                if s.read_exact(&mut head).await.is_err() {
                    return true;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let mut payload = vec![0u8; len];
                if s.read_exact(&mut payload).await.is_err() {
                    return true;
                }
                let (kind, flags) = (head[3], head[4]);
                let reply = match (kind, flags & ACK) {
                    (SETTINGS, 0) => Some(frame(SETTINGS, ACK, 0, &[])),
                    (PING, 0) => {
                        pings += 1;
                        answer.then(|| frame(PING, ACK, 0, &payload))
                    }
                    _ => None,
                };
                if let Some(reply) = reply
                    && s.write_all(&reply).await.is_err()
                {
                    return true;
                }
            }
        };
        let closed = tokio::time::timeout(within, read).await.unwrap_or(false);
        (pings, closed)
    }

    #[tokio::test]
    async fn h2_pings_close_a_peer_that_stopped_answering_and_keep_one_that_answers() {
        let ping = Duration::from_millis(500);
        let (addr, _stop) = pinging_server(ping).await;
        let mut answering = h2_with_a_request(addr).await;
        let mut silent = h2_with_a_request(addr).await;
        let started = std::time::Instant::now();
        // Both at once: the answering peer must answer every ping from the start. The silent
        // one is pinged at ~0.5 s and, with no answer by ~1 s, closed; the bound leaves room for
        // a loaded machine and stays far below the 300 s deadlines that would otherwise apply.
        let (silent, answering) = tokio::join!(
            async {
                let seen = watch_pings(&mut silent, false, Duration::from_secs(30)).await;
                (seen, started.elapsed())
            },
            // Six ping periods: a peer that keeps answering keeps its connection.
            watch_pings(&mut answering, true, ping * 6),
        );
        let ((pings, closed), took) = silent;
        assert!(closed, "a peer that never answers pings is closed");
        assert!(pings >= 1, "closed by the ping, not by something else");
        assert!(took >= ping, "closed after {took:?}");
        let (pings, closed) = answering;
        assert!(!closed, "a peer that answers its pings stays connected");
        assert!(pings >= 2, "pinged {pings} times");
    }
}
