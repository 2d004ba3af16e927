//! The `[telemetry]` section of the config file, and the log format setting.
//!
//! Flags and the environment override the file: `--metrics-listen` /
//! `IMGCRAWL_METRICS_LISTEN`, `--log-format` / `IMGCRAWL_LOG_FORMAT`,
//! `--otlp-endpoint` / `IMGCRAWL_OTLP_ENDPOINT` (see `imgcrawl --help`).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::TelemetryError;

/// Telemetry settings of one process.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, e.g. `127.0.0.1:9464`
    /// (port 0: any free port, logged at start). None (the default): not served.
    pub listen: Option<SocketAddr>,
    /// OTLP/HTTP endpoint traces are exported to, e.g. `http://127.0.0.1:4318` (the
    /// exporter posts to `<endpoint>/v1/traces`). None (the default): no export.
    pub otlp_endpoint: Option<String>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line with stable field names (see [`crate::json`]).
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = TelemetryError;

    fn from_str(s: &str) -> Result<LogFormat, TelemetryError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(TelemetryError::Setting(format!(
                "log format {other:?} (one of text, json)"
            ))),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print_back() {
        assert_eq!("JSON".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(" text ".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("yaml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::Json.to_string(), "json");
    }

    #[test]
    fn the_section_parses_and_defaults_to_nothing_served() {
        let c: Config = serde_json::from_str(r#"{"listen":"127.0.0.1:9464"}"#).unwrap();
        assert_eq!(c.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(Config::default().listen, None);
        assert!(serde_json::from_str::<Config>(r#"{"port":1}"#).is_err());
    }
}
