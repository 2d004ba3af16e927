//! Why a read of the index or of the stream's position failed. The route layer maps
//! these to HTTP answers (`impl From<DbError> for HttpError` in `crate::error`); this
//! layer knows nothing of HTTP.

/// A failed read.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A query on the index database failed.
    #[error("cannot {op}: {source}")]
    Query {
        /// What was being read.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// NATS did not answer (the stream's end or an event above the checkpoint).
    #[error("cannot {op}: nats is unavailable: {detail}")]
    Nats {
        /// What was being read.
        op: &'static str,
        /// The client's error.
        detail: String,
    },
}
