//! Per-client rate limiting with `governor` (GCRA), answered with 429 and
//! `Retry-After`, in bounded memory.
//!
//! A client is its address as [`TrustedProxies::client`] tells it (an IPv6 client is
//! its /64, which one host usually owns whole). The table of clients is governor's
//! algorithm over our own state store ([`Bounded`]) that holds at most `max_clients`
//! entries: clients whose bucket has refilled are pruned (they would start full
//! anyway), and while the table is still full, clients not in it share one overflow
//! bucket. No client is ever reset by another: a flood of new addresses can exhaust the
//! overflow bucket, never an existing client's. Health probes are never limited.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::error::HttpError;
use crate::proxy::{canonical, TrustedProxies};

/// Paths never limited.
const EXEMPT: [&str; 2] = ["/healthz", "/readyz"];

/// A token bucket per client: `per_second` requests sustained, `burst` at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per client (0 turns the limit off).
    pub per_second: f64,
    /// Requests a client may make at once after being idle (a gallery page loads one
    /// thumbnail per image, so keep it above the page size).
    pub burst: u32,
    /// Clients remembered at most; past that, new clients share one bucket.
    pub max_clients: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 400,
            max_clients: 10_000,
        }
    }
}

/// The client key of an address: IPv4 as is, IPv6 by its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// governor's per-key state (the theoretical arrival time), at most `cap` keys, then
/// one shared overflow slot.
#[derive(Debug)]
pub struct Bounded {
    cap: usize,
    keys: Mutex<HashMap<IpAddr, Nanos>>,
    overflow: Mutex<Option<Nanos>>,
}

impl Bounded {
    fn new(cap: usize) -> Self {
        Bounded {
            cap: cap.max(1),
            keys: Mutex::default(),
            overflow: Mutex::default(),
        }
    }
}

impl StateStore for Bounded {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut keys = lock(&self.keys);
        if let Some(tat) = keys.get_mut(key) {
            let (t, next) = f(Some(*tat))?;
            *tat = next;
            return Ok(t);
        }
        if keys.len() < self.cap {
            let (t, next) = f(None)?;
            keys.insert(*key, next);
            return Ok(t);
        }
        drop(keys);
        let mut overflow = lock(&self.overflow);
        let (t, next) = f(*overflow)?;
        *overflow = Some(next);
        Ok(t)
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for Bounded {
    fn retain_recent(&self, drop_below: Nanos) {
        lock(&self.keys).retain(|_, tat| tat.as_u64() > drop_below.as_u64());
    }

    fn shrink_to_fit(&self) {
        lock(&self.keys).shrink_to_fit();
    }

    fn len(&self) -> usize {
        lock(&self.keys).len()
    }

    fn is_empty(&self) -> bool {
        lock(&self.keys).is_empty()
    }
}

/// The interval between two cells at `per_second`, kept within 1 ns..=1 day so that an
/// extreme setting neither turns the limit off nor overflows.
fn period(per_second: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / per_second)
        .unwrap_or(Duration::MAX)
        .clamp(Duration::from_nanos(1), Duration::from_secs(86_400))
}

/// The rate limiter of one server: governor over [`Bounded`], and who the client is.
pub struct Limiter<C: Clock = DefaultClock> {
    limiter: Option<RateLimiter<IpAddr, Bounded, C, NoOpMiddleware<C::Instant>>>,
    cap: usize,
    proxies: TrustedProxies,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("on", &self.limiter.is_some())
            .field("cap", &self.cap)
            .field("proxies", &self.proxies)
            .finish()
    }
}

impl Limiter {
    /// A limiter with `config` (a rate of 0 lets everything through).
    pub fn new(config: &RateLimit, proxies: TrustedProxies) -> Self {
        Self::with_clock(config, proxies, DefaultClock::default())
    }
}

impl<C: Clock> Limiter<C> {
    /// The same on `clock` (tests use a fake one).
    pub fn with_clock(config: &RateLimit, proxies: TrustedProxies, clock: C) -> Self {
        let quota = (config.per_second > 0.0 && config.per_second.is_finite())
            .then(|| Quota::with_period(period(config.per_second)))
            .flatten()
            .map(|q| q.allow_burst(NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN)));
        let cap = config.max_clients.max(1);
        Limiter {
            limiter: quota.map(|q| RateLimiter::new(q, Bounded::new(cap), clock)),
            cap,
            proxies,
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.limiter.is_some()
    }

    /// The trusted proxies.
    pub fn proxies(&self) -> &TrustedProxies {
        &self.proxies
    }

    /// Clients remembered now.
    pub fn clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Takes a cell for `client`; `Err(wait)` says how long until one is there.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        if l.len() >= self.cap {
            l.retain_recent();
        }
        l.check_key(&client_key(client))
            .map_err(|not_until| not_until.wait_time_from(l.clock().now()))
    }
}

/// Middleware (`from_fn_with_state(limiter, rate_limit)`): 429 with `Retry-After`
/// (whole seconds, at least 1) when the client's bucket is empty.
pub async fn rate_limit(State(limiter): State<Arc<Limiter>>, req: Request, next: Next) -> Response {
    if !limiter.enabled() || EXEMPT.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let client = limiter.proxies.client(peer, req.headers());
    match limiter.check(client) {
        Ok(()) => next.run(req).await,
        Err(wait) => HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from {client}; slow down"),
        )
        .retry(wait.as_secs_f64().ceil() as u64)
        .into_response(),
    }
}

#[cfg(test)]
#[path = "limit_tests.rs"]
mod tests;
