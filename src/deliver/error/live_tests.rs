//! Classification of real failures: each test makes a loopback server fail one way and checks
//! the kind `forward::send` reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::ErrorKind;
use crate::deliver::forward::{self, Attempt};

/// Generous: only the timeout test waits for it to run out.
const LIMIT: Duration = Duration::from_secs(10);

async fn attempt(url: &str, limit: Duration) -> Attempt {
    let req = http::Request::post(url)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    forward::send(&forward::client(), req, limit).await
}

fn kind(a: &Attempt) -> ErrorKind {
    a.error.as_ref().expect("the attempt failed").kind
}

/// Reads one request head plus its 2-byte body, so closing afterwards sends FIN, not RST.
async fn read_request(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if n == 0 || head_end.is_some_and(|h| buf.len() >= h + 4 + 2) {
            return;
        }
    }
}

/// A server that answers one connection with `raw` bytes and closes it.
async fn raw_server(raw: &'static [u8]) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        read_request(&mut s).await;
        s.write_all(raw).await.unwrap();
        s.shutdown().await.unwrap();
    });
    url
}

/// A real hyper server answering every request with `status`.
async fn status_server(status: u16) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let svc = service_fn(move |_req| async move {
                let resp = http::Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(b"no")))
                    .unwrap();
                Ok::<_, std::convert::Infallible>(resp)
            });
            let conn = hyper::server::conn::http1::Builder::new();
            tokio::spawn(conn.serve_connection(TokioIo::new(s), svc));
        }
    });
    url
}

#[tokio::test]
async fn a_refused_connection_is_connect() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let a = attempt(&format!("http://127.0.0.1:{port}/"), LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Connect, "{:?}", a.error);
    assert_eq!(a.status, None);
}

#[tokio::test]
async fn an_upstream_that_never_answers_is_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", l.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(s);
    });
    let a = attempt(&url, Duration::from_millis(300)).await;
    assert_eq!(kind(&a), ErrorKind::Timeout, "{:?}", a.error);
    held.abort();
}

#[tokio::test]
async fn statuses_are_4xx_and_5xx() {
    let a = attempt(&status_server(404).await, LIMIT).await;
    assert_eq!(
        (kind(&a), a.status.map(|s| s.as_u16())),
        (ErrorKind::Status4xx, Some(404))
    );
    let a = attempt(&status_server(503).await, LIMIT).await;
    assert_eq!(
        (kind(&a), a.status.map(|s| s.as_u16())),
        (ErrorKind::Status5xx, Some(503))
    );
    assert_eq!(a.answer, Bytes::from_static(b"no"));
    let a = attempt(&status_server(200).await, LIMIT).await;
    assert!(a.delivered() && a.error.is_none(), "{:?}", a.error);
}

#[tokio::test]
async fn an_untrusted_certificate_is_tls() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let _ = acceptor.accept(s).await; // the client gives up during the handshake
    });
    let a = attempt(&format!("https://localhost:{port}/"), LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Tls, "{:?}", a.error);
    assert_eq!(kind(&a).fault(), Some(super::Fault::Upstream));
}

#[tokio::test]
async fn an_answer_cut_short_is_body() {
    let url = raw_server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..").await;
    let a = attempt(&url, LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Body, "{:?}", a.error);
    assert_eq!(a.status.map(|s| s.as_u16()), Some(200));
    assert!(
        a.delivered(),
        "the upstream took it: a retry would deliver it twice"
    );
}

#[tokio::test]
async fn a_5xx_cut_short_is_still_5xx() {
    let url = raw_server(b"HTTP/1.1 503 Busy\r\ncontent-length: 100\r\n\r\nonly ten..").await;
    let a = attempt(&url, LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Status5xx, "{:?}", a.error);
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_protocol() {
    let a = attempt(&raw_server(b"SMTP ready\r\n\r\n").await, LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Protocol, "{:?}", a.error);
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_closed() {
    let a = attempt(&raw_server(b"").await, LIMIT).await;
    assert_eq!(kind(&a), ErrorKind::Closed, "{:?}", a.error);
    assert_eq!(kind(&a).fault(), Some(super::Fault::Network));
}
