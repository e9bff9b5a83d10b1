//! The accept loop shared by the ingress and admin listeners.
//!
//! A connection permit is taken *before* `accept`, so at most `max_connections` sockets are open and
//! excess clients wait in the kernel backlog instead of costing memory. TLS handshakes are bounded
//! in time. On shutdown the loop stops accepting and in-flight connections get `grace` to finish.

pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Listener settings.
#[derive(Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub grace: Duration,
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
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            r = listener.accept() => r.map(|(s, a)| (s, a, permit)),
        };
        let (stream, peer, permit) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = Conn {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            handler: handler.clone(),
        };
        // The certificate in force when the connection arrives (SIGHUP may swap it).
        let tls = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            conn.run(stream, peer, tls).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; closing them");
    }
}

struct Conn<H> {
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    handler: H,
}

impl<H, F> Conn<H>
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    async fn run(self, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>) {
        let _ = stream.set_nodelay(true);
        match tls {
            None => self.http(stream, peer).await,
            Some(acceptor) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => self.http(tls, peer).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
        }
    }

    async fn http<IO>(self, io: IO, peer: SocketAddr)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handler = self.handler;
        let service = hyper::service::service_fn(move |req| {
            let fut = handler(req, peer);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), service)
            .into_owned();
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
