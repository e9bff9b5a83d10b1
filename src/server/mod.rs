//! The accept loop shared by the ingress and admin listeners.
//!
//! A connection permit is taken *before* `accept`, so at most `max_connections` sockets are open and
//! excess clients wait in the kernel backlog instead of costing memory. A connection from an
//! address that already holds `max_per_ip` is closed at once, so one client cannot take every
//! permit. Each connection's deadlines live in `conn`. On shutdown the loop stops accepting and
//! in-flight connections get `grace` to finish.

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
/// Every this long an HTTP/2 connection is pinged, and closed when the answer takes longer
/// than `H2_PING_TIMEOUT`: a vanished peer does not hold a connection forever.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

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
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
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

    #[test]
    fn h2_windows_follow_max_body_within_bounds() {
        assert_eq!(h2_windows(1), (64 << 10, 1 << 20));
        assert_eq!(h2_windows(512 << 10), (512 << 10, 2 << 20));
        assert_eq!(h2_windows(25_000_000), (1 << 20, 4 << 20));
    }
}
