//! The process's log subscriber: text or JSON lines on stderr, filtered by `RUST_LOG`
//! (else a default), plus the OTLP span export when configured.
//!
//! async-nats's DEBUG and TRACE events are always dropped: they include the CONNECT
//! line with the password or token, and server URLs with their user info.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::json::{JsonLines, SpanFieldsLayer};
use crate::{LogFormat, TelemetryError};

/// Installs the subscriber: `format` lines on stderr filtered by `RUST_LOG` or
/// `default_filter`, and, with `otlp`, delivery spans exported there.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    otlp: Option<crate::otlp::OtlpLayer>,
) -> Result<(), TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let no_secrets = tracing_subscriber::filter::filter_fn(|meta| {
        !meta.target().starts_with("async_nats") || *meta.level() <= tracing::Level::INFO
    });
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(JsonLines)
            .boxed(),
    };
    // Span fields are kept only for those who read them: JSON lines and OTLP export.
    let fields = (format == LogFormat::Json || otlp.is_some()).then_some(SpanFieldsLayer);
    // The filters are global (they decide for every layer), wherever they sit.
    tracing_subscriber::registry()
        .with(lines)
        .with(fields)
        .with(otlp)
        .with(no_secrets)
        .with(filter)
        .try_init()
        .map_err(|e| TelemetryError::Logs(e.to_string()))
}
