//! `bench-replay`: how fast the projections are rebuilt from the stream.
//!
//! 1. Starts a private nats-server and PostgreSQL (loopback, temp dirs; removed at the
//!    end), fills the blob store with synthetic images and publishes a synthetic but
//!    realistic history (jobs, pages, images, duplicates by SHA-256, a few deletions;
//!    at least `--events` events) into the fresh stream.
//! 2. Times, `--runs` times each and always into a clean target, the PostgreSQL replay
//!    (`imgcrawl_index::replay` into a new database), the object replay
//!    (`imgcrawl_store::replay_objects` into a new directory) and the baseline: plain
//!    `object_store` puts of the same images into a new directory, 16 in flight. The
//!    three are interleaved round by round, so a busy moment on the machine hits all
//!    of them alike. Nothing is deleted until the end: ext4 makes every file creation
//!    walk past the inodes deleted in the last half minute, which made whichever run
//!    followed a deletion up to 7 times slower.
//! 3. Checks the results (the replayed databases are identical, the bucket verifies),
//!    prints medians against the targets and writes them as JSON (`--out`).
//!
//! See docs/replay.md, "Performance", for the method and the figures.

mod blobs;
mod ceiling;
mod checks;
mod cpu;
mod history;
mod measure;
mod publish;
mod report;
mod servers;
mod setup;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::json;

use measure::Run;
use report::Series;

/// Times the PostgreSQL and object replays of a synthetic history.
#[derive(Debug, Parser)]
#[command(name = "bench-replay")]
struct Args {
    /// Publish at least this many events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Distinct images (5 to 30 KB of random bytes each) in the blob store.
    #[arg(long, default_value_t = 20_000)]
    images: u64,
    /// Mean pages per crawl job (each job gets 50% to 150% of it).
    #[arg(long, default_value_t = 1_500)]
    pages_per_job: u64,
    /// Timed runs of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also measure the ceilings: raw ordered-consumer reads of the stream (with and
    /// without decoding), and raw `UNNEST` inserts in every round, beside the
    /// PostgreSQL replay, for the replay/ceiling ratio.
    #[arg(long)]
    ceilings: bool,
    /// What to time (for profiling one part): `postgres`, `objects`, `raw`, and
    /// `unnest` (the `UNNEST` insert ceiling in every round; implied by `--ceilings`).
    #[arg(long, value_delimiter = ',', default_value = "postgres,objects,raw")]
    measure: Vec<String>,
    /// Events per transaction of the PostgreSQL replay (default: the index's
    /// `replay_batch_size`).
    #[arg(long)]
    batch_size: Option<usize>,
    /// An extra PostgreSQL setting, `name=value` (repeatable), e.g. `fsync=on`.
    #[arg(long = "pg-setting", value_name = "NAME=VALUE")]
    pg_settings: Vec<String>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results/bench-replay.json")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let load_start = measure::load();
    let sizes = setup::Sizes {
        events: args.events,
        images: args.images,
        pages_per_job: args.pages_per_job,
        seed: args.seed,
        pg_settings: args.pg_settings.clone(),
    };
    let fx = setup::prepare(&sizes).await?;
    let scratch = tempfile::Builder::new()
        .prefix("imgcrawl-bench-")
        .tempdir()
        .context("scratch dir")?;
    let mut ceilings = if args.ceilings {
        ceiling::all(&fx.bus, &fx.images).await?
    } else {
        serde_json::Value::Null
    };
    let (mut pg_runs, mut obj_runs, mut raw_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut unnest_secs = Vec::new();
    let (mut db_urls, mut obj_counts) = (Vec::new(), Vec::new());
    let pids = measure::Pids {
        postgres: fx.pg.pid(),
        nats: fx.nats.pid(),
    };
    let wanted = |what: &str| args.measure.iter().any(|m| m == what);
    for round in 1..=args.runs {
        if wanted("postgres") {
            let url = fx.pg.create_db(&format!("replay_{round}")).await?;
            let run = measure::postgres(pids, &fx.nats.url(), &url, args.batch_size).await?;
            note("postgres replay", round, &run);
            pg_runs.push(run);
            db_urls.push(url);
        }
        if args.ceilings || wanted("unnest") {
            let db = fx.pg.create_db(&format!("ceiling_{round}")).await?;
            let (rows, batch) = (ceiling::UNNEST_ROWS, ceiling::UNNEST_BATCH);
            let secs = ceiling::unnest_inserts(&db, rows, batch).await?;
            eprintln!(
                "run {round}: unnest ceiling    {secs:>8.2} s {:>10.0}/s",
                rows as f64 / secs
            );
            unnest_secs.push(secs);
        }
        if wanted("objects") {
            let dir = scratch.path().join(format!("objects-{round}"));
            let (run, counts) = measure::objects(pids, &fx.bus, &dir).await?;
            note("object replay", round, &run);
            obj_runs.push(run);
            obj_counts.push(counts);
        }
        if wanted("raw") {
            let raw = scratch.path().join(format!("raw-{round}"));
            let run = measure::raw_put(pids, &fx.images, &raw).await?;
            note("raw put", round, &run);
            raw_runs.push(run);
        }
    }
    let load_end = measure::load();
    if !unnest_secs.is_empty() {
        if ceilings.is_null() {
            ceilings = serde_json::json!({});
        }
        ceilings["unnest_insert_rows"] = ceiling::unnest_figure(&unnest_secs);
    }
    if std::env::var_os("BENCH_HOLD").is_some() {
        eprintln!("holding: {}", fx.pg.url("replay_1"));
        tokio::time::sleep(std::time::Duration::from_secs(900)).await;
    }
    eprintln!("checking the results (untimed)");
    let pg_check = checks::databases(&db_urls).await?;
    let bucket_check = match args.runs {
        n if n > 0 && wanted("objects") => {
            checks::bucket(&fx.bus, &scratch.path().join(format!("objects-{n}"))).await?
        }
        _ => serde_json::Value::Null,
    };
    let (pg, obj, raw) = (
        Series::of(pg_runs),
        Series::of(obj_runs),
        Series::of(raw_runs),
    );
    report::print(&pg, &obj, &raw, &ceilings);
    let result = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average_at_start": [load_start.0, load_start.1, load_start.2],
            "load_average_at_end": [load_end.0, load_end.1, load_end.2],
            "postgres_settings": setup::PG_SETTINGS.iter().map(|(k, v)| format!("{k}={v}")).chain(args.pg_settings.iter().cloned()).collect::<Vec<_>>(),
        },
        "history": fx.summary,
        "postgres_replay": pg.to_json(),
        "postgres_check": pg_check,
        "object_replay": obj.to_json(),
        "object_replay_counts": obj_counts,
        "object_check": bucket_check,
        "raw_put": raw.to_json(),
        "raw_put_in_flight": measure::RAW_IN_FLIGHT,
        "targets": report::targets(&pg, &obj, &raw, &ceilings),
        "ceilings": ceilings,
    });
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("write {}", args.out.display()))?;
    println!("results: {}", args.out.display());
    Ok(())
}

fn note(what: &str, round: usize, run: &Run) {
    eprintln!(
        "run {round}: {what:<16} {:>8.2} s {:>10.0}/s {:>8.1} MB/s (load {:.2}; cpu s: bench {:.1}, postgres {:.1}, nats {:.1})",
        run.seconds,
        run.events_per_sec(),
        run.mb_per_sec(),
        run.load_1m,
        run.cpu_bench,
        run.cpu_postgres,
        run.cpu_nats
    );
}
