//! Before the timed runs: a private nats-server and PostgreSQL (free loopback ports,
//! temp dirs, stopped on drop; see [`crate::servers`]), the blob store filled,
//! the history published into the fresh stream, and the baseline's images in memory.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::Event;
use serde_json::{json, Value};

use crate::blobs::{self, BlobSpec};
use crate::history::{History, Shape};
use crate::publish::{publish, Published};
use crate::report::round;
use crate::servers::{nats_binary, Nats, Postgres};

/// PostgreSQL settings: the test harness's (no `fsync`, no full-page writes;
/// `synchronous_commit` stays on), plus room for the working set.
pub const PG_SETTINGS: [(&str, &str); 5] = [
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "256MB"),
    ("max_wal_size", "2GB"),
];

/// What the benchmark runs against.
pub struct Fixture {
    /// The private nats-server holding the stream and the blob store.
    pub nats: Nats,
    /// The private PostgreSQL server.
    pub pg: Postgres,
    /// Connected to `nats`.
    pub bus: Bus,
    /// Key and bytes of every image the bucket must hold (downloaded, not deleted).
    pub images: Vec<(String, Bytes)>,
    /// What was generated, for the report.
    pub summary: Value,
}

/// How much history to make.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// At least this many events.
    pub events: u64,
    /// Distinct images in the blob store.
    pub images: u64,
    /// Mean pages per job.
    pub pages_per_job: u64,
    /// Seed.
    pub seed: u64,
    /// Extra PostgreSQL settings, `name=value`.
    pub pg_settings: Vec<String>,
}

/// Starts the servers and publishes the history.
pub async fn prepare(sizes: &Sizes) -> Result<Fixture> {
    let nats = Nats::start(&nats_binary()).await?;
    let extra: Vec<(&str, &str)> = sizes
        .pg_settings
        .iter()
        .filter_map(|s| s.split_once('='))
        .collect();
    let settings: Vec<(&str, &str)> = PG_SETTINGS.iter().copied().chain(extra).collect();
    let pg = Postgres::start(&settings).await?;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await?;
    let spec = BlobSpec {
        seed: sizes.seed,
        min_bytes: 5_000,
        max_bytes: 30_000,
    };
    let t = Instant::now();
    let blobs = blobs::put_all(&bus, spec, sizes.images, 16).await?;
    let blob_secs = t.elapsed().as_secs_f64();
    let blob_bytes: u64 = blobs.iter().map(|b| b.size).sum();
    eprintln!(
        "blob store: {} images, {:.0} MB in {blob_secs:.1} s",
        blobs.len(),
        blob_bytes as f64 / 1e6
    );
    let shape = Shape {
        events: sizes.events,
        pages_per_job: sizes.pages_per_job,
        concurrent_jobs: 4,
        deletions_per_wave: 12,
        seed: sizes.seed,
    };
    let mut history = History::new(shape, &blobs);
    let (mut downloaded, mut deleted) = (HashSet::new(), HashSet::new());
    let publisher = bus.publisher();
    let mut published = Published::default();
    let t = Instant::now();
    loop {
        let wave = history.next_wave();
        if wave.is_empty() {
            break;
        }
        for e in &wave {
            match e {
                Event::ImageDownloaded(d) => downloaded.insert(d.sha256.clone()),
                Event::ImageDeleted(d) => deleted.insert(d.sha256.clone()),
                _ => false,
            };
        }
        publish(&publisher, &wave, &mut published).await?;
        eprint!("\rpublished {} events", history.total);
    }
    let publish_secs = t.elapsed().as_secs_f64();
    eprintln!(" in {publish_secs:.1} s");
    let mut images = Vec::new();
    for (n, b) in blobs.iter().enumerate() {
        if downloaded.contains(&b.sha256) && !deleted.contains(&b.sha256) {
            let ext = imgcrawl_store::extension(b.format, b.content_type());
            let key = imgcrawl_store::object_key("images", &b.sha256, ext).context("image key")?;
            images.push((key, spec.make(n as u64).0));
        }
    }
    let image_bytes: u64 = images.iter().map(|(_, b)| b.len() as u64).sum();
    let summary = json!({
        "events": history.total,
        "events_by_kind": history.counts,
        "jobs": history.jobs(),
        "event_payload_bytes": published.payload_bytes,
        "duplicates_reported_by_the_server": published.duplicates,
        "publish_seconds": round(publish_secs),
        "publish_events_per_sec": round(history.total as f64 / publish_secs.max(1e-9)),
        "blob_store_images": blobs.len(),
        "blob_store_bytes": blob_bytes,
        "blob_store_put_seconds": round(blob_secs),
        "distinct_images_downloaded": downloaded.len(),
        "distinct_images_deleted": deleted.len(),
        "bucket_images": images.len(),
        "bucket_bytes": image_bytes,
    });
    Ok(Fixture {
        nats,
        pg,
        bus,
        images,
        summary,
    })
}
