//! Copying one downloaded image from the blob store into the bucket: the one put path
//! of the object projection, shared by the store stage and the object replay.

use bytes::Bytes;
use imgcrawl_bus::blob::BlobStore;
use imgcrawl_events::ImageDownloaded;
use imgcrawl_events::Sha256;

use crate::bucket::{Bucket, ImageObject};
use crate::key::extension;

/// What [`copy_image`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The object key.
    pub key: String,
    /// The image's size in bytes.
    pub bytes: u64,
    /// Whether it wrote (false: an object of the right size was already there).
    pub wrote: bool,
}

/// Why an image could not be copied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// The blob is not in the blob store (not yet visible, or purged).
    #[error("blob {0} not found")]
    Missing(String),
    /// The blob's bytes do not hash to its name: no retry can fix it.
    #[error("{0}")]
    Corrupt(String),
    /// Reading the blob or writing the object failed; worth retrying.
    #[error("{0}")]
    Failed(String),
}

/// Copies the image `e` announces (its blob, under its content-addressed key, with
/// Content-Type and user metadata) unless an object of its size is already there.
/// `seq` is the stream sequence of `e` (user metadata `stream-sequence`). The blob is
/// read with direct gets (no consumer per image, see [`BlobStore::read`]), unless the
/// download stage of this process has just stored it ([`BlobStore::take_recent`]): then
/// the bytes are the ones it hashed (not hashed again), and if the blob was new to the
/// blob store, the bucket (its projection) is not asked whether it has the object
/// either. Each look-up is a request on S3 and a blocking-pool task and a file open on
/// a local bucket; writing the same bytes again would be harmless.
pub async fn copy_image(
    blobs: &BlobStore,
    bucket: &Bucket,
    e: &ImageDownloaded,
    seq: u64,
) -> Result<Copied, CopyError> {
    let ext = extension(&e.format, &e.content_type);
    let key = bucket
        .key(&e.sha256, ext)
        .map_err(|err| CopyError::Corrupt(err.to_string()))?;
    let recent = blobs.take_recent(&e.sha256);
    let new = recent.as_ref().is_some_and(|r| r.new);
    let present = !new
        && bucket
            .present(&key, e.bytes)
            .await
            .map_err(|err| CopyError::Failed(err.to_string()))?;
    if present {
        return Ok(Copied {
            key,
            bytes: e.bytes,
            wrote: false,
        });
    }
    let body = match recent {
        Some(r) => r.body,
        None => read_blob(blobs, &e.sha256).await?,
    };
    let obj = ImageObject {
        sha256: &e.sha256,
        ext,
        content_type: &e.content_type,
        source_url: &e.url,
        stream_sequence: seq,
    };
    let bytes = body.len() as u64;
    let key = bucket
        .write_image(&obj, body)
        .await
        .map_err(|err| CopyError::Failed(err.to_string()))?;
    Ok(Copied {
        key,
        bytes,
        wrote: true,
    })
}

/// Reads the whole blob and checks it hashes to its name.
pub async fn read_blob(blobs: &BlobStore, sha: &str) -> Result<Bytes, CopyError> {
    let body = match blobs.read(sha).await {
        Ok(Some(body)) => body,
        Ok(None) => return Err(CopyError::Missing(sha.to_string())),
        Err(err) => return Err(CopyError::Failed(err.to_string())),
    };
    let actual = Sha256::hex(&body);
    if actual != sha {
        return Err(CopyError::Corrupt(format!(
            "blob {sha} holds bytes hashing to {actual}"
        )));
    }
    Ok(body)
}
