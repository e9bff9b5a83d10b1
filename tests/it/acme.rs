//! `server.tls.acme` against a real ACME server (pebble) validating TLS-ALPN-01 on the gateway's
//! ingress port: issue, renewal under an open connection, restart from the stored certificate,
//! and an ACME server that is down at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpListener;

use crate::support::*;

/// A gateway whose ingress is `ingress` and whose TLS is `pebble`'s ACME block.
async fn gateway(
    dir: tempfile::TempDir,
    ingress: TcpListener,
    pebble: &Pebble,
    sink: &Sink,
) -> Gateway {
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    // The renewal test keeps one connection idle across a renewal.
    o.server_extra = "idle_timeout = \"300s\"".into();
    let tls = pebble.tls_line();
    Gateway::start_with(dir, o, ingress, move |text| {
        let lines = text.lines().map(|l| match l.starts_with("tls = ") {
            true => tls.as_str(),
            false => l,
        });
        lines.collect::<Vec<_>>().join("\n")
    })
    .await
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// The certificate a fresh connection is served, verified against `root`.
async fn served(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
) -> Result<CertificateDer<'static>, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(root, &[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(ACME_DOMAIN).unwrap();
    let handshake = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp));
    let tls = handshake
        .await
        .expect("handshake answered")
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.peer_certificates().unwrap()[0].clone())
}

/// A webhook sender trusting only pebble's root, reaching `ACME_DOMAIN` at the gateway.
fn sender(root: &CertificateDer<'static>, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(trusting(root, &[b"h2", b"http/1.1"]))
        .resolve(ACME_DOMAIN, addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn signed_stripe(id: &str) -> (Vec<u8>, String) {
    let body = stripe_body(id);
    let sig = stripe_header(STRIPE_SECRET, now(), &body);
    (body, sig)
}

async fn post_webhook(client: &reqwest::Client, addr: SocketAddr, id: &str) -> u16 {
    let (body, sig) = signed_stripe(id);
    let url = format!("https://{ACME_DOMAIN}:{}/webhooks/stripe", addr.port());
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
        .expect("webhook request completes");
    resp.status().as_u16()
}

async fn wait_ready(gw: &Gateway, within: Duration) {
    eventually(within, "readyz ok (certificate issued)", async || {
        gw.readyz().await.0 == 200
    })
    .await;
}

#[tokio::test]
async fn a_certificate_is_issued_and_served() {
    let sink = Sink::start().await;
    let ingress = bind().await;
    let addr = ingress.local_addr().unwrap();
    let pebble = Pebble::start(addr.port(), 90 * 86400).await;
    let gw = gateway(tempfile::tempdir().unwrap(), ingress, &pebble, &sink).await;
    wait_ready(&gw, Duration::from_secs(60)).await;
    let root = pebble.issuing_root().await;
    assert_eq!(
        post_webhook(&sender(&root, addr), addr, "evt_acme_1").await,
        200
    );
    sink.wait_for(1, Duration::from_secs(10)).await;

    let acme = gw.dir.path().join("data/acme");
    for f in ["account.json", "cert.pem", "key.pem"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(acme.join(f)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{f} is private");
    }
    let metrics = gw.metrics().await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("hookgate_tls_cert_not_after_seconds "))
        .unwrap();
    let not_after: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(not_after > now() as f64 + 80.0 * 86400.0, "{line}");
    gw.finish().await;
}

#[tokio::test]
async fn a_renewal_replaces_the_certificate_without_dropping_an_open_connection() {
    let sink = Sink::start().await;
    let ingress = bind().await;
    let addr = ingress.local_addr().unwrap();
    // Renewal is due with a third of the lifetime left: ~20 s after each issue.
    let pebble = Pebble::start(addr.port(), 30).await;
    let gw = gateway(tempfile::tempdir().unwrap(), ingress, &pebble, &sink).await;
    wait_ready(&gw, Duration::from_secs(60)).await;
    let root = pebble.issuing_root().await;
    let first = served(addr, &root).await.unwrap();

    // One keep-alive HTTP/1.1 connection, opened on the first certificate.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(trusting(&root, &[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from(ACME_DOMAIN).unwrap(), tcp)
        .await
        .unwrap();
    let on_open = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(driver);
    assert_eq!(send(&mut conn, "evt_renew_1").await, 200);

    eventually(
        Duration::from_secs(90),
        "a renewed certificate on new connections",
        async || served(addr, &root).await.is_ok_and(|c| c != first),
    )
    .await;
    assert!(
        !conn.is_closed(),
        "the open connection survived the renewal"
    );
    assert_eq!(send(&mut conn, "evt_renew_2").await, 200);
    assert_eq!(
        on_open, first,
        "the open connection still runs on the first certificate"
    );
    sink.wait_for(2, Duration::from_secs(10)).await;
    gw.finish().await;
}

/// Sends a signed webhook on an open HTTP/1.1 connection.
async fn send(conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>, id: &str) -> u16 {
    let (body, sig) = signed_stripe(id);
    let req = http::Request::post("/webhooks/stripe")
        .header("host", ACME_DOMAIN)
        .header("content-type", "application/json")
        .header("stripe-signature", sig)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), conn.send_request(req)).await;
    let resp = resp
        .expect("answered in time")
        .expect("request on the open connection");
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

#[tokio::test]
async fn a_restart_reuses_the_stored_certificate_without_asking_the_acme_server() {
    let sink = Sink::start().await;
    let ingress = bind().await;
    let addr = ingress.local_addr().unwrap();
    let mut pebble = Pebble::start(addr.port(), 90 * 86400).await;
    let gw = gateway(tempfile::tempdir().unwrap(), ingress, &pebble, &sink).await;
    wait_ready(&gw, Duration::from_secs(60)).await;
    let root = pebble.issuing_root().await;
    let issued = served(addr, &root).await.unwrap();
    let dir = gw.stop().await;

    // Nothing could issue a certificate now.
    pebble.down();
    let ingress = bind().await;
    let addr = ingress.local_addr().unwrap();
    let gw = gateway(dir, ingress, &pebble, &sink).await;
    assert_eq!(
        gw.readyz().await.0,
        200,
        "ready at once with the stored certificate"
    );
    assert_eq!(served(addr, &root).await.unwrap(), issued);
    assert_eq!(
        post_webhook(&sender(&root, addr), addr, "evt_acme_restart").await,
        200
    );
    gw.finish().await;
}

#[tokio::test]
async fn an_acme_server_down_at_start_leaves_the_gateway_up_and_retrying() {
    let sink = Sink::start().await;
    let ingress = bind().await;
    let addr = ingress.local_addr().unwrap();
    let mut pebble = Pebble::prepare(addr.port(), 90 * 86400).await;
    let gw = gateway(tempfile::tempdir().unwrap(), ingress, &pebble, &sink).await;

    let health = gw
        .client
        .get(format!("http://{}/healthz", gw.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "alive without a certificate");
    let (status, body) = gw.readyz().await;
    assert_eq!(status, 503);
    assert!(body.contains("no_certificate"), "{body}");
    // No certificate yet: the handshake is refused with an alert, not left hanging.
    let any_root = CertificateDer::from(
        rcgen::generate_simple_self_signed(vec![ACME_DOMAIN.into()])
            .unwrap()
            .cert
            .der()
            .to_vec(),
    );
    let refused = served(addr, &any_root).await.unwrap_err();
    assert!(refused.contains("alert"), "{refused}");

    pebble.up().await;
    // Retries back off from 2 s; a few have failed by now.
    wait_ready(&gw, Duration::from_secs(90)).await;
    let root = pebble.issuing_root().await;
    assert_eq!(
        post_webhook(&sender(&root, addr), addr, "evt_acme_late").await,
        200
    );
    gw.finish().await;
}
