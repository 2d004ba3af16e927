//! The blob store (image bytes by SHA-256) on the fast paths: direct gets and
//! pipelined publishes instead of the object-store client's API requests and consumers.
//!
//! The layout is the JetStream object store's, so any client reads what this writes:
//! chunks of at most 128 KiB on `$O.<bucket>.C.<nuid>`, then the JSON [`ObjectInfo`] on
//! `$O.<bucket>.M.<base64url(name)>`.
//!
//! * [`BlobStore::put_if_absent`] sends a new blob's chunks (pipelined), awaits their
//!   PubAcks, then sends its info (an info is never stored ahead of its chunks). A blob
//!   of one chunk goes to a chunk subject named by its hash, on condition that it is
//!   empty, so no lookup precedes the write. Both without
//!   the `Nats-Rollup` header: a rollup makes the
//!   server purge the subject, which walks every consumer of the blob stream (measured:
//!   two thirds of the server's CPU in the benchmark). Replacing an existing blob
//!   (deleted, or another size) goes through the client's `put`, which rolls up and
//!   purges the old chunks.
//! * [`BlobStore::info`] and [`BlobStore::read`] use direct gets (no JetStream API
//!   request, no consumer); a blob of more than one chunk is read through the client,
//!   which creates an ordered consumer for it.
//! * [`BlobStore::read`] first takes a blob this process has just stored, when a store
//!   stage in the process keeps them ([`crate::recent`]): the bytes are already in the
//!   stream, and reading them back cost two direct gets per image.

use std::collections::HashMap;

use async_nats::jetstream::context::{Publish, PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::object_store::{ObjectInfo, ObjectMetadata, ObjectOptions, ObjectStore};
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::Context;
use bytes::Bytes;
use futures::future::try_join_all;
use imgcrawl_events::Sha256;
use tokio::io::AsyncReadExt;

use crate::recent::{RecentBlob, RecentBlobs};
use crate::{Bus, BusError};

/// Chunk size of the object store (the client's default, so every reader agrees).
pub const CHUNK_BYTES: usize = 128 * 1024;

fn blob_err(name: &str, detail: impl std::fmt::Display) -> BusError {
    BusError::Blob {
        name: name.to_string(),
        detail: detail.to_string(),
    }
}

/// Handle to the blob store; cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    js: Context,
    stream: Stream<()>,
    store: ObjectStore,
    bucket: String,
    recent: std::sync::Arc<RecentBlobs>,
}

impl BlobStore {
    /// The blob store of `bus` (no request to the server).
    pub async fn open(bus: &Bus) -> Result<BlobStore, BusError> {
        let bucket = bus.config.blob_bucket.clone();
        let stream = bus
            .js
            .get_stream_no_info(format!("OBJ_{bucket}"))
            .await
            .map_err(|e| blob_err(&bucket, e))?;
        Ok(BlobStore {
            js: bus.js.clone(),
            stream,
            store: bus.blobs.clone(),
            bucket,
            recent: bus.recent_blobs.clone(),
        })
    }

    fn meta_subject(&self, name: &str) -> String {
        format!("$O.{}.M.{}", self.bucket, base64url(name.as_bytes()))
    }

    /// The last message on `subject`, `None` if there is none.
    async fn last(&self, subject: &str) -> Result<Option<Bytes>, BusError> {
        match self.stream.direct_get_last_for_subject(subject).await {
            Ok(m) => Ok(Some(m.payload)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(blob_err(subject, e)),
        }
    }

    /// The info of blob `name` (deleted ones included), `None` if it never existed.
    pub async fn info(&self, name: &str) -> Result<Option<ObjectInfo>, BusError> {
        let Some(payload) = self.last(&self.meta_subject(name)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&payload)
            .map(Some)
            .map_err(|e| blob_err(name, format!("bad object info: {e}")))
    }

    /// The bytes of blob `name`, `None` if it does not exist (or was deleted). The
    /// caller checks them against the name. A blob this process has just stored is
    /// taken from memory, once ([`crate::recent`]).
    pub async fn read(&self, name: &str) -> Result<Option<Bytes>, BusError> {
        if let Some(blob) = self.recent.take(name) {
            return Ok(Some(blob.body));
        }
        let Some(info) = self.info(name).await?.filter(|i| !i.deleted) else {
            return Ok(None);
        };
        if info.chunks > 1 || info.options.as_ref().is_some_and(|o| o.link.is_some()) {
            return self.read_through_client(name).await;
        }
        let chunk = format!("$O.{}.C.{}", self.bucket, info.nuid);
        let body = if info.chunks == 0 {
            Bytes::new()
        } else {
            self.last(&chunk)
                .await?
                .ok_or_else(|| blob_err(name, "chunk missing"))?
        };
        if body.len() != info.size {
            return Err(blob_err(
                name,
                format!("{} bytes, info says {}", body.len(), info.size),
            ));
        }
        Ok(Some(body))
    }

    /// Takes blob `name` if this process has just stored it (each once): the bytes the
    /// writer hashed, and whether it wrote them ([`RecentBlob`]). `None`: read it.
    pub fn take_recent(&self, name: &str) -> Option<RecentBlob> {
        self.recent.take(name)
    }

    async fn read_through_client(&self, name: &str) -> Result<Option<Bytes>, BusError> {
        let mut object = match self.store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == async_nats::jetstream::object_store::GetErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(blob_err(name, e)),
        };
        let mut buf = Vec::with_capacity(object.info().size.min(64 << 20));
        object
            .read_to_end(&mut buf)
            .await
            .map_err(|e| blob_err(name, e))?;
        Ok(Some(buf.into()))
    }

    /// Stores `body` under `sha` (its lowercase hex SHA-256) unless a blob of that name
    /// and size is there (its info is written after its chunks, so an info means the
    /// bytes are stored); returns whether it wrote. A blob of one chunk (every image up
    /// to 128 KiB) is written without asking first ([`put_one_chunk`](Self::put_one_chunk));
    /// a larger one after looking its info up. Two racing writers of the same new bytes
    /// both succeed; readers take the last info, whose chunks are complete.
    pub async fn put_if_absent(
        &self,
        sha: &str,
        body: &Bytes,
        content_type: &str,
    ) -> Result<bool, BusError> {
        let wrote = if (1..=CHUNK_BYTES).contains(&body.len()) {
            self.put_one_chunk(sha, body, content_type).await?
        } else {
            match self.info(sha).await? {
                Some(i) if !i.deleted && i.size == body.len() => false,
                Some(_) => self.replace(sha, body, content_type).await.map(|()| true)?,
                None => self.put_new(sha, body, content_type).await.map(|()| true)?,
            }
        };
        // Stored (now or before): a store stage in this process may take it from here.
        self.recent.keep(sha, body, wrote);
        Ok(wrote)
    }

    /// A one-chunk blob, without the info lookup that cost a direct get per image (12 %
    /// of nats-server's CPU in the crawl benchmark). Its chunk goes to a subject named
    /// by the hash (`$O.<bucket>.C.<sha>`: the chunk's "nuid" is the hash) on condition
    /// that the subject is empty (`Nats-Expected-Last-Subject-Sequence: 0`, checked by
    /// the server, which stores nothing when it refuses), then its info, also only if
    /// none is there. Only a refusal costs a lookup:
    /// * chunk refused: the bytes are stored already. A live info of this size means the
    ///   blob exists; no info (a writer stopped between its chunk and its info) or a
    ///   deleted one (its chunks had another nuid) gets an info pointing at the chunk.
    /// * info refused: an info exists. A live one of another nuid and this size is a
    ///   blob an earlier version stored: the new chunk is purged again and nothing else
    ///   changes. A deleted one is replaced; one of this nuid is a racing writer's.
    async fn put_one_chunk(
        &self,
        sha: &str,
        body: &Bytes,
        content_type: &str,
    ) -> Result<bool, BusError> {
        let chunk = format!("$O.{}.C.{sha}", self.bucket);
        if !self.send_if_empty(sha, chunk.clone(), body.clone()).await? {
            return match self.info(sha).await? {
                Some(i) if !i.deleted && i.size == body.len() => Ok(false),
                _ => self
                    .write_info(sha, body.len(), content_type, false)
                    .await
                    .map(|_| true),
            };
        }
        if self.write_info(sha, body.len(), content_type, true).await? {
            return Ok(true);
        }
        match self.info(sha).await? {
            Some(i) if !i.deleted && i.size == body.len() && i.nuid != sha => {
                self.stream
                    .purge()
                    .filter(chunk)
                    .await
                    .map_err(|e| blob_err(sha, format!("purge the extra chunk: {e}")))?;
                Ok(false)
            }
            Some(i) if !i.deleted && i.nuid == sha => Ok(true),
            _ => self
                .write_info(sha, body.len(), content_type, false)
                .await
                .map(|_| true),
        }
    }

    /// Publishes `payload` on `subject` if nothing is stored there; false if the server
    /// refused because something is.
    async fn send_if_empty(
        &self,
        sha: &str,
        subject: String,
        payload: Bytes,
    ) -> Result<bool, BusError> {
        let publish = Publish::build()
            .payload(payload)
            .expected_last_subject_sequence(0);
        let ack = self
            .js
            .send_publish(subject, publish)
            .await
            .map_err(|e| blob_err(sha, format!("publish: {e}")))?;
        match ack.await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(e) => Err(blob_err(sha, format!("put: {e}"))),
        }
    }

    /// The info of a one-chunk blob whose chunk is on `$O.<bucket>.C.<sha>`; with
    /// `if_none`, only if no info is stored (false if one is).
    async fn write_info(
        &self,
        sha: &str,
        size: usize,
        content_type: &str,
        if_none: bool,
    ) -> Result<bool, BusError> {
        let info = object_info(&self.bucket, sha, sha, size, content_type)?;
        let meta: Bytes = serde_json::to_vec(&info)
            .map_err(|e| blob_err(sha, e))?
            .into();
        if if_none {
            return self.send_if_empty(sha, self.meta_subject(sha), meta).await;
        }
        self.send(sha, self.meta_subject(sha), meta)
            .await?
            .await
            .map_err(|e| blob_err(sha, format!("put info: {e}")))?;
        Ok(true)
    }

    /// Writes a blob that does not exist yet: the chunks (pipelined), then, once every
    /// chunk is acknowledged, the info. The info is what says "this blob exists"
    /// ([`put_if_absent`](Self::put_if_absent) skips a blob whose info is there), so it
    /// must never be stored ahead of a chunk: pipelining both, a leader election could
    /// keep the info and lose a chunk, and the retry then skipped the write for good
    /// ("chunk missing" in the store stage, found by the chaos leader-kill case).
    async fn put_new(&self, sha: &str, body: &Bytes, content_type: &str) -> Result<(), BusError> {
        let nuid = uuid::Uuid::new_v4().simple().to_string();
        let info = object_info(&self.bucket, sha, &nuid, body.len(), content_type)?;
        let meta = serde_json::to_vec(&info).map_err(|e| blob_err(sha, e))?;
        let chunk_subject = format!("$O.{}.C.{nuid}", self.bucket);
        let mut acks: Vec<PublishAckFuture> = Vec::new();
        for at in (0..body.len()).step_by(CHUNK_BYTES) {
            let end = (at + CHUNK_BYTES).min(body.len());
            acks.push(
                self.send(sha, chunk_subject.clone(), body.slice(at..end))
                    .await?,
            );
        }
        try_join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
            .await
            .map_err(|e| blob_err(sha, format!("put chunks: {e}")))?;
        self.send(sha, self.meta_subject(sha), meta.into())
            .await?
            .await
            .map_err(|e| blob_err(sha, format!("put info: {e}")))?;
        Ok(())
    }

    async fn send(
        &self,
        sha: &str,
        subject: String,
        payload: Bytes,
    ) -> Result<PublishAckFuture, BusError> {
        self.js
            .publish(subject, payload)
            .await
            .map_err(|e| blob_err(sha, format!("publish: {e}")))
    }

    /// Replaces an existing (deleted or different) blob with the client's `put`.
    async fn replace(&self, sha: &str, body: &[u8], content_type: &str) -> Result<(), BusError> {
        let meta = ObjectMetadata {
            name: sha.to_string(),
            metadata: HashMap::from([("content-type".to_string(), content_type.to_string())]),
            ..Default::default()
        };
        let mut reader = body;
        self.store
            .put(meta, &mut reader)
            .await
            .map_err(|e| blob_err(sha, format!("put: {e}")))?;
        Ok(())
    }
}

/// The object info the client would write for these bytes.
fn object_info(
    bucket: &str,
    sha: &str,
    nuid: &str,
    size: usize,
    content_type: &str,
) -> Result<ObjectInfo, BusError> {
    let digest = Sha256::parse(sha).map_err(|_| blob_err(sha, "name is not a hex sha-256"))?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    Ok(ObjectInfo {
        name: sha.to_string(),
        description: None,
        metadata: HashMap::from([("content-type".to_string(), content_type.to_string())]),
        headers: None,
        options: Some(ObjectOptions {
            link: None,
            max_chunk_size: Some(CHUNK_BYTES),
        }),
        bucket: bucket.to_string(),
        nuid: nuid.to_string(),
        size,
        chunks: size.div_ceil(CHUNK_BYTES),
        modified: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now)).ok(),
        digest: Some(format!("SHA-256={}", base64url(digest.as_bytes()))),
        deleted: false,
    })
}

/// Base64 with the URL-safe alphabet and padding (how the object store names metadata
/// subjects and writes digests).
pub fn base64url(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn base64url_pads_and_uses_the_url_alphabet() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg==");
        assert_eq!(base64url(b"fo"), "Zm8=");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
    }

    #[test]
    fn object_info_matches_the_client_layout() {
        let info = object_info("b", ABC, "n1", CHUNK_BYTES + 1, "image/png").unwrap();
        assert_eq!(info.chunks, 2);
        assert_eq!(
            info.digest.as_deref(),
            Some("SHA-256=ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=")
        );
        let json: serde_json::Value = serde_json::to_value(&info).unwrap();
        assert_eq!(json["options"]["max_chunk_size"], CHUNK_BYTES);
        assert!(json["mtime"].is_string());
        assert!(json.get("deleted").is_none());
        assert!(object_info("b", "not hex", "n", 1, "x").is_err());
    }
}
