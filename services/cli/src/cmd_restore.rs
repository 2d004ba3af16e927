//! `imgcrawl restore --from TARGET`: rebuild the stream, its blobs and KV state from
//! a backup into an empty JetStream, at the original sequences; then the projections
//! are rebuilt with `imgcrawl replay`. See docs/backup.md.

use anyhow::Result;
use clap::Args;

use crate::cmd_backup::backup_config;
use crate::settings::Settings;

/// Arguments of `imgcrawl restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a directory or `s3://bucket/prefix`.
    #[arg(long, value_name = "TARGET")]
    pub from: String,
    /// Restore each stream up to the segment before its first damaged one instead of
    /// refusing a damaged backup.
    #[arg(long)]
    pub up_to_last_good: bool,
    /// Replicas of the re-created streams (default: as archived; a single server
    /// needs 1).
    #[arg(long)]
    pub replicas: Option<usize>,
    /// A TOML file whose `[backup]` section holds the S3 settings.
    #[arg(long, env = "IMGCRAWL_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// One JSON summary on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs `imgcrawl restore`.
pub async fn restore(settings: &Settings, args: RestoreArgs) -> Result<()> {
    let cfg = backup_config(Some(&args.from), args.config.as_deref())?;
    let bus = settings.connect_bus("imgcrawl-restore").await?;
    let options = imgcrawl_backup::RestoreOptions {
        up_to_last_good: args.up_to_last_good,
        replicas: args.replicas,
    };
    let started = std::time::Instant::now();
    let s = imgcrawl_backup::restore(&bus.js, &cfg, &options).await?;
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        v["seconds"] = secs.into();
        println!("{v}");
        return Ok(());
    }
    println!("restored from {} in {secs:.1} s:", args.from);
    for (name, messages, last) in &s.streams {
        println!("  {name:<28} {messages:>9} messages, last sequence {last}");
    }
    println!(
        "  {} consumer(s) re-created at their archived positions",
        s.consumers
    );
    if s.purged_skipped > 0 {
        println!(
            "  {} blob message(s) of purged images left out",
            s.purged_skipped
        );
    }
    for p in &s.damaged {
        println!("  DAMAGED {} {}: {}", p.kind, p.segment, p.detail);
    }
    for (stream, last) in &s.truncated {
        println!("  WARNING: {stream} restored only up to sequence {last} (the last good one)");
    }
    println!(
        "next: imgcrawl replay --projection postgres --database-url NEW; imgcrawl replay --projection objects --to BUCKET; imgcrawl verify"
    );
    Ok(())
}
