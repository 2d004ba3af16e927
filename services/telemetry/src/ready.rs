//! Readiness: what a process needs before it can do its work, checked on `/readyz`.
//!
//! Two kinds of check, each under a stable name:
//!
//! * **probes**, run on every `/readyz` (with a timeout): NATS answers a round trip,
//!   a database answers a ping;
//! * **states**, set by the code that knows: a consumer is bound (`consumer/<name>`),
//!   the index is projecting (`projection/<name>`). A process expects its states at
//!   start ([`Readiness::expect`]), so it is not ready until each is set.
//!
//! A process has one [`Readiness`] ([`global`]): the worker loop and the stages mark
//! their states on it, and the metrics listener serves its report.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use serde::Serialize;

/// A probe: answers `Ok` when the dependency is reachable, else why not.
type Probe = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One check's result, the same shape as the API's `/readyz` checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// It passed.
    pub ok: bool,
    /// Round trip in milliseconds, for a probe that answered.
    pub latency_ms: Option<f64>,
    /// Why not, when it did not pass.
    pub error: Option<String>,
}

/// The `/readyz` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Every check by name.
    pub checks: BTreeMap<String, Check>,
}

impl Report {
    /// Every check passed.
    pub fn ready(&self) -> bool {
        self.status == "ready"
    }
}

#[derive(Default)]
struct Inner {
    probes: BTreeMap<String, Probe>,
    states: BTreeMap<String, Result<(), String>>,
}

/// The readiness checks of a process; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("Readiness")
            .field("probes", &i.probes.keys().collect::<Vec<_>>())
            .field("states", &i.states)
            .finish()
    }
}

static GLOBAL: LazyLock<Readiness> = LazyLock::new(Readiness::default);

/// The process's readiness.
pub fn global() -> &'static Readiness {
    &GLOBAL
}

impl Readiness {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or replaces) a probe run on every report.
    pub fn probe<F, Fut>(&self, name: impl Into<String>, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let f: Probe = Arc::new(move || f().boxed());
        self.lock().probes.insert(name.into(), f);
    }

    /// Removes a probe (its dependency is no longer needed).
    pub fn remove_probe(&self, name: &str) {
        self.lock().probes.remove(name);
    }

    /// Declares a state the process needs; not ready until [`Readiness::set`] says ok.
    pub fn expect(&self, name: impl Into<String>) {
        self.lock()
            .states
            .entry(name.into())
            .or_insert_with(|| Err("not started yet".into()));
    }

    /// Sets a state: `Ok` ready, `Err` not, with why.
    pub fn set(&self, name: impl Into<String>, state: Result<(), String>) {
        self.lock().states.insert(name.into(), state);
    }

    /// Runs every probe (each within `timeout`) and collects the states.
    pub async fn report(&self, timeout: Duration) -> Report {
        let (probes, states) = {
            let i = self.lock();
            let probes: Vec<(String, Probe)> = i
                .probes
                .iter()
                .map(|(n, p)| (n.clone(), p.clone()))
                .collect();
            (probes, i.states.clone())
        };
        let probed = join_all(probes.into_iter().map(|(name, p)| async move {
            let start = Instant::now();
            let check = match tokio::time::timeout(timeout, p()).await {
                Ok(Ok(())) => Check {
                    ok: true,
                    latency_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
                    error: None,
                },
                Ok(Err(e)) => Check {
                    ok: false,
                    latency_ms: None,
                    error: Some(e),
                },
                Err(_) => Check {
                    ok: false,
                    latency_ms: None,
                    error: Some("no answer in time".into()),
                },
            };
            (name, check)
        }))
        .await;
        let mut checks: BTreeMap<String, Check> = states
            .into_iter()
            .map(|(name, s)| {
                let check = Check {
                    ok: s.is_ok(),
                    latency_ms: None,
                    error: s.err(),
                };
                (name, check)
            })
            .collect();
        checks.extend(probed);
        let ready = checks.values().all(|c| c.ok);
        Report {
            status: if ready { "ready" } else { "not_ready" },
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_only_when_every_state_and_probe_passes() {
        let r = Readiness::default();
        assert!(
            r.report(Duration::from_secs(1)).await.ready(),
            "nothing needed"
        );
        r.expect("consumer/crawl");
        let rep = r.report(Duration::from_secs(1)).await;
        assert!(!rep.ready());
        assert_eq!(
            rep.checks["consumer/crawl"].error.as_deref(),
            Some("not started yet")
        );
        r.set("consumer/crawl", Ok(()));
        r.probe("nats", || async { Ok(()) });
        let rep = r.report(Duration::from_secs(1)).await;
        assert!(rep.ready(), "{rep:?}");
        assert!(rep.checks["nats"].latency_ms.is_some());
        r.probe("postgres", || async {
            Err("connection refused".to_string())
        });
        let rep = r.report(Duration::from_secs(1)).await;
        assert!(!rep.ready());
        assert_eq!(
            rep.checks["postgres"].error.as_deref(),
            Some("connection refused")
        );
        r.remove_probe("postgres");
        assert!(r.report(Duration::from_secs(1)).await.ready());
    }

    #[tokio::test]
    async fn a_probe_that_hangs_fails_in_time() {
        let r = Readiness::default();
        r.probe("slow", futures::future::pending);
        let start = Instant::now();
        let rep = r.report(Duration::from_millis(50)).await;
        assert!(!rep.ready());
        assert_eq!(
            rep.checks["slow"].error.as_deref(),
            Some("no answer in time")
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
