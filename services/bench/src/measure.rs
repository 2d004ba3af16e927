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
}

impl Run {
    fn finish(started: Instant, events: u64, bytes: u64, objects: u64) -> Run {
        Run {
            seconds: started.elapsed().as_secs_f64(),
            events,
            bytes,
            objects,
            load_1m: load().0,
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
/// configuration: batches of `replay_batch_size`).
pub async fn postgres(nats_url: &str, url: &str) -> Result<Run> {
    let bus = Bus::connect(BusConfig::with_url(nats_url)).await?;
    let config = imgcrawl_index::Config {
        database_url: url.to_string(),
        ..imgcrawl_index::Config::default()
    };
    let options = imgcrawl_index::ReplayOptions::default();
    if std::env::var_os("BENCH_PGSS").is_some() {
        let pool = imgcrawl_index::connect(url).await?;
        sqlx::query("create extension pg_stat_statements").execute(&pool).await?;
    }
    let started = Instant::now();
    let p = imgcrawl_index::replay(bus, config, options, None, CancellationToken::new())
        .await
        .context("postgres replay")?;
    ensure!(p.caught_up, "the postgres replay did not reach the end");
    let run = Run::finish(started, p.events, p.bytes, 0);
    if std::env::var_os("BENCH_PGSS").is_some() {
        let pool = imgcrawl_index::connect(url).await?;
        let rows: Vec<(f64, i64, String)> = sqlx::query_as("select total_exec_time, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) from pg_stat_statements order by 1 desc limit 15").fetch_all(&pool).await?;
        for (t, c, q) in rows { eprintln!("{t:>10.0} ms {c:>6} {q}"); }
        sqlx::query("select pg_stat_statements_reset()").execute(&pool).await?;
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
pub async fn objects(bus: &Bus, dir: &Path) -> Result<(Run, ObjectCounts)> {
    let config = imgcrawl_store::Config {
        target: dir.display().to_string(),
        ..imgcrawl_store::Config::default()
    };
    let options = imgcrawl_store::ObjectReplayOptions::default();
    let started = Instant::now();
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
pub async fn raw_put(images: &[(String, Bytes)], dir: &Path) -> Result<Run> {
    std::fs::create_dir_all(dir)?;
    let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
    let store = &store;
    let started = Instant::now();
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
    Ok(Run::finish(started, images.len() as u64, total, images.len() as u64))
}
