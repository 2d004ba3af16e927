//! The write side of the read model: applying a batch of events in one transaction,
//! the heart of the projection. Only the index stage writes, through [`apply_batch`]
//! and [`apply_batch_through`]; the statements are multi-row (`UNNEST`), one per
//! event group.
//!
//! [`apply_batch`] equals applying the same events one at a time, for any split of a
//! stream into batches (see [`super::batch`] for the grouping and
//! [`super::progress`] for counters and completion). Events at or below the
//! checkpoint are skipped, so a redelivered or re-read batch changes nothing.

mod batch;
mod catalog;
pub(crate) mod clean;
mod effects;
mod failovers;
mod images;
mod jobs;
mod pages;
mod progress;
mod sourced;

pub use clean::{filename, MAX_URL_BYTES};
pub use effects::{Applied, BatchEffects, Invalid};
pub use progress::{Counters, JobStatus};
pub use sourced::Sourced;

use std::collections::{BTreeMap, HashMap};

use imgcrawl_events::{CompletionStatus, CrawlCompleted, ImageIndexed, IndexedImage};
use sqlx::{PgConnection, Postgres, Transaction};
use tracing::debug;
use uuid::Uuid;

use self::batch::Groups;
use self::progress::{decide, Decision, Progress};
use crate::error::ReadModelError;

/// Applies `events` (any order; duplicates by sequence are ignored) to the projection
/// named `checkpoint_name` inside `tx`, and advances its checkpoint. The caller commits
/// and only then publishes [`BatchEffects::events`].
pub async fn apply_batch(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
) -> Result<BatchEffects, ReadModelError> {
    apply_batch_through(tx, checkpoint_name, events, 0).await
}

/// [`apply_batch`], and moves the checkpoint to at least `through`: the live stage
/// passes the sequence of the batch's last message, so messages that were not events
/// (poison, dead-lettered) are passed over too.
pub async fn apply_batch_through(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
    through: u64,
) -> Result<BatchEffects, ReadModelError> {
    apply_batch_with(tx, checkpoint_name, events, through, Options::default()).await
}

/// What a batch's caller will do with its [`BatchEffects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Build [`BatchEffects::indexed`] (the sources `images.indexed` announces). A caller that
    /// announces none (a replay, a live index with `publish_indexed` off) passes
    /// false and saves the `SELECT` that joins every stored image back to `images`;
    /// the rows written are the same either way.
    pub indexed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { indexed: true }
    }
}

/// [`apply_batch_through`] with `options`.
pub async fn apply_batch_with(
    tx: &mut Transaction<'_, Postgres>,
    checkpoint_name: &str,
    events: &[Sourced],
    through: u64,
    options: Options,
) -> Result<BatchEffects, ReadModelError> {
    let c: &mut PgConnection = tx;
    let cp = crate::checkpoint::lock(c, checkpoint_name).await?;
    let mut fresh: Vec<&Sourced> = events.iter().filter(|s| s.seq > cp.last_seq).collect();
    fresh.sort_by_key(|s| s.seq);
    fresh.dedup_by_key(|s| s.seq);
    let skipped = events.len() - fresh.len();
    let target = fresh.last().map_or(0, |s| s.seq).max(through);
    let mut out = BatchEffects {
        applied: Applied {
            previous: cp.last_seq,
            checkpoint: cp.last_seq,
            skipped,
            ..Applied::default()
        },
        ..Default::default()
    };
    if target <= cp.last_seq {
        return Ok(out);
    }
    let (completed, indexed) = apply_fresh(c, &fresh, options, &mut out).await?;
    out.completed = completed;
    out.indexed = indexed;
    crate::checkpoint::advance(
        c,
        checkpoint_name,
        target,
        fresh.last().map(|s| s.published),
    )
    .await?;
    out.applied.checkpoint = target;
    out.applied.applied = fresh.len();
    debug!(
        checkpoint = target,
        applied = fresh.len(),
        skipped,
        "batch applied"
    );
    Ok(out)
}

/// Applies events above the checkpoint, group by group.
async fn apply_fresh(
    c: &mut PgConnection,
    fresh: &[&Sourced],
    options: Options,
    out: &mut BatchEffects,
) -> Result<(Vec<CrawlCompleted>, Vec<IndexedImage>), ReadModelError> {
    let mut invalid: Vec<Invalid> = Vec::new();
    let requests = batch::requests(fresh, &mut invalid);
    jobs::insert_requests(c, &requests).await?;
    let known = jobs::known(c, &batch::job_ids(fresh)).await?;
    let g = Groups::build(fresh, &known, &mut invalid);
    let mut progress = Progress::default();
    pages::discovered(c, &g.page_discovered, &mut progress).await?;
    pages::outcomes(c, &g.page_outcomes, &mut progress).await?;
    let (found, with_outcome) = images::split_discoveries(&g.image_discovered, &g.image_outcomes);
    images::discovered(c, &found, &mut progress).await?;
    let (outcomes, stored) = (&g.image_outcomes, &g.image_stored);
    let folded = images::outcomes(c, outcomes, &with_outcome, stored, &mut progress).await?;
    let (stored, announce) = (&g.image_stored, options.indexed);
    let indexed = catalog::stored(c, stored, folded, announce, &mut progress).await?;
    catalog::deleted(c, &g.deleted).await?;
    jobs::record_stops(c, &g.stops).await?;
    failovers::insert(c, fresh).await?;
    let rows = jobs::apply_progress(c, &progress, &g.job_last).await?;
    let completed = finish_jobs(c, &g, &progress, &rows).await?;
    invalid.sort_by_key(|i| i.seq);
    out.invalid = invalid;
    out.applied.orphans = g.orphans;
    out.applied.outputs = g.outputs;
    Ok((completed, without_deleted(indexed, &g)))
}

/// Decides stops and completions, applies them, and builds the completion events.
async fn finish_jobs(
    c: &mut PgConnection,
    g: &Groups<'_>,
    progress: &Progress,
    rows: &BTreeMap<Uuid, jobs::JobRow>,
) -> Result<Vec<CrawlCompleted>, ReadModelError> {
    let stops: HashMap<Uuid, (u64, chrono::DateTime<chrono::Utc>)> = g
        .stops
        .iter()
        .map(|s| (s.ev.job_id, (s.seq, s.at)))
        .collect();
    let decisions: Vec<(Uuid, Decision)> = rows
        .iter()
        .filter_map(|(job, row)| {
            let transitions = progress.get(job).map_or(&[][..], |p| &p.transitions[..]);
            Some((
                *job,
                decide(
                    row.status,
                    &row.counters,
                    transitions,
                    stops.get(job).copied(),
                )?,
            ))
        })
        .collect();
    let statuses = jobs::apply_status(c, &decisions).await?;
    Ok(decisions
        .iter()
        .filter_map(|(job, d)| {
            let done = d.complete?;
            let status = match statuses.get(job)? {
                JobStatus::Completed => CompletionStatus::Completed,
                JobStatus::Stopped => CompletionStatus::Stopped,
                _ => return None,
            };
            let n = done.counters;
            let u = |v: i64| u64::try_from(v).unwrap_or(0);
            Some(CrawlCompleted {
                job_id: *job,
                status,
                pages_fetched: u(n.pages_fetched),
                pages_failed: u(n.pages_failed),
                images_stored: u(n.images_stored),
                images_rejected: u(n.images_rejected),
                bytes: u(n.bytes_downloaded),
                occurred_at: clean::ts(done.at),
            })
        })
        .collect())
}

/// The sources to announce, without those of images deleted earlier in the same batch
/// (sequentially, the image would already have been deleted when its source was stored).
fn without_deleted(indexed: Vec<(u64, ImageIndexed)>, g: &Groups<'_>) -> Vec<IndexedImage> {
    let deleted: HashMap<&str, u64> = g
        .deleted
        .iter()
        .map(|d| (d.ev.sha256.as_str(), d.seq))
        .collect();
    indexed
        .into_iter()
        .filter(|(seq, e)| deleted.get(e.sha256.as_str()).is_none_or(|d| d > seq))
        .map(|(seq, e)| IndexedImage {
            seq,
            job_id: e.job_id,
            url: e.url,
            sha256: e.sha256,
            image_id: e.image_id,
            stored_at: e.occurred_at,
        })
        .collect()
}
