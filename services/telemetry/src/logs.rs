//! The process's log subscriber: text or JSON lines on stderr, filtered by `RUST_LOG`
//! (else a default), plus the OTLP span export when configured.
//!
//! async-nats's DEBUG and TRACE events are always dropped: they include the CONNECT
//! line with the password or token, and server URLs with their user info.

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::json::{JsonLines, SpanFieldsLayer};
use crate::{LogFormat, TelemetryError};

/// The level filter from `RUST_LOG` (else `default`): a static [`Targets`] filter
/// when the directives are plain `target=level` pairs, as they nearly always are, and
/// `EnvFilter` only for the span and field directives it alone understands.
/// `EnvFilter` takes a lock on every span enter and exit to track span scopes, and a
/// delivery's span is entered on every poll of its future.
fn filters(
    rust_log: Option<&str>,
    default: &str,
) -> (Option<Targets>, Option<tracing_subscriber::EnvFilter>) {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or(default);
    if let Ok(t) = spec.parse::<Targets>() {
        return (Some(t), None);
    }
    let env = tracing_subscriber::EnvFilter::try_new(spec).unwrap_or_else(|_| default.into());
    (None, Some(env))
}

/// Installs the subscriber: `format` lines on stderr filtered by `RUST_LOG` or
/// `default_filter`, and, with `otlp`, delivery spans exported there.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    otlp: Option<crate::otlp::OtlpLayer>,
) -> Result<(), TelemetryError> {
    let (targets, env) = filters(std::env::var("RUST_LOG").ok().as_deref(), default_filter);
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
            // JsonLines reads span fields from `SpanFieldsLayer`; the fmt layer's own
            // per-span field formatting would be work nobody reads.
            .fmt_fields(crate::json::NoSpanText)
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
        .with(targets)
        .with(env)
        .try_init()
        .map_err(|e| TelemetryError::Logs(e.to_string()))
}

#[cfg(test)]
mod tests {
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn plain_directives_take_the_static_filter_and_span_directives_env_filter() {
        let (t, e) = filters(
            Some("info,async_nats=warn,imgcrawl_bus::worker=debug"),
            "warn",
        );
        let t = t.expect("plain target=level directives parse as Targets");
        assert!(e.is_none());
        assert!(t.would_enable("imgcrawl_bus::worker", &tracing::Level::DEBUG));
        assert!(!t.would_enable("async_nats::connection", &tracing::Level::INFO));
        assert!(t.would_enable("sqlx", &tracing::Level::INFO));

        let (t, e) = filters(Some("info,[delivery{consumer=download}]=debug"), "warn");
        assert!(t.is_none(), "span directives need EnvFilter");
        // with a span directive, EnvFilter must look at every span: no static bound
        assert_eq!(
            e.expect("env filter").max_level_hint(),
            Some(LevelFilter::TRACE)
        );

        let (t, _) = filters(Some("  "), "warn");
        assert!(!t
            .expect("the default")
            .would_enable("imgcrawl", &tracing::Level::INFO));
    }
}
