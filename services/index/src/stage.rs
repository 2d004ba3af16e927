//! The projection loop, shared by the live index stage and by replays: read batches in
//! order, apply each in one transaction, commit, then (live only) publish what the
//! batch produced.
//!
//! Order of effects per batch, and why:
//! 1. poison messages (undecodable) are dead-lettered, so none is lost; they are not
//!    applied, and the checkpoint passes over them;
//! 2. the batch is applied and the checkpoint advanced in one transaction (which also
//!    checks that the database projects this stream), retried with back-off while
//!    PostgreSQL is unavailable (from memory: nothing is acked, nothing is
//!    redelivered, and events at or below the checkpoint are skipped anyway);
//! 3. only after the commit, `images.indexed` and `crawl.completed` are published (see
//!    the `republish` module for a crash in between).
//!
//! A replay runs the same loop in [`Mode::Replay`] (no dead letters, no
//! announcements: they were published when the events were first applied) and a
//! limit: it stops once everything up to the stream's end at start (or `until`) is
//! applied, or keeps following without publishing.
//!
//! If the database's checkpoint is found below what this process committed (a
//! failover to a standby that is behind, a restore, commits lost with
//! `synchronous_commit = off`), the batch is rolled back and the stream is read again
//! from the database's checkpoint: the node catches up from the log by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use imgcrawl_bus::Bus;
use imgcrawl_events::Event;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};

use crate::commit::{commit, dead_letter_all, prepare, retry, Prepared, Step};
use crate::fencing;
use crate::meta;
use crate::mode::Mode;
use crate::replay::ReplayProgress;
use crate::source::EventSource;
use crate::{db, republish, BatchEffects, Config, IndexError, RecordedStream};
use imgcrawl_bus::identity::StreamIdentity;

/// The running loop.
struct Stage {
    bus: Bus,
    pool: PgPool,
    config: Config,
    mode: Mode,
    /// Events per transaction.
    batch_size: usize,
    /// How long to wait for more events once a batch has its first.
    linger: Duration,
    name: String,
    stream: StreamIdentity,
    source: EventSource,
    /// The checkpoint this process last committed (or found at start).
    committed: u64,
    /// A replay's next batch, read and decoded while the previous one was committed.
    ahead: Option<(Vec<Message>, Prepared)>,
    stats: ReplayProgress,
    started: Instant,
    /// [`Stage::committed`], for the lag measurement.
    position: Arc<AtomicU64>,
}

impl Stage {
    /// Handles one batch; false when shutting down.
    async fn step(&mut self, shutdown: &CancellationToken) -> Result<bool, IndexError> {
        let (linger, max) = (self.linger, self.batch_size);
        let (msgs, p) = match self.ahead.take() {
            Some(ahead) => ahead,
            None => {
                let msgs = self.source.next_batch(max, linger, shutdown).await;
                let p = prepare(&self.stream.stream, &msgs);
                (msgs, p)
            }
        };
        if msgs.is_empty() {
            return Ok(!shutdown.is_cancelled());
        }
        if p.is_empty() {
            // Only the index's own outputs or dead letters: nothing to commit.
            return Ok(true);
        }
        let (primary, promoted) = fencing::role(self.mode.fence_mut());
        let publish = self.mode.publishes() && primary;
        if publish && promoted {
            let (pool, name) = (&self.pool, &self.config.checkpoint_name);
            republish::republish(&self.bus, pool, name, self.config.republish_window_secs).await;
        }
        if publish && !dead_letter_all(&self.bus, &self.name, &msgs, &p.poison, shutdown).await {
            return Ok(false);
        }
        let (pool, config, fence) = (&self.pool, &self.config, self.mode.fence());
        let at = self.committed;
        // A replay reads (and decodes) its next batch while PostgreSQL applies this one.
        let read_ahead = !self.mode.publishes() && self.source.limited();
        let (source, stream) = (&mut self.source, &self.stream);
        let ahead = async {
            if !read_ahead {
                return None;
            }
            let msgs = source.next_batch(max, linger, shutdown).await;
            let p = prepare(&stream.stream, &msgs);
            Some((msgs, p)).filter(|(m, _)| !m.is_empty())
        };
        let committing = commit(pool, config, stream, &p, at, fence, shutdown);
        let commit_started = Instant::now();
        let (done, ahead) = tokio::join!(committing, ahead);
        let took = commit_started.elapsed();
        self.ahead = ahead;
        let Some((step, uncertain)) = done else {
            return Ok(false);
        };
        let effects = match step {
            Step::Done(e) => e,
            Step::Refused(e) => return Err(e),
            Step::Behind(at) => {
                warn!(
                    database = at,
                    committed = self.committed,
                    "database checkpoint is behind; reading again from it"
                );
                self.ahead = None;
                self.source.rewind(at);
                self.committed = at;
                return Ok(true);
            }
        };
        self.committed = self.committed.max(effects.applied.checkpoint);
        self.position.store(self.committed, Ordering::Relaxed);
        let name = &self.config.checkpoint_name;
        crate::telemetry::committed(name, msgs.len(), took, &effects, self.committed);
        self.record(&msgs, &p, &effects);
        if !publish {
            let with_indexed = self.config.publish_indexed;
            fencing::stash(self.mode.fence_mut(), &effects, with_indexed);
            return Ok(true);
        }
        let backlog = fencing::backlog(self.mode.fence_mut());
        self.announce(&msgs, effects, backlog, uncertain, shutdown)
            .await
    }

    /// Counts a committed batch and reports progress.
    fn record(&mut self, msgs: &[Message], p: &Prepared, effects: &BatchEffects) {
        let s = &mut self.stats;
        s.checkpoint = self.committed;
        s.events += effects.applied.applied as u64;
        s.skipped += effects.applied.skipped as u64;
        s.invalid += (p.poison.len() + effects.invalid.len()) as u64;
        s.bytes += msgs.iter().map(|m| m.payload.len() as u64).sum::<u64>();
        s.elapsed = self.started.elapsed();
        if !self.mode.publishes() {
            for bad in p.poison.iter().chain(&effects.invalid) {
                debug!(seq = bad.seq, reason = %bad.reason, "not applied (not dead-lettered again by a replay)");
            }
        }
        self.report();
    }

    fn report(&self) {
        if let Some(tx) = self.mode.progress() {
            tx.send_replace(self.stats.clone());
        }
    }

    /// Live only: dead letters for unusable events, then the batch's announcements.
    async fn announce(
        &mut self,
        msgs: &[Message],
        effects: BatchEffects,
        backlog: Vec<Event>,
        uncertain: bool,
        shutdown: &CancellationToken,
    ) -> Result<bool, IndexError> {
        dead_letter_all(&self.bus, &self.name, msgs, &effects.invalid, shutdown).await;
        if uncertain && effects.applied.skipped > 0 {
            // An earlier attempt may have committed before failing: its effects are lost.
            let (pool, name) = (&self.pool, &self.config.checkpoint_name);
            republish::republish(&self.bus, pool, name, self.config.republish_window_secs).await;
        }
        let mut events = match backlog.is_empty() {
            true => backlog,
            false => fencing::unannounced(backlog, fencing::last_announced(&self.bus).await),
        };
        events.extend(effects.events(self.config.publish_indexed));
        if events.is_empty() {
            return Ok(true);
        }
        let publisher = self.bus.publisher();
        let publish = || publisher.publish_all(&events);
        let max = self.config.max_backoff();
        Ok(retry("publish effects", max, shutdown, publish)
            .await
            .is_some())
    }
}

/// What the loop needs from the database and the stream at start.
struct Opened {
    pool: PgPool,
    start: u64,
    stream: StreamIdentity,
    last_seq: u64,
    recorded: Option<RecordedStream>,
}

async fn open(bus: &Bus, config: &Config) -> Result<Opened, IndexError> {
    let position = meta::stream_position(bus).await?;
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    let cp = db::read_checkpoint(&pool, &config.checkpoint_name).await?;
    let recorded = meta::recognise_legacy(bus, &pool, &position.identity).await?;
    Ok(Opened {
        pool,
        start: cp.map_or(0, |c| c.last_seq),
        stream: position.identity,
        last_seq: position.last_seq,
        recorded,
    })
}

/// Runs the loop in `mode` until shutdown, or until caught up when the mode has a
/// limit and does not follow. Returns what it did.
#[instrument(skip_all, fields(checkpoint = %config.checkpoint_name))]
pub(crate) async fn drive(
    bus: Bus,
    config: Config,
    mode: Mode,
    shutdown: CancellationToken,
) -> Result<ReplayProgress, IndexError> {
    let opened = if mode.patient() {
        let open = || open(&bus, &config);
        match retry("open database", config.max_backoff(), &shutdown, open).await {
            Some(o) => o,
            None => return Ok(ReplayProgress::default()),
        }
    } else {
        open(&bus, &config).await?
    };
    meta::check(opened.recorded.as_ref(), &opened.stream)?;
    let (start, pool) = (opened.start, opened.pool);
    let limit = mode.until().map(|u| u.min(opened.last_seq));
    info!(start, end = ?limit, stream = %opened.stream, "projection started");
    if mode.publishes() && mode.fence().is_none() {
        let window = config.republish_window_secs;
        republish::republish(&bus, &pool, &config.checkpoint_name, window).await;
    }
    let name = config.stage_name();
    let source = EventSource::new(
        bus.js.clone(),
        opened.stream.stream.clone(),
        format!("imgcrawl {name}"),
        start,
        limit,
    );
    let stats = ReplayProgress {
        start,
        end: limit,
        checkpoint: start,
        ..ReplayProgress::default()
    };
    let (batch_size, linger) = (mode.batch_size(&config), mode.linger(&config));
    let position = Arc::new(AtomicU64::new(start));
    let measuring = shutdown.child_token();
    let _ready = if mode.publishes() {
        let name = config.checkpoint_name.clone();
        let (b, p, m) = (bus.clone(), position.clone(), measuring.clone());
        tokio::spawn(crate::telemetry::measure_lag(b, pool.clone(), name, p, m));
        Some(crate::telemetry::ready(&config.checkpoint_name, &pool))
    } else {
        None
    };
    let _stop_measuring = measuring.drop_guard();
    let mut stage = Stage {
        bus,
        pool,
        config,
        mode,
        batch_size,
        linger,
        name,
        stream: opened.stream,
        source,
        committed: start,
        ahead: None,
        stats,
        started: Instant::now(),
        position,
    };
    stage.report();
    run_loop(&mut stage, &shutdown).await?;
    stage.stats.elapsed = stage.started.elapsed();
    stage.report();
    stage.pool.close().await;
    info!(checkpoint = stage.committed, "projection stopped");
    Ok(stage.stats)
}

async fn run_loop(stage: &mut Stage, shutdown: &CancellationToken) -> Result<(), IndexError> {
    loop {
        if stage.source.exhausted() && stage.ahead.is_none() && !stage.stats.caught_up {
            stage.stats.caught_up = true;
            stage.stats.elapsed = stage.started.elapsed();
            stage.report();
            if !stage.mode.follows() {
                return Ok(());
            }
            info!(
                checkpoint = stage.committed,
                "caught up; following the stream"
            );
            stage.source.unlimit();
        }
        if !stage.step(shutdown).await? {
            return Ok(());
        }
    }
}

/// Runs the index stage until `shutdown` fires. Returns an error only when the
/// database belongs to another stream (it never mixes projections).
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), IndexError> {
    let mode = Mode::live();
    drive(bus, config, mode, shutdown).await.map(|_| ())
}
