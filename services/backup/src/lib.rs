//! imgcrawl backups: nothing can rebuild the stream, so it is archived.
//!
//! * [`config`]: the `[backup]` settings (target, segment interval, retention).
//! * [`segment`]: the segment format (records in a zstd frame, SHA-256 in the manifest).
//! * [`manifest`]: `manifest.json`: streams, segments, snapshots, consumers, purges.
//! * [`target`]: the target (a directory or an S3 bucket).
//! * [`streams`]: which streams are archived (events, blobs, KV state).
//! * [`read`]: reading a stream in order into records.
//! * [`archive`]: the continuous archive ([`run`]) and a one-shot pass ([`backup_once`]);
//!   [`lock`]: one archiver per target (a lease; a second one waits as a standby).
//! * [`snapshot`]: full snapshots; [`retention`]: what may be removed, and removing it.
//! * [`purge`]: takedown of an image (blob store, bucket, future segments, restores).
//! * [`verify`]: checksums and continuity, problems by segment name.
//! * [`restore`], [`write`], [`consumers`]: rebuilding the streams into an empty
//!   JetStream at their original sequences, and the stage consumers' positions.
//!
//! The archive format and the restore drill are described in `docs/backup.md`.

pub mod archive;
pub mod config;
pub mod consumers;
pub mod error;
pub mod lock;
pub mod manifest;
pub mod purge;
pub mod read;
pub mod restore;
pub mod retention;
pub mod segment;
pub mod snapshot;
pub mod streams;
pub mod target;
pub mod verify;
pub mod write;

pub use archive::{backup_once, run, segment_name, ArchiveSummary};
pub use config::Config;
pub use error::BackupError;
pub use manifest::Manifest;
pub use purge::{is_purged, purge, Purged};
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use retention::{plan as retention_plan, prune, RetentionPlan};
pub use snapshot::take_snapshot;
pub use streams::PURGED_BUCKET;
pub use target::Target;
pub use verify::{verify, Problem, VerifyReport};
