//! Network and HTTP settings of the [`Fetcher`](crate::Fetcher).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Network and HTTP settings, shared by the crawl and download stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    /// The `User-Agent` header; its product token (up to the first `/` or space) is the
    /// name matched against robots.txt `User-agent` lines.
    pub user_agent: String,
    /// Milliseconds to establish a TCP (and TLS) connection.
    pub connect_timeout_ms: u64,
    /// Milliseconds for a whole request, body included.
    pub request_timeout_ms: u64,
    /// Redirects followed before giving up.
    pub max_redirects: u32,
    /// Allow loopback targets (127.0.0.0/8, ::1). Tests and demos only.
    pub allow_loopback: bool,
    /// Allow private targets (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, ...).
    /// Link-local, unspecified, multicast and broadcast targets are always refused.
    pub allow_private: bool,
    /// Seconds a fetched robots.txt is trusted, per origin.
    pub robots_ttl_secs: u64,
    /// Bytes of robots.txt read; the rest is ignored (RFC 9309 allows a 500 KiB floor).
    pub max_robots_bytes: u64,
    /// Milliseconds of the first back-off after a host answers 429 or 503.
    pub backoff_base_ms: u64,
    /// The longest back-off, in milliseconds (a `Retry-After` beyond it is cut to it).
    pub backoff_max_ms: u64,
    /// Politeness across processes: every request waits for its host's lease (KV
    /// `imgcrawl-hosts`), so one process at a time fetches from a host and the job's
    /// concurrency, interval and back-off hold for the whole cluster. Turn off only
    /// when a single process does all the fetching.
    pub host_leases: bool,
    /// Milliseconds a host lease lasts without renewal: the longest a dead process
    /// keeps a host from the others.
    pub lease_ttl_ms: u64,
    /// Milliseconds a process keeps a busy host while another process waits for it.
    pub lease_max_hold_ms: u64,
    /// Milliseconds a host may be idle in its holder before the lease is released.
    pub lease_idle_release_ms: u64,
    /// Per-host state shared by every fetcher built from clones of this config (not a
    /// setting: the stage registry gives the crawl and download stages of a process one
    /// table, so a host sees one gate and one robots.txt fetch).
    #[serde(skip)]
    pub hosts: crate::Hosts,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            user_agent: "imgcrawl/0.1 (+https://github.com/imgcrawl)".into(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            max_redirects: 5,
            allow_loopback: false,
            allow_private: false,
            robots_ttl_secs: 3600,
            max_robots_bytes: 512 * 1024,
            backoff_base_ms: 1_000,
            backoff_max_ms: 60_000,
            host_leases: true,
            lease_ttl_ms: 6_000,
            lease_max_hold_ms: 2_000,
            lease_idle_release_ms: 500,
            hosts: crate::Hosts::default(),
        }
    }
}

impl FetchConfig {
    /// The connect timeout as a `Duration` (at least 1 ms).
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }

    /// The whole-request timeout as a `Duration` (at least 1 ms).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The back-off settings.
    pub(crate) fn backoff(&self) -> crate::politeness::BackoffConfig {
        let base = Duration::from_millis(self.backoff_base_ms.max(1));
        crate::politeness::BackoffConfig {
            base,
            max: Duration::from_millis(self.backoff_max_ms).max(base),
        }
    }

    /// The host lease timings.
    pub fn lease_config(&self) -> crate::LeaseConfig {
        let ttl = Duration::from_millis(self.lease_ttl_ms.max(300));
        crate::LeaseConfig {
            ttl,
            margin: ttl / 6,
            idle_release: Duration::from_millis(self.lease_idle_release_ms.max(1)),
            max_hold: Duration::from_millis(self.lease_max_hold_ms.max(1)),
            ..Default::default()
        }
    }

    /// Makes the fetchers built from this config (and its clones) wait for host leases
    /// kept in `kv` when [`host_leases`](Self::host_leases) is on; the first call per
    /// [`Hosts`](crate::Hosts) decides.
    pub fn enable_leases(&self, kv: async_nats::jetstream::kv::Store) {
        if self.host_leases && self.hosts.leases().is_none() {
            let me = format!(
                "{}-{}-{:08x}",
                self.robots_agent(),
                std::process::id(),
                fastrand::u32(..)
            );
            let store = std::sync::Arc::new(crate::KvLeaseStore::new(kv));
            self.hosts
                .use_leases(crate::Leases::new(store, me, self.lease_config()));
        }
    }

    /// The robots.txt product token: the user agent up to the first `/` or whitespace.
    pub fn robots_agent(&self) -> &str {
        let ua = self.user_agent.trim();
        let end = ua
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(ua.len());
        if end == 0 {
            "imgcrawl"
        } else {
            &ua[..end]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_agent_is_the_product_token() {
        assert_eq!(FetchConfig::default().robots_agent(), "imgcrawl");
        let c = FetchConfig {
            user_agent: "MyBot extra".into(),
            ..Default::default()
        };
        assert_eq!(c.robots_agent(), "MyBot");
        let c = FetchConfig {
            user_agent: "/x".into(),
            ..Default::default()
        };
        assert_eq!(c.robots_agent(), "imgcrawl");
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<FetchConfig>(r#"{"max_redirect":1}"#).is_err());
        let c: FetchConfig = serde_json::from_str(r#"{"max_redirects":2}"#).unwrap();
        assert_eq!(c.max_redirects, 2);
        assert_eq!(c.robots_ttl_secs, 3600);
    }
}
