//! Finding the route for a request: exact path, then the optional host.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::Request;

use super::limit::Limiter;
use crate::config::Route;

/// A configured route with its runtime state (rate buckets).
#[derive(Debug)]
pub struct RouteState {
    pub cfg: Route,
    pub limiter: Option<Limiter>,
}

impl RouteState {
    /// Whether `ip` may post to this route.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.cfg.allow_ips.is_empty() || self.cfg.allow_ips.iter().any(|n| n.contains(&ip))
    }
}

/// Routes by exact path; several routes may share a path when their hosts differ.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_path: HashMap<String, Vec<Arc<RouteState>>>,
}

impl RouteTable {
    /// Builds the table from validated routes.
    pub fn new(routes: &[Route]) -> RouteTable {
        let mut by_path: HashMap<String, Vec<Arc<RouteState>>> = HashMap::new();
        for r in routes {
            let state = RouteState {
                cfg: r.clone(),
                limiter: Limiter::new(r.rate_limit),
            };
            by_path
                .entry(r.path.clone())
                .or_default()
                .push(Arc::new(state));
        }
        // A host-specific route must win over a catch-all one on the same path.
        for list in by_path.values_mut() {
            list.sort_by_key(|r| r.cfg.host.is_none());
        }
        RouteTable { by_path }
    }

    /// The route for this request, if any.
    pub fn find<B>(&self, req: &Request<B>) -> Option<&Arc<RouteState>> {
        let candidates = self.by_path.get(req.uri().path())?;
        let host = request_host(req);
        candidates.iter().find(|r| match &r.cfg.host {
            None => true,
            Some(h) => host.as_deref() == Some(h.as_str()),
        })
    }

    /// Every route, for housekeeping and admin views.
    pub fn all(&self) -> impl Iterator<Item = &Arc<RouteState>> {
        self.by_path.values().flatten()
    }
}

/// Lower-cased host without port, from the URI authority (HTTP/2) or `Host` (HTTP/1.1).
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(h) = req.uri().host() {
        return Some(h.to_ascii_lowercase());
    }
    let raw = req.headers().get(http::header::HOST)?.to_str().ok()?;
    let authority = raw.parse::<http::uri::Authority>().ok()?;
    Some(authority.host().to_ascii_lowercase())
}
