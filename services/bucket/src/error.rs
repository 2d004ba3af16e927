//! Errors at the bucket's boundary.

/// Why opening the bucket, or an object operation in it, failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
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
}
