//! `imgcrawl verify`: compare two PostgreSQL projections (or one with a fresh replay)
//! at the same checkpoint, and check a bucket against the events. Exit status 0 only
//! when everything is identical.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cmd_replay::{bar, draw_postgres, stage_configs};
use imgcrawl_events::redact;

use crate::settings::Settings;
use crate::signals::cancel_on_signal;

/// Arguments of `imgcrawl verify`. The first database is `--database-url` (or
/// `DATABASE_URL`); the bucket to check is `--bucket` (or `IMGCRAWL_BUCKET`).
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Compare the projection with the one in this database.
    #[arg(long, value_name = "URL", conflicts_with = "against_replay")]
    pub against_database_url: Option<String>,
    /// Compare the projection with a fresh replay into a temporary database on the same
    /// server (dropped afterwards).
    #[arg(long)]
    pub against_replay: bool,
    /// Compare only the tables and columns both databases have (after a schema change).
    #[arg(long)]
    pub common_columns: bool,
    /// Bucket check: read the events up to this sequence (default: the stream's end).
    #[arg(long, value_name = "SEQ")]
    pub until: Option<u64>,
    /// One JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// A TOML file with `[index]` and `[store]` sections, as for `imgcrawl run`.
    #[arg(long, env = "IMGCRAWL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs `imgcrawl verify`; exits 1 when something differs.
pub async fn verify(settings: &Settings, args: VerifyArgs) -> Result<()> {
    let postgres = args.against_replay || args.against_database_url.is_some();
    let bucket = settings.bucket.clone();
    if !postgres && bucket.is_none() {
        bail!("nothing to verify: pass --against-database-url URL or --against-replay (PostgreSQL), and/or --bucket DEST");
    }
    let configs = stage_configs(settings, args.config.clone())?;
    let mut report = serde_json::Map::new();
    let mut identical = true;
    if postgres {
        let mut index = configs.index;
        // With HA nodes and no database named: the primary the HA pointer names, not
        // the first node (which may be the one that failed).
        if settings.database_url.is_none() && !settings.ha_nodes()?.is_empty() {
            index.database_url = settings.reader_database_url().await?;
        }
        let (same, value) = verify_postgres(settings, &args, index).await?;
        identical &= same;
        report.insert("postgres".into(), value);
    }
    if let Some(target) = bucket {
        let mut store = configs.store;
        store.target = target;
        let (same, value) = verify_bucket(settings, &args, &store).await?;
        identical &= same;
        report.insert("bucket".into(), value);
    }
    if args.json {
        report.insert("identical".into(), json!(identical));
        println!("{}", Value::Object(report));
    }
    if !identical {
        std::process::exit(1);
    }
    Ok(())
}

async fn verify_postgres(
    settings: &Settings,
    args: &VerifyArgs,
    config: imgcrawl_index::Config,
) -> Result<(bool, Value)> {
    let left = config.database_url.clone();
    let (comparison, right) = match &args.against_database_url {
        Some(b) => {
            let (l, r) = (
                imgcrawl_index::connect(&left).await?,
                imgcrawl_index::connect(b).await?,
            );
            let name = &config.checkpoint_name;
            let c = imgcrawl_index::verify::compare_databases(&l, &r, name, args.common_columns);
            let c = c.await?;
            l.close().await;
            r.close().await;
            (c, redact(b))
        }
        None => {
            let bus = settings
                .connect_bus_with(args.config.as_deref(), "imgcrawl-verify")
                .await?;
            let shutdown = CancellationToken::new();
            cancel_on_signal(shutdown.clone());
            let draw = !args.json && std::io::stderr().is_terminal();
            let (tx, rx) = watch::channel(imgcrawl_index::ReplayProgress::default());
            let drawer = tokio::spawn(draw_postgres(rx, bar(draw, "replay")));
            let done =
                imgcrawl_index::verify::against_replay(&bus, &config, Some(tx), shutdown).await;
            let _ = drawer.await;
            (done?.0, "a fresh replay".to_string())
        }
    };
    let c = &comparison;
    if !args.json {
        print_postgres(&redact(&left), &right, c);
    }
    let differences: Vec<Value> = c
        .differences
        .iter()
        .map(|d| json!({"table": d.table, "check": d.check, "left": d.left, "right": d.right}))
        .collect();
    let tables: Vec<Value> = c
        .left
        .tables
        .iter()
        .map(|t| json!({"table": t.table, "rows": t.rows, "id_range": t.id_range, "digest": t.digest}))
        .collect();
    let value = json!({
        "left": redact(&left), "right": right, "checkpoint": c.left.checkpoint,
        "identical": c.identical(), "tables": tables, "differences": differences, "notes": c.notes,
    });
    Ok((c.identical(), value))
}

fn print_postgres(left: &str, right: &str, c: &imgcrawl_index::verify::Comparison) {
    let verdict = if c.identical() {
        "identical".to_string()
    } else {
        format!("{} difference(s)", c.differences.len())
    };
    println!(
        "postgres: {left} against {right} at checkpoint {}: {verdict}",
        c.left.checkpoint
    );
    for t in &c.left.tables {
        let ids = t.id_range.map_or("-".into(), |(a, b)| format!("{a}..{b}"));
        let digest = t.digest.get(..16).unwrap_or(&t.digest);
        println!(
            "  {:<18} {:>9} rows  ids {:<15} digest {digest}",
            t.table, t.rows, ids
        );
    }
    for d in &c.differences {
        println!(
            "  DIFFERS {} {}: left {} | right {}",
            d.table, d.check, d.left, d.right
        );
    }
    for n in &c.notes {
        println!("  note: {n} (not compared)");
    }
}

async fn verify_bucket(
    settings: &Settings,
    args: &VerifyArgs,
    config: &imgcrawl_store::Config,
) -> Result<(bool, Value)> {
    let bus = settings
        .connect_bus_with(args.config.as_deref(), "imgcrawl-verify")
        .await?;
    let concurrency = config.concurrency.max(1);
    let r = imgcrawl_store::verify_bucket(&bus, config, args.until, concurrency).await?;
    if !args.json {
        let verdict = if r.identical() {
            "identical"
        } else {
            "DIFFERS"
        };
        println!(
            "bucket: {} at sequence {}: {} objects expected, {} ok, {} problem(s): {verdict}",
            config.target, r.end, r.expected, r.ok, r.problem_count
        );
        if !r.content_types_checked {
            println!("  (Content-Types not checked: this backend does not keep them)");
        }
        for p in r.problems.iter().take(50) {
            println!("  {:<12} {}  {}", p.kind, p.key, p.detail);
        }
        if r.problem_count > 50 {
            println!(
                "  ... and {} more (--json lists up to 1000)",
                r.problem_count - 50
            );
        }
    }
    let problems: Vec<Value> = r
        .problems
        .iter()
        .map(|p| json!({"kind": p.kind, "key": p.key, "detail": p.detail}))
        .collect();
    let value = json!({
        "target": config.target, "end": r.end, "expected": r.expected, "ok": r.ok,
        "content_types_checked": r.content_types_checked, "identical": r.identical(),
        "problem_count": r.problem_count, "problems": problems,
    });
    Ok((r.identical(), value))
}
