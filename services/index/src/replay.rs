//! Rebuilding the PostgreSQL projection from the stream: the live stage's loop with
//! publishing off, large batches, and an end.
//!
//! A replay reads from the database's checkpoint + 1 (sequence 1 for an empty
//! database) up to the stream's last sequence at start, or `until` if smaller, and
//! applies the events exactly as the live stage does (the same reader, the same
//! [`apply_batch_through`](crate::apply_batch_through), the same transaction with the
//! checkpoint and the stream check). It publishes nothing: not `images.indexed`, not
//! `crawl.completed`, not dead letters; so it does not look up the image ids an
//! announcement would list either (the rows are the same). Killed at any point, it loses at most the batch
//! in flight (rolled back) and a new replay continues from the checkpoint.

use std::time::Duration;

use imgcrawl_bus::Bus;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::mode::Mode;
use crate::stage::drive;
use crate::{Config, IndexError};

/// How far a replay goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOptions {
    /// Stop after this stream sequence (default, and at most: the stream's last
    /// sequence when the replay starts).
    pub until: Option<u64>,
    /// Once caught up, keep applying new events (still without publishing anything)
    /// until shutdown.
    pub follow: bool,
}

/// Where a replay is; sent after every committed batch and returned at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayProgress {
    /// The checkpoint when the replay started (0 for an empty database).
    pub start: u64,
    /// The sequence it replays to (the stream's end at start, or `until`).
    pub end: Option<u64>,
    /// The checkpoint now: the last sequence applied.
    pub checkpoint: u64,
    /// Events applied by this run.
    pub events: u64,
    /// Events found at or below the checkpoint and skipped (another writer got there
    /// first, or the database went back in time).
    pub skipped: u64,
    /// Messages that could not be applied (undecodable or unusable); the live stage
    /// dead-lettered them, a replay passes over them the same way.
    pub invalid: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Everything up to `end` is applied.
    pub caught_up: bool,
    /// Time since the start.
    pub elapsed: Duration,
}

impl ReplayProgress {
    /// Events applied per second so far.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Payload bytes read per second so far.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Stream sequences covered so far and in all: `(checkpoint - start, end - start)`;
    /// all of them once caught up (the stream's last messages may be ones the index
    /// does not apply, such as its own `crawl.completed`).
    pub fn position(&self) -> (u64, u64) {
        let end = self.end.unwrap_or(self.checkpoint).max(self.start);
        let done = self.checkpoint.clamp(self.start, end) - self.start;
        let total = end - self.start;
        (if self.caught_up { total } else { done }, total)
    }
}

/// Replays the stream into `config.database_url` (migrating it first), from its
/// checkpoint to the end (see [`ReplayOptions`]), in batches of
/// `config.replay_batch_size`. `config.publish_indexed` is ignored: a replay announces
/// nothing, so it does not build `image.indexed` events (nor read image ids back). Progress goes to `progress` after every batch. Returns
/// what it did; `caught_up` is false if `shutdown` stopped it first.
///
/// Fails at once if the database cannot be opened or holds the projection of another
/// stream ([`IndexError::ForeignStream`]); a database outage in the middle is ridden
/// out with back-off like the live stage does.
pub async fn replay(
    bus: Bus,
    config: Config,
    options: ReplayOptions,
    progress: Option<watch::Sender<ReplayProgress>>,
    shutdown: CancellationToken,
) -> Result<ReplayProgress, IndexError> {
    let mode = Mode::replay(&options, progress);
    let config = Config {
        publish_indexed: false,
        ..config
    };
    drive(bus, config, mode, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_is_relative_to_the_start_and_clamped() {
        let p = ReplayProgress {
            start: 100,
            end: Some(300),
            checkpoint: 150,
            events: 40,
            elapsed: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(p.position(), (50, 200));
        assert_eq!(p.events_per_sec(), 20.0);
        let following = ReplayProgress {
            end: None,
            checkpoint: 500,
            ..p.clone()
        };
        assert_eq!(following.position(), (400, 400));
        let behind = ReplayProgress {
            checkpoint: 50,
            ..p
        };
        assert_eq!(behind.position(), (0, 200));
        let done = ReplayProgress {
            checkpoint: 290,
            caught_up: true,
            ..behind
        };
        assert_eq!(done.position(), (200, 200));
    }
}
