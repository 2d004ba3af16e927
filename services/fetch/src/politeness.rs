//! Per-host politeness: a concurrency limit and a minimum interval between request
//! starts to one host.
//!
//! Jobs may ask for different `per_host_concurrency` values for the same host, so each
//! host has one weighted semaphore of [`PERMITS`] permits and a request allowed `k`
//! concurrent peers takes `PERMITS / k` of them: at most `k` such requests run at once,
//! and a request of a stricter job waits for room. The interval is kept as the next
//! free start time; each request reserves its slot, then sleeps until it.
//!
//! The table is bounded: past [`MAX_HOSTS`] entries, idle hosts are forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Permits of one host's semaphore (concurrency limits up to 1024 are exact).
const PERMITS: u32 = 1 << 20;
/// The largest per-host concurrency honoured.
const MAX_CONCURRENCY: u32 = 1024;
/// The longest interval honoured between two request starts to one host.
pub(crate) const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Hosts tracked before idle ones are evicted.
const MAX_HOSTS: usize = 4096;

/// One host's state.
struct HostState {
    permits: Arc<Semaphore>,
    next_start: Mutex<Instant>,
}

impl HostState {
    fn new() -> Self {
        HostState {
            permits: Arc::new(Semaphore::new(PERMITS as usize)),
            next_start: Mutex::new(Instant::now()),
        }
    }

    fn idle(&self, now: Instant) -> bool {
        self.permits.available_permits() == PERMITS as usize
            && *self.next_start.lock().expect("politeness lock") <= now
    }
}

/// A held per-host slot; released on drop.
#[derive(Debug)]
pub(crate) struct HostPermit {
    _permit: OwnedSemaphorePermit,
}

/// The per-host politeness table.
#[derive(Clone, Default)]
pub(crate) struct Politeness {
    hosts: Arc<Mutex<HashMap<String, Arc<HostState>>>>,
}

impl Politeness {
    fn state(&self, host: &str) -> Arc<HostState> {
        let mut map = self.hosts.lock().expect("politeness lock");
        if let Some(s) = map.get(host) {
            return s.clone();
        }
        if map.len() >= MAX_HOSTS {
            let now = Instant::now();
            map.retain(|_, s| Arc::strong_count(s) > 1 || !s.idle(now));
        }
        let s = Arc::new(HostState::new());
        map.insert(host.to_string(), s.clone());
        s
    }

    /// Waits for a slot on `host` (at most `concurrency` in flight) and for the start
    /// time `interval` (capped at an hour) after the previous request's start, then
    /// returns the permit.
    pub(crate) async fn acquire(
        &self,
        host: &str,
        concurrency: u32,
        interval: Duration,
    ) -> HostPermit {
        let state = self.state(host);
        let weight = PERMITS / concurrency.clamp(1, MAX_CONCURRENCY);
        let permit = state
            .permits
            .clone()
            .acquire_many_owned(weight)
            .await
            .expect("politeness semaphore is never closed");
        let start = {
            let mut next = state.next_start.lock().expect("politeness lock");
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + interval.min(MAX_INTERVAL);
            start
        };
        tokio::time::sleep_until(start).await;
        HostPermit { _permit: permit }
    }

    /// Number of hosts tracked (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.hosts.lock().expect("politeness lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn interval_spaces_request_starts() {
        let p = Politeness::default();
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..3 {
            let _permit = p.acquire("a.test", 16, Duration::from_millis(500)).await;
            starts.push(t0.elapsed());
        }
        assert_eq!(
            starts,
            vec![
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_millis(1000)
            ]
        );
        // Another host is not slowed down.
        let t1 = Instant::now();
        let _q = p.acquire("b.test", 16, Duration::from_millis(500)).await;
        assert_eq!(t1.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn absurd_intervals_are_capped_not_a_panic() {
        let p = Politeness::default();
        let _a = p
            .acquire("a.test", 1, Duration::from_millis(u64::MAX))
            .await;
        let t0 = Instant::now();
        drop(_a);
        let _b = p.acquire("a.test", 1, Duration::ZERO).await;
        assert_eq!(t0.elapsed(), MAX_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_limited_per_host() {
        let p = Politeness::default();
        let a = p.acquire("a.test", 2, Duration::ZERO).await;
        let _b = p.acquire("a.test", 2, Duration::ZERO).await;
        let third = tokio::time::timeout(
            Duration::from_secs(1),
            p.acquire("a.test", 2, Duration::ZERO),
        )
        .await;
        assert!(third.is_err(), "a third concurrent request must wait");
        drop(a);
        let third = tokio::time::timeout(
            Duration::from_secs(1),
            p.acquire("a.test", 2, Duration::ZERO),
        )
        .await;
        assert!(third.is_ok());
        // A stricter job (concurrency 1) waits while others hold the host.
        let strict = tokio::time::timeout(
            Duration::from_secs(1),
            p.acquire("a.test", 1, Duration::ZERO),
        )
        .await;
        assert!(strict.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_hosts_are_evicted_past_the_cap() {
        let p = Politeness::default();
        for i in 0..(MAX_HOSTS + 10) {
            let _permit = p.acquire(&format!("h{i}.test"), 4, Duration::ZERO).await;
        }
        assert!(p.len() <= MAX_HOSTS);
    }
}
