//! Errors at the HA watcher's boundary, named after the operation that failed.

use imgcrawl_bus::BusError;
use imgcrawl_index::IndexError;

/// What went wrong in the HA watcher.
#[derive(Debug, thiserror::Error)]
pub enum HaError {
    /// The configuration cannot work (no nodes, a duplicate name...).
    #[error("ha config: {0}")]
    Config(String),
    /// Talking to NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A projection operation (digest, replay, stamp) failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A PostgreSQL node could not be reached or queried.
    #[error("node {node}: {detail}")]
    Node {
        /// The node's name.
        node: String,
        /// What failed.
        detail: String,
    },
    /// The HTTP API could not listen.
    #[error("ha api on {addr}: {detail}")]
    Listen {
        /// The address.
        addr: String,
        /// The error.
        detail: String,
    },
}
