//! What applying a batch did, and what to publish once it is committed.

use chrono::Utc;
use imgcrawl_events::{CrawlCompleted, Event, ImagesIndexed, IndexedImage};

/// Counts of what happened to a batch's events.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The checkpoint before the batch, as found (locked) in the database.
    pub previous: u64,
    /// The checkpoint after the batch (unchanged if nothing was new).
    pub checkpoint: u64,
    /// Events above the checkpoint that were applied (including no-op duplicates).
    pub applied: usize,
    /// Events at or below the checkpoint, skipped.
    pub skipped: usize,
    /// Events of jobs not requested before them.
    pub orphans: usize,
    /// The index's own outputs found in the input, never applied.
    pub outputs: usize,
}

/// An event that decoded but cannot be projected; it is skipped (deterministically)
/// and should be dead-lettered by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Its stream sequence.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// The result of [`crate::write::apply_batch`]: counts, invalid events, and the events to
/// publish after the transaction commits (never before: they announce committed rows).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchEffects {
    /// Counts.
    pub applied: Applied,
    /// Events skipped as unusable.
    pub invalid: Vec<Invalid>,
    /// Jobs that completed in this batch.
    pub completed: Vec<CrawlCompleted>,
    /// Image sources that became queryable (stored, image not deleted), in stream order.
    pub indexed: Vec<IndexedImage>,
}

impl BatchEffects {
    /// The events to publish: the batch's `images.indexed` announcement (if
    /// `with_indexed`; one message per [`ImagesIndexed::MAX_IMAGES`] sources, named by the
    /// batch's checkpoint) then `crawl.completed`, so a job's completion follows its
    /// images.
    pub fn events(&self, with_indexed: bool) -> Vec<Event> {
        let indexed = match with_indexed {
            true => ImagesIndexed::parts(self.applied.checkpoint, &self.indexed, Utc::now()),
            false => Vec::new(),
        };
        indexed
            .into_iter()
            .map(Event::ImagesIndexed)
            .chain(self.completed.iter().cloned().map(Event::CrawlCompleted))
            .collect()
    }
}
