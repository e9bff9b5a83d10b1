//! `[[route]]` validation: path, scheme and secrets, limits, upstream and retry policy.

pub(super) mod scheme;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::order::{Ordering, ordering};
use super::raw::{RawRateLimit, RawRetry, RawRoute};
use super::upstream::{Upstream, upstreams};
use super::{ConfigError, Cx, MAX_DELAY};
use crate::ingest::client_cert::ClientCertRule;
use crate::verify::Scheme;

/// One webhook endpoint: what it accepts and where verified events go.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub path: String,
    /// Matched against the `Host` header (port ignored) when set.
    pub host: Option<String>,
    pub scheme_name: String,
    pub scheme: Arc<dyn Scheme>,
    pub max_body: u64,
    pub rate_limit: Option<RateLimit>,
    /// Source networks allowed to post; empty means everyone.
    pub allow_ips: Vec<IpNet>,
    /// Client certificates allowed to post (`client_cert`); `None` lets every verified one through.
    pub client_cert: Option<ClientCertRule>,
    /// One entry (`upstream`) or several (`upstreams`, fan-out), each its own queue lane.
    pub upstreams: Vec<Upstream>,
    /// JSON pointer to the event type in the body (else the scheme's event type).
    pub event_type: Option<String>,
    pub retry: RetryPolicy,
    /// Re-signs deliveries (Standard Webhooks), built from `forward_secret` at load.
    pub forward_signer: Option<Arc<dyn Scheme>>,
    /// What the dedup step compares (`dedup` in config.example.toml).
    pub dedup: DedupOn,
    /// `order_by` and `on_dead`: None delivers the route's events in any order.
    pub order: Option<Ordering>,
}

/// What makes a second request the same event, refused as a duplicate within `dedup_ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupOn {
    /// The event id (`"id"`, the default).
    Id,
    /// The id, and separately the SHA-256 of the body (`"id+body"`): a captured request
    /// replayed under a fresh id is refused too, for schemes that do not sign the id.
    IdAndBody,
}

/// Requests per second per route and per client IP.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub rps: u32,
    pub burst: u32,
    pub per_ip_rps: Option<u32>,
}

/// Delay before attempt n+1 is `schedule[min(n-1, len-1)]`; after `max_attempts` the event is dead.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    pub max_attempts: u32,
    /// Statuses that dead-letter at once.
    pub no_retry_on: Vec<u16>,
}

pub(super) fn routes(cx: &mut Cx, raw: Vec<RawRoute>) -> Result<Vec<Route>, ConfigError> {
    if raw.is_empty() {
        return Err(cx.err("route", "at least one [[route]] is required"));
    }
    let (mut names, mut paths) = (HashSet::new(), HashSet::new());
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = format!("route[{i}]");
        if !names.insert(r.name.clone()) {
            return Err(cx.err(
                format!("{key}.name"),
                format!("duplicate route name {:?}", r.name),
            ));
        }
        if !paths.insert((r.host.clone(), r.path.clone())) {
            return Err(cx.err(
                format!("{key}.path"),
                format!("duplicate route path {:?}", r.path),
            ));
        }
        out.push(route(cx, &key, r)?);
    }
    Ok(out)
}

fn route(cx: &mut Cx, key: &str, r: RawRoute) -> Result<Route, ConfigError> {
    if r.name.is_empty()
        || !r
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(cx.err(
            format!("{key}.name"),
            "use letters, digits, '-', '_' or '.'",
        ));
    }
    if !r.path.starts_with('/') {
        return Err(cx.err(format!("{key}.path"), "must start with '/'"));
    }
    let scheme = scheme::scheme(cx, key, &r)?;
    Ok(Route {
        scheme,
        max_body: cx.size(&format!("{key}.max_body"), &r.max_body)?,
        rate_limit: r.rate_limit.map(|l| rate_limit(cx, key, l)).transpose()?,
        allow_ips: cx.cidrs(&format!("{key}.allow_ips"), &r.allow_ips)?,
        client_cert: r
            .client_cert
            .map(|c| ClientCertRule::new(&c.sans, &c.subjects))
            .transpose()
            .map_err(|e| cx.err(format!("{key}.client_cert"), e))?,
        upstreams: upstreams(cx, key, r.upstream, r.upstreams)?,
        event_type: r.event_type,
        retry: retry(cx, key, r.retry)?,
        dedup: dedup_on(cx, key, &r.dedup)?,
        order: ordering(cx, key, r.order_by, r.on_dead)?,
        forward_signer: r
            .forward_secret
            .map(|s| scheme::forward_signer(cx, &format!("{key}.forward_secret"), &s))
            .transpose()?,
        name: r.name,
        path: r.path,
        host: r.host.map(|h| h.to_ascii_lowercase()),
        scheme_name: r.scheme,
    })
}

fn dedup_on(cx: &Cx, key: &str, v: &str) -> Result<DedupOn, ConfigError> {
    match v {
        "id" => Ok(DedupOn::Id),
        "id+body" => Ok(DedupOn::IdAndBody),
        other => Err(cx.err(
            format!("{key}.dedup"),
            format!("{other:?} is not \"id\" or \"id+body\""),
        )),
    }
}

fn rate_limit(cx: &Cx, key: &str, l: RawRateLimit) -> Result<RateLimit, ConfigError> {
    if l.rps == 0 || l.burst == Some(0) || l.per_ip_rps == Some(0) {
        return Err(cx.err(
            format!("{key}.rate_limit"),
            "rates and burst must be at least 1",
        ));
    }
    Ok(RateLimit {
        rps: l.rps,
        burst: l.burst.unwrap_or(l.rps),
        per_ip_rps: l.per_ip_rps,
    })
}

fn retry(cx: &Cx, key: &str, r: RawRetry) -> Result<RetryPolicy, ConfigError> {
    if r.max_attempts == 0 {
        return Err(cx.err(format!("{key}.retry.max_attempts"), "must be at least 1"));
    }
    if r.schedule.is_empty() && r.max_attempts > 1 {
        return Err(cx.err(
            format!("{key}.retry.schedule"),
            "needs at least one delay when max_attempts > 1",
        ));
    }
    let schedule = r
        .schedule
        .iter()
        .enumerate()
        .map(|(i, d)| cx.duration_within(&format!("{key}.retry.schedule[{i}]"), d, MAX_DELAY))
        .collect::<Result<_, _>>()?;
    if let Some(bad) = r.no_retry_on.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(cx.err(
            format!("{key}.retry.no_retry_on"),
            format!("{bad} is not an HTTP status"),
        ));
    }
    Ok(RetryPolicy {
        schedule,
        max_attempts: r.max_attempts,
        no_retry_on: r.no_retry_on,
    })
}
