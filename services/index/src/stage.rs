//! The live index stage: read batches in order, apply each in one transaction,
//! commit, then publish what the batch produced.
//!
//! Order of effects per batch, and why:
//! 1. poison messages (undecodable) are dead-lettered, so none is lost; they are not
//!    applied, and the checkpoint passes over them;
//! 2. the batch is applied and the checkpoint advanced in one transaction, retried with
//!    back-off while PostgreSQL is unavailable (from memory: nothing is acked, nothing
//!    is redelivered, and events at or below the checkpoint are skipped anyway);
//! 3. only after the commit, `image.indexed` and `crawl.completed` are published (see
//!    the `republish` module for a crash in between).
//!
//! If the database's checkpoint is found below what this process committed (a
//! failover to a standby that is behind, a restore, commits lost with
//! `synchronous_commit = off`), the batch is rolled back and the stream is read again
//! from the database's checkpoint: the node catches up from the log by itself.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::jetstream::Message;
use imgcrawl_bus::dlq::{dead_letter, DeadLetter};
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
use imgcrawl_events::{decode, HEADER_EVENT};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::effects::{BatchEffects, Invalid};
use crate::error::{db as db_err, IndexError};
use crate::source::{consumed_subjects, EventSource};
use crate::{apply_batch_through, db, republish, Config, Sourced};

/// Runs `f` until it succeeds, backing off (doubling up to `max`) between failures;
/// `None` if `shutdown` fired first.
pub(crate) async fn retry<T, E: std::fmt::Display, Fut: Future<Output = Result<T, E>>>(
    what: &str,
    max: Duration,
    shutdown: &CancellationToken,
    mut f: impl FnMut() -> Fut,
) -> Option<T> {
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = f() => r,
        };
        match attempt {
            Ok(v) => return Some(v),
            Err(e) => warn!(error = %e, retry_in = ?pause, "{what} failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(max);
    }
}

/// A batch decoded: events to apply and messages to dead-letter.
struct Prepared {
    events: Vec<Sourced>,
    poison: Vec<Invalid>,
    through: u64,
}

fn prepare(stream: &str, msgs: &[Message]) -> Prepared {
    let mut p = Prepared {
        events: Vec::with_capacity(msgs.len()),
        poison: Vec::new(),
        through: 0,
    };
    let consumed = consumed_subjects();
    for m in msgs {
        let Ok(info) = m.info() else { continue };
        let (seq, published) = (info.stream_sequence, to_chrono(info.published));
        p.through = p.through.max(seq);
        if !consumed.iter().any(|s| s == m.subject.as_str()) {
            // Never ours to apply (dead letters, our own outputs): dead-lettering them
            // would feed a loop if a server ever ignored the consumer's filter.
            continue;
        }
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
async fn dead_letter_all(
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
enum Step {
    /// Committed.
    Done(BatchEffects),
    /// The database's checkpoint is behind what this process committed (failover to a
    /// node that is behind, or a restore): rolled back, read again from there.
    Behind(u64),
}

/// Applies one batch; commits unless the database turned out to be behind.
async fn apply_once(
    pool: &PgPool,
    config: &Config,
    p: &Prepared,
    committed: u64,
) -> Result<Step, IndexError> {
    let mut tx = pool.begin().await.map_err(db_err("begin"))?;
    let effects =
        apply_batch_through(&mut tx, &config.checkpoint_name, &p.events, p.through).await?;
    if effects.applied.previous < committed {
        tx.rollback().await.map_err(db_err("rollback"))?;
        return Ok(Step::Behind(effects.applied.previous));
    }
    tx.commit().await.map_err(db_err("commit"))?;
    Ok(Step::Done(effects))
}

/// [`apply_once`] until it succeeds or `shutdown` fires; the flag says whether an
/// earlier attempt failed (and so may have committed without us knowing).
async fn commit(
    pool: &PgPool,
    config: &Config,
    p: &Prepared,
    committed: u64,
    shutdown: &CancellationToken,
) -> Option<(Step, bool)> {
    let attempts = AtomicU32::new(0);
    let attempt = || {
        attempts.fetch_add(1, Ordering::Relaxed);
        apply_once(pool, config, p, committed)
    };
    let step = retry("apply batch", config.max_backoff(), shutdown, attempt).await?;
    Some((step, attempts.load(Ordering::Relaxed) > 1))
}

/// The running stage.
struct Stage {
    bus: Bus,
    pool: PgPool,
    config: Config,
    name: String,
    source: EventSource,
    /// The checkpoint this process last committed (or found at start).
    committed: u64,
}

impl Stage {
    /// Handles one batch; false when shutting down.
    async fn step(&mut self, shutdown: &CancellationToken) -> bool {
        let msgs = self
            .source
            .next_batch(self.config.batch_size(), self.config.batch_wait(), shutdown)
            .await;
        if msgs.is_empty() {
            return !shutdown.is_cancelled();
        }
        let p = prepare(&self.bus.config.stream, &msgs);
        if !dead_letter_all(&self.bus, &self.name, &msgs, &p.poison, shutdown).await {
            return false;
        }
        let Some((step, uncertain)) =
            commit(&self.pool, &self.config, &p, self.committed, shutdown).await
        else {
            return false;
        };
        let effects = match step {
            Step::Done(e) => e,
            Step::Behind(at) => {
                warn!(
                    database = at,
                    committed = self.committed,
                    "database checkpoint is behind; reading again from it"
                );
                self.source.rewind(at);
                self.committed = at;
                return true;
            }
        };
        self.committed = self.committed.max(effects.applied.checkpoint);
        dead_letter_all(&self.bus, &self.name, &msgs, &effects.invalid, shutdown).await;
        if uncertain && effects.applied.skipped > 0 {
            // An earlier attempt may have committed before failing: its effects are lost.
            republish::republish(
                &self.bus,
                &self.pool,
                &self.config.checkpoint_name,
                self.config.republish_window_secs,
            )
            .await;
        }
        let events = effects.events(self.config.publish_indexed);
        if events.is_empty() {
            return true;
        }
        let publisher = self.bus.publisher();
        let publish = || publisher.publish_all(&events);
        retry(
            "publish effects",
            self.config.max_backoff(),
            shutdown,
            publish,
        )
        .await
        .is_some()
    }
}

/// Runs the index stage until `shutdown` fires.
#[instrument(skip_all, fields(checkpoint = %config.checkpoint_name))]
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), IndexError> {
    let open = || async {
        let pool = db::connect(&config.database_url).await?;
        db::migrate(&pool).await?;
        let cp = db::read_checkpoint(&pool, &config.checkpoint_name).await?;
        Ok::<_, IndexError>((pool, cp.map_or(0, |c| c.last_seq)))
    };
    let Some((pool, start)) = retry("open database", config.max_backoff(), &shutdown, open).await
    else {
        return Ok(());
    };
    info!(start, "index stage started");
    republish::republish(
        &bus,
        &pool,
        &config.checkpoint_name,
        config.republish_window_secs,
    )
    .await;
    let name = config.stage_name();
    let source = EventSource::new(
        bus.js.clone(),
        bus.config.stream.clone(),
        format!("imgcrawl {name}"),
        start,
    );
    let mut stage = Stage {
        bus,
        pool,
        config,
        name,
        source,
        committed: start,
    };
    while stage.step(&shutdown).await {}
    info!("index stage stopped");
    Ok(())
}
