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

/// Reads the config file (if any) and applies settings and flags on top. Where the
/// database and the bucket are comes from the flags and environment, then the file,
/// then the local stack's defaults: a file that does not name them (only an `[index]`
/// batch size, say) no longer points the stages at its built-in defaults instead of
/// the stack the environment describes.
pub fn load_config(settings: &Settings, args: &RunArgs) -> Result<StagesConfig> {
    let (mut cfg, file): (StagesConfig, Option<toml::Table>) = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            let cfg = toml::from_str(&text).with_context(|| format!("parse {}", p.display()))?;
            (cfg, text.parse().ok())
        }
        None => (StagesConfig::default(), None),
    };
    let file_sets = |section: &str, key: &str| {
        file.as_ref()
            .and_then(|f| f.get(section))
            .and_then(|s| s.get(key))
            .is_some()
    };
    cfg.bus = settings.bus_with(args.config.as_deref(), "imgcrawl-run")?;
    cfg.allow_targets(args.allow_loopback, args.allow_private);
    if settings.database_url.is_some() || !file_sets("index", "database_url") {
        cfg.index.database_url = settings.database_url();
    }
    if settings.bucket.is_some() || !file_sets("store", "target") {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(database_url: Option<&str>) -> Settings {
        Settings {
            database_url: database_url.map(Into::into),
            bucket: Some("file:///data/images".into()),
            ..Settings::default()
        }
    }

    fn args(config: Option<PathBuf>) -> RunArgs {
        RunArgs {
            stages: Vec::new(),
            config,
            allow_loopback: false,
            allow_private: false,
        }
    }

    #[test]
    fn a_file_that_does_not_name_the_database_keeps_the_environments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        let env = "postgres://stack:1/imgcrawl";
        // only a batch size: the database and bucket are the environment's
        std::fs::write(&file, "[index]\nbatch_size = 500\n").unwrap();
        let cfg = load_config(&settings(Some(env)), &args(Some(file.clone()))).unwrap();
        assert_eq!(cfg.index.database_url, env);
        assert_eq!(cfg.store.target, "file:///data/images");
        // without a flag or variable, the stack's default, not the file's built-in one
        let bare = Settings {
            bucket: None,
            ..settings(None)
        };
        let cfg = load_config(&bare, &args(Some(file.clone()))).unwrap();
        assert_eq!(cfg.index.database_url, crate::stack::default_database_url());
        assert_eq!(cfg.store.target, crate::stack::default_bucket().unwrap());
        assert_ne!(
            cfg.store.target,
            imgcrawl_pipeline::StagesConfig::default().store.target,
            "the stack's bucket is an absolute path, the built-in default a relative one"
        );
        // a file that names them wins over the defaults, and flags win over the file
        std::fs::write(
            &file,
            "[index]\ndatabase_url = \"postgres://file:2/x\"\n[store]\ntarget = \"s3://b\"\n",
        )
        .unwrap();
        let cfg = load_config(&settings(None), &args(Some(file.clone()))).unwrap();
        assert_eq!(cfg.index.database_url, "postgres://file:2/x");
        let cfg = load_config(&settings(Some(env)), &args(Some(file))).unwrap();
        assert_eq!(cfg.index.database_url, env);
    }
}
