//! Tombstones: the SHA-256s of deleted images, in KV bucket `imgcrawl-tombstones`.
//!
//! `image.deleted` is the truth (the index keeps its own tombstone table, and the
//! object replay reads deletions from the stream); this bucket lets a live stage ask
//! "is this image deleted?" in one round trip. The store stage writes a tombstone
//! before it removes an image's objects and checks before and after every put, so
//! bytes downloaded again after a deletion never reappear in the bucket. Opened (and
//! created) on first use; entries never expire.

use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Bus, BusError};

/// The bucket's name.
pub const TOMBSTONE_BUCKET: &str = "imgcrawl-tombstones";

/// What a tombstone records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    /// When the deletion was asked for (the event's `occurred_at`).
    pub deleted_at: DateTime<Utc>,
}

/// Handle to the tombstone bucket.
#[derive(Clone)]
pub struct Tombstones {
    kv: kv::Store,
}

fn kv_err(e: impl std::fmt::Display) -> BusError {
    BusError::Kv {
        bucket: TOMBSTONE_BUCKET.into(),
        detail: e.to_string(),
    }
}

/// The tombstone bucket's configuration (storage and replicas are set by
/// [`crate::topology::ensure_kv`]).
pub fn kv_config() -> kv::Config {
    kv::Config {
        bucket: TOMBSTONE_BUCKET.into(),
        description: "sha256 of deleted images".into(),
        history: 1,
        max_age: Duration::ZERO,
        ..Default::default()
    }
}

impl Tombstones {
    /// Opens the bucket, creating it if needed (idempotent).
    pub async fn open(bus: &Bus) -> Result<Tombstones, BusError> {
        let kv = crate::topology::ensure_kv(&bus.js, &bus.config, kv_config()).await?;
        Ok(Tombstones { kv })
    }

    /// Records that the image `sha256` is deleted (idempotent).
    pub async fn put(&self, sha256: &str, deleted_at: DateTime<Utc>) -> Result<(), BusError> {
        let body = serde_json::to_vec(&Tombstone { deleted_at }).map_err(kv_err)?;
        self.kv.put(sha256, body.into()).await.map_err(kv_err)?;
        Ok(())
    }

    /// Whether the image `sha256` is deleted.
    pub async fn contains(&self, sha256: &str) -> Result<bool, BusError> {
        let entry = self.kv.entry(sha256).await.map_err(kv_err)?;
        Ok(entry.is_some_and(|e| e.operation == kv::Operation::Put))
    }
}
