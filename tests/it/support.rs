//! Test harness: a gateway on 127.0.0.1:0 with real TLS, a recording sink upstream, and signers
//! written here from the providers' documented algorithms (independent of the gateway's code).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

mod backend;
mod cluster;
pub mod otlp;
mod pebble;
pub use backend::*;
pub use cluster::*;
pub use pebble::*;

pub const STRIPE_SECRET: &str = "whsec_test_stripe_current";
pub const STRIPE_OLD_SECRET: &str = "whsec_test_stripe_previous";
pub const GITHUB_SECRET: &str = "It's a Secret to Everybody";
/// Standard Webhooks secrets are `whsec_` + base64 of the key bytes.
pub const STANDARD_KEY: &[u8] = b"standard-webhooks-test-key-32byt";

pub fn standard_secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(STANDARD_KEY)
    )
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hmac256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// `Stripe-Signature: t=…,v1=hex(HMAC-SHA256(secret, "{t}.{body}"))` (Stripe docs, "Verify manually").
pub fn stripe_header(secret: &str, ts: i64, body: &[u8]) -> String {
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(body);
    format!(
        "t={ts},v1={}",
        hex::encode(hmac256(secret.as_bytes(), &msg))
    )
}

/// Standard Webhooks headers: `v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))`.
pub fn standard_headers(id: &str, ts: i64, body: &[u8], prefix: &str) -> Vec<(String, String)> {
    let mut msg = format!("{id}.{ts}.").into_bytes();
    msg.extend_from_slice(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac256(STANDARD_KEY, &msg));
    vec![
        (format!("{prefix}-id"), id.to_owned()),
        (format!("{prefix}-timestamp"), ts.to_string()),
        (format!("{prefix}-signature"), format!("v1,{sig}")),
    ]
}

/// GitHub: `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(secret, body))`.
pub fn github_headers(delivery: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![
        (
            "x-hub-signature-256".into(),
            format!(
                "sha256={}",
                hex::encode(hmac256(GITHUB_SECRET.as_bytes(), body))
            ),
        ),
        ("x-github-delivery".into(), delivery.to_owned()),
        ("x-github-event".into(), "push".into()),
    ]
}

/// POSTs a Stripe-signed sample event `id` to `url`, signed with `secret` now.
pub async fn send_stripe(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = stripe_body(id);
    let sig = stripe_header(secret, now(), &body);
    client
        .post(url)
        .header("stripe-signature", sig)
        .body(body)
        .send()
        .await
}

pub fn stripe_body(id: &str) -> Vec<u8> {
    format!(r#"{{"id":"{id}","object":"event","type":"invoice.paid","data":{{"object":{{"amount":4200}}}}}}"#).into_bytes()
}

/// One request the sink received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// A recording upstream: answers 503 to the first `fail_first` requests, then `200`.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub fail_first: Arc<AtomicUsize>,
    pub hits: Arc<AtomicUsize>,
    /// Status of the failing answers (default 503).
    pub fail_status: Arc<std::sync::atomic::AtomicU16>,
    /// `Retry-After` sent with failing answers.
    pub retry_after: Arc<Mutex<Option<String>>>,
    /// When each request arrived.
    pub times: Arc<Mutex<Vec<std::time::Instant>>>,
    /// How long to wait before answering.
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    /// Requests being answered right now, and the most ever seen at once.
    pub inflight: Arc<AtomicUsize>,
    pub max_inflight: Arc<AtomicUsize>,
}

impl Sink {
    pub async fn start() -> Sink {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    fn new(addr: SocketAddr) -> Sink {
        Sink {
            addr,
            received: Arc::default(),
            fail_first: Arc::default(),
            hits: Arc::default(),
            fail_status: Arc::new(503.into()),
            retry_after: Arc::default(),
            times: Arc::default(),
            delay_ms: Arc::default(),
            inflight: Arc::default(),
            max_inflight: Arc::default(),
        }
    }

    /// A sink on a fixed port (an upstream that comes up later, at the configured address).
    pub async fn start_at(port: u16) -> Sink {
        Self::start_on(TcpListener::bind(("127.0.0.1", port)).await.unwrap())
    }

    pub fn start_on(listener: TcpListener) -> Sink {
        let sink = Self::new(listener.local_addr().unwrap());
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| s.clone().record(req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        sink
    }

    /// An https sink (h2 and http/1.1 by ALPN) whose self-signed certificate is written to
    /// `dir/sink-ca.pem`, for testing `upstream.ca`.
    pub async fn start_tls(dir: &Path) -> Sink {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("sink-ca.pem"), pair.cert.pem()).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(pair.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![pair.cert.der().clone()], key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Self::new(listener.local_addr().unwrap());
        let s = sink.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| s.clone().record(req));
                    let exec = hyper_util::rt::TokioExecutor::new();
                    let builder = hyper_util::server::conn::auto::Builder::new(exec);
                    let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        sink
    }

    async fn record(
        self,
        req: http::Request<Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
        let (parts, body) = req.into_parts();
        let now = self.inflight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_inflight.fetch_max(now, Ordering::SeqCst);
        let body = body.collect().await;
        let delay = self.delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.inflight.fetch_sub(1, Ordering::SeqCst);
        let body = body?.to_bytes();
        let n = self.hits.fetch_add(1, Ordering::SeqCst);
        self.times.lock().unwrap().push(std::time::Instant::now());
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"sink says no")));
        if n < self.fail_first.load(Ordering::SeqCst) {
            let status = self.fail_status.load(Ordering::SeqCst);
            *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
            if let Some(ra) = self.retry_after.lock().unwrap().clone() {
                resp.headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
        } else {
            *resp.body_mut() = Full::new(Bytes::from_static(b"ok"));
            let path = parts.uri.path().to_owned();
            let got = Received {
                path,
                version: parts.version,
                headers: parts.headers,
                body,
            };
            self.received.lock().unwrap().push(got);
        }
        Ok(resp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn delivered(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` deliveries arrived (or panics after `within`).
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.delivered();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} deliveries arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Knobs for the generated config.
#[derive(Clone)]
pub struct Opts {
    pub store: Store,
    pub upstream: String,
    pub schedule: &'static str,
    pub max_attempts: u32,
    pub dedup_ttl: &'static str,
    pub claim_ttl: &'static str,
    pub suspend_after: u32,
    pub extra_route: String,
    /// Extra keys for the stripe route (inline TOML lines).
    pub stripe_extra: String,
    /// Extra inline keys for the stripe route's upstream table (start with ", ").
    pub upstream_extra: String,
    pub redis_url: String,
    /// Unique per `Opts::new`: copies of one `Opts` share a Redis keyspace.
    pub key_prefix: String,
    pub visibility_timeout: &'static str,
    /// Extra `[server]` lines.
    pub server_extra: String,
    /// `Store::Cluster`: the cluster the gateway uses.
    pub cluster: Option<std::sync::Arc<Cluster>>,
    /// Extra `[storage]` lines.
    pub storage_extra: String,
}

impl Opts {
    pub fn new(store: Store, upstream: String) -> Opts {
        let key_prefix = format!("hgit-{}-{:08x}", std::process::id(), rand::random::<u32>());
        // Starting the shared cluster blocks for a few seconds, once per test process.
        let cluster =
            (store == Store::Cluster).then(|| match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::block_in_place(Cluster::shared),
                Err(_) => Cluster::shared(),
            });
        Opts {
            store,
            upstream,
            schedule: r#"["100ms"]"#,
            max_attempts: 5,
            dedup_ttl: "24h",
            claim_ttl: "30s",
            suspend_after: 1000,
            extra_route: String::new(),
            stripe_extra: String::new(),
            upstream_extra: String::new(),
            redis_url: redis_url(),
            key_prefix,
            // Upstream timeout 2s + op_timeout 1s + the 5s margin < 9s.
            visibility_timeout: "9s",
            server_extra: String::new(),
            cluster,
            storage_extra: String::new(),
        }
    }

    /// Deletes this test's Redis keys (nothing to do for the embedded store).
    pub async fn clean(&self) {
        match &self.cluster {
            Some(cluster) => {
                for url in cluster.master_urls() {
                    clean_redis(&url, &self.key_prefix).await;
                }
            }
            None if self.store == Store::Redis => {
                clean_redis(&self.redis_url, &self.key_prefix).await
            }
            None => {}
        }
    }
}

/// Writes a dev certificate pair into `dir` and returns (cert, key) paths.
pub fn write_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let pair =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.join("test.crt"), dir.join("test.key"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    // As an operator should: a key readable by others is warned about at load.
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (cert, key)
}

/// The config text for a gateway listening on `listen`/`admin`, storing under `dir/data`.
pub fn config_text(dir: &Path, listen: &str, admin: &str, o: &Opts) -> String {
    let (cert, key) = write_cert(dir);
    format!(
        r#"
[server]
listen = "{listen}"
tls = {{ cert = "{cert}", key = "{key}" }}
shutdown_grace = "5s"
body_timeout = "2s"
{server_extra}
[admin]
listen = "{admin}"
token = "test-admin-token"
[storage]
backend = "{backend}"
path = "{data}"
dedup_ttl = "{ttl}"
claim_ttl = "{claim_ttl}"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
visibility_timeout = "{vt}"
op_timeout = "1s"
{cluster}
{storage_extra}
[[route]]
name = "stripe"
path = "/webhooks/stripe"
scheme = "stripe"
secrets = ["{STRIPE_SECRET}", "{STRIPE_OLD_SECRET}"]
upstream = {{ url = "{up}/stripe", timeout = "2s", concurrency = 4, suspend_after = {suspend}, probe_interval = "300ms"{upstream_extra} }}
retry = {{ schedule = {sched}, max_attempts = {max} }}
{stripe_extra}
[[route]]
name = "standard"
path = "/webhooks/standard"
scheme = "standard"
secrets = ["{std}"]
upstream = {{ url = "{up}/standard", timeout = "2s" }}
retry = {{ schedule = {sched}, max_attempts = {max} }}
[[route]]
name = "github"
path = "/webhooks/github"
scheme = "github"
secrets = ["{GITHUB_SECRET}"]
max_body = "25MB"
upstream = {{ url = "{up}/github", timeout = "2s" }}
retry = {{ schedule = {sched}, max_attempts = {max} }}
{extra}
"#,
        cert = cert.display(),
        key = key.display(),
        data = dir.join("data").display(),
        ttl = o.dedup_ttl,
        claim_ttl = o.claim_ttl,
        up = o.upstream,
        sched = o.schedule,
        max = o.max_attempts,
        std = standard_secret(),
        suspend = o.suspend_after,
        extra = o.extra_route,
        stripe_extra = o.stripe_extra,
        upstream_extra = o.upstream_extra,
        backend = match o.store {
            Store::Embedded => "embedded",
            Store::Redis | Store::Cluster => "redis",
        },
        cluster = match &o.cluster {
            Some(c) => format!("redis_cluster = {:?}", c.urls()),
            None => String::new(),
        },
        storage_extra = o.storage_extra,
        redis_url = o.redis_url,
        prefix = o.key_prefix,
        vt = o.visibility_timeout,
        server_extra = o.server_extra,
    )
}

/// A gateway running in this test's runtime.
pub struct Gateway {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub opts: Opts,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), hookgate::RunError>>,
}

/// `HOOKGATE_TEST_LOG=warn` (any `RUST_LOG`-style filter) shows what the in-process gateways
/// log, each line in the output of the test that printed it; by default they log nothing.
fn logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("HOOKGATE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

impl Gateway {
    pub async fn start(o: Opts) -> Gateway {
        Self::start_in(tempfile::tempdir().unwrap(), o).await
    }

    pub async fn start_in(dir: tempfile::TempDir, o: Opts) -> Gateway {
        let ingress = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_with(dir, o, ingress, |text| text).await
    }

    /// Serves on `ingress`, with the generated config text passed through `edit` first.
    pub async fn start_with(
        dir: tempfile::TempDir,
        o: Opts,
        ingress: TcpListener,
        edit: impl FnOnce(String) -> String,
    ) -> Gateway {
        logs();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, admin_addr) = (ingress.local_addr().unwrap(), admin.local_addr().unwrap());
        let file = dir.path().join("hookgate.toml");
        let text = config_text(dir.path(), &addr.to_string(), &admin_addr.to_string(), &o);
        std::fs::write(&file, edit(text)).unwrap();
        let config = hookgate::config::Config::load(&file).expect("test config loads");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(hookgate::run(
            config,
            hookgate::Listeners { ingress, admin },
            rx,
        ));
        let client = client(&dir.path().join("test.crt"));
        Gateway {
            addr,
            admin: admin_addr,
            client,
            dir,
            opts: o,
            stop,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// The admin listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.admin);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The admin listener's `/readyz`: (status, body text).
    pub async fn readyz(&self) -> (u16, String) {
        let url = format!("http://{}/readyz", self.admin);
        let resp = self.client.get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// POSTs `body` with `headers` to `path`; returns (status, body text).
    pub async fn post(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> (u16, String) {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json");
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .expect("request reaches the gateway");
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn post_stripe(&self, id: &str) -> (u16, String) {
        let body = stripe_body(id);
        let h = vec![(
            "stripe-signature".to_string(),
            stripe_header(STRIPE_SECRET, now(), &body),
        )];
        self.post("/webhooks/stripe", &h, body).await
    }

    /// Graceful stop, then deletes the test's Redis keys: the end of a test.
    pub async fn finish(self) {
        let opts = self.opts.clone();
        self.stop().await;
        opts.clean().await;
    }

    /// Graceful stop (asserting a clean exit); returns the data directory for a restart.
    pub async fn stop(self) -> tempfile::TempDir {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("gateway stops in time")
            .unwrap()
            .unwrap();
        self.dir
    }
}

/// A reqwest client that trusts the test certificate only (real TLS verification, no bypass).
pub fn client(cert: &Path) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_tls(cert, &[b"h2", b"http/1.1"]))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A rustls client config that trusts the test certificate only, offering `alpn`.
pub fn client_tls(cert: &Path, alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tls
}

/// Writes `o`'s config into `dir` for the real binary, on two free ports: (file, ingress, admin).
pub fn write_config(dir: &Path, o: &Opts) -> (PathBuf, u16, u16) {
    let (ingress, admin) = (crate::process::free_port(), crate::process::free_port());
    let text = config_text(
        dir,
        &format!("127.0.0.1:{ingress}"),
        &format!("127.0.0.1:{admin}"),
        o,
    );
    let config = dir.join("hookgate.toml");
    std::fs::write(&config, text).unwrap();
    (config, ingress, admin)
}

/// One gateway process's files and ports (the real binary; a test starts, kills and restarts
/// it, or runs several on one Redis).
pub struct Replica {
    pub _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub client: reqwest::Client,
    pub ingress: u16,
    pub admin: u16,
}

impl Replica {
    /// Writes a config for `o` (several replicas of one `o` share its Redis keyspace) with ports
    /// of its own.
    pub fn new(o: &Opts) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let (config, ingress, admin) = write_config(dir.path(), o);
        let client = client(&dir.path().join("test.crt"));
        Replica {
            _dir: dir,
            config,
            client,
            ingress,
            admin,
        }
    }

    /// Spawns the gateway and waits until it is healthy.
    pub async fn start(&self) -> crate::process::Proc {
        let mut p = crate::process::Proc::spawn(&self.config, self.admin);
        p.wait_healthy(&self.client).await;
        p
    }
}

/// Polls `f` until it holds, for at most `within`.
pub async fn eventually<F: AsyncFnMut() -> bool>(within: Duration, what: &str, mut f: F) {
    let deadline = tokio::time::Instant::now() + within;
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
