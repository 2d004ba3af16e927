//! The [`Fetcher`]: one HTTP client, hand-followed redirects with every hop checked
//! (scheme, address guard, scope, robots.txt, loops, cap), and per-host politeness.

use std::sync::Arc;
use std::time::Duration;

use imgcrawl_events::Politeness as PolitenessRules;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use tracing::{debug, warn};
use url::Url;

use crate::guard::{AddressGuard, GuardedResolver, Lookup, SystemLookup};
use crate::leases::LeaseHold;
use crate::politeness::{Health, HostPermit};
use crate::robots::Gate;
use crate::Hosts;
use crate::{error, FetchConfig, FetchError};

/// Per-request settings: the job's politeness and scope.
pub struct RequestOptions<'a> {
    /// The job's politeness rules (per-host concurrency, delay, crawl-delay cap).
    pub politeness: &'a PolitenessRules,
    /// Check robots.txt for the URL and every redirect target.
    pub obey_robots: bool,
    /// Scope check applied to every redirect target (not to the first URL).
    pub in_scope: &'a (dyn Fn(&Url) -> bool + Send + Sync),
    /// Accept header value.
    pub accept: &'static str,
}

/// A final (non-redirect) response whose body has not been read yet. Holds the host's
/// politeness permit until dropped.
pub struct Fetched {
    /// The URL after redirects.
    pub final_url: Url,
    /// HTTP status of the final response (any status: the caller decides).
    pub status: u16,
    /// The `Content-Type` header, if present and readable.
    pub content_type: Option<String>,
    /// The response; read the body with [`Fetched::read_capped`].
    pub response: reqwest::Response,
    pub(crate) _slot: Slot,
}

/// A request's right to go to its host: the gate's permit and, across processes, the
/// host's lease (released in that order).
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: HostPermit,
    _lease: Option<LeaseHold>,
}

impl std::fmt::Debug for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetched")
            .field("final_url", &self.final_url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

struct Inner {
    client: reqwest::Client,
    config: FetchConfig,
    guard: AddressGuard,
    hosts: Hosts,
    lookup: Arc<dyn Lookup>,
}

/// A cheap-to-clone handle: one reqwest client (redirects disabled; we follow them
/// ourselves), a robots.txt cache and per-host politeness state. Create once per process.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

/// Refuses anything but absolute http(s) URLs with a host.
fn check_scheme(url: &Url) -> Result<(), FetchError> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(FetchError::InvalidUrl(format!(
            "{url}: only http(s) urls with a host"
        )));
    }
    Ok(())
}

impl Fetcher {
    /// Builds the client. Fails only if the TLS backend cannot be initialised.
    pub fn new(config: FetchConfig) -> Result<Fetcher, FetchError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// The same, resolving host names with `lookup` (for the guard's checks and for
    /// connecting alike).
    pub fn with_lookup(
        config: FetchConfig,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Fetcher, FetchError> {
        let guard = AddressGuard {
            allow_loopback: config.allow_loopback,
            allow_private: config.allow_private,
        };
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            // A proxy would connect on our behalf and bypass the address guard.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                guard,
                lookup: lookup.clone(),
            }))
            .build()
            .map_err(|e| {
                FetchError::Network(format!("build http client: {}", error::error_chain(&e)))
            })?;
        let inner = Inner {
            client,
            hosts: config.hosts.clone(),
            config,
            guard,
            lookup,
        };
        Ok(Fetcher {
            inner: Arc::new(inner),
        })
    }

    /// The configuration this fetcher was built with.
    pub fn config(&self) -> &FetchConfig {
        &self.inner.config
    }

    /// Is `url` allowed by robots.txt for our user agent? Fetches and caches the
    /// origin's robots.txt (a 4xx robots.txt allows all; 5xx, 429 or an unreachable one
    /// disallows all for a short time). Fails when `url` is not http(s) or its host is a
    /// refused address.
    pub async fn robots_allowed(&self, url: &Url) -> Result<bool, FetchError> {
        check_scheme(url)?;
        let i = &self.inner;
        i.guard.check_url_with(url, &*i.lookup).await?;
        // the gate with the default job rules: outside a job, no interval is known
        let rules = PolitenessRules::default();
        Ok(i.hosts
            .robots
            .rules(
                &i.client,
                (i.guard, &*i.lookup),
                &i.config,
                url,
                self.gate(&rules),
            )
            .await
            .allowed(url))
    }

    /// Checks robots.txt for `url` and returns the crawl delay it asks for.
    async fn robots_check(
        &self,
        url: &Url,
        job: &PolitenessRules,
    ) -> Result<Option<Duration>, FetchError> {
        let i = &self.inner;
        let gate = self.gate(job);
        let rules = i
            .hosts
            .robots
            .rules(&i.client, (i.guard, &*i.lookup), &i.config, url, gate)
            .await;
        if !rules.allowed(url) {
            let why = match &rules {
                crate::robots::RobotsRules::DisallowAll(why) => why.clone(),
                _ => format!("{url} is disallowed for {}", i.config.robots_agent()),
            };
            return Err(FetchError::Robots(why));
        }
        Ok(rules.crawl_delay())
    }

    /// The host gate for robots.txt requests under the job's rules.
    fn gate<'a>(&'a self, job: &PolitenessRules) -> Gate<'a> {
        Gate {
            politeness: &self.inner.hosts.politeness,
            leases: self.inner.hosts.leases(),
            concurrency: job.per_host_concurrency,
            interval: Duration::from_millis(job.delay_ms),
        }
    }

    /// GET `url`, following redirects by hand up to `max_redirects`, checking at every
    /// hop: the scheme, the address guard, `opts.in_scope` (redirect targets only),
    /// robots.txt (when `opts.obey_robots`), loops and the redirect cap. Waits for the
    /// host's politeness slot before each request. Returns the final non-redirect
    /// response of any status with the host permit held.
    pub async fn get(&self, url: &Url, opts: &RequestOptions<'_>) -> Result<Fetched, FetchError> {
        let max = self.inner.config.max_redirects;
        let mut current = url.clone();
        current.set_fragment(None);
        let mut chain: Vec<Url> = Vec::new();
        loop {
            let (resp, permit) = self.one_hop(&current, opts, !chain.is_empty()).await?;
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let follow = matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308);
            let Some(location) = location.filter(|_| follow) else {
                return Ok(Fetched {
                    final_url: current,
                    status: resp.status().as_u16(),
                    content_type: resp
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    response: resp,
                    _slot: permit,
                });
            };
            drop(permit);
            let mut next = current.join(&location).map_err(|e| {
                FetchError::InvalidUrl(format!("redirect from {current} to {location:?}: {e}"))
            })?;
            next.set_fragment(None);
            chain.push(std::mem::replace(&mut current, next));
            if chain.contains(&current) {
                return Err(FetchError::RedirectLoop(format!(
                    "{} redirects back to {current}",
                    chain[chain.len() - 1]
                )));
            }
            if chain.len() > max as usize {
                return Err(FetchError::TooManyRedirects(max));
            }
            debug!(from = %chain[chain.len() - 1], to = %current, "following redirect");
        }
    }

    /// Checks and sends one request of a redirect chain.
    async fn one_hop(
        &self,
        url: &Url,
        opts: &RequestOptions<'_>,
        redirected: bool,
    ) -> Result<(reqwest::Response, Slot), FetchError> {
        check_scheme(url)?;
        if redirected && !(opts.in_scope)(url) {
            return Err(FetchError::OutOfScope(format!(
                "redirect to {url} leaves the job's scope"
            )));
        }
        self.inner
            .guard
            .check_url_with(url, &*self.inner.lookup)
            .await?;
        let crawl_delay = if opts.obey_robots {
            self.robots_check(url, opts.politeness).await?
        } else {
            None
        };
        let p = opts.politeness;
        let cap = Duration::from_millis(p.max_crawl_delay_ms);
        let interval =
            Duration::from_millis(p.delay_ms).max(crawl_delay.unwrap_or_default().min(cap));
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let m = imgcrawl_telemetry::metrics();
        let waited = std::time::Instant::now();
        let politeness = &self.inner.hosts.politeness;
        // (the waits for the host's lease and for a free place at its gate give the
        // delivery's handler slot back meanwhile: see `Politeness::acquire`)
        let (permit, lease) = match self.inner.hosts.leases() {
            Some(l) => {
                let (permit, hold) = l
                    .slot(&host, politeness, p.per_host_concurrency, interval)
                    .await?;
                (permit, Some(hold))
            }
            None => {
                let permit = politeness
                    .acquire(&host, p.per_host_concurrency, interval)
                    .await;
                (permit, None)
            }
        };
        m.politeness_wait.observe(waited.elapsed().as_secs_f64());
        let slot = Slot {
            _permit: permit,
            _lease: lease,
        };
        let started = tokio::time::Instant::now();
        let sent = self
            .inner
            .client
            .get(url.clone())
            .header(ACCEPT, opts.accept)
            .send()
            .await;
        let class = match &sent {
            Ok(r) => imgcrawl_telemetry::metrics::status_class(r.status().as_u16()),
            Err(_) => "error",
        };
        m.fetches
            .get_or_create(&imgcrawl_telemetry::labels::StatusClass { class })
            .inc();
        let resp = sent.map_err(|e| error::from_reqwest(&e))?;
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let health = Health::of(resp.status().as_u16(), retry_after);
        let backoff = politeness.observe(&host, health, started, self.inner.config.backoff());
        if matches!(health, Health::SlowDown(_)) {
            warn!(%host, status = resp.status().as_u16(), backoff_ms = backoff.as_millis() as u64, "host asks us to slow down; backing off");
        }
        Ok((resp, slot))
    }
}
