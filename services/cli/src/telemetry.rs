//! The telemetry flags every command takes (log format, metrics listener, OTLP
//! endpoint), the log subscriber they install, and the metrics listener the
//! long-running commands (`run`, `ha`, `serve`) start.
//!
//! Flags and the environment win over the config file's `[telemetry]` section.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use imgcrawl_telemetry::{Config, LogFormat, Readiness};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Telemetry flags.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log lines as `text` or `json` (one object per line, stable field names).
    #[arg(
        long,
        env = "IMGCRAWL_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address (`run`, `ha`,
    /// `serve`), e.g. `127.0.0.1:9464`; default: the config file's `[telemetry]
    /// listen`, else not served.
    #[arg(long, env = "IMGCRAWL_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Export delivery spans to this OTLP/HTTP endpoint (`run`), e.g.
    /// `http://127.0.0.1:4318`; default: the config file's `[telemetry]
    /// otlp_endpoint`, else none.
    #[arg(long, env = "IMGCRAWL_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
}

/// The part of a config file these flags fall back to.
#[derive(Default, Deserialize)]
struct TelemetryFile {
    #[serde(default)]
    telemetry: Config,
}

impl TelemetryArgs {
    /// The settings in force: the flags over `file`'s `[telemetry]` section.
    pub fn config(&self, file: Option<&Path>) -> Result<Config> {
        let mut c = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                toml::from_str::<TelemetryFile>(&text)
                    .with_context(|| format!("parse [telemetry] in {}", p.display()))?
                    .telemetry
            }
            None => Config::default(),
        };
        if self.metrics_listen.is_some() {
            c.listen = self.metrics_listen;
        }
        if self.otlp_endpoint.is_some() {
            c.otlp_endpoint = self.otlp_endpoint.clone();
        }
        Ok(c)
    }

    /// Installs the log subscriber (`RUST_LOG`, else `default_filter`), exporting spans
    /// to `config`'s OTLP endpoint as `service` when it has one.
    pub fn init_logs(&self, default_filter: &str, config: &Config, service: &str) -> Result<()> {
        let otlp = match &config.otlp_endpoint {
            Some(e) => Some(imgcrawl_telemetry::otlp::OtlpLayer::spawn(e, service)?),
            None => None,
        };
        imgcrawl_telemetry::logs::init(self.log_format, default_filter, otlp)?;
        Ok(())
    }
}

/// Starts the metrics listener if `config` names an address, with the NATS probe of
/// `bus`; returns the bound address.
pub async fn serve(
    config: &Config,
    bus: &imgcrawl_bus::Bus,
    shutdown: &CancellationToken,
) -> Result<Option<SocketAddr>> {
    let Some(listen) = config.listen else {
        return Ok(None);
    };
    let readiness: &Readiness = imgcrawl_telemetry::ready::global();
    imgcrawl_bus::health::register(bus, readiness);
    let addr =
        imgcrawl_telemetry::server::spawn(listen, readiness.clone(), shutdown.clone()).await?;
    Ok(Some(addr))
}
