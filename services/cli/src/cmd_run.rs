//! `imgcrawl run`: the pipeline stages in this process, all of them or the ones named
//! with `--stage`, until SIGINT/SIGTERM; then they drain and exit.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::settings::Settings;

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Stage {
    /// Pages, links and image URLs.
    Crawl,
    /// Fetch, validate and hash images.
    Download,
    /// Bytes into the bucket.
    Store,
    /// Metadata into PostgreSQL.
    Index,
}

/// Arguments of `imgcrawl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run only these stages (repeatable); default all.
    #[arg(long = "stage", value_enum)]
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

/// Every stage's configuration, as read from the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StagesConfig {
    /// NATS: servers, authentication, TLS, and the shape of what a start creates.
    pub bus: imgcrawl_bus::BusConfig,
    /// The crawl stage.
    pub crawl: imgcrawl_crawl::Config,
    /// The download stage.
    pub download: imgcrawl_download::Config,
    /// The store stage.
    pub store: imgcrawl_store::Config,
    /// The index stage.
    pub index: imgcrawl_index::Config,
    /// The HA watcher (`imgcrawl ha`); its `nodes` also make the index run one
    /// writer per PostgreSQL node.
    pub ha: imgcrawl_ha::Config,
}

impl StagesConfig {
    /// Reads the file (if any) and applies settings and flags on top.
    pub fn load(settings: &Settings, args: &RunArgs) -> Result<StagesConfig> {
        let mut cfg: StagesConfig = match &args.config {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parse {}", p.display()))?
            }
            None => StagesConfig::default(),
        };
        cfg.bus = settings.bus_with(args.config.as_deref(), "imgcrawl-run")?;
        for f in [&mut cfg.crawl.fetch, &mut cfg.download.fetch] {
            f.allow_loopback |= args.allow_loopback;
            f.allow_private |= args.allow_private;
        }
        if args.config.is_none() || settings.database_url.is_some() {
            cfg.index.database_url = settings.database_url();
        }
        if args.config.is_none() || settings.bucket.is_some() {
            cfg.store.target = settings.bucket()?;
        }
        Ok(cfg)
    }
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

/// Runs `imgcrawl run`.
pub async fn run(settings: &Settings, args: RunArgs) -> Result<()> {
    let cfg = StagesConfig::load(settings, &args)?;
    let stages = if args.stages.is_empty() {
        vec![Stage::Crawl, Stage::Download, Stage::Store, Stage::Index]
    } else {
        args.stages.clone()
    };
    let bus = connect(&cfg.bus).await?;
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_signal(shutdown.clone());
    let mut set: JoinSet<(Stage, Result<()>)> = JoinSet::new();
    for stage in stages {
        let (bus, sd) = (bus.clone(), shutdown.clone());
        let res = match stage {
            Stage::Crawl => {
                let c = cfg.crawl.clone();
                set.spawn(async move {
                    (
                        stage,
                        imgcrawl_crawl::run(bus, c, sd).await.map_err(Into::into),
                    )
                })
            }
            Stage::Download => {
                let c = cfg.download.clone();
                set.spawn(async move {
                    (
                        stage,
                        imgcrawl_download::run(bus, c, sd).await.map_err(Into::into),
                    )
                })
            }
            Stage::Store => {
                let c = cfg.store.clone();
                set.spawn(async move {
                    (
                        stage,
                        imgcrawl_store::run(bus, c, sd).await.map_err(Into::into),
                    )
                })
            }
            Stage::Index => {
                let c = cfg.index.clone();
                let nodes = match cfg.ha.nodes.is_empty() {
                    true => settings.ha_nodes()?,
                    false => cfg.ha.nodes.clone(),
                };
                set.spawn(async move {
                    let r = match nodes.is_empty() {
                        true => imgcrawl_index::run(bus, c, sd).await,
                        false => imgcrawl_index::run_nodes(bus, c, &nodes, sd).await,
                    };
                    (stage, r.map_err(Into::into))
                })
            }
        };
        drop(res);
        info!(?stage, "stage started");
    }
    let mut failed = None;
    while let Some(joined) = set.join_next().await {
        let (stage, res) = joined.context("stage task panicked")?;
        match res {
            Ok(()) => info!(?stage, "stage stopped"),
            Err(e) => {
                error!(?stage, error = %format!("{e:#}"), "stage failed; stopping the others");
                shutdown.cancel();
                failed.get_or_insert((stage, e));
            }
        }
    }
    if let Some((stage, e)) = failed {
        bail!("stage {stage:?} failed: {e:#}");
    }
    Ok(())
}
