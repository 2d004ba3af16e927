//! Riding out JetStream leader elections: after a server of a cluster is lost, the
//! meta group or a stream elects a new leader, and for a few seconds JetStream API
//! requests time out or answer "temporarily unavailable" (and while a cluster forms,
//! an R3 stream finds "no suitable peers"). Topology requests made at
//! start (and by `imgcrawl topology`) are retried through that window instead of
//! failing the process.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::BusError;

/// How long requests are retried while JetStream does not answer.
pub const ELECTION_WAIT: Duration = Duration::from_secs(30);

impl BusError {
    /// Whether JetStream did not answer in time or is between leaders (trying again
    /// soon may succeed).
    pub fn is_unavailable(&self) -> bool {
        let BusError::Topology(m) = self else {
            return false;
        };
        let m = m.to_ascii_lowercase();
        // "no suitable peers": a cluster still forming, or a server not back yet
        [
            "timed out",
            "temporarily unavailable",
            "no responders",
            "no suitable peers",
        ]
        .iter()
        .any(|w| m.contains(w))
    }
}

/// Runs `op` until it succeeds, fails otherwise than [`BusError::is_unavailable`], or
/// [`ELECTION_WAIT`] has passed; back-off from 250 ms to 2 s.
pub async fn patiently<T, F, Fut>(what: &str, mut op: F) -> Result<T, BusError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BusError>>,
{
    let deadline = Instant::now() + ELECTION_WAIT;
    let mut delay = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if e.is_unavailable() && Instant::now() + delay < deadline => {
                tracing::warn!(error = %e, "{what}: jetstream did not answer (a leader election?); trying again");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_elections_are_unavailable_the_rest_is_not() {
        let t = |m: &str| BusError::Topology(m.into()).is_unavailable();
        assert!(t("get stream: request error: timed out: request timed out"));
        assert!(t("stream info: JetStream system temporarily unavailable"));
        assert!(t(
            "create stream: no suitable peers for placement (code 400)"
        ));
        assert!(!t("create stream: insufficient resources"));
        assert!(!BusError::Config("timed out".into()).is_unavailable());
    }

    #[tokio::test]
    async fn it_retries_only_while_unavailable() {
        let mut calls = 0;
        let r = patiently("test", || {
            calls += 1;
            let n = calls;
            async move {
                match n {
                    1 => Err(BusError::Topology("timed out".into())),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let mut calls = 0;
        let r: Result<(), _> = patiently("test", || {
            calls += 1;
            async { Err(BusError::Topology("bad config".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
