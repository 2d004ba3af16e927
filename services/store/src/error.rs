//! Errors at the store stage's boundary.

use imgcrawl_bucket::BucketError;
use imgcrawl_bus::BusError;

/// Why the store stage (or opening its bucket) failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening the bucket, or an object operation in it, failed.
    #[error(transparent)]
    Bucket(#[from] BucketError),
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
