//! Open connections per client address, so one client cannot take every slot of `max_connections`.
//!
//! IPv4 counts per address; IPv6 per /64, the smallest block a single site is usually given (one
//! host can pick any address in it). An IPv4-mapped IPv6 peer counts as its IPv4 address. Trusted
//! proxies (`server.trusted_proxies`) are not counted: each carries many clients.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// Connection counts by client key; entries vanish when their count reaches zero.
#[derive(Clone)]
pub struct PerIp {
    limit: usize,
    exempt: Arc<[IpNet]>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// The client already holds its share of connections.
#[derive(Debug)]
pub struct AtLimit;

/// One counted connection; dropping it frees the slot.
pub struct Slot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    /// At most `limit` connections per client key; peers in `exempt` are not limited.
    pub fn new(limit: usize, exempt: &[IpNet]) -> PerIp {
        PerIp {
            limit,
            exempt: exempt.into(),
            open: Arc::default(),
        }
    }

    /// Admits a connection from `ip`: `Err` when its key is at the limit, `Ok(None)` for an
    /// exempt peer, else the counted slot.
    pub fn admit(&self, ip: IpAddr) -> Result<Option<Slot>, AtLimit> {
        let key = key(ip);
        // The full address for an IPv6 proxy, the unmapped one for an IPv4 proxy.
        if self
            .exempt
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&key))
        {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return Err(AtLimit);
        }
        *n += 1;
        Ok(Some(Slot {
            key,
            open: self.open.clone(),
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as is, IPv6 as its /64.
pub fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_key_is_refused_at_its_limit_and_freed_on_drop() {
        let per_ip = PerIp::new(2, &[]);
        let a = per_ip.admit(ip("192.0.2.1")).unwrap();
        let _b = per_ip.admit(ip("192.0.2.1")).unwrap();
        assert!(per_ip.admit(ip("192.0.2.1")).is_err());
        assert!(per_ip.admit(ip("192.0.2.2")).is_ok(), "another address");
        drop(a);
        assert!(per_ip.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let per_ip = PerIp::new(1, &[]);
        let _a = per_ip.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(per_ip.admit(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(per_ip.admit(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(key(ip("2001:db8::1")), ip("2001:db8::"));
    }

    #[test]
    fn empty_entries_are_removed() {
        let per_ip = PerIp::new(3, &[]);
        drop(per_ip.admit(ip("192.0.2.1")));
        assert!(per_ip.open.lock().unwrap().is_empty());
    }

    #[test]
    fn trusted_proxies_are_not_limited() {
        let per_ip = PerIp::new(1, &["10.0.0.0/8".parse().unwrap()]);
        let held: Vec<_> = (0..5)
            .map(|_| per_ip.admit(ip("10.1.2.3")).unwrap())
            .collect();
        assert!(
            held.iter().all(Option::is_none),
            "exempt peers are not counted"
        );
        let _a = per_ip.admit(ip("192.0.2.1")).unwrap();
        assert!(per_ip.admit(ip("192.0.2.1")).is_err());
    }
}
