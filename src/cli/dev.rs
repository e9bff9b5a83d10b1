//! Development and operations helpers: `send-test` (the "Send Test" button), `healthcheck`
//! (for container health checks) and `sink` (a development upstream that prints what it gets).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use hookgate::config::Config;
use hookgate::ingest::sample::TestEvent;

use super::trust::Trust;

/// `send-test`'s options besides the route.
pub struct SendTest {
    pub route: String,
    pub payload: Option<PathBuf>,
    pub url: Option<String>,
    /// Verify the gateway against this bundle instead of pinning the configured certificate.
    pub ca: Option<PathBuf>,
    /// Verify nothing.
    pub insecure: bool,
}

pub async fn send_test(c: &Config, opts: SendTest) -> anyhow::Result<()> {
    let route = opts.route.as_str();
    let r = c
        .routes
        .iter()
        .find(|r| r.name == route)
        .with_context(|| format!("no route named {route:?}"))?;
    let body = match &opts.payload {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let event = TestEvent::new(r, body.map(bytes::Bytes::from), SystemTime::now());
    let scheme_str = if c.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = opts.url.clone().unwrap_or_else(|| {
        format!(
            "{scheme_str}://localhost:{}{}",
            c.server.listen.port(),
            r.path
        )
    });
    let req = event.request(&url)?;
    let client = client(c, &opts)?;
    let attempt = hookgate::deliver::forward::send(&client, req, Duration::from_secs(30)).await;
    match attempt.status {
        Some(s) => println!(
            "{url} answered {s}: {}",
            String::from_utf8_lossy(&attempt.answer)
        ),
        None => match attempt.error {
            Some(e) => bail!("{url}: {e}"),
            None => bail!("{url}: no answer"),
        },
    }
    if !attempt.delivered() {
        bail!("the gateway refused the test event");
    }
    Ok(())
}

/// Pinned to the configured certificate unless `--ca` or `--insecure` say otherwise.
fn client(c: &Config, opts: &SendTest) -> anyhow::Result<hookgate::deliver::forward::HttpClient> {
    let trust = match (&opts.ca, opts.insecure, &c.server.tls) {
        (_, true, _) => {
            eprintln!("warning: --insecure: the gateway's certificate is not verified");
            Trust::Insecure
        }
        (Some(ca), false, _) => Trust::Bundle(ca.clone()),
        (None, false, Some(tls)) => Trust::Pinned(tls.cert.clone()),
        (None, false, None) => return Ok(hookgate::deliver::forward::client()),
    };
    Ok(hookgate::deliver::forward::client_with_tls(
        trust.client_config()?,
    ))
}

pub async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let client = hookgate::deliver::forward::client();
    let req = http::Request::get(url).body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .context("timed out")??;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    Ok(())
}

pub async fn sink(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("sink listening on http://{listen}/ — every request is printed here");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hookgate::shutdown::on_signal(tx));
    let limits = hookgate::server::Limits {
        max_connections: 256,
        max_per_ip: None,
        per_ip_exempt: Vec::new(),
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        grace: Duration::from_secs(1),
        max_body: 25 << 20,
        h2_ping: hookgate::server::H2_PING,
    };
    hookgate::server::serve(listener, None, limits, |req, _| print_request(req), rx).await;
    Ok(())
}

async fn print_request(
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let hg: Vec<String> = parts
        .headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("x-hookgate-") || n.as_str().starts_with("webhook-")
        })
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap_or("?")))
        .collect();
    println!(
        "{} {} [{}] {}",
        parts.method,
        parts.uri,
        hg.join(", "),
        String::from_utf8_lossy(&body)
    );
    hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(b"ok")))
}
