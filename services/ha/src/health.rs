//! Health checks of the PostgreSQL nodes: one probe per node and interval, each on a
//! fresh connection and bounded by the check timeout, and the per-node state the
//! watcher decides on (up, down, lag).
//!
//! A node is **down** after `failures_before_down` consecutive failed probes, or at
//! once when a probe takes longer than `check_timeout` (a stalled server accepts TCP
//! connections and then answers nothing). One successful probe brings it back up.
//! **Lag** is the read model's one definition (`imgcrawl_readmodel::lag`): stream
//! sequences from the node's checkpoint to the stream's end while an event the index
//! applies waits, and the age of the oldest such event in seconds; a node is
//! **lagging** above the threshold.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use imgcrawl_readmodel::{checkpoint, lag, ReadModelError};
use serde::Serialize;
use sqlx::{Connection, PgConnection};

/// Health of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not checked yet.
    Unknown,
    /// The last probe succeeded.
    Up,
    /// Too many failed probes, or one too slow.
    Down,
}

/// What one successful probe read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Whether the node holds a projection yet (the checkpoint table exists).
    pub projected: bool,
    /// Its checkpoint (0 if none).
    pub checkpoint: u64,
    /// The epoch recorded on it (after stamping, if the probe stamped).
    pub epoch: u64,
    /// Publish time of the last applied event.
    pub applied_at: Option<DateTime<Utc>>,
}

/// Why a probe failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// No answer within the check timeout.
    TimedOut(Duration),
    /// Connecting or querying failed.
    Failed(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::TimedOut(d) => write!(f, "check slower than {d:?}"),
            ProbeError::Failed(e) => f.write_str(e),
        }
    }
}

/// Probes the node at `url`: connects, reads checkpoint `name` and, with `stamp_to`,
/// records that epoch on the node first (never lowering it). Bounded by `timeout`.
pub async fn probe(
    url: &str,
    name: &str,
    stamp_to: Option<u64>,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    match tokio::time::timeout(timeout, probe_inner(url, name, stamp_to)).await {
        Ok(r) => r.map_err(ProbeError::Failed),
        Err(_) => Err(ProbeError::TimedOut(timeout)),
    }
}

async fn probe_inner(url: &str, name: &str, stamp_to: Option<u64>) -> Result<Probe, String> {
    let mut c = PgConnection::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let r = read(&mut c, name, stamp_to).await;
    let _ = c.close().await;
    r
}

async fn read(c: &mut PgConnection, name: &str, stamp_to: Option<u64>) -> Result<Probe, String> {
    let projected = checkpoint::table_exists(&mut *c)
        .await
        .map_err(|e| format!("query: {}", cause(&e)))?;
    if !projected {
        return Ok(Probe {
            projected,
            checkpoint: 0,
            epoch: 0,
            applied_at: None,
        });
    }
    if let Some(epoch) = stamp_to {
        checkpoint::stamp(c, name, epoch)
            .await
            .map_err(|e| format!("stamp epoch {epoch}: {e}"))?;
    }
    let cp = checkpoint::read(&mut *c, name)
        .await
        .map_err(|e| format!("read checkpoint: {}", cause(&e)))?;
    Ok(Probe {
        projected,
        checkpoint: cp.as_ref().map_or(0, |c| c.last_seq),
        epoch: cp
            .as_ref()
            .map_or(0, |c| u64::try_from(c.epoch).unwrap_or(0)),
        applied_at: cp.and_then(|c| c.updated_at),
    })
}

/// The driver's error alone (probe errors read as before the read model named them).
fn cause(e: &ReadModelError) -> String {
    e.sqlx().map_or_else(|| e.to_string(), ToString::to_string)
}

pub use imgcrawl_bus::position::StreamEnd;

/// One node as the watcher sees it (also the node entry of `GET /api/status`).
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    /// Name.
    pub name: String,
    /// Election priority (lowest wins).
    pub priority: u32,
    /// Health.
    pub health: Health,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Why it is down (or the last probe's error).
    pub last_error: Option<String>,
    /// When the last probe finished.
    pub last_check_at: Option<DateTime<Utc>>,
    /// How long the last probe took, in milliseconds.
    pub last_check_ms: Option<u64>,
    /// When a probe last succeeded.
    pub last_ok_at: Option<DateTime<Utc>>,
    /// Since when it is down.
    pub down_since: Option<DateTime<Utc>>,
    /// Whether it holds a projection yet.
    pub projected: bool,
    /// Its checkpoint, as last read.
    pub checkpoint: Option<u64>,
    /// The epoch recorded on it, as last read.
    pub epoch: Option<u64>,
    /// Publish time of the last event it applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// Stream sequences between its checkpoint and the stream's end while an event
    /// the index applies waits (0 when caught up: the index's own outputs at the end
    /// do not count).
    pub lag_seqs: Option<u64>,
    /// Age in seconds of the oldest event waiting to be applied.
    pub lag_secs: Option<f64>,
    /// Lag above the threshold.
    pub lagging: bool,
    #[serde(skip)]
    pub(crate) went_down: Option<Instant>,
}

impl NodeState {
    /// A node not checked yet.
    pub fn new(name: &str, priority: u32) -> NodeState {
        NodeState {
            name: name.to_string(),
            priority,
            health: Health::Unknown,
            consecutive_failures: 0,
            last_error: None,
            last_check_at: None,
            last_check_ms: None,
            last_ok_at: None,
            down_since: None,
            projected: false,
            checkpoint: None,
            epoch: None,
            applied_at: None,
            lag_seqs: None,
            lag_secs: None,
            lagging: false,
            went_down: None,
        }
    }

    /// Records a probe that took `took`; returns whether the health changed.
    pub fn record(
        &mut self,
        result: Result<Probe, ProbeError>,
        took: Duration,
        failures_before_down: u32,
    ) -> bool {
        let before = self.health;
        let now = Utc::now();
        self.last_check_at = Some(now);
        self.last_check_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        match result {
            Ok(p) => {
                self.health = Health::Up;
                self.consecutive_failures = 0;
                self.last_error = None;
                self.last_ok_at = Some(now);
                self.down_since = None;
                self.went_down = None;
                self.projected = p.projected;
                self.checkpoint = Some(p.checkpoint);
                self.epoch = Some(p.epoch);
                self.applied_at = p.applied_at;
            }
            Err(e) => {
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                let timed_out = matches!(e, ProbeError::TimedOut(_));
                self.last_error = Some(e.to_string());
                if timed_out || self.consecutive_failures >= failures_before_down {
                    if self.health != Health::Down {
                        self.down_since = Some(now);
                        self.went_down = Some(Instant::now());
                    }
                    self.health = Health::Down;
                }
            }
        }
        self.health != before
    }

    /// Why it is down, for the failover reason.
    pub fn down_reason(&self) -> String {
        let why = self.last_error.as_deref().unwrap_or("no answer");
        format!(
            "{} consecutive failed checks, last: {why}",
            self.consecutive_failures
        )
    }

    /// Recomputes lag against the stream's end, given when the stream stored the
    /// oldest event above the checkpoint that the index applies (`waiting`).
    pub fn update_lag(
        &mut self,
        end: Option<&StreamEnd>,
        waiting: Option<DateTime<Utc>>,
        threshold: Duration,
    ) {
        let (Some(end), Some(cp)) = (end, self.checkpoint) else {
            return;
        };
        let l = lag::lag(cp, end.last_seq, waiting, Utc::now());
        self.lag_seqs = Some(l.events);
        self.lag_secs = Some(l.seconds);
        self.lagging = l.seconds > threshold.as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cp: u64) -> Result<Probe, ProbeError> {
        Ok(Probe {
            projected: true,
            checkpoint: cp,
            epoch: 1,
            applied_at: None,
        })
    }

    fn fail() -> Result<Probe, ProbeError> {
        Err(ProbeError::Failed("connection refused".into()))
    }

    #[test]
    fn down_after_three_failures_or_one_slow_check_and_up_after_one_success() {
        let mut n = NodeState::new("a", 1);
        assert!(n.record(ok(5), Duration::from_millis(3), 3));
        assert_eq!(n.health, Health::Up);
        assert!(!n.record(fail(), Duration::ZERO, 3));
        assert!(!n.record(fail(), Duration::ZERO, 3));
        assert_eq!(n.health, Health::Up);
        assert!(n.record(fail(), Duration::ZERO, 3));
        assert_eq!(n.health, Health::Down);
        assert!(n.down_reason().starts_with("3 consecutive"));
        assert!(n.record(ok(6), Duration::ZERO, 3));
        assert_eq!((n.health, n.consecutive_failures), (Health::Up, 0));
        let slow = Err(ProbeError::TimedOut(Duration::from_secs(30)));
        assert!(n.record(slow, Duration::from_secs(30), 3));
        assert_eq!(n.health, Health::Down);
        assert!(n.last_error.as_deref().unwrap().contains("slower than 30s"));
    }

    #[test]
    fn lag_is_sequences_and_the_age_of_the_oldest_waiting_event() {
        let t0 = Utc::now() - chrono::Duration::seconds(70);
        let end = StreamEnd {
            last_seq: 100,
            last_at: t0 + chrono::Duration::seconds(90),
            first_at: t0,
        };
        let mut n = NodeState::new("a", 1);
        n.record(ok(40), Duration::ZERO, 3);
        n.update_lag(Some(&end), Some(t0), Duration::from_secs(60));
        assert_eq!(n.lag_seqs, Some(60));
        assert!(n.lag_secs.unwrap() >= 70.0, "{:?}", n.lag_secs);
        assert!(n.lagging);
        // only the index's own outputs above the checkpoint: caught up
        n.update_lag(Some(&end), None, Duration::from_secs(60));
        assert_eq!(
            (n.lag_seqs, n.lag_secs, n.lagging),
            (Some(0), Some(0.0), false)
        );
        n.checkpoint = Some(100);
        n.update_lag(Some(&end), Some(t0), Duration::from_secs(60));
        assert_eq!(
            (n.lag_seqs, n.lag_secs, n.lagging),
            (Some(0), Some(0.0), false)
        );
    }
}
