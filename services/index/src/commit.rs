//! One batch, from messages to a committed transaction: decoding, dead letters, the
//! transaction with the stream check and the checkpoint, and retries with back-off.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::Message;
use imgcrawl_bus::dlq::{dead_letter, DeadLetter};
use imgcrawl_bus::retry::Policy;
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
use imgcrawl_events::{decode, HEADER_EVENT};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{db as db_err, IndexError};
use crate::fencing::{self, Fence};
use crate::meta;
use crate::{apply_batch_with, BatchEffects, Config, Invalid, Sourced};
use imgcrawl_bus::identity::StreamIdentity;

/// Runs `f` until it succeeds, backing off (doubling from 100 ms up to `max`) between
/// failures with the bus's one retry policy; `None` if `shutdown` fired first.
pub(crate) async fn retry<T, E: std::fmt::Display, Fut: Future<Output = Result<T, E>>>(
    what: &str,
    max: Duration,
    shutdown: &CancellationToken,
    f: impl FnMut() -> Fut,
) -> Option<T> {
    let policy = Policy::exponential(Duration::from_millis(100), max);
    imgcrawl_bus::retry::retry(policy, what, shutdown, f)
        .await
        .and_then(Result::ok)
}

/// A batch decoded: events to apply and messages to dead-letter.
pub(crate) struct Prepared {
    pub events: Vec<Sourced>,
    pub poison: Vec<Invalid>,
    /// The highest sequence of a message the index consumes (0: none in the batch).
    pub through: u64,
}

impl Prepared {
    /// Nothing to apply and nothing to pass over: every message was one the index does
    /// not consume.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.poison.is_empty() && self.through == 0
    }
}

/// Decodes a batch of messages read from `stream`.
pub(crate) fn prepare(stream: &str, msgs: &[Message]) -> Prepared {
    let mut p = Prepared {
        events: Vec::with_capacity(msgs.len()),
        poison: Vec::new(),
        through: 0,
    };
    for m in msgs {
        let Ok(info) = m.info() else { continue };
        let (seq, published) = (
            info.stream_sequence,
            stored_at(m).unwrap_or_else(|| to_chrono(info.published)),
        );
        if !imgcrawl_readmodel::lag::applies_subject(m.subject.as_str()) {
            // Never ours to apply (dead letters, our own outputs; the reader does not
            // filter on the server): not dead-lettered (that would feed a loop), and
            // the checkpoint does not move over them, so it stays the sequence of the
            // last event the index consumed.
            continue;
        }
        p.through = p.through.max(seq);
        let header = m
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_EVENT))
            .map(|v| v.as_str().to_string());
        match decode(m.subject.as_str(), header.as_deref(), &m.payload) {
            Ok(event) => p.events.push(Sourced::new(stream, seq, published, event)),
            Err(e) => p.poison.push(Invalid {
                seq,
                reason: e.to_string(),
            }),
        }
    }
    p
}

/// Dead-letters `bad` (found by sequence in `msgs`); false if shut down first.
pub(crate) async fn dead_letter_all(
    bus: &Bus,
    stage: &str,
    msgs: &[Message],
    bad: &[Invalid],
    shutdown: &CancellationToken,
) -> bool {
    for b in bad {
        let Some(m) = msgs
            .iter()
            .find(|m| m.info().is_ok_and(|i| i.stream_sequence == b.seq))
        else {
            continue;
        };
        warn!(seq = b.seq, reason = %b.reason, "dead-lettering");
        let dl = DeadLetter::from_message(stage, m, b.seq, 1, b.reason.clone());
        if retry("dead-letter", Duration::from_secs(5), shutdown, || {
            dead_letter(bus, &dl)
        })
        .await
        .is_none()
        {
            return false;
        }
    }
    true
}

/// What one attempt at a batch did.
pub(crate) enum Step {
    /// Committed.
    Done(BatchEffects),
    /// The database's checkpoint is behind what this process committed (failover to a
    /// node that is behind, or a restore): rolled back, read again from there.
    Behind(u64),
    /// The database projects another stream: rolled back, and the writer must stop.
    Refused(IndexError),
}

/// Applies one batch; commits unless the database turned out to be behind or to
/// belong to another stream.
async fn apply_once(
    pool: &PgPool,
    config: &Config,
    stream: &StreamIdentity,
    p: &Prepared,
    committed: u64,
    fence: Option<&Fence>,
) -> Result<Step, IndexError> {
    let mut tx = pool.begin().await.map_err(db_err("begin"))?;
    match meta::claim(&mut tx, stream).await {
        Err(e @ IndexError::ForeignStream { .. }) => {
            tx.rollback().await.map_err(db_err("rollback"))?;
            return Ok(Step::Refused(e));
        }
        other => other?,
    }
    if let Some(f) = fence {
        fencing::check(&mut tx, &config.checkpoint_name, f.epoch()).await?;
    }
    let (name, indexed) = (&config.checkpoint_name, config.publish_indexed);
    let effects = apply_batch_with(&mut tx, name, &p.events, p.through, indexed).await?;
    if effects.applied.previous < committed {
        tx.rollback().await.map_err(db_err("rollback"))?;
        return Ok(Step::Behind(effects.applied.previous));
    }
    tx.commit().await.map_err(db_err("commit"))?;
    Ok(Step::Done(effects))
}

/// [`apply_once`] until it succeeds or `shutdown` fires; the flag says whether an
/// earlier attempt failed (and so may have committed without us knowing).
pub(crate) async fn commit(
    pool: &PgPool,
    config: &Config,
    stream: &StreamIdentity,
    p: &Prepared,
    committed: u64,
    fence: Option<&Fence>,
    shutdown: &CancellationToken,
) -> Option<(Step, bool)> {
    let attempts = AtomicU32::new(0);
    // A fenced attempt is not a failure to back off from: it waits for the pointer.
    let attempt = || async {
        attempts.fetch_add(1, Ordering::Relaxed);
        match apply_once(pool, config, stream, p, committed, fence).await {
            Err(e @ IndexError::Fenced { .. }) => Ok(Err(e)),
            Err(e) => Err(e),
            Ok(step) => Ok(Ok(step)),
        }
    };
    loop {
        match retry("apply batch", config.max_backoff(), shutdown, attempt).await? {
            Ok(step) => return Some((step, attempts.load(Ordering::Relaxed) > 1)),
            Err(fenced) => {
                warn!(error = %fenced, "fenced: not committing; waiting for the ha pointer");
                if let Some(f) = fence {
                    f.wait_newer(&fenced, shutdown).await;
                }
            }
        }
    }
}

/// A restored event's original store time
/// ([`HEADER_STORED_AT`](imgcrawl_events::HEADER_STORED_AT)), read in place of the
/// message time.
fn stored_at(m: &Message) -> Option<chrono::DateTime<chrono::Utc>> {
    m.headers
        .as_ref()
        .and_then(|h| h.get(imgcrawl_events::HEADER_STORED_AT))
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v.as_str()).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
}
