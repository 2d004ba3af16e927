//! Errors at the store stage's boundary.

use imgcrawl_bucket::BucketError;
use imgcrawl_bus::BusError;

/// Why the store stage (or opening its bucket) failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The `target` setting is not a usable location.
    #[error("invalid store target {target:?}: {detail}")]
    Target {
        /// The target as configured.
        target: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The object store backend could not be opened.
    #[error("open object store {target:?}: {detail}")]
    Open {
        /// The target as configured.
        target: String,
        /// The backend's error.
        detail: String,
    },
    /// An object operation failed.
    #[error("object {key}: {detail}")]
    Object {
        /// The key (or folder) involved.
        key: String,
        /// The backend's error.
        detail: String,
    },
    /// A hash that is not 64 lowercase hex digits cannot name an object.
    #[error("not a lowercase hex sha256: {0:?}")]
    InvalidSha(String),
    /// Reading the event stream failed.
    #[error("event stream: {0}")]
    Stream(String),
    /// The bucket was replayed from another stream: refused, never mixed.
    #[error(
        "refusing to replay stream {stream} into a bucket replayed from another stream ({bucket}); use an empty bucket or folder"
    )]
    ForeignStream {
        /// The stream the bucket's replay checkpoint names.
        bucket: String,
        /// The stream being replayed.
        stream: String,
    },
    /// The consumer could not be created or the pull loop failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A bucket error is the store error of the same name (same message).
impl From<BucketError> for StoreError {
    fn from(e: BucketError) -> Self {
        match e {
            BucketError::Target { target, detail } => StoreError::Target { target, detail },
            BucketError::Open { target, detail } => StoreError::Open { target, detail },
            BucketError::Object { key, detail } => StoreError::Object { key, detail },
            BucketError::InvalidSha(sha) => StoreError::InvalidSha(sha),
        }
    }
}
