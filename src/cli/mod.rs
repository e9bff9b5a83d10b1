//! Commands: `serve`, `check`, `send-test`, `healthcheck`, and the `sink` development upstream.
//! `anyhow` lives here, at the binary's edge; the library speaks typed errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

mod admin;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hookgate::config::Config;
use tracing_subscriber::EnvFilter;

/// Exit code for a configuration that does not load (EX_USAGE, like `nginx -t`).
const EXIT_BAD_CONFIG: u8 = 64;

/// hookgate: verify, dedupe and durably queue webhooks, then deliver them upstream.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HOOKGATE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file and exit (0 good, 64 bad).
    Check {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
    },
    /// Sign a sample event exactly as the route's provider would and send it to the gateway.
    SendTest {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        /// Route name.
        #[arg(long)]
        route: String,
        /// JSON body to send instead of the sample.
        #[arg(long)]
        payload: Option<PathBuf>,
        /// Gateway URL (default: the configured listener, host `localhost`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Dead-letter queue: list, show, replay, purge (through the admin API).
    Dlq {
        #[arg(short, long, env = "HOOKGATE_CONFIG", global = true)]
        config: Option<PathBuf>,
        #[command(flatten)]
        target: admin::Target,
        #[command(subcommand)]
        op: admin::Dlq,
    },
    /// Recent delivery attempts of a route: status, latency, first 4 KB of the answer.
    Deliveries {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        target: admin::Target,
        #[arg(long)]
        route: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Resume a route's suspended upstream(s) now.
    Resume {
        #[arg(short, long, env = "HOOKGATE_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        target: admin::Target,
        #[arg(long)]
        route: String,
        /// One upstream of a fan-out route.
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Exit 0 when the admin `/healthz` answers 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Development upstream: print every request it receives and answer 200.
    Sink {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
    },
}

/// Runs the chosen command and maps failures to exit codes.
pub fn main(args: Args) -> ExitCode {
    init_tracing(args.log_format);
    let config_path = match &args.command {
        Command::Serve { config }
        | Command::Check { config }
        | Command::SendTest { config, .. }
        | Command::Deliveries { config, .. }
        | Command::Resume { config, .. } => Some(config.clone()),
        Command::Dlq { config, .. } => config.clone(),
        _ => None,
    };
    let config = match config_path.as_deref().map(load).transpose() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = runtime().and_then(|rt| rt.block_on(dispatch(args.command, config)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => {
            c.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            Ok(c)
        }
        Err(e) => {
            eprintln!("hookgate: bad config: {e}");
            Err(ExitCode::from(EXIT_BAD_CONFIG))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("HOOKGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn dispatch(command: Command, config: Option<Config>) -> anyhow::Result<()> {
    match (command, config) {
        (Command::Serve { .. }, Some(c)) => serve(c).await,
        (Command::Check { config }, Some(c)) => {
            println!("{}: ok ({} routes)", config.display(), c.routes.len());
            Ok(())
        }
        (
            Command::SendTest {
                route,
                payload,
                url,
                ..
            },
            Some(c),
        ) => send_test(&c, &route, payload, url).await,
        (Command::Dlq { target, op, .. }, Some(c)) => admin::dlq(&c, &target, op).await,
        (
            Command::Deliveries {
                target,
                route,
                limit,
                ..
            },
            Some(c),
        ) => admin::deliveries(&c, &target, &route, limit).await,
        (
            Command::Resume {
                target,
                route,
                upstream,
                ..
            },
            Some(c),
        ) => admin::resume(&c, &target, &route, upstream.as_deref()).await,
        (Command::Healthcheck { url }, _) => healthcheck(&url).await,
        (Command::Sink { listen }, _) => sink(listen).await,
        (_, None) => bail!("this command needs --config"),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let ingress = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding server.listen {}", config.server.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("binding admin.listen {}", config.admin.listen))?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hookgate::shutdown::on_signal(tx));
    let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    tokio::spawn(hookgate::shutdown::on_hangup(
        config.source.clone(),
        reload_tx,
    ));
    hookgate::run_reloadable(config, hookgate::Listeners { ingress, admin }, rx, reloads).await?;
    Ok(())
}

async fn send_test(
    c: &Config,
    route: &str,
    payload: Option<PathBuf>,
    url: Option<String>,
) -> anyhow::Result<()> {
    let r = c
        .routes
        .iter()
        .find(|r| r.name == route)
        .with_context(|| format!("no route named {route:?}"))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs() as i64;
    let id = format!("evt_test_{:016x}", rand::random::<u64>());
    let body = match payload {
        Some(p) => std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?,
        None => serde_json::json!({ "id": id, "type": "hookgate.test", "created": now, "data": { "object": { "hello": "world" } } })
            .to_string()
            .into_bytes(),
    };
    let scheme_str = if c.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = url.unwrap_or_else(|| {
        format!(
            "{scheme_str}://localhost:{}{}",
            c.server.listen.port(),
            r.path
        )
    });
    let mut req = http::Request::post(&url).header("content-type", "application/json");
    for (n, v) in r.scheme.sign(&body, &id, now).iter() {
        req = req.header(n, v);
    }
    let req = req.body(http_body_util::Full::new(bytes::Bytes::from(body)))?;
    let client = hookgate::deliver::forward::client_with_roots(&dev_roots(c));
    let attempt = hookgate::deliver::forward::send(&client, req, Duration::from_secs(30)).await;
    match attempt.status {
        Some(s) => println!(
            "{url} answered {s}: {}",
            String::from_utf8_lossy(&attempt.answer)
        ),
        None => bail!("{url}: {}", attempt.error.unwrap_or_default()),
    }
    if !attempt.delivered() {
        bail!("the gateway refused the test event");
    }
    Ok(())
}

/// The configured server certificate, trusted so `send-test` works against a development pair.
fn dev_roots(c: &Config) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let Some(tls) = &c.server.tls else {
        return Vec::new();
    };
    rustls::pki_types::CertificateDer::pem_file_iter(&tls.cert)
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

async fn healthcheck(url: &str) -> anyhow::Result<()> {
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

async fn sink(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!("sink listening on http://{listen}/ — every request is printed here");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(hookgate::shutdown::on_signal(tx));
    let limits = hookgate::server::Limits {
        max_connections: 256,
        header_timeout: Duration::from_secs(10),
        grace: Duration::from_secs(1),
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Args::command().debug_assert();
    }
}
