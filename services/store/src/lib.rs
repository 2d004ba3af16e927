//! The store stage: the object projection of the pipeline.
//!
//! `image.downloaded` → the blob's bytes are copied from the NATS blob store into a
//! bucket (a local directory by default, any S3 endpoint by configuration) under a
//! content-addressed key (see [`object_key`]), with Content-Type and user metadata
//! where the backend keeps them, then `image.stored` is published before the ack.
//! `image.deleted` → the image's objects are removed.
//!
//! Byte-identical images from many URLs are one object; a retry rewrites (or skips)
//! the same key.
//!
//! The bucket itself (target, key layout, [`Bucket`]) is `imgcrawl-bucket`, shared with
//! the HTTP API; its items are re-exported here under their old paths.
//!
//! [`copy_image`] is the one put path, shared by the stage and by
//! [`replay_objects`], which rebuilds a bucket from the stream and the blob store;
//! [`verify_bucket`] checks a bucket against the events.

mod config;
mod copy;
mod error;
mod handler;
pub mod replay;
mod tombstone;

use std::sync::Arc;

use imgcrawl_bus::topology::ConsumerSpec;
use imgcrawl_bus::worker::run_worker;
use imgcrawl_bus::Bus;
use imgcrawl_events::EventKind;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use copy::{copy_image, read_blob, Copied, CopyError};
pub use error::StoreError;
pub use imgcrawl_bucket::{bucket, key, target};
pub use imgcrawl_bucket::{
    extension, object_key, open_store, Bucket, BucketError, BucketSettings, ImageObject, S3Config,
    Target,
};
pub use replay::verify::{verify_bucket, BucketProblem, BucketReport};
pub use replay::{
    replay_objects, stream_info, ObjectReplayOptions, ObjectReplayProgress, StreamInfo,
};

/// The durable consumer name of this stage.
pub const CONSUMER: &str = "store";

/// The consumer this stage pulls from.
pub fn consumer_spec(config: &Config) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        CONSUMER,
        [
            EventKind::ImageDownloaded.subject(),
            EventKind::ImageDeleted.subject(),
        ],
    );
    spec.ack_wait = std::time::Duration::from_secs(config.ack_wait_secs.max(1));
    spec
}

/// Runs the store stage until `shutdown` fires; in-flight puts get the worker's grace
/// period, unfinished ones are redelivered.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), StoreError> {
    let store = open_store(&config)?;
    // A download stage in this process hands its blobs over in memory.
    bus.recent_blobs
        .set_capacity(usize::try_from(config.recent_blob_bytes).unwrap_or(usize::MAX));
    tracing::info!(consumer = CONSUMER, target = %config.target, prefix = %config.prefix, "store stage running");
    let stage = Arc::new(handler::Stage {
        blobs: imgcrawl_bus::blob::BlobStore::open(&bus).await?,
        bus: bus.clone(),
        bucket: Bucket::from_config(store, &config).detect_layout().await?,
        tombstones: imgcrawl_bus::tombstones::Tombstones::open(&bus).await?,
    });
    let opts = config.worker_options();
    let handler = move |d| handler::handle(stage.clone(), d);
    run_worker(&bus, consumer_spec(&config), opts, handler, shutdown).await?;
    let (from_memory, from_stream) = bus.recent_blobs.stats();
    tracing::info!(
        from_memory,
        from_stream,
        "store stage stopped: blobs taken from this process's downloads and read from the stream"
    );
    Ok(())
}
