//! The index stage's configuration: where PostgreSQL is and how large the batches are.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of the index stage. Every field has a default that fits the local
/// stack started by `imgcrawl up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// PostgreSQL connection URL of the node this writer projects into.
    pub database_url: String,
    /// Name of the `projection_checkpoint` row this writer owns: one per database node
    /// (`postgres`, `standby`, ...). Two writers with the same name are safe (the
    /// checkpoint row is locked per batch) but pointless.
    pub checkpoint_name: String,
    /// Most events applied in one transaction.
    pub batch_size: usize,
    /// Most events applied in one transaction by a replay (`imgcrawl replay`), which
    /// reads a backlog and gains from larger batches.
    pub replay_batch_size: usize,
    /// Milliseconds to linger for more events once the first event of a batch arrived.
    pub batch_wait_ms: u64,
    /// Publish `images.indexed` for every committed batch that made image sources
    /// queryable (one message per batch, not per image).
    pub publish_indexed: bool,
    /// On start-up, `crawl.completed` is published again for jobs that completed within
    /// this many seconds (stream time) before the checkpoint, in case the previous run
    /// committed a completion and died before publishing it. Should match the stream's
    /// duplicate window, so the re-publication is deduplicated.
    pub republish_window_secs: u64,
    /// Upper bound, in milliseconds, of the back-off between retries while PostgreSQL
    /// or NATS is unavailable.
    pub max_backoff_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "postgres://imgcrawl@127.0.0.1:54329/imgcrawl".into(),
            checkpoint_name: "postgres".into(),
            batch_size: 1000,
            replay_batch_size: 5000,
            batch_wait_ms: 50,
            publish_indexed: true,
            republish_window_secs: 600,
            max_backoff_ms: 30_000,
        }
    }
}

impl Config {
    /// The linger time as a `Duration`.
    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }

    /// The retry back-off cap as a `Duration` (at least 100 ms).
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms.max(100))
    }

    /// The batch size, at least 1.
    pub fn batch_size(&self) -> usize {
        self.batch_size.max(1)
    }

    /// The stage name used for dead letters and logs: `index-<checkpoint_name>`.
    pub fn stage_name(&self) -> String {
        format!("index-{}", self.checkpoint_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default_and_typos_are_refused() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c, Config::default());
        assert!(serde_json::from_str::<Config>(r#"{"batch_sise":5}"#).is_err());
        assert_eq!(
            Config {
                batch_size: 0,
                ..Config::default()
            }
            .batch_size(),
            1
        );
    }
}
