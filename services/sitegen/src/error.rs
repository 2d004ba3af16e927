//! Errors of site generation and serving.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong building, writing or serving a site.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// An image could not be encoded.
    #[error("encode {what}: {detail}")]
    Encode {
        /// The image being encoded.
        what: String,
        /// The encoder's message.
        detail: String,
    },
    /// Writing the site to a directory failed.
    #[error("write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The server could not listen.
    #[error("bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker thread generating images panicked.
    #[error("image generation thread panicked")]
    WorkerPanicked,
}
