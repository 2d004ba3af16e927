//! Per-host politeness: a concurrency limit, a minimum interval between request
//! starts to one host, and an adaptive back-off.
//!
//! One table serves every fetcher of a process (see [`crate::Hosts`]): the crawl and
//! download stages' requests to one host pass the same gate, so the interval holds
//! between any two requests to the host, whatever stage makes them.
//!
//! **Back-off.** A 429 or 503 from a host (with or without `Retry-After`) doubles the
//! host's back-off (from `backoff_base_ms` up to `backoff_max_ms`, at least the
//! `Retry-After`, plus up to 25 % jitter) and pushes the host's next start that far
//! out: every request of this process to the host waits. Answers to requests already
//! in flight when the back-off moved do not move it again (a burst of 429s is one
//! slow-down). Each later healthy answer halves the back-off; once that would go below
//! the base, it is gone. While backed off, request starts are spaced by the larger of
//! the job's interval and the back-off. A host that keeps answering 429 ends up at
//! `backoff_max_ms` between requests: its work not yet sent waits at the gate (the
//! stages keep those messages with in-progress acks); a URL answered 429 on every one
//! of its allowed deliveries is still rejected with that status.
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
    /// The next free start time and the current back-off.
    timing: Mutex<Timing>,
}

/// When the next request may start, and how far requests are spaced by back-off.
struct Timing {
    next_start: Instant,
    /// When the last request really started (woke from its wait and went on).
    last_started: Option<Instant>,
    backoff: Duration,
    /// When the back-off last moved: answers to requests started before then say
    /// nothing new (they were in flight when the host was last judged).
    judged_at: Option<Instant>,
}

impl HostState {
    fn new() -> Self {
        HostState {
            permits: Arc::new(Semaphore::new(PERMITS as usize)),
            timing: Mutex::new(Timing {
                next_start: Instant::now(),
                last_started: None,
                backoff: Duration::ZERO,
                judged_at: None,
            }),
        }
    }

    fn idle(&self, now: Instant) -> bool {
        let t = self.timing.lock().expect("politeness lock");
        self.permits.available_permits() == PERMITS as usize
            && t.next_start <= now
            && t.backoff.is_zero()
    }
}

/// The back-off settings (from [`crate::FetchConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackoffConfig {
    /// The first back-off after a healthy spell.
    pub base: Duration,
    /// The largest back-off.
    pub max: Duration,
}

/// What a response says about its host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// 429 or 503: slow down (at least `Retry-After`, if given).
    SlowDown(Option<Duration>),
    /// Any other answer: the host copes.
    Healthy,
}

impl Health {
    /// The health an HTTP status (and its `Retry-After` header) reports.
    pub(crate) fn of(status: u16, retry_after: Option<&str>) -> Health {
        match status {
            429 | 503 => Health::SlowDown(parse_retry_after(retry_after)),
            _ => Health::Healthy,
        }
    }
}

/// `Retry-After` in delta-seconds (HTTP dates are not trusted: clocks differ).
fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v?.trim().parse::<u64>().ok().map(Duration::from_secs)
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
        // Waiting for a place among the host's requests in flight does no work: the
        // delivery's handler slot goes to a delivery whose host is free meanwhile, and
        // is taken again *before* the start is reserved, so a request never leaves
        // later than its reserved start because it waited for a slot (that would put
        // the next request closer than the interval).
        let permit =
            imgcrawl_telemetry::slot::idle(state.permits.clone().acquire_many_owned(weight))
                .await
                .expect("politeness semaphore is never closed");
        let start = {
            let mut t = state.timing.lock().expect("politeness lock");
            let now = Instant::now();
            let start = t.next_start.max(now);
            t.next_start = start + interval.max(t.backoff).min(MAX_INTERVAL);
            start
        };
        tokio::time::sleep_until(start).await;
        // Woken late (a busy machine): the next reservation counts from the real start,
        // and a request that reserved its start before this one woke must not go closer
        // than the interval after it either, so every request checks the real start of
        // the one before it (both can have reserved their slots ahead).
        loop {
            let wait = {
                let mut t = state.timing.lock().expect("politeness lock");
                let now = Instant::now();
                let spacing = interval.max(t.backoff).min(MAX_INTERVAL);
                match t.last_started.map(|s| s + spacing).filter(|at| *at > now) {
                    Some(at) => at,
                    None => {
                        t.last_started = Some(now);
                        t.next_start = t.next_start.max(now + spacing);
                        break;
                    }
                }
            };
            tokio::time::sleep_until(wait).await;
        }
        HostPermit { _permit: permit }
    }

    /// Seeds `host`'s gate with what the previous lease holder left: no start before
    /// `wait_ms` from now, and its back-off.
    pub(crate) fn seed(&self, host: &str, wait_ms: u64, backoff: Duration) {
        let state = self.state(host);
        let mut t = state.timing.lock().expect("politeness lock");
        let at = Instant::now() + Duration::from_millis(wait_ms).min(MAX_INTERVAL);
        t.next_start = t.next_start.max(at);
        t.backoff = backoff;
    }

    /// How long from now until `host`'s next start, and its back-off.
    pub(crate) fn timing(&self, host: &str) -> (Duration, Duration) {
        let state = self.state(host);
        let t = state.timing.lock().expect("politeness lock");
        (
            t.next_start.saturating_duration_since(Instant::now()),
            t.backoff,
        )
    }

    /// Whether `self` and `other` share one table.
    pub(crate) fn same_as(&self, other: &Politeness) -> bool {
        Arc::ptr_eq(&self.hosts, &other.hosts)
    }

    /// Takes `health`, the answer to a request to `host` that started at `started`, into
    /// account (see the module docs); returns the host's back-off afterwards. Answers
    /// to requests that were already in flight when the back-off last moved do not move
    /// it again: four requests in flight answered 429 together are one slow-down.
    pub(crate) fn observe(
        &self,
        host: &str,
        health: Health,
        started: Instant,
        cfg: BackoffConfig,
    ) -> Duration {
        let state = self.state(host);
        let mut t = state.timing.lock().expect("politeness lock");
        if t.judged_at.is_some_and(|j| started < j) {
            return t.backoff;
        }
        if matches!(health, Health::SlowDown(_)) || !t.backoff.is_zero() {
            t.judged_at = Some(Instant::now());
        }
        match health {
            Health::SlowDown(retry_after) => {
                let doubled = (t.backoff * 2).max(cfg.base).min(cfg.max);
                let wanted = retry_after.map_or(doubled, |r| doubled.max(r.min(cfg.max)));
                // up to 25 % more, so replicas and hosts do not come back in step
                let jitter = wanted.mul_f64(fastrand::f64() * 0.25);
                t.backoff = wanted;
                let now = Instant::now();
                t.next_start = t.next_start.max(now + wanted + jitter);
            }
            Health::Healthy if t.backoff / 2 < cfg.base => t.backoff = Duration::ZERO,
            Health::Healthy => t.backoff /= 2,
        }
        t.backoff
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
    async fn a_request_never_starts_closer_than_the_interval_to_the_one_before() {
        let p = Politeness::default();
        let interval = Duration::from_millis(500);
        let t0 = Instant::now();
        let _a = p.acquire("a.test", 16, interval).await;
        // as if the next request had reserved its start while the first still slept
        // (the first then woke late): the reservation alone would let it go at once
        p.state("a.test").timing.lock().unwrap().next_start = t0;
        let _b = p.acquire("a.test", 16, interval).await;
        assert_eq!(t0.elapsed(), interval);
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

    const BACKOFF: BackoffConfig = BackoffConfig {
        base: Duration::from_secs(1),
        max: Duration::from_secs(8),
    };

    #[tokio::test(start_paused = true)]
    async fn slow_downs_double_to_the_cap_and_healthy_answers_halve() {
        let p = Politeness::default();
        let slow = Health::SlowDown(None);
        let seen: Vec<u64> = (0..5)
            .map(|_| p.observe("a.test", slow, Instant::now(), BACKOFF).as_secs())
            .collect();
        assert_eq!(seen, vec![1, 2, 4, 8, 8]);
        // Retry-After beyond the doubling wins, but never beyond the cap
        let q = Politeness::default();
        assert_eq!(
            q.observe(
                "a.test",
                Health::SlowDown(Some(Duration::from_secs(3))),
                Instant::now(),
                BACKOFF
            ),
            Duration::from_secs(3)
        );
        assert_eq!(
            q.observe(
                "a.test",
                Health::SlowDown(Some(Duration::from_secs(600))),
                Instant::now(),
                BACKOFF
            ),
            Duration::from_secs(8)
        );
        let healed: Vec<u64> = (0..5)
            .map(|_| {
                p.observe("a.test", Health::Healthy, Instant::now(), BACKOFF)
                    .as_millis() as u64
            })
            .collect();
        assert_eq!(healed, vec![4000, 2000, 1000, 0, 0]);
        // other hosts were never slowed
        assert_eq!(
            p.observe("b.test", Health::Healthy, Instant::now(), BACKOFF),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_backed_off_host_waits_and_is_spaced_by_the_backoff() {
        let p = Politeness::default();
        drop(p.acquire("a.test", 4, Duration::ZERO).await);
        p.observe(
            "a.test",
            Health::SlowDown(Some(Duration::from_secs(2))),
            Instant::now(),
            BACKOFF,
        );
        let t0 = Instant::now();
        drop(p.acquire("a.test", 4, Duration::ZERO).await);
        let first = t0.elapsed();
        assert!(
            first >= Duration::from_secs(2) && first <= Duration::from_millis(2500),
            "waited out the back-off and its jitter: {first:?}"
        );
        let t1 = Instant::now();
        drop(p.acquire("a.test", 4, Duration::ZERO).await);
        assert_eq!(
            t1.elapsed(),
            Duration::from_secs(2),
            "spaced by the back-off"
        );
        // another host is not slowed down
        let t2 = Instant::now();
        drop(p.acquire("b.test", 4, Duration::ZERO).await);
        assert_eq!(t2.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn answers_to_requests_in_flight_before_a_slow_down_do_not_compound() {
        let p = Politeness::default();
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        let slow = Health::SlowDown(None);
        assert_eq!(
            p.observe("a.test", slow, sent, BACKOFF),
            Duration::from_secs(1)
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        // three more of the same burst: still one slow-down, and no healing either
        for h in [slow, slow, Health::Healthy] {
            assert_eq!(
                p.observe("a.test", h, sent, BACKOFF),
                Duration::from_secs(1)
            );
        }
        // a request sent after the slow-down is news
        let later = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(
            p.observe("a.test", slow, later, BACKOFF),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn only_429_and_503_slow_a_host_down() {
        assert_eq!(
            Health::of(429, Some(" 7 ")),
            Health::SlowDown(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            Health::of(503, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Health::SlowDown(None)
        );
        for s in [200, 301, 404, 500, 502] {
            assert_eq!(Health::of(s, None), Health::Healthy, "{s}");
        }
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
