//! The backup settings (`[backup]` in the config file): where the archive goes, how
//! often a segment is closed (the RPO bound) and what retention keeps.

use imgcrawl_bucket::{BucketSettings, S3Config};
use serde::{Deserialize, Serialize};

/// Settings of the continuous archive, its verification, restore and retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The backup target: a directory (`/srv/backup`, `file:///srv/backup`) or
    /// `s3://bucket/prefix` (S3 settings below, else the `AWS_*` environment).
    pub target: String,
    /// S3 connection settings of the target (unset fields: `AWS_*` variables).
    pub s3: S3Config,
    /// A segment holding messages is closed (written, checksummed, added to the
    /// manifest) at the latest this many seconds after its first message: the bound
    /// on the RPO of the archive.
    pub segment_secs: u64,
    /// A segment is also closed when its uncompressed records reach this many bytes.
    pub segment_max_bytes: usize,
    /// zstd level of the segments (1 fastest .. 19 smallest; 3 is zstd's default).
    pub zstd_level: i32,
    /// Retention: incremental segments younger than this many days are always kept.
    pub keep_days: u64,
    /// Retention: a full snapshot is taken when the newest one is older than this
    /// many days (0: never automatically); older segments that a kept snapshot covers
    /// can then be removed.
    pub snapshot_every_days: u64,
    /// Also archive these KV buckets besides the jobs, seen-set, tombstone and HA
    /// buckets (those are always archived when they exist).
    pub extra_kv_buckets: Vec<String>,
    /// The archiver's lease on its target, seconds: how long the target of an archiver
    /// that died stays blocked for a standby ([`crate::lock`]).
    pub lease_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            target: "file://./.imgcrawl/backup".into(),
            s3: S3Config::default(),
            segment_secs: 300,
            segment_max_bytes: 64 << 20,
            zstd_level: 3,
            keep_days: 30,
            snapshot_every_days: 7,
            extra_kv_buckets: Vec::new(),
            lease_secs: 15,
        }
    }
}

impl BucketSettings for Config {
    fn target(&self) -> &str {
        &self.target
    }

    fn s3(&self) -> &S3Config {
        &self.s3
    }

    fn prefix(&self) -> &str {
        ""
    }
}
