//! `route.upstream` / `route.upstreams`: where verified events go, one queue lane per upstream.

use std::collections::HashSet;
use std::time::Duration;

use super::filter::{Filter, filter};
use super::raw::RawUpstream;
use super::tls::{UpstreamTls, upstream_tls};
use super::{ConfigError, Cx};

/// Most attempts in flight to one upstream (it sizes a semaphore).
const MAX_CONCURRENCY: usize = 4096;

/// One delivery target of a route.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `None` for a route's single `upstream`; the fan-out name otherwise.
    pub name: Option<String>,
    pub url: http::Uri,
    pub timeout: Duration,
    pub concurrency: usize,
    pub suspend_after: u32,
    /// First wait before probing a suspended upstream.
    pub probe_interval: Duration,
    /// Event-type globs; empty takes every event.
    pub events: Vec<String>,
    /// Conditions on the body; empty takes every event.
    pub filter: Filter,
    /// `ca`: an extra CA bundle for an https upstream, parsed into its client config at load.
    pub tls: Option<UpstreamTls>,
}

impl Upstream {
    /// The queue lane: `route` for a single upstream, `route/name` in a fan-out.
    pub fn lane(&self, route: &str) -> String {
        match &self.name {
            None => route.to_owned(),
            Some(n) => format!("{route}/{n}"),
        }
    }

    /// Whether this upstream wants an event of `event_type` (`*` matches any run of characters)
    /// whose body parsed as JSON is `doc` (`None`: not JSON, or not parsed as no filter needs it).
    /// An event whose type is unknown passes the globs rather than being dropped.
    pub fn wants(&self, event_type: Option<&str>, doc: Option<&serde_json::Value>) -> bool {
        self.wants_type(event_type) && self.filter.holds(doc)
    }

    fn wants_type(&self, event_type: Option<&str>) -> bool {
        match event_type {
            _ if self.events.is_empty() => true,
            None => true,
            Some(t) => self.events.iter().any(|g| glob(g.as_bytes(), t.as_bytes())),
        }
    }
}

/// Exactly one of `upstream` and `upstreams`; fan-out entries need unique names.
pub(super) fn upstreams(
    cx: &Cx,
    key: &str,
    single: Option<RawUpstream>,
    many: Vec<RawUpstream>,
) -> Result<Vec<Upstream>, ConfigError> {
    match (single, many.is_empty()) {
        (Some(u), true) => {
            if u.name.is_some() {
                return Err(cx.err(
                    format!("{key}.upstream.name"),
                    "only entries of `upstreams` have names",
                ));
            }
            Ok(vec![upstream(cx, &format!("{key}.upstream"), u)?])
        }
        (None, false) => fan_out(cx, key, many),
        (Some(_), false) => Err(cx.err(
            format!("{key}.upstreams"),
            "set either `upstream` or `upstreams`, not both",
        )),
        (None, true) => Err(cx.err(
            format!("{key}.upstream"),
            "missing: set `upstream` (or `upstreams` for fan-out)",
        )),
    }
}

fn fan_out(cx: &Cx, key: &str, many: Vec<RawUpstream>) -> Result<Vec<Upstream>, ConfigError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(many.len());
    for (i, u) in many.into_iter().enumerate() {
        let k = format!("{key}.upstreams[{i}]");
        let Some(name) = u.name.clone() else {
            return Err(cx.err(format!("{k}.name"), "required in `upstreams`"));
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(cx.err(format!("{k}.name"), "use letters, digits, '-', '_' or '.'"));
        }
        if !names.insert(name.clone()) {
            return Err(cx.err(
                format!("{k}.name"),
                format!("duplicate upstream name {name:?}"),
            ));
        }
        out.push(upstream(cx, &k, u)?);
    }
    Ok(out)
}

fn upstream(cx: &Cx, k: &str, u: RawUpstream) -> Result<Upstream, ConfigError> {
    let url: http::Uri = u
        .url
        .parse()
        .map_err(|e| cx.err(format!("{k}.url"), format!("bad URL {:?}: {e}", u.url)))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(cx.err(
            format!("{k}.url"),
            format!("{:?} must be an absolute http:// or https:// URL", u.url),
        ));
    }
    let concurrency = cx.count(&format!("{k}.concurrency"), u.concurrency, MAX_CONCURRENCY)?;
    if u.suspend_after == 0 {
        return Err(cx.err(format!("{k}.suspend_after"), "must be at least 1"));
    }
    let tls =
        u.ca.map(|p| upstream_tls(cx, &format!("{k}.ca"), cx.path(&p)))
            .transpose()?;
    Ok(Upstream {
        name: u.name,
        url,
        timeout: cx.positive_duration(&format!("{k}.timeout"), &u.timeout)?,
        concurrency,
        suspend_after: u.suspend_after,
        probe_interval: cx.positive_duration(&format!("{k}.probe_interval"), &u.probe_interval)?,
        events: u.events,
        filter: filter(cx, &format!("{k}.filter"), u.filter)?,
        tls,
    })
}

/// `*` matches any run of bytes (including dots); everything else matches itself.
/// Greedy with backtracking to the last star only: O(pattern × text), whatever the input.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_event_types() {
        assert!(glob(b"invoice.*", b"invoice.paid"));
        assert!(glob(b"*.created", b"customer.created"));
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"order.updated", b"order.updated"));
        assert!(!glob(b"invoice.*", b"customer.created"));
        assert!(!glob(b"invoice.*", b"invoice"));
        assert!(glob(b"a*b*c", b"a-x-b-y-c"));
    }
}
