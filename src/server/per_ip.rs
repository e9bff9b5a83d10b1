//! Open connections per client address, so one client cannot take every slot of `max_connections`.
//!
//! IPv4 counts per address; IPv6 per /64, the smallest block a single site is usually given (one
//! host can pick any address in it). An IPv4-mapped IPv6 peer counts as its IPv4 address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Connection counts by client key; entries vanish when their count reaches zero.
#[derive(Clone)]
pub struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One counted connection; dropping it frees the slot.
pub struct Slot {
    key: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    /// At most `limit` connections per client key.
    pub fn new(limit: usize) -> PerIp {
        PerIp {
            limit,
            open: Arc::default(),
        }
    }

    /// Counts a connection from `ip`, or `None` when its key is at the limit.
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let key = key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Slot {
            key,
            open: self.open.clone(),
        })
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
        let per_ip = PerIp::new(2);
        let a = per_ip.admit(ip("192.0.2.1")).unwrap();
        let _b = per_ip.admit(ip("192.0.2.1")).unwrap();
        assert!(per_ip.admit(ip("192.0.2.1")).is_none());
        assert!(per_ip.admit(ip("192.0.2.2")).is_some(), "another address");
        drop(a);
        assert!(per_ip.admit(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn ipv6_counts_per_64() {
        let per_ip = PerIp::new(1);
        let _a = per_ip.admit(ip("2001:db8:1:2::1")).unwrap();
        assert!(per_ip.admit(ip("2001:db8:1:2:ffff::9")).is_none());
        assert!(per_ip.admit(ip("2001:db8:1:3::1")).is_some());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        assert_eq!(key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(key(ip("2001:db8::1")), ip("2001:db8::"));
    }

    #[test]
    fn empty_entries_are_removed() {
        let per_ip = PerIp::new(3);
        drop(per_ip.admit(ip("192.0.2.1")));
        assert!(per_ip.open.lock().unwrap().is_empty());
    }
}
