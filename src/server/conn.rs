//! One connection from accept to close: TLS handshake, protocol choice, and the deadlines that close
//! silent, idle and dead connections.
//!
//! The deadlines are kept here rather than left to hyper because hyper has none for the parts an
//! attacker can stall: the protocol sniff, the HTTP/2 preface and SETTINGS, and an HTTP/2
//! connection that never opens a stream. So, from accept:
//! - until the first request head is complete (TLS handshake included): `header_timeout`, then the
//!   socket is dropped;
//! - with no request in flight: `idle_timeout`, then a graceful close (h2 `GOAWAY`);
//! - a graceful close (idle or shutdown) that the peer does not finish is cut off.
//!
//! Dead peers holding a request open are found by HTTP/2 keep-alive pings; h1 bodies are bounded
//! by the ingress `body_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::Limits;
use super::tls::PeerCert;

/// How long a peer gets to finish a graceful close after an idle timeout.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// One accepted connection and what it needs to serve requests.
pub(super) struct Conn<H> {
    pub(super) builder: auto::Builder<TokioExecutor>,
    pub(super) limits: Arc<Limits>,
    pub(super) handler: H,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// Which HTTP version to speak.
enum Proto {
    /// Plain TCP: hyper reads the first bytes (bounded by the first-request deadline).
    Sniff,
    H1,
    H2,
}

impl<H, F> Conn<H>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    /// Serves the connection until the peer leaves or a deadline closes it.
    pub(super) async fn run(self, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let activity = Arc::new(Activity::new());
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            return self.http(stream, peer, Proto::Sniff, activity, None).await;
        };
        let deadline = activity.opened + self.limits.header_timeout;
        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                // ALPN decides, so nothing waits on a sniff of bytes the peer may never send.
                let proto = match tls.get_ref().1.alpn_protocol() {
                    Some(b"h2") => Proto::H2,
                    // A TLS-ALPN-01 validation ends with the handshake (RFC 8737 §3).
                    Some(super::acme::ACME_TLS_ALPN) => return,
                    _ => Proto::H1,
                };
                // With `server.client_ca`, the handshake verified this certificate.
                let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                let cert = cert.map(|c| PeerCert(Arc::new(c.clone().into_owned())));
                self.http(tls, peer, proto, activity, cert).await
            }
            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake not done within header_timeout"),
        }
    }

    async fn http<IO>(
        self,
        io: IO,
        peer: SocketAddr,
        proto: Proto,
        activity: Arc<Activity>,
        cert: Option<PeerCert>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (handler, seen) = (self.handler, activity.clone());
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let busy = seen.begin();
            if let Some(cert) = &cert {
                req.extensions_mut().insert(cert.clone());
            }
            // A combinator, not an async block: a block holds the handler's future twice (as
            // captured and as awaited), and hyper moves the request's future by value.
            handler(req, peer).map(move |resp| {
                drop(busy);
                Ok::<_, Infallible>(resp)
            })
        });
        let builder = match proto {
            Proto::Sniff => self.builder,
            Proto::H1 => self.builder.http1_only(),
            Proto::H2 => self.builder.http2_only(),
        };
        let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(io), service));
        let (limits, mut shutdown) = (self.limits, self.shutdown);
        let mut closing: Option<Instant> = None;
        loop {
            let next = closing.map_or_else(|| activity.next(&limits), Next::Closing);
            if next.at() <= Instant::now() {
                match next {
                    Next::FirstRequest(_) | Next::Closing(_) => {
                        tracing::debug!(%peer, deadline = next.name(), "closing the connection");
                        return;
                    }
                    Next::Idle(_) => {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + CLOSE_LINGER);
                    }
                    Next::Busy(_) => {}
                }
                continue;
            }
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.wait_for(|s| *s), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + limits.grace);
                }
                _ = tokio::time::sleep_until(next.at()) => {}
            }
        }
    }
}

/// What a connection waits for, and until when.
#[derive(Clone, Copy)]
enum Next {
    /// No complete request head yet: dropped at this instant.
    FirstRequest(Instant),
    /// Nothing in flight: closed gracefully at this instant.
    Idle(Instant),
    /// A request in flight: looked at again then.
    Busy(Instant),
    /// A graceful close in progress: dropped at this instant.
    Closing(Instant),
}

impl Next {
    fn at(self) -> Instant {
        match self {
            Next::FirstRequest(t) | Next::Idle(t) | Next::Busy(t) | Next::Closing(t) => t,
        }
    }

    /// For the log line of a forced close.
    fn name(self) -> &'static str {
        match self {
            Next::FirstRequest(_) => "header_timeout",
            Next::Idle(_) => "idle_timeout",
            Next::Busy(_) => "busy",
            Next::Closing(_) => "graceful close",
        }
    }
}

/// Requests seen and in flight on one connection, updated by its service.
struct Activity {
    opened: Instant,
    seen: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` when the last request finished.
    idle_since_ms: AtomicU64,
}

/// A request in flight; dropping it marks the connection idle from now.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            seen: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    /// Called when hyper hands over a complete request head.
    fn begin(self: &Arc<Self>) -> Busy {
        self.seen.store(true, Ordering::Release);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    fn next(&self, limits: &Limits) -> Next {
        if !self.seen.load(Ordering::Acquire) {
            return Next::FirstRequest(self.opened + limits.header_timeout);
        }
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Next::Busy(Instant::now() + limits.idle_timeout);
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Next::Idle(self.opened + since + limits.idle_timeout)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let ms = a.opened.elapsed().as_millis() as u64;
        // Stamp before the decrement, so whoever sees zero in flight also sees the stamp.
        a.idle_since_ms.store(ms, Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
