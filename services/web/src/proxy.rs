//! Who the client is: the peer address, or, when the peer is a configured reverse
//! proxy, the address that proxy put in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is believed only from the addresses in `trusted_proxies`
//! (single addresses or CIDR ranges). The header is read from the right: each proxy
//! appends the address it received the request from, so the rightmost entry that is
//! not a trusted proxy is the client; anything to its left was written by the client
//! and is ignored. A malformed entry stops the walk at the last address known good.

use std::net::IpAddr;

use axum::http::HeaderMap;

use crate::WebError;

/// A range of addresses: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address.
    pub fn parse(s: &str) -> Result<Net, WebError> {
        let bad = |why: &str| WebError::Config(format!("trusted proxy {s:?}: {why}"));
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an ip address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| bad("the prefix length is out of range"))?,
            None => max,
        };
        Ok(Net { addr, prefix })
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`; everything else as is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

impl TrustedProxies {
    /// Parses each entry (see [`Net::parse`]); an empty list trusts no one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, WebError> {
        let nets = entries
            .iter()
            .map(|e| Net::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // every X-Forwarded-For header, in order, as one list, walked from the right
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for entry in entries.iter().rev() {
            match parse_entry(entry) {
                Some(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        return client;
                    }
                }
                None => return client,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, `[v6]:port` or `v4:port`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse() {
        return Some(ip);
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_parsed_and_matched() {
        let n = Net::parse("10.1.0.0/16").unwrap();
        assert!(n.contains(ip("10.1.200.3")));
        assert!(n.contains(ip("::ffff:10.1.0.9")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(!n.contains(ip("fd00::1")));
        let v6 = Net::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Net::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Net::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Net::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        for bad in ["10.0.0.0/33", "fd00::/129", "proxy.local", "10.0.0.0/x", ""] {
            let e = Net::parse(bad).unwrap_err().to_string();
            assert!(e.contains("trusted proxy"), "{bad}: {e}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = TrustedProxies::default();
        let spoofed = headers(&["1.2.3.4"]);
        assert_eq!(none.client(ip("203.0.113.7"), &spoofed), ip("203.0.113.7"));

        let t = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
        // a direct client cannot pretend to be someone else
        assert_eq!(t.client(ip("203.0.113.7"), &spoofed), ip("203.0.113.7"));
        // through the proxy: the rightmost untrusted entry, not what the client wrote
        let h = headers(&["6.6.6.6, 198.51.100.9", "10.0.0.2"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("198.51.100.9"));
        assert_eq!(
            t.client(ip("::1"), &headers(&["[2001:db8::5]:443"])),
            ip("2001:db8::5")
        );
        assert_eq!(
            t.client(ip("::ffff:10.0.0.1"), &headers(&["198.51.100.9:80"])),
            ip("198.51.100.9")
        );
        // no header, or only proxies: the last proxy seen
        assert_eq!(t.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["10.0.0.3"])),
            ip("10.0.0.3")
        );
        // garbage stops the walk at the last good address
        assert_eq!(
            t.client(ip("10.0.0.1"), &headers(&["1.1.1.1, nonsense"])),
            ip("10.0.0.1")
        );
    }
}
