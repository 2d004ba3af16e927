//! One synthetic crawl: a site of pages crawled breadth-first, each fetched page
//! discovering new pages and image URLs before its own outcome (as the crawl stage
//! publishes them), image outcomes arriving later (downloads take time), `image.stored`
//! after each download, an occasional stop, and `crawl.completed` at the end.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use imgcrawl_events::*;
use uuid::Uuid;

use super::Timed;
use crate::blobs::BlobInfo;
use imgcrawl_sitegen::rng::Rng;

/// What a job needs to know besides its number.
pub(super) struct JobCtx<'a> {
    pub seed: u64,
    /// The images downloads pick from.
    pub blobs: &'a [BlobInfo],
    /// Mean pages per job (each job gets 50% to 150% of it).
    pub pages_per_job: u64,
    /// The history's start.
    pub epoch: DateTime<Utc>,
}

/// Link depth up to which pages discover children.
const MAX_DEPTH: u32 = 8;
/// Images shown on every page of a site (logo, icons): found, never new after the seed.
const SITE_WIDE_IMAGES: u32 = 3;

struct Crawl<'a> {
    ctx: &'a JobCtx<'a>,
    rng: Rng,
    job: Uuid,
    k: u64,
    out: Vec<Timed>,
    frontier: VecDeque<(String, u32)>,
    budget: u64,
    pages: u64,
    images: u64,
    done: CrawlCompleted,
}

/// The events of job number `k`, starting `start_ms` after the epoch, unsorted.
pub(super) fn crawl(ctx: &JobCtx<'_>, k: u64, start_ms: i64) -> Vec<Timed> {
    let mut rng = Rng::for_item(ctx.seed ^ 0x10B, k);
    let job = Uuid::from_u64_pair(ctx.seed, k);
    let budget = rng
        .range(ctx.pages_per_job / 2, ctx.pages_per_job * 3 / 2)
        .max(1);
    let mut c = Crawl {
        ctx,
        rng,
        job,
        k,
        out: Vec::new(),
        frontier: VecDeque::new(),
        budget,
        pages: 0,
        images: 0,
        done: CrawlCompleted {
            job_id: job,
            status: CompletionStatus::Completed,
            pages_fetched: 0,
            pages_failed: 0,
            images_stored: 0,
            images_rejected: 0,
            bytes: 0,
            occurred_at: ctx.epoch,
        },
    };
    c.run(start_ms);
    c.out
}

impl Crawl<'_> {
    fn at(&self, ms: i64) -> DateTime<Utc> {
        self.ctx.epoch + Duration::milliseconds(ms)
    }

    fn emit(&mut self, ms: i64, event: Event) {
        self.out.push(Timed { ms, event });
    }

    fn run(&mut self, start: i64) {
        let seed_url = format!("https://site{}.example.org/", self.k);
        let request = CrawlRequested {
            job_id: Some(self.job),
            url: Some(seed_url.clone()),
            label: Some(format!("bench site {}", self.k)),
            scope: Some(Scope {
                max_depth: MAX_DEPTH,
                max_pages: self.budget,
                ..Scope::default()
            }),
            occurred_at: Some(self.at(start)),
            ..CrawlRequested::default()
        };
        self.emit(start, Event::CrawlRequested(request));
        self.discover_page(start + 1, seed_url, 0, None);
        let stop_after = (self.k % 7 == 3).then_some(self.budget * 3 / 5);
        let (mut t, mut stopped, mut last) = (start + 2, false, start + 2);
        while let Some((url, depth)) = self.frontier.pop_front() {
            t += self.rng.range(5, 60) as i64;
            if stop_after.is_some_and(|n| self.pages >= n) && !stopped {
                stopped = true;
                self.done.status = CompletionStatus::Stopped;
                let stop = CrawlStopped {
                    job_id: self.job,
                    reason: Some("stopped by the operator".into()),
                    occurred_at: self.at(t),
                };
                self.emit(t, Event::CrawlStopped(stop));
            }
            last = last.max(self.page(t, url, depth, stopped));
        }
        last += 10;
        self.done.occurred_at = self.at(last);
        self.emit(last, Event::CrawlCompleted(self.done.clone()));
    }

    fn discover_page(&mut self, ms: i64, url: String, depth: u32, referrer: Option<&str>) {
        self.pages += 1;
        self.frontier.push_back((url.clone(), depth));
        let e = PageDiscovered {
            job_id: self.job,
            url,
            depth,
            referrer: referrer.map(Into::into),
            occurred_at: self.at(ms),
        };
        self.emit(ms, Event::PageDiscovered(e));
    }

    /// Fetches one page at `t`; returns the time of its last event.
    fn page(&mut self, t: i64, url: String, depth: u32, stopped: bool) -> i64 {
        let failure = if stopped {
            Some((PageFailure::Stopped, None))
        } else {
            match self.rng.range(0, 99) {
                0 | 1 => Some((PageFailure::HttpStatus, Some(404))),
                2 => Some((PageFailure::Timeout, None)),
                3 => Some((PageFailure::Network, None)),
                _ => None,
            }
        };
        if let Some((reason, http_status)) = failure {
            self.done.pages_failed += 1;
            let e = PageFailed {
                job_id: self.job,
                url,
                depth,
                reason,
                detail: format!("{reason:?} (synthetic)"),
                http_status,
                occurred_at: self.at(t),
            };
            self.emit(t, Event::PageFailed(e));
            return t;
        }
        let mut new_pages = 0;
        if depth < MAX_DEPTH {
            for _ in 0..self.rng.range(0, 6) {
                if self.pages >= self.budget {
                    break;
                }
                let child = format!("https://site{}.example.org/p/{}.html", self.k, self.pages);
                self.discover_page(t, child, depth + 1, Some(&url));
                new_pages += 1;
            }
        }
        let new_images = self.rng.range(4, 16) as u32;
        let mut last = t;
        for _ in 0..new_images {
            last = last.max(self.image(t, &url));
        }
        self.done.pages_fetched += 1;
        let e = PageFetched {
            job_id: self.job,
            url: url.clone(),
            final_url: url,
            depth,
            status: 200,
            bytes: self.rng.range(8_000, 250_000),
            title: Some(format!("Page {} of site {} – gallery", self.pages, self.k)),
            links_found: new_pages + self.rng.range(10, 80) as u32,
            pages_discovered: new_pages,
            images_found: new_images + SITE_WIDE_IMAGES,
            images_discovered: new_images,
            render: None,
            occurred_at: self.at(t),
        };
        self.emit(t, Event::PageFetched(e));
        last
    }

    /// A new image URL on `page` at `t`, its outcome and, if downloaded, its storage.
    /// Returns the time of its last event.
    fn image(&mut self, t: i64, page: &str) -> i64 {
        self.images += 1;
        let blobs = self.ctx.blobs;
        let pick = if self.rng.chance(0.2) {
            self.rng.range(0, 299.min(blobs.len() as u64 - 1))
        } else {
            self.rng.range(0, blobs.len() as u64 - 1)
        };
        let blob = &blobs[pick as usize];
        let ext = imgcrawl_store::extension(blob.format, blob.content_type());
        let url = format!(
            "https://cdn{}.example.net/site{}/img/{}.{ext}?w={}",
            self.images % 3,
            self.k,
            self.images,
            blob.width
        );
        let found_by = match self.rng.range(0, 19) {
            0..=13 => FoundBy::ImgSrc,
            14 | 15 => FoundBy::Srcset,
            16 | 17 => FoundBy::LazyAttribute,
            18 => FoundBy::PictureSource,
            _ => FoundBy::OgImage,
        };
        let alt = self
            .rng
            .chance(0.7)
            .then(|| format!("photo {}", self.images));
        let d = ImageDiscovered {
            job_id: self.job,
            url: url.clone(),
            page_url: page.to_string(),
            alt: alt.clone(),
            found_by,
            occurred_at: self.at(t),
        };
        self.emit(t, Event::ImageDiscovered(d));
        let done = t + self.rng.range(30, 3000) as i64;
        if let Some((reason, http_status)) = self.rejection() {
            self.done.images_rejected += 1;
            let r = ImageRejected {
                job_id: self.job,
                url,
                page_url: page.to_string(),
                reason,
                detail: format!("{reason:?} (synthetic)"),
                http_status,
                occurred_at: self.at(done),
            };
            self.emit(done, Event::ImageRejected(r));
            return done;
        }
        self.done.images_stored += 1;
        self.done.bytes += blob.size;
        let dl = ImageDownloaded {
            job_id: self.job,
            url: url.clone(),
            final_url: url.clone(),
            page_url: page.to_string(),
            alt,
            found_by,
            sha256: blob.sha256.clone(),
            bytes: blob.size,
            format: blob.format.to_string(),
            width: blob.width,
            height: blob.height,
            content_type: blob.content_type().to_string(),
            occurred_at: self.at(done),
        };
        self.emit(done, Event::ImageDownloaded(dl));
        let stored_at = done + self.rng.range(5, 300) as i64;
        let st = ImageStored {
            job_id: self.job,
            url,
            object_key: imgcrawl_store::object_key("images", &blob.sha256, ext).unwrap_or_default(),
            sha256: blob.sha256.clone(),
            bytes: blob.size,
            content_type: blob.content_type().to_string(),
            occurred_at: self.at(stored_at),
        };
        self.emit(stored_at, Event::ImageStored(st));
        stored_at
    }

    /// 15% of image URLs are rejected.
    fn rejection(&mut self) -> Option<(RejectReason, Option<u16>)> {
        Some(match self.rng.range(0, 99) {
            0..=7 => (RejectReason::TooSmall, None),
            8..=11 => (RejectReason::HttpStatus, Some(404)),
            12 | 13 => (RejectReason::NotAnImage, None),
            14 => (RejectReason::Timeout, None),
            _ => return None,
        })
    }
}
