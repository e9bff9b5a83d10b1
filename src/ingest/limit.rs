//! Who is asking (client IP behind trusted proxies), whether they may, and how often (governor).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use ipnet::IpNet;

use crate::config::RateLimit;

/// The client's address: the socket peer, or — only when the peer is a trusted proxy — the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => return ip.to_canonical(),
            // A garbled hop cannot be attributed; stop at the last address we can vouch for.
            Err(_) => break,
        }
    }
    peer
}

/// The bucket a client address falls in: an IPv4 address on its own (IPv4-mapped IPv6 counts
/// as IPv4), an IPv6 address by its /64 — one subscriber's usual allocation, so hopping
/// through the addresses of one's own prefix does not multiply the budget.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !(u128::from(u64::MAX));
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// Route-wide and per-IP token buckets.
#[derive(Debug)]
pub struct Limiter {
    route: DefaultDirectRateLimiter,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

impl Limiter {
    /// Builds the buckets; `None` when the route has no limit.
    pub fn new(cfg: Option<RateLimit>) -> Option<Limiter> {
        let cfg = cfg?;
        let nz = |n: u32| NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_second(nz(cfg.rps)).allow_burst(nz(cfg.burst));
        let per_ip = cfg.per_ip_rps.map(|r| {
            // Let one client burst as far as its per-second rate, never beyond the route's burst.
            let q = Quota::per_second(nz(r)).allow_burst(nz(r.min(cfg.burst)));
            DefaultKeyedRateLimiter::keyed(q)
        });
        Some(Limiter {
            route: DefaultDirectRateLimiter::direct(quota),
            per_ip,
        })
    }

    /// `Err(wait)` when over the limit; `ip` is keyed by [`ip_key`]. The per-IP bucket is checked first so that one noisy
    /// client does not also drain the route's bucket for everyone else.
    ///
    /// The wait is measured on the limiter's own clock: building a `DefaultClock` calibrates
    /// it (CPUID and a timing loop), which cost 13 % of the gateway's CPU when done per request.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let clock = self.route.clock();
        if let Some(per_ip) = &self.per_ip {
            per_ip
                .check_key(&ip_key(ip))
                .map_err(|n| n.wait_time_from(per_ip.clock().now()))?;
        }
        self.route
            .check()
            .map_err(|n| n.wait_time_from(clock.now()))
    }

    /// Forgets idle clients so the per-IP map does not grow without bound.
    pub fn housekeeping(&self) {
        if let Some(per_ip) = &self.per_ip {
            per_ip.retain_recent();
            per_ip.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let peer = "203.0.113.9:4000".parse().unwrap();
        let ip = client_ip(peer, &xff("1.2.3.4"), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "203.0.113.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn rightmost_untrusted_hop_wins_behind_trusted_proxies() {
        let peer = "10.0.0.2:4000".parse().unwrap();
        let ip = client_ip(
            peer,
            &xff("6.6.6.6, 198.51.100.7, 10.0.0.1"),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn garbage_hop_falls_back_to_peer() {
        let peer = "10.0.0.2:4000".parse().unwrap();
        let ip = client_ip(peer, &xff("not-an-ip"), &nets(&["10.0.0.0/8"]));
        assert_eq!(ip, "10.0.0.2".parse::<IpAddr>().unwrap());
    }

    proptest::proptest! {
        /// Any X-Forwarded-For value: no panic, and the answer is the peer or one of the hops.
        #[test]
        fn forwarded_for_never_panics_and_picks_a_real_hop(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let peer: SocketAddr = "10.0.0.2:4000".parse().unwrap();
            let mut h = HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&raw) {
                h.insert("x-forwarded-for", v);
            }
            let ip = client_ip(peer, &h, &nets(&["10.0.0.0/8"]));
            let text = String::from_utf8_lossy(&raw);
            let is_hop = text.split(',').any(|hop| hop.trim().parse::<IpAddr>().ok().map(|a| a.to_canonical()) == Some(ip));
            proptest::prop_assert!(ip == peer.ip() || is_hop);
        }
    }

    #[test]
    fn burst_then_refusal_with_a_wait() {
        let l = Limiter::new(Some(RateLimit {
            rps: 1,
            burst: 2,
            per_ip_rps: None,
        }))
        .unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.check(ip).is_ok() && l.check(ip).is_ok());
        let wait = l.check(ip).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn per_ip_limit_spares_other_clients() {
        let l = Limiter::new(Some(RateLimit {
            rps: 100,
            burst: 100,
            per_ip_rps: Some(1),
        }))
        .unwrap();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(l.check(a).is_ok());
        assert!(l.check(a).is_err());
        assert!(l.check(b).is_ok());
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_ipv4_by_the_address() {
        let key = |s: &str| ip_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("::ffff:192.0.2.1"), key("::ffff:192.0.2.2"));
    }

    #[test]
    fn per_ip_limit_counts_a_whole_ipv6_64_as_one_client() {
        let l = Limiter::new(Some(RateLimit {
            rps: 100,
            burst: 100,
            per_ip_rps: Some(1),
        }))
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.check(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.check(ip("2001:db8:1:2::2")).is_err(), "same /64");
        assert!(l.check(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        assert!(l.check(ip("192.0.2.1")).is_ok());
        assert!(
            l.check(ip("::ffff:192.0.2.1")).is_err(),
            "mapped is the same IPv4"
        );
    }
}
