//! Writing one object: a single PUT for small images, a multipart upload for large
//! ones (parts in parallel, the upload aborted on failure so no orphan parts are left).

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attributes, ObjectStore, PutMultipartOptions, PutOptions, PutPayload};

/// Parts of one image in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// S3's smallest part (every part but the last must be at least this big).
pub const MIN_PART_BYTES: u64 = 5 << 20;

/// S3's largest part.
pub const MAX_PART_BYTES: u64 = 5 << 30;

/// When an image goes up in parts, and how big the parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multipart {
    /// Images of at least this many bytes use a multipart upload.
    pub threshold_bytes: u64,
    /// Part size (within [`MIN_PART_BYTES`]..=[`MAX_PART_BYTES`]).
    pub part_bytes: u64,
}

impl Multipart {
    /// `threshold_bytes` as given; `part_bytes` clamped to S3's limits.
    pub fn new(threshold_bytes: u64, part_bytes: u64) -> Self {
        Multipart {
            threshold_bytes,
            part_bytes: part_bytes.clamp(MIN_PART_BYTES, MAX_PART_BYTES),
        }
    }

    /// The part size to upload `len` bytes with, or `None` for a single PUT. A body
    /// that fits in one part is never split.
    pub fn part_size(&self, len: usize) -> Option<usize> {
        let len = len as u64;
        (len >= self.threshold_bytes && len > self.part_bytes)
            .then(|| usize::try_from(self.part_bytes).unwrap_or(usize::MAX))
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart::new(8 << 20, 8 << 20)
    }
}

/// Writes `body` at `location` with `attributes`, in parts of `part_size` if given.
pub(super) async fn write(
    store: &dyn ObjectStore,
    location: &Path,
    body: Bytes,
    attributes: Attributes,
    part_size: Option<usize>,
) -> object_store::Result<()> {
    match part_size {
        None => {
            let opts = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            store
                .put_opts(location, PutPayload::from(body), opts)
                .await?;
            Ok(())
        }
        Some(part) => write_parts(store, location, body, attributes, part.max(1)).await,
    }
}

/// A multipart upload of `body` in `part`-sized slices (no copies).
async fn write_parts(
    store: &dyn ObjectStore,
    location: &Path,
    body: Bytes,
    attributes: Attributes,
    part: usize,
) -> object_store::Result<()> {
    let opts = PutMultipartOptions {
        attributes,
        ..PutMultipartOptions::default()
    };
    let mut upload = store.put_multipart_opts(location, opts).await?;
    // Parts are numbered when `put_part` is called and sent when polled.
    let parts: Vec<_> = (0..body.len())
        .step_by(part)
        .map(|start| {
            let slice = body.slice(start..body.len().min(start + part));
            upload.put_part(PutPayload::from(slice))
        })
        .collect();
    let sent = futures::stream::iter(parts)
        .buffer_unordered(PARTS_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await;
    let done = match sent {
        Ok(_) => upload.complete().await.map(drop),
        Err(e) => Err(e),
    };
    if let Err(e) = done {
        if let Err(abort) = upload.abort().await {
            tracing::warn!(%location, error = %abort, "abort multipart upload");
        }
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodies_over_the_threshold_and_a_part_are_split() {
        let m = Multipart::new(8 << 20, 8 << 20);
        assert_eq!(m.part_size(1 << 20), None);
        assert_eq!(m.part_size(8 << 20), None, "one part is one put");
        assert_eq!(m.part_size((8 << 20) + 1), Some(8 << 20));
        let small_parts = Multipart::new(0, 1);
        assert_eq!(small_parts.part_bytes, MIN_PART_BYTES);
        assert_eq!(small_parts.part_size(6 << 20), Some(5 << 20));
        assert_eq!(Multipart::new(u64::MAX, 8 << 20).part_size(1 << 30), None);
        assert_eq!(Multipart::new(0, u64::MAX).part_bytes, MAX_PART_BYTES);
    }
}
