//! robots.txt: fetching, caching per origin, and matching (RFC 9309, via `texting_robots`).
//!
//! | robots.txt response | rules |
//! |---|---|
//! | 2xx | parsed; the first `max_robots_bytes` are read, the rest ignored |
//! | 4xx (not 429), redirect chain too long | allow all |
//! | 429, 5xx, network error, timeout, refused redirect target | disallow all, for a short time |
//!
//! Rules are cached per origin (`scheme://host:port`) for `robots_ttl_secs`; the failure
//! rules for at most [`FAILURE_TTL`]. One fetch per origin at a time: concurrent callers
//! wait for the first one's answer. The cache holds at most [`MAX_ORIGINS`] origins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use texting_robots::Robot;
use tokio::time::Instant;
use url::{Position, Url};

use crate::guard::{AddressGuard, Lookup};
use crate::leases::Leases;
use crate::politeness::Politeness;
use crate::FetchConfig;

/// How long "disallow all" after a server error or unreachable robots.txt lasts.
const FAILURE_TTL: Duration = Duration::from_secs(60);
/// Origins cached before expired (then idle) ones are evicted.
const MAX_ORIGINS: usize = 4096;
/// Redirects followed for robots.txt (RFC 9309 asks for at least five).
const ROBOTS_REDIRECTS: u32 = 5;

/// The host gate robots.txt requests wait for, with the job's rules.
#[derive(Clone, Copy)]
pub(crate) struct Gate<'a> {
    /// The process's per-host table.
    pub politeness: &'a Politeness,
    /// Host leases, when requests wait for them.
    pub leases: Option<&'a Leases>,
    /// Requests in flight allowed to one host.
    pub concurrency: u32,
    /// Interval between request starts to one host.
    pub interval: Duration,
}

/// The rules of one origin (public for the fuzz targets and tests).
#[derive(Debug, Clone)]
pub enum RobotsRules {
    /// No robots.txt (4xx) or nothing parseable: everything allowed.
    AllowAll,
    /// robots.txt unreachable or failing (5xx): nothing allowed for now.
    DisallowAll(String),
    /// Parsed rules for our user agent.
    Parsed(Arc<Robot>),
}

impl RobotsRules {
    /// Parses a robots.txt body for `agent`; unparseable text allows all.
    pub fn parse(agent: &str, body: &[u8]) -> RobotsRules {
        match Robot::new(agent, body) {
            Ok(r) => RobotsRules::Parsed(Arc::new(r)),
            Err(_) => RobotsRules::AllowAll,
        }
    }

    /// Is `url` allowed?
    pub fn allowed(&self, url: &Url) -> bool {
        match self {
            RobotsRules::AllowAll => true,
            RobotsRules::DisallowAll(_) => false,
            RobotsRules::Parsed(r) => r.allowed(&url[Position::BeforePath..Position::AfterQuery]),
        }
    }

    /// The `Crawl-delay` for our agent, if any.
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            RobotsRules::Parsed(r) => r
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(86_400.0))),
            _ => None,
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<(RobotsRules, Instant)>>>;

/// The per-origin robots.txt cache.
#[derive(Clone, Default)]
pub(crate) struct RobotsCache {
    origins: Arc<Mutex<HashMap<String, Slot>>>,
}

/// `scheme://host:port` of a URL.
pub(crate) fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

impl RobotsCache {
    fn slot(&self, key: &str) -> Slot {
        let mut map = self.origins.lock().expect("robots lock");
        if let Some(s) = map.get(key) {
            return s.clone();
        }
        if map.len() >= MAX_ORIGINS {
            let now = Instant::now();
            map.retain(|_, s| match s.try_lock() {
                Ok(g) => g.as_ref().is_some_and(|(_, exp)| *exp > now),
                Err(_) => true,
            });
            if map.len() >= MAX_ORIGINS {
                map.retain(|_, s| Arc::strong_count(s) > 1);
            }
        }
        let s = Slot::default();
        map.insert(key.to_string(), s.clone());
        s
    }

    /// The rules for `url`'s origin, fetching robots.txt when not cached or expired.
    pub(crate) async fn rules(
        &self,
        client: &reqwest::Client,
        guard: (AddressGuard, &dyn Lookup),
        cfg: &FetchConfig,
        url: &Url,
        gate: Gate<'_>,
    ) -> RobotsRules {
        let slot = self.slot(&origin(url));
        let mut entry = slot.lock().await;
        if let Some((rules, expires)) = entry.as_ref() {
            if *expires > Instant::now() {
                return rules.clone();
            }
        }
        let ttl = Duration::from_secs(cfg.robots_ttl_secs);
        let rules = match gate.leases {
            // one fetch per host for the cluster: the holder of the host's lease looks
            // for a fresh copy another process shared, else fetches and shares it
            Some(leases) => {
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                let origin = origin(url);
                let _claim = leases.claim(&host, gate.politeness).await;
                let txt = match leases.shared_robots(&origin, ttl).await {
                    Some(txt) => txt,
                    None => {
                        // under the claim already: the request takes the gate only
                        // (a redirect to another host is not leased)
                        let local = Gate {
                            leases: None,
                            ..gate
                        };
                        let txt = fetch(client, guard, cfg, url, local).await;
                        if !matches!(txt, RobotsTxt::Failed(_)) {
                            leases.share_robots(&origin, &txt).await;
                        }
                        txt
                    }
                };
                txt.rules(cfg.robots_agent())
            }
            None => fetch(client, guard, cfg, url, gate)
                .await
                .rules(cfg.robots_agent()),
        };
        let ttl = if matches!(rules, RobotsRules::DisallowAll(_)) {
            ttl.min(FAILURE_TTL)
        } else {
            ttl
        };
        let now = Instant::now();
        *entry = Some((rules.clone(), now.checked_add(ttl).unwrap_or(now)));
        rules
    }
}

/// What fetching robots.txt gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum RobotsTxt {
    /// A 2xx body (its first `max_robots_bytes`).
    Body(String),
    /// No robots.txt (4xx, unparseable redirect): everything allowed.
    Missing,
    /// Unreachable or failing: nothing allowed for now (never shared).
    Failed(String),
}

impl RobotsTxt {
    fn rules(&self, agent: &str) -> RobotsRules {
        match self {
            RobotsTxt::Body(b) => RobotsRules::parse(agent, b.as_bytes()),
            RobotsTxt::Missing => RobotsRules::AllowAll,
            RobotsTxt::Failed(why) => RobotsRules::DisallowAll(why.clone()),
        }
    }
}

/// Fetches `url`'s origin's robots.txt, following redirects by hand.
async fn fetch(
    client: &reqwest::Client,
    (guard, lookup): (AddressGuard, &dyn Lookup),
    cfg: &FetchConfig,
    url: &Url,
    gate: Gate<'_>,
) -> RobotsTxt {
    let Ok(mut target) = url.join("/robots.txt") else {
        return RobotsTxt::Missing;
    };
    for _ in 0..=ROBOTS_REDIRECTS {
        if let Err(e) = guard.check_url_with(&target, lookup).await {
            return RobotsTxt::Failed(format!("robots.txt at {target}: {e}"));
        }
        // a request to the host like any other: it waits for the host's gate
        let host = target.host_str().unwrap_or_default().to_ascii_lowercase();
        let _slot = match gate.leases {
            Some(l) => match l
                .slot(&host, gate.politeness, gate.concurrency, gate.interval)
                .await
            {
                Ok((permit, hold)) => (permit, Some(hold)),
                Err(e) => return RobotsTxt::Failed(format!("robots.txt at {target}: {e}")),
            },
            None => (
                gate.politeness
                    .acquire(&host, gate.concurrency, gate.interval)
                    .await,
                None,
            ),
        };
        let resp = match client.get(target.clone()).send().await {
            Ok(r) => r,
            Err(e) => {
                return RobotsTxt::Failed(format!(
                    "robots.txt at {target}: {}",
                    crate::error::from_reqwest(&e)
                ))
            }
        };
        let status = resp.status();
        if status.is_redirection() {
            let next = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| target.join(l).ok());
            match next {
                Some(n) if matches!(n.scheme(), "http" | "https") => target = n,
                _ => return RobotsTxt::Missing,
            }
            continue;
        }
        if status.is_success() {
            return match read_prefix(resp, cfg.max_robots_bytes).await {
                Ok(body) => RobotsTxt::Body(String::from_utf8_lossy(&body).into_owned()),
                Err(e) => RobotsTxt::Failed(format!("robots.txt at {target}: {e}")),
            };
        }
        if status.as_u16() == 429 || status.is_server_error() {
            return RobotsTxt::Failed(format!("robots.txt at {target}: http {}", status.as_u16()));
        }
        return RobotsTxt::Missing;
    }
    RobotsTxt::Missing
}

/// Reads at most `max` bytes of a body; the rest is dropped unread.
async fn read_prefix(resp: reqwest::Response, max: u64) -> Result<Vec<u8>, crate::BodyError> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::error::body_from_reqwest(&e))?;
        let room = max.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= max {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(txt: &str, path: &str) -> bool {
        let u = Url::parse("http://a.test").unwrap().join(path).unwrap();
        RobotsRules::parse("imgcrawl", txt.as_bytes()).allowed(&u)
    }

    #[test]
    fn longest_match_wins_and_allow_wins_ties() {
        let txt = "User-agent: *\nDisallow: /private\nAllow: /private/public\nDisallow: /same\nAllow: /same\n";
        assert!(!allowed(txt, "/private/x"));
        assert!(allowed(txt, "/private/public/x"));
        assert!(allowed(txt, "/same/x"), "equal length: allow wins");
        assert!(allowed(txt, "/other"));
    }

    #[test]
    fn wildcards_and_end_anchor() {
        let txt = "User-agent: *\nDisallow: /*.gif$\nDisallow: /tmp*/x\nAllow: /tmp1/x\n";
        assert!(!allowed(txt, "/a/b.gif"));
        assert!(
            allowed(txt, "/a/b.gif?q=1"),
            "$ anchors at the end of path+query"
        );
        assert!(allowed(txt, "/a/b.gifx"));
        assert!(!allowed(txt, "/tmpfoo/x"));
        assert!(
            allowed(txt, "/tmp1/x"),
            "longer allow beats wildcard disallow"
        );
    }

    #[test]
    fn our_group_beats_the_star_group() {
        let txt = "User-agent: *\nDisallow: /\n\nUser-agent: ImgCrawl\nDisallow: /no\n";
        assert!(allowed(txt, "/yes"));
        assert!(!allowed(txt, "/no"));
        let other = "User-agent: otherbot\nDisallow: /\n";
        assert!(allowed(other, "/x"));
    }

    #[test]
    fn crawl_delay_is_read() {
        let r = RobotsRules::parse("imgcrawl", b"User-agent: *\nCrawl-delay: 2.5\n");
        assert_eq!(r.crawl_delay(), Some(Duration::from_millis(2500)));
        assert_eq!(RobotsRules::AllowAll.crawl_delay(), None);
    }

    #[test]
    fn origin_includes_scheme_and_port() {
        assert_eq!(
            origin(&Url::parse("https://A.test/x").unwrap()),
            "https://a.test:443"
        );
        assert_eq!(
            origin(&Url::parse("http://a.test:8080/").unwrap()),
            "http://a.test:8080"
        );
    }
}
