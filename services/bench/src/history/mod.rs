//! The synthetic event history, produced in waves: a few jobs crawling at once, their
//! events merged by time (as the stages would publish them), plus a few `image.deleted`
//! tombstones of images downloaded in earlier waves. Waves are produced until the
//! history holds at least the wanted number of events; memory holds one wave.
//!
//! Every event is built from the `imgcrawl-events` structs, so it is valid by
//! construction (and `tests` decodes a sample back through `decode`).

mod job;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use imgcrawl_events::{Event, ImageDeleted};

use crate::blobs::BlobInfo;
use imgcrawl_sitegen::rng::Rng;
use job::JobCtx;

/// An event with its time in milliseconds after the history's epoch.
#[derive(Debug, Clone)]
pub struct Timed {
    /// Milliseconds after the epoch.
    pub ms: i64,
    /// The event.
    pub event: Event,
}

/// The shape of the history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Produce waves until at least this many events.
    pub events: u64,
    /// Mean pages per job.
    pub pages_per_job: u64,
    /// Jobs crawling at once (one wave).
    pub concurrent_jobs: u64,
    /// `image.deleted` events per wave.
    pub deletions_per_wave: u64,
    /// Seed.
    pub seed: u64,
}

/// Produces the history wave by wave, and counts what it produced.
pub struct History<'a> {
    shape: Shape,
    blobs: &'a [BlobInfo],
    epoch: DateTime<Utc>,
    rng: Rng,
    next_job: u64,
    clock_ms: i64,
    /// Images downloaded in earlier waves and not deleted yet (candidates for deletion).
    downloaded: Vec<usize>,
    /// Every image ever downloaded or deleted (each is a candidate once).
    noted: HashSet<usize>,
    /// Events produced so far, per kind.
    pub counts: BTreeMap<String, u64>,
    /// Events produced so far.
    pub total: u64,
}

impl<'a> History<'a> {
    /// A history over `blobs` (downloads pick images from them).
    pub fn new(shape: Shape, blobs: &'a [BlobInfo]) -> Self {
        History {
            shape,
            blobs,
            epoch: Utc
                .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
                .single()
                .unwrap_or_default(),
            rng: Rng::new(shape.seed ^ 0x415),
            next_job: 0,
            clock_ms: 0,
            downloaded: Vec::new(),
            noted: HashSet::new(),
            counts: BTreeMap::new(),
            total: 0,
        }
    }

    /// Jobs started so far.
    pub fn jobs(&self) -> u64 {
        self.next_job
    }

    /// The next wave in publishing order; empty once the history is long enough.
    pub fn next_wave(&mut self) -> Vec<Event> {
        if self.total >= self.shape.events || self.blobs.is_empty() {
            return Vec::new();
        }
        let ctx = JobCtx {
            seed: self.shape.seed,
            blobs: self.blobs,
            pages_per_job: self.shape.pages_per_job.max(1),
            epoch: self.epoch,
        };
        let mut wave: Vec<Timed> = Vec::new();
        for _ in 0..self.shape.concurrent_jobs.max(1) {
            let start = self.clock_ms + self.rng.range(0, 60_000) as i64;
            wave.extend(job::crawl(&ctx, self.next_job, start));
            self.next_job += 1;
        }
        let end = wave.iter().map(|t| t.ms).max().unwrap_or(self.clock_ms);
        for _ in 0..self.shape.deletions_per_wave {
            if let Some(d) = self.deletion(end) {
                wave.push(d);
            }
        }
        // Stable: events of one job at one instant keep their causal order.
        wave.sort_by_key(|t| t.ms);
        self.clock_ms = end + 1_000;
        self.note_downloads(&wave);
        wave.into_iter().map(|t| t.event).collect()
    }

    /// A tombstone of an image downloaded in an earlier wave, at a time in this one.
    fn deletion(&mut self, end: i64) -> Option<Timed> {
        if self.downloaded.is_empty() {
            return None;
        }
        let i = self.rng.range(0, self.downloaded.len() as u64 - 1) as usize;
        let blob = &self.blobs[self.downloaded.swap_remove(i)];
        let ms = self
            .rng
            .range(self.clock_ms as u64, end.max(self.clock_ms) as u64) as i64;
        let event = Event::ImageDeleted(ImageDeleted {
            sha256: blob.sha256.clone(),
            reason: Some("takedown request (synthetic)".into()),
            occurred_at: self.epoch + Duration::milliseconds(ms),
        });
        Some(Timed { ms, event })
    }

    fn note_downloads(&mut self, wave: &[Timed]) {
        let index: HashMap<&str, usize> = self
            .blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (b.sha256.as_str(), i))
            .collect();
        for t in wave {
            *self
                .counts
                .entry(t.event.kind().name().to_string())
                .or_default() += 1;
            if let Event::ImageDownloaded(e) = &t.event {
                if let Some(&i) = index.get(e.sha256.as_str()) {
                    if self.noted.insert(i) {
                        self.downloaded.push(i);
                    }
                }
            }
        }
        self.total += wave.len() as u64;
    }
}

#[cfg(test)]
mod tests;
