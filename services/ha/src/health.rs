//! Health checks of the PostgreSQL nodes: one probe per node and interval, each on a
//! fresh connection and bounded by the check timeout, and the per-node state the
//! watcher decides on (up, down, lag).
//!
//! A node is **down** after `failures_before_down` consecutive failed probes, or at
//! once when a probe takes longer than `check_timeout` (a stalled server accepts TCP
//! connections and then answers nothing). One successful probe brings it back up.
//! **Lag** is measured from the node's checkpoint to the stream's end, in sequences
//! and in seconds of stream time; a node is **lagging** above the threshold.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
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
    let projected: bool =
        sqlx::query_scalar("SELECT to_regclass('public.projection_checkpoint') IS NOT NULL")
            .fetch_one(&mut *c)
            .await
            .map_err(|e| format!("query: {e}"))?;
    if !projected {
        return Ok(Probe {
            projected,
            checkpoint: 0,
            epoch: 0,
            applied_at: None,
        });
    }
    if let Some(epoch) = stamp_to {
        imgcrawl_index::stamp(c, name, epoch)
            .await
            .map_err(|e| format!("stamp epoch {epoch}: {e}"))?;
    }
    let row: Option<(i64, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT last_seq, epoch, updated_at FROM projection_checkpoint WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(&mut *c)
    .await
    .map_err(|e| format!("read checkpoint: {e}"))?;
    let (seq, epoch, applied_at) = row.unwrap_or((0, 0, None));
    Ok(Probe {
        projected,
        checkpoint: u64::try_from(seq).unwrap_or(0),
        epoch: u64::try_from(epoch).unwrap_or(0),
        applied_at,
    })
}

/// The stream's end, for lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamEnd {
    /// Last sequence.
    pub last_seq: u64,
    /// When the last message was stored.
    pub last_at: DateTime<Utc>,
    /// When the first message still in the stream was stored.
    pub first_at: DateTime<Utc>,
}

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
    /// Stream sequences between its checkpoint and the stream's end (the index's own
    /// outputs at the end count too, so a caught-up node may show a few).
    pub lag_seqs: Option<u64>,
    /// Seconds of stream time between the last event it applied and the stream's end.
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

    /// Recomputes lag against the stream's end.
    pub fn update_lag(&mut self, end: Option<&StreamEnd>, threshold: Duration) {
        let (Some(end), Some(cp)) = (end, self.checkpoint) else {
            return;
        };
        let seqs = end.last_seq.saturating_sub(cp);
        let secs = if seqs == 0 {
            0.0
        } else {
            let from = self.applied_at.unwrap_or(end.first_at);
            ((end.last_at - from).num_milliseconds().max(0) as f64) / 1000.0
        };
        self.lag_seqs = Some(seqs);
        self.lag_secs = Some(secs);
        self.lagging = secs > threshold.as_secs_f64();
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
    fn lag_is_sequences_and_stream_seconds_from_the_checkpoint() {
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        let end = StreamEnd {
            last_seq: 100,
            last_at: t0 + chrono::Duration::seconds(90),
            first_at: t0,
        };
        let mut n = NodeState::new("a", 1);
        n.record(ok(40), Duration::ZERO, 3);
        n.applied_at = Some(t0 + chrono::Duration::seconds(20));
        n.update_lag(Some(&end), Duration::from_secs(60));
        assert_eq!(n.lag_seqs, Some(60));
        assert_eq!(n.lag_secs, Some(70.0));
        assert!(n.lagging);
        n.checkpoint = Some(100);
        n.update_lag(Some(&end), Duration::from_secs(60));
        assert_eq!(
            (n.lag_seqs, n.lag_secs, n.lagging),
            (Some(0), Some(0.0), false)
        );
    }
}
