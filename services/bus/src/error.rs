//! Errors at the bus boundary, named after the operation that failed.

/// What went wrong talking to NATS.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not connect.
    #[error("cannot connect to nats at {url}: {detail} ({hint})")]
    Connect {
        /// The URLs tried, user info redacted.
        url: String,
        /// The client's error.
        detail: String,
        /// What to check.
        hint: &'static str,
    },
    /// The settings are invalid or a file they name cannot be read (never shows a secret).
    #[error("nats settings: {0}")]
    Config(String),
    /// Creating or checking a stream, bucket or consumer failed.
    #[error("topology: {0}")]
    Topology(String),
    /// The server accepted a consumer but dropped or changed a field we rely on.
    #[error("consumer {consumer}: server changed {field} (wanted {wanted}, got {got}); nats-server >= 2.10 is required")]
    ConsumerMismatch {
        /// The durable name.
        consumer: String,
        /// The field.
        field: &'static str,
        /// What we asked for.
        wanted: String,
        /// What the server kept.
        got: String,
    },
    /// Publishing an event (or awaiting its PubAck) failed.
    #[error("publish to {subject}: {detail}")]
    Publish {
        /// The subject.
        subject: String,
        /// The error.
        detail: String,
    },
    /// Pulling messages failed.
    #[error("consume {consumer}: {detail}")]
    Consume {
        /// The durable name.
        consumer: String,
        /// The error.
        detail: String,
    },
    /// A KV operation failed.
    #[error("kv {bucket}: {detail}")]
    Kv {
        /// The bucket.
        bucket: String,
        /// The error.
        detail: String,
    },
    /// A blob store operation failed.
    #[error("blob {name}: {detail}")]
    Blob {
        /// The object name.
        name: String,
        /// The error.
        detail: String,
    },
}

impl BusError {
    /// Whether trying again later may help: not when the settings are invalid or the
    /// server refused the credentials or certificates.
    pub fn may_pass(&self) -> bool {
        match self {
            BusError::Config(_) => false,
            BusError::Connect { hint, .. } => *hint == crate::connect::UNREACHABLE,
            _ => true,
        }
    }
}
