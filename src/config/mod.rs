//! Configuration: `raw` mirrors the TOML file, this module validates it into typed values.
//!
//! Every error names the file, the key and the problem, so `hookgate check` reads like `nginx -t`.
//! Relative paths (certificates, data directory, `file:` secrets) are resolved against the config
//! file's directory, so the gateway behaves the same whatever directory it is started from.

pub mod acme;
mod cx;
mod filter;
mod order;
mod raw;
mod route;
pub mod secret;
mod storage;
mod telemetry;
pub mod tls;
mod toml_error;
mod upstream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use cx::Cx;
pub use cx::{MAX_DELAY, MAX_SIZE, MAX_TIMEOUT, MAX_TTL};
pub use filter::Filter;
pub use order::{MAX_KEY_LEN, OnDead, OrderBy, Ordering};
pub use route::{DedupOn, RateLimit, RetryPolicy, Route};
pub use secret::{RedisUrl, Secret};
pub use telemetry::TelemetryConfig;
pub use tls::{TlsConfig, UpstreamTls};
pub use upstream::Upstream;

/// A config file that failed to load; the message names file, key and problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type.
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    /// A value parsed but makes no sense.
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    pub routes: Vec<Route>,
    /// OpenTelemetry traces; None = off.
    pub telemetry: Option<TelemetryConfig>,
    /// Non-fatal findings (e.g. literal secrets), logged once tracing is up.
    pub warnings: Vec<String>,
}

/// The public listener.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `None` only with `insecure_http = true`.
    pub tls: Option<TlsConfig>,
    pub body_timeout: Duration,
    /// From accept to a complete first request head, TLS handshake included.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Open connections per client address (IPv6: per /64).
    pub max_connections_per_ip: usize,
    /// Request body bytes held in memory at once, all connections and streams together.
    pub max_inflight_body: u64,
    pub trusted_proxies: Vec<IpNet>,
    pub shutdown_grace: Duration,
}

/// The admin listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Bearer token for `/admin/*`; without one the admin API is off (health stays on).
    pub token: Option<Secret>,
}

/// Which storage backend holds dedup records and the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// redb files under `path`: one process, no server needed.
    Embedded,
    /// Redis at `redis_url`: dedup and queue shared by several replicas.
    Redis,
}

/// `[storage]`, typed.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub backend: Backend,
    pub path: PathBuf,
    /// Prints without its password; `env:`/`file:` references are resolved.
    pub redis_url: RedisUrl,
    pub dedup_ttl: Duration,
    /// How long an in-flight claim blocks the same id (a crash frees it after this).
    pub claim_ttl: Duration,
    /// Redis: every key starts with this (several gateways can share one Redis).
    pub key_prefix: String,
    /// Redis: a leased event not acknowledged for this long is taken over by another replica.
    pub visibility_timeout: Duration,
    /// Redis: bound on every command, reconnects included.
    pub op_timeout: Duration,
    /// Embedded: bytes of redb page cache.
    pub cache_bytes: usize,
    /// Redis Cluster seed nodes; empty for a single Redis (`redis_url`).
    pub redis_cluster: Vec<RedisUrl>,
    /// Redis Cluster: queue streams (hash slots) per lane; 1 on a single Redis.
    pub shards: u32,
    /// Redis: `WAIT` for this many replicas before an event counts as stored.
    pub wait_replicas: u32,
}

/// Connection timeouts longer than this are a typo, not a setting.
const MAX_CONN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The body budget is counted in semaphore permits, taken at most `u32::MAX` at a time.
const MAX_INFLIGHT_BODY: u64 = 4 << 30;

/// Time for bookkeeping around a delivery attempt (lease to start, outcome write), added to the
/// upstream timeout and `op_timeout` when checking `visibility_timeout`.
pub const VISIBILITY_MARGIN: Duration = Duration::from_secs(5);

impl Config {
    /// Reads and validates `file`.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.into(),
            source,
        })?;
        Self::parse(file, &text)
    }

    /// Validates `text` as if read from `file`.
    pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.into(),
            message: toml_error::describe(&e, text),
        })?;
        let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut cx = Cx::new(file, base);
        let data = cx.path(&raw.storage.path);
        let server = server(&mut cx, raw.server, data)?;
        let admin = admin(&mut cx, raw.admin)?;
        let storage = storage::storage(&mut cx, raw.storage)?;
        let routes = route::routes(&mut cx, raw.routes)?;
        let telemetry = telemetry::telemetry(&cx, raw.telemetry)?;
        storage::check_visibility(&cx, &storage, &routes)?;
        check_inflight(&cx, &server, &routes)?;
        check_client_cert(&cx, &server, &routes)?;
        Ok(Config {
            source: file.into(),
            server,
            admin,
            storage,
            routes,
            telemetry,
            warnings: cx.into_warnings(),
        })
    }
}

fn server(cx: &mut Cx, raw: raw::RawServer, data: PathBuf) -> Result<ServerConfig, ConfigError> {
    let tls = match (raw.tls, raw.insecure_http) {
        (Some(t), _) => Some(tls::tls(cx, t, raw.client_ca.as_deref(), data)?),
        (None, true) if raw.client_ca.is_some() => {
            return Err(cx.err(
                "server.client_ca",
                "needs server.tls: client certificates are part of the TLS handshake",
            ));
        }
        (None, true) => None,
        (None, false) => {
            return Err(cx.err(
                "server.tls",
                "required (set insecure_http = true for plain HTTP)",
            ));
        }
    };
    let (max_connections, max_connections_per_ip) =
        connection_counts(cx, raw.max_connections, raw.max_connections_per_ip)?;
    let inflight = cx.size_within(
        "server.max_inflight_body",
        &raw.max_inflight_body,
        MAX_INFLIGHT_BODY,
    )?;
    Ok(ServerConfig {
        listen: cx.addr("server.listen", &raw.listen)?,
        tls,
        body_timeout: cx.positive_duration("server.body_timeout", &raw.body_timeout)?,
        header_timeout: timeout(cx, "server.header_timeout", &raw.header_timeout)?,
        idle_timeout: timeout(cx, "server.idle_timeout", &raw.idle_timeout)?,
        max_connections,
        max_connections_per_ip,
        max_inflight_body: inflight,
        trusted_proxies: cx.cidrs("server.trusted_proxies", &raw.trusted_proxies)?,
        shutdown_grace: cx.duration("server.shutdown_grace", &raw.shutdown_grace)?,
    })
}

fn timeout(cx: &Cx, key: &str, v: &str) -> Result<Duration, ConfigError> {
    cx.positive_within(key, v, MAX_CONN_TIMEOUT)
}

/// `max_connections` and the per-IP share of it (the default shrinks to fit a small total).
fn connection_counts(
    cx: &Cx,
    total: usize,
    per_ip: Option<usize>,
) -> Result<(usize, usize), ConfigError> {
    // Above ~usize::MAX >> 3 a tokio Semaphore panics; a million is far beyond one process.
    cx.count("server.max_connections", total, 1 << 20)?;
    let per_ip = match per_ip {
        None => raw::D_MAX_CONNECTIONS_PER_IP.min(total),
        Some(0) => return Err(cx.err("server.max_connections_per_ip", "must be at least 1")),
        Some(n) if n > total => {
            return Err(cx.err(
                "server.max_connections_per_ip",
                format!("{n} is over server.max_connections ({total})"),
            ));
        }
        Some(n) => n,
    };
    Ok((total, per_ip))
}

/// The body budget must hold at least one body of every route, or that route could never accept.
fn check_inflight(cx: &Cx, server: &ServerConfig, routes: &[Route]) -> Result<(), ConfigError> {
    let Some(biggest) = routes.iter().max_by_key(|r| r.max_body) else {
        return Ok(());
    };
    if server.max_inflight_body < biggest.max_body {
        return Err(cx.err(
            "server.max_inflight_body",
            format!(
                "{} is smaller than route {:?} max_body ({}); raise it or lower max_body",
                bytesize::ByteSize(server.max_inflight_body),
                biggest.name,
                bytesize::ByteSize(biggest.max_body),
            ),
        ));
    }
    Ok(())
}

/// A route restricted by client certificate needs the listener to ask for one.
fn check_client_cert(cx: &Cx, server: &ServerConfig, routes: &[Route]) -> Result<(), ConfigError> {
    let asks = server.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    match routes.iter().position(|r| r.client_cert.is_some()) {
        Some(i) if !asks => Err(cx.err(
            format!("route[{i}].client_cert"),
            "needs server.client_ca: without it no client certificate is asked for",
        )),
        _ => Ok(()),
    }
}

fn admin(cx: &mut Cx, raw: raw::RawAdmin) -> Result<AdminConfig, ConfigError> {
    let token = raw
        .token
        .map(|t| cx.secret("admin.token", &t))
        .transpose()?;
    let listen = cx.addr("admin.listen", &raw.listen)?;
    if !listen.ip().is_loopback() {
        // The admin listener speaks plain HTTP: off loopback, the bearer token and the DLQ's
        // event bodies cross the network in clear (docs/security.md, "The admin listener").
        cx.warn(
            "admin.listen",
            format_args!(
                "{listen} is NOT loopback and the admin listener has no TLS; anyone on that \
                 network can read /metrics and sniff the admin token. Bind it to 127.0.0.1 and \
                 reach it through an SSH tunnel or a TLS-terminating proxy"
            ),
        );
    }
    Ok(AdminConfig { listen, token })
}

#[cfg(test)]
mod tests;
