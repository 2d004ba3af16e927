//! The download stage: `image.discovered` in, `image.downloaded` or `image.rejected` out.
//!
//! For each discovered image URL: read the job (stopped jobs reject at once), GET the
//! URL through the shared [`imgcrawl_fetch::Fetcher`] (address guard, redirects,
//! robots.txt, per-host politeness), read the body under a size cap and a process-wide
//! [memory budget](budget), detect the real format from the bytes ([`sniff`]), validate
//! the structure and refuse decompression bombs ([`validate`]), apply the job's
//! [`filters`], hash (SHA-256), put the bytes into the blob store if absent, and
//! publish the outcome before acking.
//!
//! Byte-identical images at different URLs share one blob and produce one
//! `image.downloaded` per URL with the same `sha256`.

pub mod budget;
mod config;
mod error;
pub mod failure;
pub mod filters;
mod handler;
pub mod opt_out;
pub mod sniff;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use imgcrawl_bus::topology::ConsumerSpec;
use imgcrawl_bus::worker::{run_work, Work};
use imgcrawl_bus::Bus;
use imgcrawl_events::EventKind;
use imgcrawl_fetch::Fetcher;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::DownloadError;
pub use handler::ACCEPT;
pub use imgcrawl_events::Format;
pub use validate::{inspect, ImageInfo, Rejection};

/// The durable consumer name of this stage.
pub const CONSUMER: &str = "download";

/// The consumer this stage pulls from, with `config`'s ack wait: `image.discovered`
/// without a partition (published by hand or by a release before partitions), pulled
/// by every replica; its [`ConsumerSpec::partition`]s take the routed ones.
pub fn consumer_spec(config: &Config) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(CONSUMER, [EventKind::ImageDiscovered.subject()]);
    spec.ack_wait = Duration::from_secs(config.ack_wait_secs.max(1));
    // room for a parked URL's retries, and one more delivery to reject it
    let parked = i64::from(config.park_deliveries.max(config.retry_deliveries));
    spec.max_deliver = spec.max_deliver.max(parked + 2);
    spec
}

/// What the download stage consumes: [`consumer_spec`], and `image.discovered` split
/// by host, one consumer per partition (`download-p<n>`), each pulled by one replica at
/// a time.
pub fn work(config: &Config) -> Work {
    let spec = consumer_spec(config);
    Work {
        stage: CONSUMER.into(),
        shared: Some(spec.clone()),
        partitioned: Some(spec),
    }
}

/// Runs the download stage until `shutdown` fires; in-flight downloads get the worker's
/// grace period, unfinished ones are redelivered.
pub async fn run(
    bus: Bus,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), DownloadError> {
    if config.fetch.host_leases {
        config
            .fetch
            .enable_leases(imgcrawl_bus::hosts::open(&bus).await?);
    }
    let fetcher = Fetcher::new(config.fetch.clone())?;
    let work = work(&config);
    let spec = consumer_spec(&config);
    // A transient failure must become a rejection before the worker dead-letters it.
    let retry_deliveries = i64::from(config.retry_deliveries.max(1))
        .min(spec.max_deliver - 1)
        .max(1);
    let park_deliveries = i64::from(config.park_deliveries)
        .max(retry_deliveries)
        .min(spec.max_deliver - 1);
    let opts = config.worker_options();
    let blobs = imgcrawl_bus::blob::BlobStore::open(&bus).await?;
    let stage = Arc::new(handler::Stage {
        bus: bus.clone(),
        blobs,
        fetcher,
        memory: budget::MemoryBudget::new(config.memory_budget_bytes),
        config,
        retry_deliveries,
        park_deliveries,
    });
    tracing::info!(
        consumer = CONSUMER,
        concurrency = opts.concurrency,
        "download stage running"
    );
    let handler = move |d| handler::handle(stage.clone(), d);
    run_work(&bus, work, opts, handler, shutdown).await?;
    Ok(())
}
