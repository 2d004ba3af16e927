//! Deletions win over later downloads: a deleted image never comes back into the
//! bucket, even when the same bytes are downloaded again (another job, another URL).
//!
//! `image.deleted` writes a tombstone (KV `imgcrawl-tombstones`, see
//! `imgcrawl_bus::tombstones`) *before* removing the objects; `image.downloaded` checks
//! for a tombstone before the put and again after it (when it wrote), removing what it
//! just wrote if a deletion arrived meanwhile. Whichever of a concurrent put and delete runs second
//! sees the other, so the object cannot survive. A tombstoned image is not written but
//! its `image.stored` is still published, so the job's counters and completion work as
//! for any other image (the index keeps the image deleted).

use imgcrawl_bus::Outcome;
use imgcrawl_events::{ImageDeleted, ImageDownloaded};

use crate::copy::{copy_image, Copied, CopyError};
use crate::handler::Stage;
use crate::key::extension;

/// Copies the image unless it is deleted; `Err` is the outcome to return at once.
pub(crate) async fn copy_unless_deleted(
    stage: &Stage,
    e: &ImageDownloaded,
    seq: u64,
) -> Result<Copied, Outcome> {
    let deleted = |err| Outcome::retry(format!("read tombstone: {err}"));
    if stage
        .tombstones
        .contains(&e.sha256)
        .await
        .map_err(deleted)?
    {
        let key = stage
            .bucket
            .key(&e.sha256, extension(&e.format, &e.content_type))
            .map_err(|err| Outcome::Poison(err.to_string()))?;
        tracing::debug!(sha = %e.sha256, "deleted image downloaded again: not stored");
        return Ok(Copied {
            key,
            bytes: e.bytes,
            wrote: false,
        });
    }
    let copied = match copy_image(&stage.blobs, &stage.bucket, e, seq).await {
        Ok(copied) => copied,
        Err(CopyError::Corrupt(reason)) => return Err(Outcome::Poison(reason)),
        Err(err) => return Err(Outcome::retry(err.to_string())),
    };
    // Only a put can undo a deletion; an object that was already there is the writer's
    // to re-check (the first check above stands for this delivery).
    if copied.wrote
        && stage
            .tombstones
            .contains(&e.sha256)
            .await
            .map_err(deleted)?
    {
        stage
            .bucket
            .delete_image(&e.sha256)
            .await
            .map_err(|err| Outcome::retry(err.to_string()))?;
    }
    Ok(copied)
}

/// Records the tombstone, then removes every object of the image.
pub(crate) async fn delete(stage: &Stage, e: &ImageDeleted) -> Outcome {
    if let Err(err) = stage.tombstones.put(&e.sha256, e.occurred_at).await {
        return Outcome::retry(format!("write tombstone: {err}"));
    }
    match stage.bucket.delete_image(&e.sha256).await {
        Ok(n) => {
            tracing::debug!(objects = n, "deleted");
            Outcome::Done
        }
        Err(err) => Outcome::retry(err.to_string()),
    }
}
