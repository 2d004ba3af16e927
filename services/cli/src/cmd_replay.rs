//! `imgcrawl replay`: rebuild the PostgreSQL projection or the bucket from the stream,
//! with a progress bar on a terminal and one JSON summary line otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cmd_run::{load_config, RunArgs};
use crate::progress::human_bytes;
use imgcrawl_events::redact;

use crate::settings::Settings;
use imgcrawl_pipeline::StagesConfig;

/// Which projection to rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Projection {
    /// The PostgreSQL index (`--database-url`).
    Postgres,
    /// The bucket of images (`--to`).
    Objects,
}

/// Arguments of `imgcrawl replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// What to rebuild.
    #[arg(long, value_enum)]
    pub projection: Projection,
    /// Where the bucket goes (objects): a directory, `file:///path` or `s3://bucket/prefix`.
    #[arg(long, value_name = "DEST")]
    pub to: Option<String>,
    /// Stop after this stream sequence (default: the stream's end when the replay starts).
    #[arg(long, value_name = "SEQ")]
    pub until: Option<u64>,
    /// Once caught up, keep applying new events until Ctrl-C (postgres).
    #[arg(long)]
    pub follow: bool,
    /// No progress bar; one JSON summary line on stdout (also when stderr is not a terminal).
    #[arg(long)]
    pub json: bool,
    /// Events per transaction (postgres; default: the index config's `replay_batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Images copied at once (objects; default: the store config's `concurrency`).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Ignore the bucket's replay checkpoint and check every image again (objects): repairs
    /// a bucket that lost objects; what is there is still skipped.
    #[arg(long)]
    pub restart: bool,
    /// A TOML file with `[index]` and `[store]` sections, as for `imgcrawl run`.
    #[arg(long, env = "IMGCRAWL_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The `[index]` and `[store]` configuration, as `imgcrawl run` would read it.
pub(crate) fn stage_configs(settings: &Settings, config: Option<PathBuf>) -> Result<StagesConfig> {
    let args = RunArgs {
        stages: Vec::new(),
        config,
        allow_loopback: false,
        allow_private: false,
    };
    load_config(settings, &args)
}

/// A progress bar over stream sequences (hidden when not drawing).
pub(crate) fn bar(draw: bool, what: &str) -> ProgressBar {
    let bar = if draw {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    let template = format!(
        "{what} {{spinner}} [{{elapsed_precise}}] [{{bar:30}}] {{pos}}/{{len}} seq {{percent}}% ETA {{eta}} | {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Draws PostgreSQL replay progress until the sender is dropped.
pub(crate) async fn draw_postgres(
    mut rx: watch::Receiver<imgcrawl_index::ReplayProgress>,
    bar: ProgressBar,
) {
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let (pos, len) = p.position();
        bar.set_length(len);
        bar.set_position(pos);
        bar.set_message(format!(
            "{} events, {:.0} events/s, {}/s{}",
            p.events,
            p.events_per_sec(),
            human_bytes(p.bytes_per_sec() as u64),
            if p.caught_up { ", caught up" } else { "" }
        ));
    }
    bar.finish_and_clear();
}

/// Runs `imgcrawl replay`.
pub async fn replay(settings: &Settings, args: ReplayArgs) -> Result<()> {
    let draw = !args.json && std::io::stderr().is_terminal();
    match args.projection {
        Projection::Postgres => postgres(settings, args, draw).await,
        Projection::Objects => objects(settings, args, draw).await,
    }
}

async fn postgres(settings: &Settings, args: ReplayArgs, draw: bool) -> Result<()> {
    if args.restart {
        bail!("--restart is for --projection objects; to rebuild a database from the start, replay into an empty one");
    }
    if args.to.is_some() {
        bail!("--to is for --projection objects; the database is --database-url (or DATABASE_URL)");
    }
    let mut config = stage_configs(settings, args.config.clone())?.index;
    if let Some(n) = args.batch_size {
        config.replay_batch_size = n;
    }
    let bus = settings
        .connect_bus_with(args.config.as_deref(), "imgcrawl-replay")
        .await?;
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_signal(shutdown.clone());
    let (tx, rx) = watch::channel(imgcrawl_index::ReplayProgress::default());
    let drawer = tokio::spawn(draw_postgres(rx, bar(draw, "replay postgres")));
    let options = imgcrawl_index::ReplayOptions {
        until: args.until,
        follow: args.follow,
    };
    let url = config.database_url.clone();
    let done = imgcrawl_index::replay(bus, config, options, Some(tx), shutdown).await;
    let _ = drawer.await;
    let done = done?;
    let pool = imgcrawl_index::connect(&url).await?;
    let rows = imgcrawl_index::verify::row_counts(&pool).await?;
    pool.close().await;
    if args.json || !draw {
        let rows: serde_json::Map<String, serde_json::Value> =
            rows.iter().map(|(t, n)| (t.clone(), json!(n))).collect();
        println!(
            "{}",
            json!({
                "projection": "postgres", "database": redact(&url), "start": done.start,
                "end": done.end, "checkpoint": done.checkpoint, "caught_up": done.caught_up,
                "events": done.events, "skipped": done.skipped, "invalid": done.invalid,
                "bytes": done.bytes, "rows": rows, "seconds": done.elapsed.as_secs_f64(),
                "events_per_sec": done.events_per_sec(), "bytes_per_sec": done.bytes_per_sec(),
            })
        );
    } else {
        print_postgres(&url, &done, &rows);
    }
    finish(done.caught_up || args.follow)
}

fn print_postgres(url: &str, p: &imgcrawl_index::ReplayProgress, rows: &[(String, i64)]) {
    let end = p.end.map_or("-".to_string(), |e| e.to_string());
    if p.caught_up {
        println!("replayed {} up to sequence {}", redact(url), p.checkpoint);
    } else {
        println!(
            "replay of {} interrupted at sequence {} of {end}; run the same command again to resume",
            redact(url),
            p.checkpoint
        );
    }
    println!(
        "  events  {} applied ({} already there, {} not applicable) from checkpoint {}",
        p.events, p.skipped, p.invalid, p.start
    );
    let rows: Vec<String> = rows.iter().map(|(t, n)| format!("{t} {n}")).collect();
    println!("  rows    {}", rows.join(", "));
    println!(
        "  time    {:.1} s, {:.0} events/s, {}/s",
        p.elapsed.as_secs_f64(),
        p.events_per_sec(),
        human_bytes(p.bytes_per_sec() as u64)
    );
}

/// Exits 130 (interrupted) when the replay did not get to its end.
fn finish(complete: bool) -> Result<()> {
    if !complete {
        std::process::exit(130);
    }
    Ok(())
}

async fn objects(settings: &Settings, args: ReplayArgs, draw: bool) -> Result<()> {
    let Some(to) = args.to.clone() else {
        bail!("--projection objects needs --to DEST (a directory, file:///path or s3://bucket/prefix)");
    };
    if args.follow {
        bail!("--follow is for --projection postgres; the store stage keeps a bucket current");
    }
    let mut config = stage_configs(settings, args.config.clone())?.store;
    config.target = to.clone();
    let bus = settings
        .connect_bus_with(args.config.as_deref(), "imgcrawl-replay")
        .await?;
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_signal(shutdown.clone());
    let (tx, mut rx) = watch::channel(imgcrawl_store::ObjectReplayProgress::default());
    let bar = bar(draw, "replay objects");
    let drawer = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let p = rx.borrow_and_update().clone();
            bar.set_length(p.end.saturating_sub(p.start));
            bar.set_position(p.position.saturating_sub(p.start));
            bar.set_message(format!(
                "{} written, {} present, {:.0} events/s, {}/s",
                p.written,
                p.skipped,
                p.events_per_sec(),
                human_bytes(p.bytes_per_sec() as u64)
            ));
        }
        bar.finish_and_clear();
    });
    let options = imgcrawl_store::ObjectReplayOptions {
        until: args.until,
        concurrency: args.concurrency,
        restart: args.restart,
    };
    let done = imgcrawl_store::replay_objects(&bus, &config, options, Some(tx), shutdown).await;
    let _ = drawer.await;
    let p = done?;
    if args.json || !draw {
        println!(
            "{}",
            json!({
                "projection": "objects", "to": to, "start": p.start, "end": p.end,
                "position": p.position, "caught_up": p.caught_up, "events": p.events,
                "objects": p.written + p.skipped, "written": p.written, "skipped": p.skipped,
                "deleted": p.deleted, "missing": p.missing, "bytes": p.bytes,
                "seconds": p.elapsed.as_secs_f64(), "events_per_sec": p.events_per_sec(),
                "bytes_per_sec": p.bytes_per_sec(),
            })
        );
    } else {
        print_objects(&to, &p);
    }
    if p.missing > 0 {
        eprintln!(
            "warning: {} image(s) could not be rebuilt: their blobs are missing or corrupt in the blob store",
            p.missing
        );
    }
    finish(p.caught_up)
}

fn print_objects(to: &str, p: &imgcrawl_store::ObjectReplayProgress) {
    if p.caught_up {
        println!("replayed the bucket {to} up to sequence {}", p.position);
    } else {
        println!(
            "replay of {to} interrupted at sequence {} of {}; run the same command again to resume",
            p.position, p.end
        );
    }
    println!(
        "  objects {} written, {} already there, {} deleted (tombstones), {} missing blobs",
        p.written, p.skipped, p.deleted, p.missing
    );
    println!(
        "  events  {} image.downloaded from checkpoint {}",
        p.events, p.start
    );
    println!(
        "  time    {:.1} s, {:.0} events/s, {}/s ({} written)",
        p.elapsed.as_secs_f64(),
        p.events_per_sec(),
        human_bytes(p.bytes_per_sec() as u64),
        human_bytes(p.bytes)
    );
}
