//! The handlers: `image.downloaded` copies the blob into the bucket and publishes
//! `image.stored`; `image.deleted` removes the image's objects.

use std::sync::Arc;

use async_nats::jetstream::object_store::{GetErrorKind, ObjectStore as BlobStore};
use bytes::Bytes;
use chrono::Utc;
use imgcrawl_bus::{Bus, Delivery, Outcome};
use imgcrawl_events::{Event, ImageDeleted, ImageDownloaded, ImageStored};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tracing::{debug, field, instrument, Span};

use crate::bucket::{Bucket, ImageObject};
use crate::key::extension;

/// Everything a handler needs; shared by all handlers of the process.
pub(crate) struct Stage {
    pub bus: Bus,
    pub bucket: Bucket,
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
            deleted(&stage, e).await
        }
        other => Outcome::Poison(format!("the store stage does not handle {}", other.kind())),
    }
}

/// Copies the blob into the bucket (if absent) and publishes `image.stored`.
async fn stored(stage: &Stage, e: &ImageDownloaded, seq: u64) -> Outcome {
    let body = match read_blob(&stage.bus.blobs, &e.sha256).await {
        Ok(body) => body,
        Err(outcome) => return outcome,
    };
    let obj = ImageObject {
        sha256: &e.sha256,
        ext: extension(&e.format, &e.content_type),
        content_type: &e.content_type,
        source_url: &e.url,
        stream_sequence: seq,
    };
    let bytes = body.len() as u64;
    let (object_key, wrote) = match stage.bucket.put_image(&obj, body).await {
        Ok(done) => done,
        Err(err) => return Outcome::retry(err.to_string()),
    };
    debug!(%object_key, bytes, wrote, "stored");
    let event = Event::ImageStored(ImageStored {
        job_id: e.job_id,
        url: e.url.clone(),
        sha256: e.sha256.clone(),
        object_key,
        bytes,
        content_type: e.content_type.clone(),
        occurred_at: Utc::now(),
    });
    match stage.bus.publisher().publish(&event).await {
        Ok(()) => Outcome::Done,
        Err(err) => Outcome::retry(format!("publish image.stored: {err}")),
    }
}

/// Reads the whole blob and checks it hashes to its name. A missing blob is retried
/// (the worker dead-letters it after the last delivery); a blob whose bytes do not
/// match its name is poison.
async fn read_blob(blobs: &BlobStore, sha: &str) -> Result<Bytes, Outcome> {
    let mut object = match blobs.get(sha).await {
        Ok(object) => object,
        Err(err) if err.kind() == GetErrorKind::NotFound => {
            return Err(Outcome::retry(format!("blob {sha} not found")))
        }
        Err(err) => return Err(Outcome::retry(format!("blob {sha}: {err}"))),
    };
    let mut buf = Vec::with_capacity(object.info().size.min(64 << 20));
    if let Err(err) = object.read_to_end(&mut buf).await {
        return Err(Outcome::retry(format!("read blob {sha}: {err}")));
    }
    let actual = hex::encode(Sha256::digest(&buf));
    if actual != sha {
        return Err(Outcome::Poison(format!(
            "blob {sha} holds bytes hashing to {actual}"
        )));
    }
    Ok(Bytes::from(buf))
}

/// Deletes every object of the image.
async fn deleted(stage: &Stage, e: &ImageDeleted) -> Outcome {
    match stage.bucket.delete_image(&e.sha256).await {
        Ok(n) => {
            debug!(objects = n, "deleted");
            Outcome::Done
        }
        Err(err) => Outcome::retry(err.to_string()),
    }
}
