//! The TOML file as written: strings where the user writes strings, defaults filled in.
//!
//! Unknown keys are refused (`deny_unknown_fields`) so a typo is an error, not a silently ignored
//! setting. Nothing outside `config` sees these types: `Config::from_raw` turns them into typed values.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub telemetry: RawTelemetry,
}

/// `[telemetry]`: OpenTelemetry traces; off without `otlp_endpoint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// OTLP/HTTP collector, e.g. `http://127.0.0.1:4318` (`/v1/traces` is added to a bare URL).
    pub otlp_endpoint: Option<String>,
    #[serde(default = "d_service_name")]
    pub service_name: String,
    /// How often finished spans are sent in a batch.
    #[serde(default = "d_export_interval")]
    pub export_interval: String,
    /// Finished spans held while waiting for export; past it new spans are dropped.
    #[serde(default = "d_max_queued_spans")]
    pub max_queued_spans: usize,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            otlp_endpoint: None,
            service_name: d_service_name(),
            export_interval: d_export_interval(),
            max_queued_spans: d_max_queued_spans(),
        }
    }
}

fn d_service_name() -> String {
    "hookgate".into()
}
fn d_export_interval() -> String {
    "5s".into()
}
fn d_max_queued_spans() -> usize {
    2048
}

/// `[server]`: the public listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default = "d_listen")]
    pub listen: String,
    pub tls: Option<RawTls>,
    /// PEM bundle: client certificates signed by it are required (mTLS).
    pub client_ca: Option<String>,
    #[serde(default)]
    pub insecure_http: bool,
    #[serde(default = "d_body_timeout")]
    pub body_timeout: String,
    #[serde(default = "d_header_timeout")]
    pub header_timeout: String,
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout: String,
    #[serde(default = "d_max_connections")]
    pub max_connections: usize,
    /// Default `min(256, max_connections)`; an explicit value over `max_connections` is refused.
    pub max_connections_per_ip: Option<usize>,
    #[serde(default = "d_max_inflight_body")]
    pub max_inflight_body: String,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default = "d_grace")]
    pub shutdown_grace: String,
}

/// `server.tls`: PEM files (`dev_self_signed` creates a throwaway pair when both are missing), or
/// `acme` for certificates obtained and renewed automatically.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(default)]
    pub dev_self_signed: bool,
    pub acme: Option<RawAcme>,
}

/// `server.tls.acme`: the names to certify and the ACME server to ask.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    #[serde(default)]
    pub domains: Vec<String>,
    pub email: Option<String>,
    #[serde(default = "d_acme_directory")]
    pub directory: String,
    /// Empty means the public roots only.
    #[serde(default)]
    pub directory_ca: String,
}

/// `[admin]`: health, readiness, metrics and the bearer-token API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "d_admin_listen")]
    pub listen: String,
    pub token: Option<String>,
}

impl Default for RawAdmin {
    fn default() -> Self {
        RawAdmin {
            listen: d_admin_listen(),
            token: None,
        }
    }
}

/// `[storage]`: where dedup records and the queue live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    #[serde(default = "d_backend")]
    pub backend: String,
    #[serde(default = "d_path")]
    pub path: String,
    #[serde(default = "d_redis_url")]
    pub redis_url: String,
    #[serde(default = "d_dedup_ttl")]
    pub dedup_ttl: String,
    #[serde(default = "d_claim_ttl")]
    pub claim_ttl: String,
    #[serde(default = "d_key_prefix")]
    pub key_prefix: String,
    #[serde(default = "d_visibility_timeout")]
    pub visibility_timeout: String,
    #[serde(default = "d_op_timeout")]
    pub op_timeout: String,
    /// Embedded: redb page cache.
    #[serde(default = "d_cache")]
    pub cache: String,
    /// Redis Cluster seed nodes (each may be `env:`/`file:`); empty: a single Redis.
    #[serde(default)]
    pub redis_cluster: Vec<String>,
    /// Redis Cluster: queue streams per lane.
    #[serde(default = "d_shards")]
    pub shards: u32,
    /// Redis: replicas that must hold a write before it is acknowledged.
    #[serde(default)]
    pub wait_replicas: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            backend: d_backend(),
            path: d_path(),
            redis_url: d_redis_url(),
            dedup_ttl: d_dedup_ttl(),
            claim_ttl: d_claim_ttl(),
            key_prefix: d_key_prefix(),
            visibility_timeout: d_visibility_timeout(),
            op_timeout: d_op_timeout(),
            cache: d_cache(),
            redis_cluster: Vec::new(),
            shards: d_shards(),
            wait_replicas: 0,
        }
    }
}

/// One `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub path: String,
    pub host: Option<String>,
    pub scheme: String,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default = "d_tolerance")]
    pub tolerance: String,
    /// The URL the sender was given (twilio, square, `{url}` in hmac).
    pub public_url: Option<String>,
    /// github: also accept the legacy SHA-1 `X-Hub-Signature`.
    #[serde(default)]
    pub legacy_sha1: bool,
    /// `[route.hmac]`: the generic scheme's settings.
    pub hmac: Option<super::route::scheme::RawHmac>,
    #[serde(default = "d_max_body")]
    pub max_body: String,
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// Which verified client certificates may post (needs `server.client_ca`).
    pub client_cert: Option<RawClientCert>,
    /// The route's single upstream; or `upstreams` for fan-out.
    pub upstream: Option<RawUpstream>,
    #[serde(default)]
    pub upstreams: Vec<RawUpstream>,
    /// JSON pointer to the event type in the body, for `events` filters.
    pub event_type: Option<String>,
    #[serde(default)]
    pub retry: RawRetry,
    pub forward_secret: Option<String>,
    /// What makes two events the same: `"id"`, or `"id+body"` (also the body's SHA-256).
    #[serde(default = "d_dedup")]
    pub dedup: String,
    /// JSON pointer or `"header:NAME"`: events of one key are delivered one at a time, in order.
    pub order_by: Option<String>,
    /// `"release"` (default) or `"block"`: what a dead-lettered event does to its key.
    pub on_dead: Option<String>,
}

/// `route.client_cert`: a certificate is let through when one of its SANs is in `sans` or its
/// subject holds every attribute of one entry of `subjects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCert {
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
}

/// `route.rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub rps: u32,
    pub burst: Option<u32>,
    pub per_ip_rps: Option<u32>,
}

/// `route.upstream`, or one entry of `route.upstreams`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Required in `upstreams` (fan-out); names the lane `route/name`.
    pub name: Option<String>,
    pub url: String,
    /// Event-type globs this upstream wants (`"invoice.*"`); empty means all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Conditions on the body, all of which must hold (`[{ pointer = "/type", prefix = "invoice." }]`).
    #[serde(default)]
    pub filter: Vec<RawCondition>,
    /// Extra PEM CA bundle trusted for an https upstream.
    pub ca: Option<String>,
    #[serde(default = "d_upstream_timeout")]
    pub timeout: String,
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    #[serde(default = "d_suspend_after")]
    pub suspend_after: u32,
    /// First wait before probing a suspended upstream; doubles up to 5 minutes.
    #[serde(default = "d_probe_interval")]
    pub probe_interval: String,
}

/// One entry of `upstream.filter`. Values stay TOML values here so that a wrong type is
/// reported by validation with the condition's full key, as every other bad value is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub pointer: Option<toml::Value>,
    pub equals: Option<toml::Value>,
    pub one_of: Option<toml::Value>,
    pub exists: Option<toml::Value>,
    pub prefix: Option<toml::Value>,
    pub gt: Option<toml::Value>,
    pub lt: Option<toml::Value>,
}

/// `route.retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default = "d_schedule")]
    pub schedule: Vec<String>,
    #[serde(default = "d_max_attempts")]
    pub max_attempts: u32,
    /// Upstream statuses that dead-letter at once instead of retrying (e.g. 410 Gone).
    #[serde(default)]
    pub no_retry_on: Vec<u16>,
}

impl Default for RawRetry {
    fn default() -> Self {
        RawRetry {
            schedule: d_schedule(),
            max_attempts: d_max_attempts(),
            no_retry_on: Vec::new(),
        }
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}
fn d_listen() -> String {
    s("0.0.0.0:8443")
}
fn d_admin_listen() -> String {
    s("127.0.0.1:9090")
}
fn d_body_timeout() -> String {
    s("10s")
}
fn d_header_timeout() -> String {
    s("10s")
}
fn d_idle_timeout() -> String {
    s("60s")
}
fn d_max_connections() -> usize {
    10_000
}
pub(super) const D_MAX_CONNECTIONS_PER_IP: usize = 256;
fn d_max_inflight_body() -> String {
    s("64MiB")
}
fn d_grace() -> String {
    s("30s")
}
fn d_backend() -> String {
    s("embedded")
}
fn d_path() -> String {
    s("data")
}
fn d_acme_directory() -> String {
    s(super::acme::LETS_ENCRYPT)
}
fn d_redis_url() -> String {
    s("redis://127.0.0.1:6379")
}
fn d_dedup_ttl() -> String {
    s("24h")
}
fn d_claim_ttl() -> String {
    s("30s")
}
fn d_key_prefix() -> String {
    s("hookgate")
}
fn d_visibility_timeout() -> String {
    s("2m")
}
fn d_op_timeout() -> String {
    s("2s")
}
fn d_shards() -> u32 {
    16
}
fn d_cache() -> String {
    s("16MiB") // = embedded::DEFAULT_CACHE; why that size: docs/performance.md
}
fn d_dedup() -> String {
    s("id")
}
fn d_tolerance() -> String {
    s("5m")
}
// Stripe-style senders (bitbybit's docs, for one) cap payloads at 64 KB; routes for bigger senders (GitHub: 25 MB) raise it.
fn d_max_body() -> String {
    s("64KiB")
}
fn d_upstream_timeout() -> String {
    s("30s")
}
fn d_concurrency() -> usize {
    16
}
fn d_suspend_after() -> u32 {
    10
}
// The schedule senders document for themselves (bitbybit's "Webhooks Overview"): 30 s, 5 min, 30 min, 2 h, failed after 5 attempts.
fn d_schedule() -> Vec<String> {
    ["30s", "5m", "30m", "2h"].map(s).to_vec()
}
fn d_probe_interval() -> String {
    s("5s")
}
fn d_max_attempts() -> u32 {
    5
}
