//! `bench-restore`: the restore drill with numbers (docs/backup.md, "The drill").
//!
//! 1. The replay benchmark's synthetic history (at least `--events` events and
//!    `--images` blobs) in a private nats-server.
//! 2. **Backup**: one archive pass of every stream into a new directory (throughput).
//! 3. **RTO**: restore into a new, empty nats-server, then the PostgreSQL replay into a
//!    new database and the object replay into a new directory; the sum is the time
//!    from "the stream is lost" to "the projections are back".
//! 4. Checks (untimed): the database replayed from the restored stream is identical
//!    to one replayed from the original stream; the rebuilt bucket verifies.
//! 5. **RPO** ([`rpo`]): a steady event stream under the continuous archive, the
//!    machine lost at a random moment; events not in the archive and the age of the
//!    oldest of them.

#[allow(dead_code)]
#[path = "../blobs.rs"]
mod blobs;
#[allow(dead_code)]
#[path = "../cpu.rs"]
mod cpu;
#[allow(dead_code)]
#[path = "../history/mod.rs"]
mod history;
#[allow(dead_code)]
#[path = "../measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "../publish.rs"]
mod publish;
#[allow(dead_code)]
#[path = "../report.rs"]
mod report;
mod rpo;
#[allow(dead_code)]
#[path = "../servers.rs"]
mod servers;
#[allow(dead_code)]
#[path = "../setup.rs"]
mod setup;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use imgcrawl_bus::{Bus, BusConfig};
use serde_json::json;

/// Times a backup, a restore plus both replays (RTO), and the RPO of the archive.
#[derive(Debug, Parser)]
#[command(name = "bench-restore")]
struct Args {
    /// Publish at least this many events.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Distinct images (5 to 30 KB each) in the blob store.
    #[arg(long, default_value_t = 20_000)]
    images: u64,
    /// Mean pages per crawl job.
    #[arg(long, default_value_t = 1_500)]
    pages_per_job: u64,
    /// Seed of the synthetic data and of the moment of the loss.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// RPO drill: how long the event stream runs at most (the loss comes in its
    /// second half).
    #[arg(long, default_value_t = 120)]
    rpo_secs: u64,
    /// RPO drill: the archive's segment interval (the product default is 300).
    #[arg(long, default_value_t = 60)]
    segment_secs: u64,
    /// RPO drill: events per second.
    #[arg(long, default_value_t = 2_000)]
    rpo_rate: u64,
    /// Skip the RPO drill.
    #[arg(long)]
    no_rpo: bool,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results/bench-restore.json")]
    out: PathBuf,
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
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
    let sizes = setup::Sizes {
        events: args.events,
        images: args.images,
        pages_per_job: args.pages_per_job,
        seed: args.seed,
        pg_settings: Vec::new(),
    };
    let fx = setup::prepare(&sizes).await?;
    let scratch = tempfile::Builder::new()
        .prefix("imgcrawl-bench-restore-")
        .tempdir()?;
    let cfg = imgcrawl_backup::Config {
        target: scratch.path().join("backup").display().to_string(),
        ..Default::default()
    };

    // backup
    let t = Instant::now();
    let b = imgcrawl_backup::backup_once(&fx.bus, &cfg)
        .await
        .context("backup")?;
    let backup_secs = t.elapsed().as_secs_f64();
    eprintln!(
        "backup: {} messages, {:.0} MB -> {:.0} MB in {} segments, {backup_secs:.1} s",
        b.messages,
        mb(b.raw_bytes),
        mb(b.bytes),
        b.segments
    );
    let target = imgcrawl_backup::Target::open(&cfg)?;
    let manifest = target.manifest().await?.context("manifest")?;
    let t = Instant::now();
    let report = imgcrawl_backup::verify(&target, &manifest, 4).await?;
    let verify_secs = t.elapsed().as_secs_f64();
    ensure!(report.ok(), "backup verify: {:?}", report.problems);

    // RTO: restore, then both replays, from a new server
    let nats2 = servers::Nats::start(&servers::nats_binary()).await?;
    let bus2 = Bus::connect(BusConfig::with_url(nats2.url())).await?;
    let t = Instant::now();
    let r = imgcrawl_backup::restore(&bus2.js, &cfg, &imgcrawl_backup::RestoreOptions::default())
        .await
        .context("restore")?;
    let restore_secs = t.elapsed().as_secs_f64();
    eprintln!("restore: {:?} in {restore_secs:.1} s", r.streams);
    let pids = measure::Pids {
        postgres: fx.pg.pid(),
        nats: nats2.pid(),
    };
    let url = fx.pg.create_db("restored").await?;
    let pg = measure::postgres(pids, &nats2.url(), &url, None).await?;
    eprintln!(
        "postgres replay: {} events in {:.1} s",
        pg.events, pg.seconds
    );
    let objects_dir = scratch.path().join("objects");
    let (obj, counts) = measure::objects(pids, &bus2, &objects_dir).await?;
    eprintln!(
        "object replay: {} objects in {:.1} s",
        obj.objects, obj.seconds
    );
    let rto = restore_secs + pg.seconds + obj.seconds;

    // checks (untimed)
    eprintln!("checking the results (untimed)");
    let original_url = fx.pg.create_db("original").await?;
    let original_pids = measure::Pids {
        postgres: fx.pg.pid(),
        nats: fx.nats.pid(),
    };
    measure::postgres(original_pids, &fx.nats.url(), &original_url, None).await?;
    let (a, b_pool) = (
        imgcrawl_index::connect(&original_url).await?,
        imgcrawl_index::connect(&url).await?,
    );
    let c = imgcrawl_index::verify::compare_databases(&a, &b_pool, "postgres", false).await?;
    ensure!(
        c.identical(),
        "restored replay differs: {:?}",
        c.differences
    );
    let store = imgcrawl_store::Config {
        target: objects_dir.display().to_string(),
        ..Default::default()
    };
    let v = imgcrawl_store::verify_bucket(&bus2, &store, None, 16).await?;
    ensure!(v.identical(), "bucket: {} problems", v.problem_count);
    ensure!(counts.missing == 0, "{} blobs missing", counts.missing);

    // RPO
    let rpo = if args.no_rpo {
        None
    } else {
        eprintln!(
            "rpo drill: {} s at {} events/s, segments every {} s",
            args.rpo_secs, args.rpo_rate, args.segment_secs
        );
        Some(rpo::measure(args.rpo_secs, args.segment_secs, args.rpo_rate, args.seed).await?)
    };

    println!(
        "bench-restore: {} events, {} blobs ({:.0} MB in the blob store)",
        fx.summary["events"],
        fx.summary["blob_store_images"],
        mb(fx.summary["blob_store_bytes"].as_u64().unwrap_or(0))
    );
    println!("  backup        {backup_secs:>7.1} s  {:>9.0} messages/s  {:>6.1} MB/s  archive {:.0} MB ({:.0} MB raw)", b.messages as f64 / backup_secs, mb(b.raw_bytes) / backup_secs, mb(b.bytes), mb(b.raw_bytes));
    println!("  verify        {verify_secs:>7.1} s");
    println!("  restore       {restore_secs:>7.1} s  (stream, blobs, KV, consumers)");
    println!(
        "  pg replay     {:>7.1} s  {:>9.0} events/s",
        pg.seconds,
        pg.events_per_sec()
    );
    println!("  object replay {:>7.1} s", obj.seconds);
    println!(
        "  RTO           {rto:>7.1} s  (target <= 600 s: {})",
        if rto <= 600.0 { "met" } else { "NOT met" }
    );
    if let Some(r) = &rpo {
        println!(
            "  RPO           {:>7.1} s  ({} of {} acknowledged events not in the archive, lost after {:.0} s, segments every {} s; target <= 300 s: {})",
            r.rpo_secs, r.lost, r.published, r.lost_after_secs, r.segment_secs,
            if r.rpo_secs <= 300.0 { "met" } else { "NOT met" }
        );
    }
    let out = json!({
        "history": fx.summary,
        "backup": {"seconds": backup_secs, "messages": b.messages, "segments": b.segments, "bytes": b.bytes, "raw_bytes": b.raw_bytes},
        "verify_seconds": verify_secs,
        "restore_seconds": restore_secs,
        "postgres_replay": pg,
        "object_replay": obj,
        "rto_seconds": rto,
        "rpo": rpo,
    });
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}
