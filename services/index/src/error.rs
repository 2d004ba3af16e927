//! Errors at the index boundary, named after the operation that failed.

use imgcrawl_bus::BusError;
use imgcrawl_readmodel::ReadModelError;

/// What went wrong projecting events into PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Connecting, migrating or a statement failed (the read model's error, which
    /// names the operation).
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// Talking to NATS failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Reading the event stream's information failed.
    #[error("event stream: {0}")]
    Stream(String),
    /// The database holds the projection of another stream: refused, never mixed.
    #[error(
        "refusing to project stream {stream} into a database that holds the projection of another stream ({database}); use an empty database (or drop this one) and replay"
    )]
    ForeignStream {
        /// The stream the database records.
        database: String,
        /// The stream this writer reads.
        stream: String,
    },
    /// HA fencing: the node has seen a newer epoch than the writer holds, so the
    /// writer missed a failover; the transaction was rolled back.
    #[error("fenced: this writer holds ha epoch {writer} but the node has seen epoch {node}")]
    Fenced {
        /// The epoch the writer holds.
        writer: u64,
        /// The epoch recorded on the node.
        node: u64,
    },
    /// Two projections cannot be compared: they are at different stream positions.
    #[error(
        "the projections are at different checkpoints ({left} and {right}); compare them at the same checkpoint (stop the writer, or replay with --until {left})"
    )]
    CheckpointsDiffer {
        /// Checkpoint of the first projection.
        left: u64,
        /// Checkpoint of the second projection.
        right: u64,
    },
}

/// Wraps a driver error with the operation it interrupted.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> IndexError {
    move |source| IndexError::ReadModel(ReadModelError::Database { op, source })
}
