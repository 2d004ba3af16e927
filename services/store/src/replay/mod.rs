//! Rebuilding the bucket from the stream and the blob store, and checking it.
//!
//! The object replay reads every `image.deleted` up to the end first (the tombstones:
//! a deleted image stays deleted, as in the index, even if its bytes are downloaded
//! again later), removes those images, then reads `image.downloaded` from its
//! checkpoint on and copies each image with the store stage's own put path
//! ([`copy_image`]): content-addressed keys, and nothing is written where an object of
//! the right size already is. Chunks of events are copied concurrently; after each
//! chunk the checkpoint (see [`checkpoint`]) may advance, so a killed replay loses at
//! most a chunk's worth of work and a new one continues from there. It publishes
//! nothing.

pub mod checkpoint;
mod feed;
mod reader;
mod tombstones;
pub mod verify;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use imgcrawl_bus::retry::{retry_when, Policy};
use imgcrawl_bus::Bus;
use imgcrawl_events::{EventKind, ImageDownloaded};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::copy::{copy_image, Copied, CopyError};
use crate::{open_store, Bucket, Config, StoreError};
use checkpoint::ObjectCheckpoint;
use feed::Feed;
use imgcrawl_bus::blob::BlobStore;
use reader::Reader;
pub use reader::{stream_info, StreamInfo};

/// Attempts per image before the replay gives up (and can be resumed).
const ATTEMPTS: usize = 5;

/// Retries of a failed image write: 200 ms doubling, [`ATTEMPTS`] tries in all.
const COPY_RETRIES: Policy =
    Policy::exponential(Duration::from_millis(200), Duration::from_millis(1600)).tries(ATTEMPTS);

/// How far the object replay goes and how hard it works.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReplayOptions {
    /// Stop after this stream sequence (default, and at most: the stream's last
    /// sequence when the replay starts).
    pub until: Option<u64>,
    /// Images copied at once (default: the store config's `concurrency`).
    pub concurrency: Option<usize>,
    /// Ignore the checkpoint and go through every event again (objects already there
    /// are still skipped): repairs a bucket that lost objects after a replay.
    pub restart: bool,
}

/// Where an object replay is; sent after every chunk and returned at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectReplayProgress {
    /// The checkpoint at start (0 without one).
    pub start: u64,
    /// The sequence it replays to.
    pub end: u64,
    /// The last sequence done.
    pub position: u64,
    /// `image.downloaded` events handled.
    pub events: u64,
    /// Objects written.
    pub written: u64,
    /// Objects already there with the right size (or copied earlier in this run).
    pub skipped: u64,
    /// Objects removed for `image.deleted` tombstones.
    pub deleted: u64,
    /// Images whose blob is missing or corrupt in the blob store: not copied.
    pub missing: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Everything up to `end` is done.
    pub caught_up: bool,
    /// Time since the start.
    pub elapsed: Duration,
}

impl ObjectReplayProgress {
    /// Events handled per second.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// Bytes written per second.
    pub fn bytes_per_sec(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }
}

/// The object replay's working state.
struct Run {
    blobs: BlobStore,
    bucket: Bucket,
    tombstones: HashSet<String>,
    /// Keys copied in this run (bounded): duplicates skip even the existence check.
    done: HashSet<String>,
    concurrency: usize,
    stats: ObjectReplayProgress,
    progress: Option<watch::Sender<ObjectReplayProgress>>,
    started: Instant,
}

/// Rebuilds the bucket `config` names from the stream (see the module docs). Refuses
/// a bucket whose checkpoint names another stream ([`StoreError::ForeignStream`]).
pub async fn replay_objects(
    bus: &Bus,
    config: &Config,
    options: ObjectReplayOptions,
    progress: Option<watch::Sender<ObjectReplayProgress>>,
    shutdown: CancellationToken,
) -> Result<ObjectReplayProgress, StoreError> {
    let started = Instant::now();
    let store = open_store(config)?;
    let stream = stream_info(bus).await?;
    let previous = checkpoint::read(store.as_ref()).await?;
    if let Some(cp) = &previous {
        if !cp.belongs_to(&stream.identity) {
            return Err(StoreError::ForeignStream {
                bucket: cp.describe_stream(),
                stream: stream.identity.to_string(),
            });
        }
    }
    let prefix = config.prefix.trim_matches('/').to_string();
    let start = previous
        .filter(|_| !options.restart)
        .filter(|cp| cp.prefix == prefix)
        .map_or(0, |cp| cp.last_seq);
    let end = options.until.unwrap_or(u64::MAX).min(stream.last_seq);
    let tombstones = tombstones::read(bus, end).await?;
    let mut run = Run {
        blobs: BlobStore::open(bus).await?,
        bucket: Bucket::from_config(store.clone(), config)
            .detect_layout()
            .await?,
        tombstones,
        done: HashSet::new(),
        concurrency: options.concurrency.unwrap_or(config.concurrency).max(1),
        stats: ObjectReplayProgress {
            start,
            end,
            position: start.min(end),
            ..Default::default()
        },
        progress,
        started,
    };
    info!(
        start,
        end,
        tombstones = run.tombstones.len(),
        "object replay started"
    );
    run.delete_tombstoned().await?;
    let mut cp = ObjectCheckpoint {
        stream: stream.identity.stream.clone(),
        stream_id: Some(stream.identity.id.clone()),
        stream_created: None,
        prefix,
        last_seq: start,
    };
    let subjects = vec![EventKind::ImageDownloaded.subject()];
    let mut feed = Feed::start(Reader::bulk(bus, subjects, start, end));
    let mut saved = Instant::now();
    while let Some(chunk) = feed.next(&shutdown).await? {
        let Some(last) = chunk.last().map(|(seq, _)| *seq) else {
            run.stats.caught_up = true;
            cp.last_seq = cp.last_seq.max(end);
            break;
        };
        if !run.copy_chunk(&chunk, &shutdown).await? {
            break; // shutdown: the checkpoint stays before this chunk
        }
        run.stats.position = last;
        cp.last_seq = last;
        if saved.elapsed() > Duration::from_secs(1) {
            checkpoint::write(store.as_ref(), &cp).await?;
            saved = Instant::now();
        }
        run.report();
    }
    run.stats.position = cp.last_seq.min(end.max(start));
    checkpoint::write(store.as_ref(), &cp).await?;
    run.report();
    info!(
        position = run.stats.position,
        written = run.stats.written,
        "object replay stopped"
    );
    Ok(run.stats)
}

impl Run {
    fn report(&mut self) {
        self.stats.elapsed = self.started.elapsed();
        if let Some(tx) = &self.progress {
            tx.send_replace(self.stats.clone());
        }
    }

    async fn delete_tombstoned(&mut self) -> Result<(), StoreError> {
        for sha in &self.tombstones {
            self.stats.deleted += self.bucket.delete_image(sha).await? as u64;
        }
        Ok(())
    }

    /// Copies a chunk's images, `concurrency` at a time; fails only if an image still
    /// cannot be written after [`ATTEMPTS`] tries (the checkpoint stays before it).
    /// False if `shutdown` fired before every image was copied.
    async fn copy_chunk(
        &mut self,
        chunk: &[(u64, ImageDownloaded)],
        shutdown: &CancellationToken,
    ) -> Result<bool, StoreError> {
        if self.done.len() > 100_000 {
            self.done.clear();
        }
        let mut todo = Vec::new();
        for (seq, e) in chunk {
            self.stats.events += 1;
            let key = self
                .bucket
                .key(&e.sha256, crate::extension(&e.format, &e.content_type));
            if self.tombstones.contains(&e.sha256) {
                continue;
            }
            match key {
                Ok(k) => {
                    if self.done.insert(k) {
                        todo.push((*seq, e));
                    } else {
                        self.stats.skipped += 1;
                    }
                }
                Err(err) => warn!(seq, error = %err, "skipping an image with an unusable key"),
            }
        }
        let (blobs, bucket) = (&self.blobs, &self.bucket);
        let mut copies = futures::stream::iter(todo)
            .map(|(seq, e)| async move {
                (
                    seq,
                    copy_with_retries(blobs, bucket, e, seq, shutdown).await,
                )
            })
            .buffer_unordered(self.concurrency);
        while let Some((seq, result)) = copies.next().await {
            let Some(result) = result else {
                return Ok(false);
            };
            match result {
                Ok(Copied {
                    wrote: true, bytes, ..
                }) => {
                    self.stats.written += 1;
                    self.stats.bytes += bytes;
                }
                Ok(_) => self.stats.skipped += 1,
                Err(CopyError::Failed(detail)) => {
                    return Err(StoreError::Bucket(imgcrawl_bucket::BucketError::Object {
                        key: format!("image of event {seq}"),
                        detail,
                    }))
                }
                Err(e) => {
                    warn!(seq, error = %e, "cannot rebuild this image from the blob store");
                    self.stats.missing += 1;
                }
            }
        }
        Ok(true)
    }
}

/// Copies one image, retrying failed writes ([`COPY_RETRIES`]); `None` on shutdown.
async fn copy_with_retries(
    blobs: &BlobStore,
    bucket: &Bucket,
    e: &ImageDownloaded,
    seq: u64,
    shutdown: &CancellationToken,
) -> Option<Result<Copied, CopyError>> {
    let what = format!("copy of event {seq}");
    let copy = || copy_image(blobs, bucket, e, seq);
    let transient = |e: &CopyError| matches!(e, CopyError::Failed(_));
    retry_when(COPY_RETRIES, &what, shutdown, copy, transient).await
}
