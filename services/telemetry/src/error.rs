//! The crate's error type.

/// What can fail in telemetry set-up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The metrics listener could not bind its address.
    #[error("bind the metrics listener on {addr}: {detail}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        detail: String,
    },
    /// The metrics listener stopped with an error.
    #[error("serve metrics: {0}")]
    Serve(String),
    /// The log subscriber could not be installed (one was installed already).
    #[error("install the log subscriber: {0}")]
    Logs(String),
    /// A setting does not parse.
    #[error("invalid telemetry setting: {0}")]
    Setting(String),
    /// The OTLP exporter could not be built.
    #[error("set up otlp export: {0}")]
    Otlp(String),
}
