//! Inbound mutual TLS (`server.client_ca`, `route.client_cert`) over real TLS on loopback: the
//! handshake refuses a client without a certificate signed by the bundle (so no request reaches
//! the pipeline), and a route can narrow the signed ones by SAN.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A CA that signs client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A client certificate for `san`; `expired` puts its validity entirely in the past.
    fn client(&self, san: &str, expired: bool) -> Client {
        let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Client {
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }
}

struct Client {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// Trusts the gateway's test certificate; presents `client` when given.
fn tls_config(dir: &Path, client: Option<&Client>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(dir.join("test.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(vec![c.cert.clone()], c.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Sends a request head and reads the answer; the error is what the server's TLS said. In TLS 1.3
/// the server judges the client's certificate after the client's handshake is done, so the
/// refusal arrives as an alert on the first read.
async fn raw_request(addr: SocketAddr, config: rustls::ClientConfig) -> Result<String, String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let exchange = async {
        let mut tls = connector.connect(name, tcp).await?;
        let head = "POST /webhooks/stripe HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        tls.write_all(head.as_bytes()).await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => panic!("the exchange hung"),
    }
}

/// A gateway requiring certificates from `ca`, its stripe route carrying `stripe_extra`.
async fn gateway(ca: &Ca, stripe_extra: &str) -> (Gateway, Sink) {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("clients.pem");
    std::fs::write(&bundle, &ca.pem).unwrap();
    let mut o = Opts::new(Store::Embedded, sink.url(""));
    o.server_extra = format!("client_ca = \"{}\"", bundle.display());
    o.stripe_extra = stripe_extra.to_string();
    (Gateway::start_in(dir, o).await, sink)
}

/// A reqwest client presenting `client`.
fn http_client(dir: &Path, client: &Client) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(dir, Some(client)))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_handshake_refuses_missing_foreign_and_expired_certificates() {
    let (good, other) = (Ca::new("clients"), Ca::new("someone else"));
    let (gw, _sink) = gateway(&good, "").await;
    let dir = gw.dir.path().to_path_buf();
    let refused = [
        (None, "CertificateRequired"),
        (Some(other.client("relay.example.com", false)), "UnknownCA"),
        (
            Some(good.client("relay.example.com", true)),
            "CertificateExpired",
        ),
    ];
    for (client, alert) in &refused {
        let got = raw_request(gw.addr, tls_config(&dir, client.as_ref())).await;
        let err = got.expect_err("the gateway must refuse this client");
        assert!(err.contains(alert), "expected alert {alert}, got: {err}");
    }
    // Nothing reached the pipeline: not one request was counted.
    let metrics = gw.metrics().await;
    assert!(!metrics.contains("hookgate_requests_total{"), "{metrics}");
    let ok = good.client("relay.example.com", false);
    let resp = send_stripe(
        &http_client(&dir, &ok),
        &gw.url("/webhooks/stripe"),
        STRIPE_SECRET,
        "evt_mtls_good",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    gw.finish().await;
}

#[tokio::test]
async fn a_route_restricted_by_san_refuses_another_good_certificate() {
    let good = Ca::new("clients");
    let rule = r#"client_cert = { sans = ["relay.example.com"] }"#;
    let (gw, sink) = gateway(&good, rule).await;
    let dir = gw.dir.path().to_path_buf();
    let url = gw.url("/webhooks/stripe");
    let wrong = http_client(&dir, &good.client("intruder.example.com", false));
    let resp = send_stripe(&wrong, &url, STRIPE_SECRET, "evt_wrong_san")
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":"client_cert_not_allowed"}"#
    );
    let right = http_client(&dir, &good.client("relay.example.com", false));
    let resp = send_stripe(&right, &url, STRIPE_SECRET, "evt_right_san")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Another route, unrestricted, takes any certificate of the bundle.
    let (status, _) = {
        let body = stripe_body("evt_other_route");
        let r = wrong
            .post(gw.url("/webhooks/github"))
            .header("x-github-delivery", "d-mtls")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(
        status, 401,
        "reaches verification (unsigned), not refused for its certificate"
    );
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    gw.finish().await;
}
