//! The one retry policy: exponential back-off (doubling from a first delay up to a
//! cap, no jitter), optionally limited to a number of tries, always cut short by the
//! shutdown signal.
//!
//! The delays come from `backon`'s exponential builder; the sleeping is ours, so every
//! wait is a `select!` on the [`CancellationToken`]. Two shapes:
//!
//! * [`retry`] / [`retry_when`] run an operation until it succeeds, its error is not
//!   worth retrying, the tries are spent, or shutdown fires;
//! * [`Backoff::pause`] sleeps the next delay inside a hand-written loop (a stream to
//!   re-open, a watch to re-establish) where the operation is not a closure.
//!
//! [`Policy::delay`] gives the `n`-th delay alone, for the worker's Nak delays.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// How to retry: the first delay, the cap, and how many tries in all (`None`: until
/// success or shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    first: Duration,
    max: Duration,
    tries: Option<usize>,
}

impl Policy {
    /// Delays doubling from `first` up to `max`, tries unlimited.
    pub const fn exponential(first: Duration, max: Duration) -> Policy {
        Policy {
            first,
            max,
            tries: None,
        }
    }

    /// The same delay every time, tries unlimited.
    pub const fn fixed(every: Duration) -> Policy {
        Policy::exponential(every, every)
    }

    /// At most `tries` attempts in all (so `tries - 1` delays).
    pub const fn tries(self, tries: usize) -> Policy {
        Policy {
            tries: Some(tries),
            ..self
        }
    }

    /// The delays of one run of retries.
    pub fn backoff(&self) -> Backoff {
        let builder = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(self.first)
            .with_max_delay(self.max);
        let builder = match self.tries {
            Some(n) => builder.with_max_times(n.saturating_sub(1)),
            None => builder.without_max_times(),
        };
        Backoff {
            delays: builder.build(),
        }
    }

    /// The delay after the `n`-th failure (1-based; 0 counts as 1), ignoring `tries`.
    pub fn delay(&self, n: u32) -> Duration {
        let unlimited = Policy {
            tries: None,
            ..*self
        };
        let mut delays = unlimited.backoff();
        // Past 17 doublings every cap in this code base is reached.
        let steps = n.clamp(1, 17) as usize;
        std::iter::from_fn(|| delays.next_delay())
            .nth(steps - 1)
            .unwrap_or(self.max)
    }
}

/// The delays of one run of retries (see [`Policy::backoff`]).
#[derive(Debug)]
pub struct Backoff {
    delays: ExponentialBackoff,
}

impl Backoff {
    /// The next delay, or `None` when the tries are spent.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.delays.next().map(whole_millis)
    }

    /// Sleeps the next delay. False when the tries are spent or `shutdown` fired
    /// (before or during the sleep): the caller gives up.
    pub async fn pause(&mut self, shutdown: &CancellationToken) -> bool {
        let Some(delay) = self.next_delay() else {
            return false;
        };
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => !shutdown.is_cancelled(),
        }
    }
}

/// `backon` doubles in `f32` seconds (200 ms becomes 200.000003 ms): delays of a
/// millisecond or more are rounded to whole milliseconds, so they are the exact
/// doublings the policies name.
fn whole_millis(d: Duration) -> Duration {
    if d < Duration::from_millis(1) || d == Duration::MAX {
        return d;
    }
    let millis = (d.as_micros() + 500) / 1000;
    Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Runs `f` until it succeeds, retrying every error with `policy`; see [`retry_when`].
pub async fn retry<T, E, Fut>(
    policy: Policy,
    what: &str,
    shutdown: &CancellationToken,
    f: impl FnMut() -> Fut,
) -> Option<Result<T, E>>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    retry_when(policy, what, shutdown, f, |_| true).await
}

/// Runs `f` until it succeeds, retrying the errors `transient` accepts with `policy`
/// and logging each failure as `"{what} failed"`. `None` once `shutdown` fires (an
/// attempt in flight is dropped); `Some(Err)` for an error not worth retrying or the
/// last one when the tries are spent.
pub async fn retry_when<T, E, Fut>(
    policy: Policy,
    what: &str,
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
) -> Option<Result<T, E>>
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = policy.backoff();
    let mut attempt = 1u32;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = f() => r,
        };
        let error = match result {
            Ok(v) => return Some(Ok(v)),
            Err(e) if transient(&e) => e,
            Err(e) => return Some(Err(e)),
        };
        let Some(delay) = backoff.next_delay() else {
            warn!(error = %error, attempt, "{what} failed; giving up");
            return Some(Err(error));
        };
        warn!(error = %error, attempt, retry_in = ?delay, "{what} failed");
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_from_the_first_and_stop_at_the_cap_and_the_tries() {
        let mut b = Policy::exponential(ms(100), ms(350)).backoff();
        let got: Vec<_> = (0..5).map(|_| b.next_delay().unwrap()).collect();
        assert_eq!(got, [ms(100), ms(200), ms(350), ms(350), ms(350)]);
        let mut b = Policy::exponential(ms(200), ms(10_000)).tries(5).backoff();
        assert_eq!(std::iter::from_fn(|| b.next_delay()).count(), 4);
        let mut b = Policy::fixed(ms(200)).backoff();
        assert!((0..100).all(|_| b.next_delay() == Some(ms(200))));
        let p = Policy::exponential(Duration::from_secs(1), Duration::from_secs(120));
        assert_eq!(p.delay(0), Duration::from_secs(1));
        assert_eq!(p.delay(4), Duration::from_secs(8));
        assert_eq!(p.delay(1000), Duration::from_secs(120));
    }

    #[tokio::test]
    async fn retries_until_success_and_gives_up_after_the_tries() {
        let calls = AtomicU32::new(0);
        let shutdown = CancellationToken::new();
        let policy = Policy::exponential(ms(10), ms(10)).tries(3);
        let r = retry(policy, "op", &shutdown, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err("transient"),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(r, Some(Ok(2)));
        calls.store(0, Ordering::SeqCst);
        let r: Option<Result<(), _>> = retry(policy, "op", &shutdown, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err("always")
        })
        .await;
        assert_eq!((r, calls.load(Ordering::SeqCst)), (Some(Err("always")), 3));
        let r: Option<Result<(), _>> = retry_when(
            policy,
            "op",
            &shutdown,
            || async { Err("fatal") },
            |_| false,
        )
        .await;
        assert_eq!(r, Some(Err("fatal")));
    }

    #[tokio::test]
    async fn shutdown_cuts_the_retries_and_the_pauses_short() {
        let shutdown = CancellationToken::new();
        let policy = Policy::fixed(Duration::from_secs(3600));
        let stopper = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(50)).await;
            stopper.cancel();
        });
        let r: Option<Result<(), &str>> =
            retry(policy, "op", &shutdown, || async { Err("down") }).await;
        assert_eq!(r, None);
        assert!(!policy.backoff().pause(&shutdown).await);
    }
}
