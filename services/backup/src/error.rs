//! Errors at the backup crate's boundary, named after the operation that failed.

use thiserror::Error;

/// What went wrong while archiving, verifying, restoring or pruning.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The target could not be opened.
    #[error("open backup target: {0}")]
    Target(#[from] imgcrawl_bucket::BucketError),
    /// Reading or writing an object of the target failed.
    #[error("backup target {what}: {detail}")]
    Storage {
        /// The object and the operation.
        what: String,
        /// The backend's error.
        detail: String,
    },
    /// The manifest is unreadable or of another format version.
    #[error("manifest: {0}")]
    Manifest(String),
    /// A segment's bytes are not what the manifest says.
    #[error("segment {name}: {detail}")]
    Segment {
        /// The segment's object name.
        name: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The archive is damaged; `restore` writes nothing.
    #[error("the backup is damaged, nothing was restored: {0}; run `imgcrawl backup verify` for the list, or restore up to the last good sequence with --up-to-last-good")]
    Damaged(String),
    /// The JetStream to restore into is not empty.
    #[error(
        "refusing to restore into {0}: it already holds messages; restore into an empty JetStream"
    )]
    NotEmpty(String),
    /// A NATS request failed.
    #[error("nats {what}: {detail}")]
    Nats {
        /// The operation.
        what: String,
        /// The error.
        detail: String,
    },
    /// Another archiver holds the target, or took it from this one.
    #[error("{0}")]
    Locked(String),
    /// The request itself is wrong (not a SHA-256, ...).
    #[error("{0}")]
    BadRequest(String),
    /// A bus operation failed.
    #[error(transparent)]
    Bus(#[from] imgcrawl_bus::BusError),
}

/// A [`BackupError::Nats`] for `what`.
pub(crate) fn nats(what: impl Into<String>) -> impl FnOnce(&dyn std::fmt::Display) -> BackupError {
    let what = what.into();
    move |e| BackupError::Nats {
        what,
        detail: e.to_string(),
    }
}

/// A [`BackupError::Storage`] for `what`.
pub(crate) fn storage(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> BackupError {
    let what = what.into();
    move |e| BackupError::Storage {
        what,
        detail: e.to_string(),
    }
}
