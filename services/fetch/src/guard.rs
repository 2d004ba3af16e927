//! The address guard: which IP addresses the fetcher may connect to.
//!
//! Checked twice per hop: [`AddressGuard::check_url`] resolves the host before the
//! request (IP literals are checked directly), and `GuardedResolver` is the reqwest
//! client's DNS resolver, filtering refused addresses out at connect time, so a DNS
//! rebinding between the check and the connect cannot reach a refused address. Both
//! resolve through one [`Lookup`]: the system's, or a fixed table ([`StaticLookup`])
//! with which tests make public-looking names resolve to refused addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::FetchError;

/// Text carried by resolver errors for refused addresses, so the caller can tell a
/// refusal from an ordinary DNS failure inside reqwest's error chain.
pub(crate) const BLOCKED_MARKER: &str = "refused address";

/// What kind of address an IP is, for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Globally routable: always allowed.
    Public,
    /// 127.0.0.0/8, ::1 (and IPv4-mapped forms): allowed with `allow_loopback`.
    Loopback,
    /// RFC 1918, CGNAT, ULA, documentation and benchmarking ranges: allowed with `allow_private`.
    Private,
    /// Link-local, unspecified, multicast, broadcast, reserved: never allowed.
    AlwaysBlocked,
}

/// Classifies an IPv4 address.
fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if o[0] == 0 || ip.is_link_local() || ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        return AddressClass::AlwaysBlocked;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    let private = ip.is_private()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 192 && o[1] == 0 && o[2] == 2) // 192.0.2.0/24 documentation
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || (o[0] == 198 && o[1] == 51 && o[2] == 100) // 198.51.100.0/24 documentation
        || (o[0] == 203 && o[1] == 0 && o[2] == 113); // 203.0.113.0/24 documentation
    if private {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// Classifies an IPv6 address; addresses embedding an IPv4 one are classified by it.
fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    if ip.is_unspecified() || ip.is_multicast() || (s[0] & 0xffc0) == 0xfe80 {
        return AddressClass::AlwaysBlocked;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let private = (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // 2001:db8::/32 documentation
        || (s[0] == 0x2001 && s[1] == 0); // 2001::/32 Teredo (hides the real target)
    if private {
        AddressClass::Private
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0, 0, 0, 0, 0] && (s[5] == 0xffff || s[5] == 0) {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Classifies an address.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Which address classes may be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressGuard {
    /// Allow [`AddressClass::Loopback`].
    pub allow_loopback: bool,
    /// Allow [`AddressClass::Private`].
    pub allow_private: bool,
}

impl AddressGuard {
    /// Is a connection to `ip` allowed?
    pub fn allows(&self, ip: IpAddr) -> bool {
        match classify(ip) {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private => self.allow_private,
            AddressClass::AlwaysBlocked => false,
        }
    }

    /// Checks the host of `url`: an IP literal directly, a name by resolving it with
    /// the system's resolver and refusing if ANY of its addresses is refused.
    pub async fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        self.check_url_with(url, &SystemLookup).await
    }

    /// [`AddressGuard::check_url`], resolving names with `lookup`.
    pub async fn check_url_with(&self, url: &Url, lookup: &dyn Lookup) -> Result<(), FetchError> {
        let ips: Vec<IpAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(d)) => {
                let name = d.trim_end_matches('.');
                lookup
                    .lookup(name)
                    .await
                    .map_err(|e| FetchError::Network(format!("resolve {name}: {e}")))?
            }
            None => return Err(FetchError::InvalidUrl(format!("{url} has no host"))),
        };
        if ips.is_empty() {
            return Err(FetchError::Network(format!(
                "{url}: host resolves to no address"
            )));
        }
        match ips.iter().find(|ip| !self.allows(**ip)) {
            Some(ip) => Err(FetchError::BlockedAddress(format!(
                "{} resolves to {ip} ({:?})",
                url.host_str().unwrap_or(""),
                classify(*ip)
            ))),
            None => Ok(()),
        }
    }
}

/// How host names become addresses.
pub trait Lookup: Send + Sync + std::fmt::Debug {
    /// Every address of `host` (a name, without a trailing dot).
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let found = tokio::net::lookup_host((host, 0)).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed table of names and their addresses (names not in it do not resolve): for
/// tests, and for operators who pin hosts.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup {
    names: HashMap<String, Vec<IpAddr>>,
}

impl StaticLookup {
    /// The table with `name` resolving to `ips` (names are case-insensitive).
    pub fn with(mut self, name: &str, ips: &[IpAddr]) -> Self {
        self.names.insert(name.to_ascii_lowercase(), ips.to_vec());
        self
    }
}

impl Lookup for StaticLookup {
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        let found = self.names.get(&host.to_ascii_lowercase()).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host}: unknown name"),
                )
            })
        })
    }
}

/// A reqwest DNS resolver that drops refused addresses, failing when none is left.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub(crate) guard: AddressGuard,
    pub(crate) lookup: Arc<dyn Lookup>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard;
        let lookup = self.lookup.clone();
        let host = name.as_str().trim_end_matches('.').to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = lookup
                .lookup(&host)
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| guard.allows(a.ip()))
                .collect();
            if allowed.is_empty() && !found.is_empty() {
                let msg = format!("{host}: {BLOCKED_MARKER} {}", found[0].ip());
                return Err(msg.into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
