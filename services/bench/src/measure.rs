//! The timed runs, each into a clean target: the PostgreSQL replay into a fresh
//! database, the object replay into a fresh directory bucket, and the baseline: plain
//! `object_store` puts of the same images into a fresh directory, 16 in flight.

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use imgcrawl_bus::{Bus, BusConfig};
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, PutPayload};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cpu::Cpu;

/// Puts in flight in the raw baseline (the store's default concurrency).
pub const RAW_IN_FLIGHT: usize = 16;

/// One timed run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Run {
    /// Wall-clock seconds of the whole call (opening, migrations and the end included).
    pub seconds: f64,
    /// Events applied (postgres), `image.downloaded` events handled (objects), objects
    /// put (raw).
    pub events: u64,
    /// Payload bytes read (postgres), image bytes written (objects, raw).
    pub bytes: u64,
    /// Objects written (objects, raw).
    pub objects: u64,
    /// The 1-minute load average when the run ended.
    pub load_1m: f64,
    /// CPU seconds used by the benchmark process (where the replays run).
    pub cpu_bench: f64,
    /// CPU seconds used by PostgreSQL.
    pub cpu_postgres: f64,
    /// CPU seconds used by nats-server.
    pub cpu_nats: f64,
}

/// The servers' process ids, for CPU accounting.
#[derive(Debug, Clone, Copy)]
pub struct Pids {
    /// The postmaster.
    pub postgres: u32,
    /// The nats-server.
    pub nats: u32,
}

/// Where a run started: its clock and the CPU counters.
pub struct Start {
    at: Instant,
    cpu: Cpu,
    pids: Pids,
}

impl Start {
    /// Now.
    pub fn now(pids: Pids) -> Start {
        Start {
            at: Instant::now(),
            cpu: Cpu::now(pids.postgres, pids.nats),
            pids,
        }
    }
}

impl Run {
    fn finish(start: Start, events: u64, bytes: u64, objects: u64) -> Run {
        let cpu = Cpu::now(start.pids.postgres, start.pids.nats).since(&start.cpu);
        Run {
            seconds: start.at.elapsed().as_secs_f64(),
            events,
            bytes,
            objects,
            load_1m: load().0,
            cpu_bench: cpu.bench,
            cpu_postgres: cpu.postgres,
            cpu_nats: cpu.nats,
        }
    }

    /// Events per second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }

    /// Megabytes (10^6 bytes) per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

/// The load averages (1, 5, 15 minutes) from `/proc/loadavg`; zeros if unreadable.
pub fn load() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    (
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    )
}

/// Replays the stream into the fresh database `url` with the index's replay (default
/// configuration; `batch_size` events per transaction if given).
pub async fn postgres(
    pids: Pids,
    nats_url: &str,
    url: &str,
    batch_size: Option<usize>,
) -> Result<Run> {
    let bus = Bus::connect(BusConfig::with_url(nats_url)).await?;
    let defaults = imgcrawl_index::Config::default();
    let config = imgcrawl_index::Config {
        database_url: url.to_string(),
        replay_batch_size: batch_size.unwrap_or(defaults.replay_batch_size),
        ..defaults
    };
    let options = imgcrawl_index::ReplayOptions::default();
    if std::env::var_os("BENCH_PGSS").is_some() {
        let pool = imgcrawl_index::connect(url).await?;
        sqlx::query("create extension pg_stat_statements")
            .execute(&pool)
            .await?;
    }
    let started = Start::now(pids);
    let p = imgcrawl_index::replay(bus, config, options, None, CancellationToken::new())
        .await
        .context("postgres replay")?;
    ensure!(p.caught_up, "the postgres replay did not reach the end");
    let run = Run::finish(started, p.events, p.bytes, 0);
    if std::env::var_os("BENCH_PGSS").is_some() {
        let pool = imgcrawl_index::connect(url).await?;
        let rows: Vec<(f64, i64, String)> = sqlx::query_as("select total_exec_time, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) from pg_stat_statements order by 1 desc limit 15").fetch_all(&pool).await?;
        for (t, c, q) in rows {
            eprintln!("{t:>10.0} ms {c:>6} {q}");
        }
        sqlx::query("select pg_stat_statements_reset()")
            .execute(&pool)
            .await?;
    }
    Ok(run)
}

/// What the object replay reported besides the timing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectCounts {
    /// Objects skipped (already written in this run: duplicates by SHA-256).
    pub skipped: u64,
    /// Objects removed for tombstones.
    pub deleted: u64,
    /// Images whose blob was missing.
    pub missing: u64,
}

/// Rebuilds the bucket into the empty directory `dir` with the store's object replay
/// (default configuration: 16 images at a time).
pub async fn objects(pids: Pids, bus: &Bus, dir: &Path) -> Result<(Run, ObjectCounts)> {
    let config = imgcrawl_store::Config {
        target: dir.display().to_string(),
        ..imgcrawl_store::Config::default()
    };
    let options = imgcrawl_store::ObjectReplayOptions::default();
    let started = Start::now(pids);
    let p = imgcrawl_store::replay_objects(bus, &config, options, None, CancellationToken::new())
        .await
        .context("object replay")?;
    ensure!(p.caught_up, "the object replay did not reach the end");
    let run = Run::finish(started, p.events, p.bytes, p.written);
    let counts = ObjectCounts {
        skipped: p.skipped,
        deleted: p.deleted,
        missing: p.missing,
    };
    Ok((run, counts))
}

/// Puts `images` (key, bytes) into the empty directory `dir` with `object_store`'s
/// local filesystem backend, as the store opens it, [`RAW_IN_FLIGHT`] at a time.
pub async fn raw_put(pids: Pids, images: &[(String, Bytes)], dir: &Path) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
    let store = &store;
    let started = Start::now(pids);
    let bytes: Vec<u64> = futures::stream::iter(images)
        .map(|(key, body)| async move {
            let path = object_store::path::Path::parse(key)?;
            store.put(&path, PutPayload::from(body.clone())).await?;
            Ok::<_, object_store::Error>(body.len() as u64)
        })
        .buffer_unordered(RAW_IN_FLIGHT)
        .try_collect()
        .await?;
    let total = bytes.iter().sum();
    Ok(Run::finish(
        started,
        images.len() as u64,
        total,
        images.len() as u64,
    ))
}
