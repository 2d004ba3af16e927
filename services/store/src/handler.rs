//! The handlers: `image.downloaded` copies the blob into the bucket and publishes
//! `image.stored`; `image.deleted` removes the image's objects (see `tombstone`).

use std::sync::Arc;

use chrono::Utc;
use imgcrawl_bus::{Bus, Delivery, Outcome};
use imgcrawl_events::{Event, ImageDownloaded, ImageStored};
use tracing::{debug, field, instrument, Span};

use crate::bucket::Bucket;

/// Everything a handler needs; shared by all handlers of the process.
pub(crate) struct Stage {
    pub bus: Bus,
    pub blobs: imgcrawl_bus::blob::BlobStore,
    pub bucket: Bucket,
    pub tombstones: imgcrawl_bus::tombstones::Tombstones,
}

/// Handles one delivery.
#[instrument(skip_all, fields(seq = d.stream_sequence, delivered = d.delivered, sha = field::Empty))]
pub(crate) async fn handle(stage: Arc<Stage>, d: Delivery) -> Outcome {
    match &d.event {
        Event::ImageDownloaded(e) => {
            Span::current().record("sha", e.sha256.as_str());
            stored(&stage, e, d.stream_sequence).await
        }
        Event::ImageDeleted(e) => {
            Span::current().record("sha", e.sha256.as_str());
            crate::tombstone::delete(&stage, e).await
        }
        other => Outcome::Poison(format!("the store stage does not handle {}", other.kind())),
    }
}

/// Copies the blob into the bucket (if absent, and unless the image is deleted) and
/// publishes `image.stored`. A missing blob is retried (the worker dead-letters it
/// after the last delivery); a blob whose bytes do not match its name is poison.
async fn stored(stage: &Stage, e: &ImageDownloaded, seq: u64) -> Outcome {
    let copied = match crate::tombstone::copy_unless_deleted(stage, e, seq).await {
        Ok(copied) => copied,
        Err(outcome) => return outcome,
    };
    debug!(object_key = %copied.key, bytes = copied.bytes, wrote = copied.wrote, "stored");
    let wrote = copied.wrote;
    let event = Event::ImageStored(ImageStored {
        job_id: e.job_id,
        url: e.url.clone(),
        sha256: e.sha256.clone(),
        object_key: copied.key,
        bytes: copied.bytes,
        content_type: e.content_type.clone(),
        occurred_at: Utc::now(),
    });
    match stage.bus.publisher().publish(&event).await {
        Ok(()) => {
            let m = imgcrawl_telemetry::metrics();
            m.images_stored.inc();
            if !wrote {
                m.objects_deduplicated.inc();
            }
            Outcome::Done
        }
        Err(err) => Outcome::retry(format!("publish image.stored: {err}")),
    }
}
