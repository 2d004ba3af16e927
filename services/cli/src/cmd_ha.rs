//! `imgcrawl ha`: the HA watcher (health checks, election, fencing, consistency checks
//! and the HA HTTP API) until SIGINT/SIGTERM. `imgcrawl ha failover NODE`, `imgcrawl
//! ha sync` and `imgcrawl ha status` ask the watcher holding the lease through KV, so
//! they work from any machine that reaches NATS.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Args, Subcommand};
use imgcrawl_bus::ha::{HaStore, Pointer, POSTGRES};
use imgcrawl_bus::ha_requests::{request_failover, FailoverResult};
use imgcrawl_ha::{LeaseRecord, Report, SyncRequest};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::settings::Settings;

/// Arguments of `imgcrawl ha`.
#[derive(Debug, Args)]
pub struct HaArgs {
    #[command(subcommand)]
    cmd: Option<HaCmd>,
    /// A TOML file with an `[ha]` section (the watcher's documented `Config`); the same
    /// file `imgcrawl run --config` reads. Flags and `--ha-nodes` override it.
    #[arg(long, env = "IMGCRAWL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the HA API (default 127.0.0.1:18001; "" for none).
    #[arg(long)]
    listen: Option<String>,
    /// Milliseconds between health checks (seed default 5000).
    #[arg(long)]
    check_interval_ms: Option<u64>,
    /// A check slower than this many milliseconds marks a node down (seed default 30000).
    #[arg(long)]
    check_timeout_ms: Option<u64>,
    /// Consecutive failed checks after which a node is down (seed default 3).
    #[arg(long)]
    failures: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum HaCmd {
    /// Make NODE the primary: a manual failover, or the switchover back.
    Failover {
        /// The node to promote.
        node: String,
        /// Why (kept in the failover history).
        #[arg(long)]
        reason: Option<String>,
        /// Promote even if the node lags behind the stream.
        #[arg(long)]
        force: bool,
    },
    /// Run a consistency check now and print its report (exit 1 unless identical).
    Sync,
    /// Show the pointer, the lease and the last consistency report.
    Status,
}

#[derive(Debug, Default, Deserialize)]
struct FileConfig {
    #[serde(default)]
    ha: imgcrawl_ha::Config,
}

fn load(settings: &Settings, args: &HaArgs) -> Result<imgcrawl_ha::Config> {
    let mut cfg = match &args.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parse {}", p.display()))?
                .ha
        }
        None => imgcrawl_ha::Config::default(),
    };
    if cfg.nodes.is_empty() || settings.ha_nodes.is_some() {
        cfg.nodes = settings.ha_nodes()?;
    }
    if cfg.nodes.is_empty() {
        bail!("no PostgreSQL nodes: set --ha-nodes / IMGCRAWL_HA_NODES, an [ha] section, or run `imgcrawl up --nodes 2`");
    }
    cfg.listen = args.listen.clone().unwrap_or(cfg.listen);
    cfg.check_interval_ms = args.check_interval_ms.unwrap_or(cfg.check_interval_ms);
    cfg.check_timeout_ms = args.check_timeout_ms.unwrap_or(cfg.check_timeout_ms);
    cfg.failures_before_down = args.failures.unwrap_or(cfg.failures_before_down);
    Ok(cfg)
}

/// Runs `imgcrawl ha`.
pub async fn ha(
    settings: &Settings,
    args: HaArgs,
    telemetry: &imgcrawl_telemetry::Config,
) -> Result<()> {
    let bus = settings
        .connect_bus_with(args.config.as_deref(), "imgcrawl-ha")
        .await?;
    match &args.cmd {
        None => {
            let cfg = load(settings, &args)?;
            let shutdown = CancellationToken::new();
            crate::signals::cancel_on_signal(shutdown.clone());
            crate::telemetry::serve(telemetry, &bus, &shutdown).await?;
            imgcrawl_ha::run(bus, cfg, shutdown).await?;
            Ok(())
        }
        Some(HaCmd::Failover {
            node,
            reason,
            force,
        }) => failover(&bus, node, reason.clone(), *force).await,
        Some(HaCmd::Sync) => sync(&bus).await,
        Some(HaCmd::Status) => {
            for line in status_lines(&bus).await {
                println!("{line}");
            }
            Ok(())
        }
    }
}

async fn failover(
    bus: &imgcrawl_bus::Bus,
    node: &str,
    reason: Option<String>,
    force: bool,
) -> Result<()> {
    let store = HaStore::open(bus).await?;
    let wait = Duration::from_secs(15);
    match request_failover(&store, node, reason, force, wait).await? {
        Some(FailoverResult {
            ok: true,
            pointer: Some(p),
            ..
        }) => {
            println!("primary {} (epoch {}): {}", p.primary, p.epoch, p.reason);
            Ok(())
        }
        Some(r) => bail!("failover refused: {}", r.error.unwrap_or_default()),
        None => bail!(
            "no HA watcher holding the lease answered within 15 s (is `imgcrawl ha` running?); the request was withdrawn"
        ),
    }
}

async fn sync(bus: &imgcrawl_bus::Bus) -> Result<()> {
    let store = HaStore::open(bus).await?;
    let req = SyncRequest {
        id: Uuid::now_v7(),
        at: Utc::now(),
    };
    store.put("postgres-sync-request", &req).await?;
    for _ in 0..3000 {
        if let Some((r, _)) = store.get::<Report>("postgres-sync-report").await? {
            if r.request_id == Some(req.id) {
                print_report(&r);
                if !r.identical {
                    std::process::exit(1);
                }
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no consistency report within 300 s (is `imgcrawl ha` running?)")
}

fn print_report(r: &Report) {
    println!(
        "consistency check ({}, {}): {}",
        r.trigger,
        r.finished_at.format("%Y-%m-%d %H:%M:%S"),
        r.status
    );
    for n in &r.nodes {
        let verdict = match n.identical {
            Some(true) => "identical".to_string(),
            Some(false) => "DIFFERENT".to_string(),
            None => "not compared".to_string(),
        };
        let with = n
            .compared_with
            .as_deref()
            .map(|w| format!(" with {w}"))
            .unwrap_or_default();
        let cp = n.checkpoint.map_or("-".into(), |c| c.to_string());
        println!("  {:<10} checkpoint {cp:<10} {verdict}{with}", n.name);
        for d in &n.differences {
            println!("    {} {}: {} vs {}", d.table, d.check, d.left, d.right);
        }
        if let Some(note) = &n.note {
            println!("    {note}");
        }
    }
}

/// The HA lines of `imgcrawl status` (none before the first election).
pub async fn status_lines(bus: &imgcrawl_bus::Bus) -> Vec<String> {
    let Ok(store) = HaStore::open(bus).await else {
        return Vec::new();
    };
    let Ok(Some((p, _))) = store.pointer(POSTGRES).await else {
        return Vec::new();
    };
    let p: Pointer = p;
    let mut out = vec![format!(
        "ha: primary {} (epoch {}, since {}): {}",
        p.primary,
        p.epoch,
        p.at.format("%Y-%m-%d %H:%M:%S"),
        p.reason
    )];
    if let Ok(Some((l, _))) = store.get::<LeaseRecord>("postgres-lease").await {
        let holder = if l.holder.is_empty() {
            "none (released)".to_string()
        } else {
            l.holder
        };
        out.push(format!("  watcher lease: {holder}"));
    }
    if let Ok(Some((r, _))) = store.get::<Report>("postgres-sync-report").await {
        out.push(format!(
            "  last consistency check: {} ({}, {})",
            r.status,
            r.trigger,
            r.finished_at.format("%Y-%m-%d %H:%M:%S")
        ));
    }
    out
}
