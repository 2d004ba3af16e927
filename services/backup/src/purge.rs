//! Takedown: an image purged for good.
//!
//! 1. The purge is recorded in KV bucket [`PURGED_BUCKET`] (key: the SHA-256; archived
//!    with the other buckets, so every later manifest lists it and a restore skips
//!    the image's bytes in older segments).
//! 2. `image.deleted` is published (reason `purged: …`): the index marks the image
//!    deleted, the store stage removes its objects from the bucket and records a
//!    tombstone, and every replay skips it.
//! 3. The blob is deleted from the JetStream object store: its chunks are purged from
//!    the blob stream (so no future segment holds them); what stays is the object's
//!    deleted marker (name, size, digest; no bytes).
//!
//! Events never held the bytes: they keep the SHA-256, size, format and source URLs,
//! which is what the index needs to show the image was removed.

use std::time::Duration;

use async_nats::jetstream::kv;
use async_nats::jetstream::object_store::DeleteErrorKind;
use chrono::Utc;
use imgcrawl_bus::Bus;
use imgcrawl_events::{Event, ImageDeleted, Sha256};
use serde::{Deserialize, Serialize};

use crate::error::nats;
use crate::{BackupError, PURGED_BUCKET};

/// What the purged-images bucket records per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurgeRecord {
    /// When it was purged.
    pub purged_at: chrono::DateTime<Utc>,
    /// Why, for people.
    pub reason: Option<String>,
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Whether the blob store still had the bytes (now gone).
    pub blob_deleted: bool,
}

/// The purged-images bucket's configuration.
pub fn kv_config() -> kv::Config {
    kv::Config {
        bucket: PURGED_BUCKET.into(),
        description: "sha256 of purged images (takedowns): their bytes never come back".into(),
        history: 1,
        max_age: Duration::ZERO,
        ..Default::default()
    }
}

/// Opens the purged-images bucket, creating it if needed.
pub async fn ensure_bucket(bus: &Bus) -> Result<kv::Store, BackupError> {
    Ok(imgcrawl_bus::topology::ensure_kv(&bus.js, &bus.config, kv_config()).await?)
}

/// Purges image `sha256` (lowercase hex) for good; idempotent.
pub async fn purge(bus: &Bus, sha256: &str, reason: Option<String>) -> Result<Purged, BackupError> {
    let sha = Sha256::parse(sha256).map_err(|_| {
        BackupError::BadRequest(format!("{sha256:?} is not a lowercase hex sha-256"))
    })?;
    let sha = sha.to_string();
    let store = ensure_bucket(bus).await?;
    let record = PurgeRecord {
        purged_at: Utc::now(),
        reason: reason.clone(),
    };
    let body = serde_json::to_vec(&record).map_err(|e| BackupError::BadRequest(e.to_string()))?;
    store
        .put(&sha, body.into())
        .await
        .map_err(|e| nats("record the purge")(&e))?;
    let event = Event::ImageDeleted(ImageDeleted {
        sha256: sha.clone(),
        reason: Some(match &reason {
            Some(r) => format!("purged: {r}"),
            None => "purged".into(),
        }),
        occurred_at: record.purged_at,
    });
    bus.publisher().publish(&event).await?;
    let blob_deleted = match bus.blobs.delete(&sha).await {
        Ok(()) => true,
        Err(e) if e.kind() == DeleteErrorKind::NotFound => false,
        Err(e) => return Err(nats(format!("delete blob {sha}"))(&e)),
    };
    Ok(Purged { blob_deleted })
}

/// Whether `sha256` was purged.
pub async fn is_purged(bus: &Bus, sha256: &str) -> Result<bool, BackupError> {
    let store = ensure_bucket(bus).await?;
    let entry = store
        .entry(sha256)
        .await
        .map_err(|e| nats("read the purged images")(&e))?;
    Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
}
