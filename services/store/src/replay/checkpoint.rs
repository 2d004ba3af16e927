//! The object replay's checkpoint: a small JSON object at
//! `_imgcrawl/replay-checkpoint.json` in the bucket (beside the image folder, never in
//! it), saying which stream was replayed up to which sequence into which folder.

use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};

use imgcrawl_bus::identity::StreamIdentity;

use crate::StoreError;

/// Where the checkpoint lives, relative to the bucket's root.
pub const CHECKPOINT_KEY: &str = "_imgcrawl/replay-checkpoint.json";

/// What the checkpoint records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCheckpoint {
    /// The stream's name.
    pub stream: String,
    /// The stream's id ([`imgcrawl_bus::identity`]); none in checkpoints written by
    /// earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// The stream's creation time (RFC 3339), as earlier releases recorded it; none in
    /// newer checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_created: Option<String>,
    /// The image folder the replay wrote to.
    pub prefix: String,
    /// Every `image.downloaded` up to this sequence is in the bucket.
    pub last_seq: u64,
}

impl ObjectCheckpoint {
    /// Whether the replay that wrote this checkpoint read the stream `ours`: the same
    /// id, or, for a checkpoint of an earlier release, the creation time the stream
    /// kept when it was given an id.
    pub fn belongs_to(&self, ours: &StreamIdentity) -> bool {
        match (&self.stream_id, &self.stream_created) {
            (Some(id), _) => self.stream == ours.stream && *id == ours.id,
            (None, Some(t)) => chrono::DateTime::parse_from_rfc3339(t)
                .is_ok_and(|t| ours.matches_legacy(&self.stream, t.with_timezone(&chrono::Utc))),
            (None, None) => false,
        }
    }

    /// The stream the checkpoint names, for messages.
    pub fn describe_stream(&self) -> String {
        match (&self.stream_id, &self.stream_created) {
            (Some(id), _) => format!("{} (id {id})", self.stream),
            (None, Some(t)) => format!("{} created {t}", self.stream),
            (None, None) => self.stream.clone(),
        }
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Bucket(imgcrawl_bucket::BucketError::Object {
        key: CHECKPOINT_KEY.into(),
        detail: e.to_string(),
    })
}

/// Reads the checkpoint, if there is one.
pub async fn read(store: &dyn ObjectStore) -> Result<Option<ObjectCheckpoint>, StoreError> {
    let got = match store.get(&Path::from(CHECKPOINT_KEY)).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let body = got.bytes().await.map_err(err)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| err(format!("unreadable checkpoint: {e}")))
}

/// Writes the checkpoint (one put: atomic on every backend).
pub async fn write(store: &dyn ObjectStore, cp: &ObjectCheckpoint) -> Result<(), StoreError> {
    let body = serde_json::to_vec(cp).map_err(err)?;
    store
        .put(&Path::from(CHECKPOINT_KEY), PutPayload::from(body))
        .await
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn checkpoints_round_trip_and_garbage_is_an_error() {
        let store = InMemory::new();
        assert_eq!(read(&store).await.unwrap(), None);
        let cp = ObjectCheckpoint {
            stream: "IMGCRAWL".into(),
            stream_id: Some("4f1e".into()),
            stream_created: None,
            prefix: "images".into(),
            last_seq: 42,
        };
        write(&store, &cp).await.unwrap();
        assert_eq!(read(&store).await.unwrap(), Some(cp));
        store
            .put(&Path::from(CHECKPOINT_KEY), PutPayload::from_static(b"{"))
            .await
            .unwrap();
        assert!(read(&store).await.is_err());
    }

    #[tokio::test]
    async fn a_checkpoint_of_an_earlier_release_still_reads() {
        let store = InMemory::new();
        let old = br#"{"stream":"IMGCRAWL","stream_created":"2026-01-01T00:00:00.000001Z","prefix":"images","last_seq":7}"#;
        store
            .put(&Path::from(CHECKPOINT_KEY), PutPayload::from_static(old))
            .await
            .unwrap();
        let cp = read(&store).await.unwrap().unwrap();
        assert_eq!(cp.stream_id, None);
        assert_eq!(
            cp.stream_created.as_deref(),
            Some("2026-01-01T00:00:00.000001Z")
        );
        assert_eq!(cp.last_seq, 7);
    }
}
