//! The backup target: a directory or an S3 bucket (through `object_store`, opened as
//! the image bucket is), holding `manifest.json`, `segments/<stream>/…` and
//! `snapshots/<id>/<stream>/…`.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::error::storage;
use crate::manifest::{Manifest, MANIFEST};
use crate::{BackupError, Config};

/// An opened backup target; cheap to clone.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// The target as configured (for messages).
    pub describe: String,
}

impl Target {
    /// Opens the target `config` names (a directory is created if missing).
    pub fn open(config: &Config) -> Result<Target, BackupError> {
        Ok(Target {
            store: imgcrawl_bucket::open_store(config)?,
            describe: config.target.clone(),
        })
    }

    /// The manifest, `None` for a target that holds no backup yet.
    pub async fn manifest(&self) -> Result<Option<Manifest>, BackupError> {
        let Some(bytes) = self.get(MANIFEST).await? else {
            return Ok(None);
        };
        Manifest::parse(&bytes)
            .map(Some)
            .map_err(|e| BackupError::Manifest(format!("{}: {e}", self.describe)))
    }

    /// Writes the manifest (one put: readers see the old one or the new one).
    pub async fn write_manifest(&self, m: &Manifest) -> Result<(), BackupError> {
        let body =
            serde_json::to_vec_pretty(m).map_err(|e| BackupError::Manifest(e.to_string()))?;
        self.put(MANIFEST, body.into()).await
    }

    /// Stores an object.
    pub async fn put(&self, name: &str, body: Bytes) -> Result<(), BackupError> {
        self.store
            .put(&Path::from(name), PutPayload::from_bytes(body))
            .await
            .map_err(storage(format!("put {name}")))?;
        Ok(())
    }

    /// An object's bytes, `None` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>, BackupError> {
        match self.store.get(&Path::from(name)).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(storage(format!("read {name}"))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage(format!("get {name}"))(e)),
        }
    }

    /// Removes an object (absent is fine).
    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        match self.store.delete(&Path::from(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage(format!("delete {name}"))(e)),
        }
    }

    /// Every object name under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        use futures::TryStreamExt;
        let items: Vec<_> = self
            .store
            .list(Some(&Path::from(prefix)))
            .try_collect()
            .await
            .map_err(storage(format!("list {prefix}")))?;
        Ok(items.into_iter().map(|m| m.location.to_string()).collect())
    }
}
