//! `imgcrawl run`: the pipeline stages in this process, all of them or the ones named
//! with `--stage`, until SIGINT/SIGTERM; then they drain and exit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::builder::TypedValueParser;
use clap::Args;
use imgcrawl_pipeline::{Stage, StageError, StagesConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::settings::Settings;

/// Arguments of `imgcrawl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run only these stages (repeatable); default all but the opt-in `render` role.
    #[arg(long = "stage", value_parser = stage_names())]
    pub stages: Vec<Stage>,
    /// A TOML file with `[bus]`, `[crawl]`, `[download]`, `[store]` and `[index]`
    /// sections (each one's documented `Config`); flags and environment override it.
    #[arg(long, env = "IMGCRAWL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Allow fetching loopback addresses (local demos and tests).
    #[arg(long, env = "IMGCRAWL_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,
    /// Allow fetching private-network addresses (an intranet crawl).
    #[arg(long, env = "IMGCRAWL_ALLOW_PRIVATE")]
    pub allow_private: bool,
}

/// `--stage` values: the registry's names.
fn stage_names() -> impl clap::builder::TypedValueParser<Value = Stage> {
    clap::builder::PossibleValuesParser::new(Stage::KNOWN.map(Stage::name))
        .map(|s| s.parse::<Stage>().expect("a possible value"))
}

/// Reads the config file (if any) and applies settings and flags on top.
pub fn load_config(settings: &Settings, args: &RunArgs) -> Result<StagesConfig> {
    let mut cfg: StagesConfig = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("parse {}", p.display()))?
        }
        None => StagesConfig::default(),
    };
    cfg.bus = settings.bus_with(args.config.as_deref(), "imgcrawl-run")?;
    cfg.allow_targets(args.allow_loopback, args.allow_private);
    if args.config.is_none() || settings.database_url.is_some() {
        cfg.index.database_url = settings.database_url();
    }
    if args.config.is_none() || settings.bucket.is_some() {
        cfg.store.target = settings.bucket()?;
    }
    Ok(cfg)
}

/// Connects to NATS, retrying for a while (the stack may be starting) unless the
/// settings or credentials were refused.
async fn connect(bus: &imgcrawl_bus::BusConfig) -> Result<imgcrawl_bus::Bus> {
    let mut last = None;
    for _ in 0..50 {
        match imgcrawl_bus::Bus::connect(bus.clone()).await {
            Ok(b) => return Ok(b),
            Err(e) if !e.may_pass() => return Err(e.into()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.expect("at least one attempt").into())
}

/// Declares what `/readyz` waits for: each stage's consumer bound, and the index (on
/// a single database) projecting.
fn expect_ready(stages: &[Stage], cfg: &StagesConfig, nodes: &[imgcrawl_bus::ha::Node]) {
    let ready = imgcrawl_telemetry::ready::global();
    for stage in stages {
        match stage.consumer() {
            Some(c) => ready.expect(format!("consumer/{c}")),
            None if *stage == Stage::Render => {}
            None if nodes.is_empty() => {
                ready.expect(format!("projection/{}", cfg.index.checkpoint_name))
            }
            None => {}
        }
    }
}

/// Runs `imgcrawl run`.
pub async fn run(
    settings: &Settings,
    args: RunArgs,
    telemetry: &imgcrawl_telemetry::Config,
) -> Result<()> {
    let cfg = load_config(settings, &args)?;
    let stages = if args.stages.is_empty() {
        Stage::ALL.to_vec()
    } else {
        args.stages.clone()
    };
    let nodes = match cfg.ha.nodes.is_empty() {
        true => settings.ha_nodes()?,
        false => cfg.ha.nodes.clone(),
    };
    let bus = connect(&cfg.bus).await?;
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_signal(shutdown.clone());
    expect_ready(&stages, &cfg, &nodes);
    crate::telemetry::serve(telemetry, &bus, &shutdown).await?;
    let (cfg, nodes) = (Arc::new(cfg), Arc::new(nodes));
    let mut set: JoinSet<(Stage, Result<(), StageError>)> = JoinSet::new();
    for stage in stages {
        let (bus, sd, cfg, nodes) = (bus.clone(), shutdown.clone(), cfg.clone(), nodes.clone());
        set.spawn(async move { (stage, stage.run(bus, &cfg, &nodes, sd).await) });
        info!(%stage, "stage started");
    }
    let mut failed = None;
    while let Some(joined) = set.join_next().await {
        let (stage, res) = joined.context("stage task panicked")?;
        match res {
            Ok(()) => info!(%stage, "stage stopped"),
            Err(e) => {
                error!(%stage, error = %e.detail, "stage failed; stopping the others");
                shutdown.cancel();
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
