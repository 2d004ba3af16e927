//! The ceilings under the replays (`--ceilings`): how fast this machine reads the
//! stream with an ordered consumer (no decoding, nothing applied), with and without
//! decoding, and how fast PostgreSQL takes plain multi-row `UNNEST` inserts (measured
//! once per round, beside the replays, by `main`).

use std::time::Instant;

use anyhow::{Context, Result};
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use imgcrawl_bus::Bus;
use imgcrawl_events::{decode, EventKind, HEADER_EVENT};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::report::round;

/// Longest a probe reads (the filtered reads are very slow on nats-server 2.10).
const PROBE_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads the whole stream (`filter` subjects, all if empty) once, or for
/// [`PROBE_LIMIT`]; decodes each message when `decode_events`. Returns
/// `(messages, seconds)`.
pub async fn read(bus: &Bus, filter: Vec<String>, decode_events: bool) -> Result<(u64, f64)> {
    let stream = bus.js.get_stream(&bus.config.stream).await?;
    let config = OrderedConfig {
        filter_subjects: filter,
        deliver_policy: DeliverPolicy::All,
        ..Default::default()
    };
    let started = Instant::now();
    let consumer = stream.create_consumer(config).await?;
    if consumer.cached_info().num_pending == 0 {
        return Ok((0, 0.0));
    }
    let mut messages = consumer.messages().await?;
    let mut n = 0u64;
    while let Some(m) = messages.next().await {
        let m = m.context("read")?;
        n += 1;
        if decode_events {
            let header = m.headers.as_ref().and_then(|h| h.get(HEADER_EVENT));
            let _ = decode(m.subject.as_str(), header.map(|h| h.as_str()), &m.payload);
        }
        if m.info().map_or(true, |i| i.pending == 0) || started.elapsed() > PROBE_LIMIT {
            break;
        }
    }
    Ok((n, started.elapsed().as_secs_f64()))
}

/// Inserts `rows` rows into a fresh table shaped like `image_sources` (a two-column
/// primary key, a secondary index), `batch` per `INSERT ... SELECT FROM UNNEST` and
/// transaction. Returns seconds.
pub async fn unnest_inserts(url: &str, rows: u64, batch: u64) -> Result<f64> {
    let pool = imgcrawl_index::connect(url).await?;
    sqlx::query(
        "CREATE TABLE probe (job_id uuid NOT NULL, url text NOT NULL, page_url text NOT NULL,
            status text NOT NULL, seq bigint NOT NULL, at timestamptz NOT NULL,
            PRIMARY KEY (job_id, url))",
    )
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX probe_job_seq ON probe (job_id, seq)")
        .execute(&pool)
        .await?;
    let job = uuid::Uuid::from_u128(7);
    let now = chrono::Utc::now();
    let started = Instant::now();
    let mut seq = 0u64;
    while seq < rows {
        let n = batch.min(rows - seq);
        let seqs: Vec<i64> = (seq..seq + n).map(|s| s as i64).collect();
        let urls: Vec<String> = seqs
            .iter()
            .map(|s| format!("https://cdn1.example.net/site1/img/{s}.jpg?w=640"))
            .collect();
        let pages: Vec<String> = seqs
            .iter()
            .map(|s| format!("https://site1.example.org/p/{}.html", s / 10))
            .collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO probe (job_id, url, page_url, status, seq, at)
             SELECT $1, u.url, u.page_url, 'discovered', u.seq, $2
             FROM UNNEST($3::text[], $4::text[], $5::int8[]) AS u(url, page_url, seq)",
        )
        .bind(job)
        .bind(now)
        .bind(&urls)
        .bind(&pages)
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        seq += n;
    }
    let secs = started.elapsed().as_secs_f64();
    pool.close().await;
    Ok(secs)
}

/// Reads every image of `images` (key, bytes) back from the blob store with the
/// object-store client's `get` (info request, then an ordered consumer per image),
/// `in_flight` at a time. Returns `(bytes, seconds)`.
pub async fn blob_reads(
    bus: &Bus,
    images: &[(String, Bytes)],
    in_flight: usize,
) -> Result<(u64, f64)> {
    let started = Instant::now();
    let sizes: Vec<u64> = futures::stream::iter(images)
        .map(|(key, _)| async move {
            let mut object = bus.blobs.get(sha_of(key)).await?;
            let mut buf = Vec::new();
            object.read_to_end(&mut buf).await?;
            anyhow::Ok(buf.len() as u64)
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    Ok((sizes.iter().sum(), started.elapsed().as_secs_f64()))
}

/// Like [`blob_reads`], with the store's own [`imgcrawl_store::read_blob`]: direct
/// gets of the info and the one chunk, then the hash check.
pub async fn blob_direct_reads(
    bus: &Bus,
    images: &[(String, Bytes)],
    in_flight: usize,
) -> Result<(u64, f64)> {
    let blobs = imgcrawl_bus::blob::BlobStore::open(bus).await?;
    let blobs = &blobs;
    let started = Instant::now();
    let sizes: Vec<u64> = futures::stream::iter(images)
        .map(|(key, _)| async move {
            imgcrawl_store::read_blob(blobs, sha_of(key))
                .await
                .map(|b| b.len() as u64)
        })
        .buffer_unordered(in_flight)
        .try_collect()
        .await?;
    Ok((sizes.iter().sum(), started.elapsed().as_secs_f64()))
}

/// The SHA-256 in an image key (`images/aa/bb/<sha>.<ext>`).
fn sha_of(key: &str) -> &str {
    key.rsplit('/')
        .next()
        .and_then(|f| f.split('.').next())
        .unwrap_or_default()
}

/// Prints and returns one blob-read figure: `images` images of `bytes` in all in `secs`.
fn blob_figure(name: &str, images: usize, bytes: u64, secs: f64) -> Value {
    eprintln!("ceiling {name}: {images} images, {bytes} bytes in {secs:.2} s");
    let secs_nz = secs.max(1e-9);
    json!({ "images": images, "bytes": bytes, "seconds": round(secs),
            "per_sec": round(images as f64 / secs_nz),
            "mb_per_sec": round(bytes as f64 / 1e6 / secs_nz) })
}

/// Rows of the `UNNEST` insert ceiling, and rows per statement and transaction.
pub const UNNEST_ROWS: u64 = 1_000_000;
/// Rows per `INSERT` (and transaction) of the `UNNEST` ceiling.
pub const UNNEST_BATCH: u64 = 5000;

/// The `UNNEST` insert ceiling's runs (seconds each, into a fresh database each) as
/// JSON: rows, batch, each run's rows/s and the median.
pub fn unnest_figure(seconds: &[f64]) -> Value {
    let rates: Vec<f64> = seconds
        .iter()
        .map(|s| UNNEST_ROWS as f64 / s.max(1e-9))
        .collect();
    json!({ "rows": UNNEST_ROWS, "batch": UNNEST_BATCH,
            "runs_per_sec": rates.iter().map(|r| round(*r)).collect::<Vec<_>>(),
            "per_sec": round(crate::report::median(&rates)) })
}

/// Every ceiling but the `UNNEST` inserts, as JSON.
pub async fn all(bus: &Bus, images: &[(String, Bytes)]) -> Result<Value> {
    let consumed = imgcrawl_index::consumed_subjects();
    let downloaded = vec![EventKind::ImageDownloaded.subject()];
    // The filtered reads stop after PROBE_LIMIT: they are the slow path.
    let mut out = serde_json::Map::new();
    for (name, filter, dec) in [
        ("read_all_subjects", Vec::new(), false),
        ("read_all_subjects_and_decode", Vec::new(), true),
        ("read_index_subjects_filtered", consumed, false),
        ("read_image_downloaded_filtered", downloaded, false),
    ] {
        let (n, secs) = read(bus, filter, dec).await?;
        eprintln!("ceiling {name}: {n} messages in {secs:.2} s");
        out.insert(
            name.into(),
            json!({ "messages": n, "seconds": round(secs), "per_sec": round(n as f64 / secs.max(1e-9)) }),
        );
    }
    // The client's `get` unwraps a failed consumer creation inside its reader (seen on
    // nats-server 2.15 with thousands of lingering per-object consumers): catch it in the
    // probe so that such a panic is reported as this probe's failure.
    let probe = std::panic::AssertUnwindSafe(blob_reads(bus, images, 16));
    match futures::FutureExt::catch_unwind(probe).await {
        Ok(Ok((bytes, secs))) => {
            let figure = blob_figure("blob_reads", images.len(), bytes, secs);
            out.insert("blob_reads_16_in_flight".into(), figure);
        }
        Ok(Err(e)) => eprintln!("ceiling blob_reads failed: {e:#}"),
        Err(_) => eprintln!("ceiling blob_reads failed: the client panicked"),
    }
    let (bytes, secs) = blob_direct_reads(bus, images, 16).await?;
    let figure = blob_figure("blob_direct_reads", images.len(), bytes, secs);
    out.insert("blob_direct_gets_16_in_flight".into(), figure);
    Ok(Value::Object(out))
}
