//! `imgcrawl backup`: the continuous archive of the stream, its blobs and KV state
//! (or one pass with `--once`), and `backup verify`, `backup snapshot`, `backup prune
//! [--dry-run]`. See docs/backup.md.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::progress::human_bytes;
use crate::settings::Settings;
use crate::signals::cancel_on_signal;
use crate::stack;

/// Where the backup is and how it is read.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The backup target: a directory or `s3://bucket/prefix` (default: the config
    /// file's `[backup] target`, else `backup/` in the local stack's home).
    #[arg(long = "to", env = "IMGCRAWL_BACKUP_TARGET", global = true)]
    pub target: Option<String>,
    /// A TOML file whose `[backup]` section holds the settings (docs/backup.md).
    #[arg(long, env = "IMGCRAWL_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// One JSON report on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Arguments of `imgcrawl backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to do (default: archive continuously until Ctrl-C or SIGTERM).
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Archive what the streams hold now, close the segments and exit.
    #[arg(long)]
    pub once: bool,
    /// Close a segment at the latest this many seconds after its first message
    /// (default 300: the archive's RPO bound).
    #[arg(long)]
    pub segment_secs: Option<u64>,
}

/// The backup's maintenance commands.
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Check every segment's size and SHA-256 and the manifest's continuity; exit 1
    /// naming each missing, truncated or corrupted segment.
    Verify,
    /// Take a full snapshot of every archived stream now (a running `imgcrawl backup`
    /// takes them by itself every `snapshot_every_days`; stop it first).
    Snapshot,
    /// Remove the segments and snapshots retention allows (`--dry-run`: list them).
    Prune {
        /// List what would be removed, and the storage it costs; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Keep incremental segments younger than this many days (default: the
        /// `[backup] keep_days` setting, 30).
        #[arg(long)]
        keep_days: Option<u64>,
    },
}

#[derive(Default, Deserialize)]
struct BackupFile {
    #[serde(default)]
    backup: Option<imgcrawl_backup::Config>,
}

/// The backup settings: the config file's `[backup]` section, the target from
/// `--to`/`IMGCRAWL_BACKUP_TARGET` over it, else the local stack's `backup/`.
pub(crate) fn backup_config(
    target: Option<&str>,
    file: Option<&Path>,
) -> Result<imgcrawl_backup::Config> {
    let from_file = match file {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
            toml::from_str::<BackupFile>(&text)
                .with_context(|| format!("parse the [backup] section of {}", p.display()))?
                .backup
        }
        None => None,
    };
    let mut cfg = from_file.clone().unwrap_or_default();
    match target {
        Some(t) => cfg.target = t.to_string(),
        None if from_file.is_none() => {
            cfg.target = stack::home().join("backup").display().to_string();
        }
        None => {}
    }
    Ok(cfg)
}

/// Runs `imgcrawl backup`.
pub async fn backup(settings: &Settings, args: BackupArgs) -> Result<()> {
    let t = &args.target;
    let mut cfg = backup_config(t.target.as_deref(), t.config.as_deref())?;
    if let Some(s) = args.segment_secs {
        cfg.segment_secs = s;
    }
    match args.action {
        None => archive(settings, &cfg, args.once, t.json).await,
        Some(BackupAction::Verify) => verify(&cfg, t.json).await,
        Some(BackupAction::Snapshot) => snapshot(settings, &cfg, t.json).await,
        Some(BackupAction::Prune { dry_run, keep_days }) => {
            if let Some(k) = keep_days {
                cfg.keep_days = k;
            }
            prune(&cfg, dry_run, t.json).await
        }
    }
}

async fn archive(
    settings: &Settings,
    cfg: &imgcrawl_backup::Config,
    once: bool,
    json: bool,
) -> Result<()> {
    let bus = settings.connect_bus("imgcrawl-backup").await?;
    if once {
        let started = std::time::Instant::now();
        let s = imgcrawl_backup::backup_once(&bus, cfg).await?;
        let secs = started.elapsed().as_secs_f64();
        if json {
            println!(
                "{}",
                json!({"target": cfg.target, "segments": s.segments, "messages": s.messages,
                       "bytes": s.bytes, "raw_bytes": s.raw_bytes, "seconds": secs})
            );
        } else {
            println!(
                "backup {}: {} segment(s), {} messages, {} ({} uncompressed) in {secs:.1} s",
                cfg.target,
                s.segments,
                s.messages,
                human_bytes(s.bytes),
                human_bytes(s.raw_bytes)
            );
        }
        return Ok(());
    }
    let shutdown = CancellationToken::new();
    cancel_on_signal(shutdown.clone());
    tracing::info!(target = %cfg.target, segment_secs = cfg.segment_secs, "backup started");
    imgcrawl_backup::run(bus, cfg.clone(), shutdown).await?;
    Ok(())
}

async fn manifest(
    cfg: &imgcrawl_backup::Config,
) -> Result<(imgcrawl_backup::Target, imgcrawl_backup::Manifest)> {
    let target = imgcrawl_backup::Target::open(cfg)?;
    let m = target
        .manifest()
        .await?
        .with_context(|| format!("{} holds no backup (no manifest.json)", cfg.target))?;
    Ok((target, m))
}

async fn verify(cfg: &imgcrawl_backup::Config, json: bool) -> Result<()> {
    let (target, m) = manifest(cfg).await?;
    let r = imgcrawl_backup::verify(&target, &m, 8).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "backup {}: {} segment(s), {} ok, {} messages, {}: {}",
            cfg.target,
            r.segments,
            r.ok,
            r.messages,
            human_bytes(r.bytes),
            if r.ok() { "ok" } else { "DAMAGED" }
        );
        for (stream, last) in &r.last_seq {
            println!("  {stream:<28} archived through sequence {last}");
        }
        for p in &r.problems {
            println!(
                "  {:<10} {}  {}",
                p.kind.to_uppercase(),
                p.segment,
                p.detail
            );
        }
    }
    if !r.ok() {
        std::process::exit(1);
    }
    Ok(())
}

async fn snapshot(settings: &Settings, cfg: &imgcrawl_backup::Config, json: bool) -> Result<()> {
    let bus = settings.connect_bus("imgcrawl-backup").await?;
    let (target, mut m) = manifest(cfg).await?;
    let streams: Vec<String> = m.streams.keys().cloned().collect();
    let snap = imgcrawl_backup::take_snapshot(&bus, &target, &streams, cfg).await?;
    let bytes: u64 = snap
        .streams
        .values()
        .flat_map(|s| &s.segments)
        .map(|s| s.bytes)
        .sum();
    let id = snap.id.clone();
    m.snapshots.push(snap);
    m.updated_at = chrono::Utc::now();
    target.write_manifest(&m).await?;
    if json {
        println!("{}", json!({"snapshot": id, "bytes": bytes}));
    } else {
        println!("snapshot {id}: {}", human_bytes(bytes));
    }
    Ok(())
}

async fn prune(cfg: &imgcrawl_backup::Config, dry_run: bool, json: bool) -> Result<()> {
    let (target, mut m) = manifest(cfg).await?;
    let plan = imgcrawl_backup::retention_plan(&m, cfg, chrono::Utc::now());
    if json {
        println!("{}", json!({"dry_run": dry_run, "plan": plan}));
    } else {
        let verb = if dry_run { "would remove" } else { "removing" };
        println!(
            "retention (keep {} days, a snapshot every {} days): {verb} {} segment(s) and {} snapshot(s), {}; {} stay",
            cfg.keep_days,
            cfg.snapshot_every_days,
            plan.segments.len(),
            plan.snapshots.len(),
            human_bytes(plan.removed_bytes),
            human_bytes(plan.kept_bytes)
        );
        for r in &plan.segments {
            println!("  {}  {}  ({})", r.name, human_bytes(r.bytes), r.reason);
        }
        for (id, removals) in &plan.snapshots {
            let bytes: u64 = removals.iter().map(|r| r.bytes).sum();
            println!("  snapshot {id}  {}", human_bytes(bytes));
        }
    }
    if !dry_run {
        imgcrawl_backup::prune(&target, &mut m, &plan).await?;
    }
    Ok(())
}
