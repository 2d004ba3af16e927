//! Per-client rate limiting: a token bucket per client address, answered with 429 and
//! `Retry-After` when empty.
//!
//! A client is its IP address (an IPv6 client is its /64, which one host usually
//! owns whole). The table is bounded: past `max_clients`, clients whose bucket has
//! refilled are forgotten (they would start full anyway), then, if that is not enough,
//! everyone is. Health probes (`/healthz`, `/readyz`) are never limited.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::RateLimit;
use crate::error::HttpError;
use crate::state::AppState;

/// Paths never limited.
const EXEMPT: [&str; 2] = ["/healthz", "/readyz"];

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by client.
#[derive(Debug)]
pub struct RateLimiter {
    config: RateLimit,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The client key of an address: IPv4 as is, IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl RateLimiter {
    /// A limiter with `config` (a rate of 0 lets everything through).
    pub fn new(config: RateLimit) -> Self {
        RateLimiter {
            config,
            clients: Mutex::default(),
        }
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.config.per_second > 0.0
    }

    /// Takes a token for `ip` at `now`; `Err(wait)` says how long until one is there.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if !self.enabled() {
            return Ok(());
        }
        let (rate, burst) = (self.config.per_second, f64::from(self.config.burst.max(1)));
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= self.config.max_clients.max(1) {
            let full_after = Duration::from_secs_f64(burst / rate);
            clients.retain(|_, b| now.saturating_duration_since(b.last) < full_after);
            if clients.len() >= self.config.max_clients.max(1) {
                clients.clear();
            }
        }
        let b = clients.entry(client_key(ip)).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }
}

/// Middleware on every route: 429 with `Retry-After` (whole seconds, at least 1) when
/// the client's bucket is empty.
pub async fn rate_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.limiter.enabled() || EXEMPT.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    match state.limiter.check(ip, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => HttpError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests from {ip}; slow down"),
        )
        .retry(wait.as_secs_f64().ceil() as u64)
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32, max_clients: usize) -> RateLimiter {
        RateLimiter::new(RateLimit {
            per_second,
            burst,
            max_clients,
        })
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate() {
        let l = limiter(2.0, 3, 10);
        let (ip, t0) = (IpAddr::from([10, 0, 0, 1]), Instant::now());
        for _ in 0..3 {
            assert!(l.check(ip, t0).is_ok());
        }
        let wait = l.check(ip, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        assert!(l.check(ip, t0 + Duration::from_millis(500)).is_ok());
        assert!(l.check(ip, t0 + Duration::from_millis(500)).is_err());
        // another client has its own bucket
        assert!(l.check(IpAddr::from([10, 0, 0, 2]), t0).is_ok());
    }

    #[test]
    fn ipv6_clients_are_their_slash_64_and_mapped_v4_is_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn the_table_stays_bounded_and_zero_turns_it_off() {
        let l = limiter(1000.0, 1, 4);
        let t0 = Instant::now();
        for i in 0..100u8 {
            let _ = l.check(
                IpAddr::from([10, 0, 1, i]),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(l.clients.lock().unwrap().len() <= 4);
        let off = limiter(0.0, 1, 4);
        for _ in 0..10 {
            assert!(off.check(IpAddr::from([10, 0, 0, 1]), t0).is_ok());
        }
    }
}
