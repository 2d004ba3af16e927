//! The event bodies, one struct per kind, and the [`Event`] sum type.
//!
//! Field names are the JSON names. `occurred_at` is set once by the producer; only
//! `crawl.requested` may omit it (and its `job_id`), because people publish it by hand.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::url_key;
use crate::job::{ImageFilters, Politeness, Scope};
use crate::kinds::EventKind;

/// `imgcrawl.crawl.requested`: a job. Everything but a seed is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CrawlRequested {
    /// Job id; derived from the stream sequence when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<Uuid>,
    /// A seed URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// More seed URLs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Scope rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Politeness rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub politeness: Option<Politeness>,
    /// Image filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageFilters>,
    /// Free-form label shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// When the request was made; the stream timestamp when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
}

/// `imgcrawl.crawl.stopped`: stop a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlStopped {
    /// The job to stop.
    pub job_id: Uuid,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was asked for.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.page.discovered`: an in-scope page seen for the first time in a job, or found
/// again at a smaller link depth than before (then it is visited again at that depth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageDiscovered {
    /// The job.
    pub job_id: Uuid,
    /// Normalised page URL.
    pub url: String,
    /// Links followed from a seed (seed = 0).
    pub depth: u32,
    /// The page that linked here (none for seeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// When it was discovered.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.page.fetched`: a page was fetched and parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFetched {
    /// The job.
    pub job_id: Uuid,
    /// The page URL as discovered.
    pub url: String,
    /// The URL after redirects.
    pub final_url: String,
    /// Depth of the page.
    pub depth: u32,
    /// HTTP status of the final response.
    pub status: u16,
    /// Response body size in bytes.
    pub bytes: u64,
    /// The `<title>`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Links found on the page (all, before scope and dedup).
    pub links_found: u32,
    /// New in-scope pages this page added to the frontier.
    pub pages_discovered: u32,
    /// Image URLs found on the page (all, before dedup).
    pub images_found: u32,
    /// New image URLs this page sent to download.
    pub images_discovered: u32,
    /// For a page the job renders: `rendered` when headless Chromium rendered it, or
    /// `failed: <reason>` when rendering failed and the static parse stands. Absent
    /// for pages that are not rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<String>,
    /// When the fetch finished.
    pub occurred_at: DateTime<Utc>,
}

/// Why a page was not fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageFailure {
    /// Non-success HTTP status.
    HttpStatus,
    /// Disallowed by robots.txt.
    Robots,
    /// Connection, TLS or protocol error.
    Network,
    /// No response in time.
    Timeout,
    /// The body was larger than the page size cap.
    TooLarge,
    /// The response was not HTML.
    NotHtml,
    /// A redirect led back to a URL already visited in the chain.
    RedirectLoop,
    /// More redirects than allowed.
    TooManyRedirects,
    /// A redirect left the job's scope.
    OutOfScope,
    /// The target resolves to a private, loopback or link-local address.
    BlockedAddress,
    /// The job was stopped before the page was fetched.
    Stopped,
}

/// `imgcrawl.page.failed`: a page could not be fetched, or was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageFailed {
    /// The job.
    pub job_id: Uuid,
    /// The page URL.
    pub url: String,
    /// Depth of the page.
    pub depth: u32,
    /// Machine-readable reason.
    pub reason: PageFailure,
    /// Human-readable detail.
    pub detail: String,
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// When it failed.
    pub occurred_at: DateTime<Utc>,
}

/// How an image URL was found on a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// `<img src>`.
    ImgSrc,
    /// A candidate of `srcset` on `<img>`.
    Srcset,
    /// `<picture><source srcset>`.
    PictureSource,
    /// A lazy-loading attribute (`data-src`, `data-srcset`, `data-original`, ...).
    LazyAttribute,
    /// `background-image` in an inline `style`.
    InlineStyle,
    /// `<meta property="og:image">`.
    OgImage,
    /// `<meta name="twitter:image">`.
    TwitterImage,
    /// `<a href>` straight to an image file.
    Link,
    /// `<link rel="icon">` and friends.
    Icon,
    /// `url()` in a `<style>` block of the page (any image property, `image-set()`).
    StyleBlock,
    /// `url()` in an external stylesheet (`<link rel="stylesheet">`, `@import`),
    /// resolved against the stylesheet.
    Stylesheet,
    /// `<link rel="preload" as="image">` (`href` and `imagesrcset`).
    Preload,
    /// `<video poster>`.
    VideoPoster,
    /// `<input type="image" src>`.
    InputImage,
    /// `<object data>` / `<embed src>` with an image type.
    Embed,
    /// SVG `<image href>` / `xlink:href`.
    SvgImage,
    /// An `image` (or `logo`, `thumbnailUrl`) field of JSON-LD structured data.
    JsonLd,
    /// A microdata `itemprop="image"` (or `logo`, `thumbnailUrl`).
    Microdata,
    /// An icon of the page's web app manifest.
    Manifest,
    /// In the final DOM of the page rendered in headless Chromium (not in its HTML).
    RenderedDom,
    /// Requested by the page while it rendered in headless Chromium (scripts, lazy
    /// loaders, CSS), and in neither its HTML nor its final DOM.
    RenderedRequest,
}

/// `imgcrawl.image.discovered`: an image URL found on a page, sent to download.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDiscovered {
    /// The job.
    pub job_id: Uuid,
    /// Normalised image URL.
    pub url: String,
    /// The page it was found on.
    pub page_url: String,
    /// The `alt` text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
    /// How it was found.
    pub found_by: FoundBy,
    /// When it was found.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.image.downloaded`: validated bytes are in the blob store under `sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDownloaded {
    /// The job.
    pub job_id: Uuid,
    /// The image URL as discovered.
    pub url: String,
    /// The URL after redirects.
    pub final_url: String,
    /// The page it was found on.
    pub page_url: String,
    /// The `alt` text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
    /// How it was found.
    pub found_by: FoundBy,
    /// Lowercase hex SHA-256 of the bytes; the blob's name.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Format detected from the bytes: `jpeg`, `png`, `gif`, `webp`, `svg`, `avif`, ...
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Content type matching the detected format (not the server's claim).
    pub content_type: String,
    /// When the download finished.
    pub occurred_at: DateTime<Utc>,
}

/// Why an image was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Non-success HTTP status.
    HttpStatus,
    /// The bytes are not an image format we know.
    NotAnImage,
    /// Below the job's minimum size or dimensions.
    TooSmall,
    /// Above the byte cap, or too many pixels (decompression bomb).
    TooLarge,
    /// The bytes claim a format but are truncated or corrupt.
    DecodeFailed,
    /// Disallowed by robots.txt.
    Robots,
    /// The format is not in the job's accepted formats.
    FormatNotAccepted,
    /// Connection, TLS or protocol error.
    Network,
    /// No response in time.
    Timeout,
    /// More redirects than allowed, or a loop.
    TooManyRedirects,
    /// The target resolves to a private, loopback or link-local address.
    BlockedAddress,
    /// The job was stopped before the image was fetched.
    Stopped,
    /// The image's response opts out of indexing (`X-Robots-Tag: noai`, ...).
    OptedOut,
}

/// `imgcrawl.image.rejected`: an image URL was not accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRejected {
    /// The job.
    pub job_id: Uuid,
    /// The image URL.
    pub url: String,
    /// The page it was found on.
    pub page_url: String,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
    /// HTTP status, when there was a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// When it was rejected.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.image.stored`: the blob is in the object projection at `object_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStored {
    /// The job whose download this stores.
    pub job_id: Uuid,
    /// The image URL of that download.
    pub url: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Key in the bucket.
    pub object_key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Content type set on the object.
    pub content_type: String,
    /// When the put returned.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.image.indexed`: the image is queryable. **No longer published**: the index
/// announces a committed batch with one [`ImagesIndexed`] instead (one stored message
/// per batch rather than per image). Still decoded, so a stream written by an earlier
/// version replays cleanly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageIndexed {
    /// The job.
    pub job_id: Uuid,
    /// The image URL.
    pub url: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// The image's id in the index.
    pub image_id: i64,
    /// When the index committed it.
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.images.indexed`: the image sources of one job that one committed batch of
/// the index made queryable (stored, image not deleted), in stream order. A
/// best-effort notification: no projection reads it. A batch announces each job's
/// sources separately (one trace per job), in parts of at most
/// [`ImagesIndexed::MAX_IMAGES`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesIndexed {
    /// The job.
    pub job_id: Uuid,
    /// The index's checkpoint after the batch: the stream sequence of the last event it
    /// applied. Every source stored at or below it that the batch made queryable is in
    /// this announcement (or its other parts).
    pub checkpoint: u64,
    /// Which part of the batch's announcement for this job this is, from 0.
    pub part: u32,
    /// The sources, in stream order.
    pub images: Vec<IndexedImage>,
    /// When the announcement was made.
    pub occurred_at: DateTime<Utc>,
}

/// One image source in [`ImagesIndexed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedImage {
    /// The stream sequence of the `image.stored` that made it queryable.
    pub seq: u64,
    /// The job.
    pub job_id: Uuid,
    /// The image URL.
    pub url: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// The image's id in the index.
    pub image_id: i64,
    /// When it was stored (the `image.stored` event's time).
    pub stored_at: DateTime<Utc>,
}

impl ImagesIndexed {
    /// The most sources one announcement carries: a part stays well under the server's
    /// message size limit (1 MiB by default) even with long URLs.
    pub const MAX_IMAGES: usize = 256;

    /// The announcements of a batch committed at `checkpoint`, made at `at`: per job (in
    /// order of first appearance), `indexed` in parts of at most [`Self::MAX_IMAGES`];
    /// none if it is empty.
    pub fn parts(checkpoint: u64, indexed: &[IndexedImage], at: DateTime<Utc>) -> Vec<Self> {
        let mut jobs: Vec<(Uuid, Vec<IndexedImage>)> = Vec::new();
        for i in indexed {
            match jobs.iter_mut().find(|(j, _)| *j == i.job_id) {
                Some((_, v)) => v.push(i.clone()),
                None => jobs.push((i.job_id, vec![i.clone()])),
            }
        }
        jobs.into_iter()
            .flat_map(|(job_id, images)| {
                images
                    .chunks(Self::MAX_IMAGES)
                    .enumerate()
                    .map(|(part, images)| ImagesIndexed {
                        job_id,
                        checkpoint,
                        part: part as u32,
                        images: images.to_vec(),
                        occurred_at: at,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// `imgcrawl.image.deleted`: tombstone, projections drop the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDeleted {
    /// Lowercase hex SHA-256 of the image.
    pub sha256: String,
    /// Why, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was deleted.
    pub occurred_at: DateTime<Utc>,
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletionStatus {
    /// Everything reachable was crawled.
    Completed,
    /// Stopped by request; in-flight work drained.
    Stopped,
}

/// `imgcrawl.crawl.completed`: the job's frontier and downloads have drained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrawlCompleted {
    /// The job.
    pub job_id: Uuid,
    /// How it ended.
    pub status: CompletionStatus,
    /// Pages fetched.
    pub pages_fetched: u64,
    /// Pages failed or skipped.
    pub pages_failed: u64,
    /// Image URLs whose bytes were stored.
    pub images_stored: u64,
    /// Image URLs rejected.
    pub images_rejected: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// When the last outstanding event was applied (from that event's `occurred_at`).
    pub occurred_at: DateTime<Utc>,
}

/// `imgcrawl.ha.failover`: the HA watcher made `to` the primary of a projection
/// target (`postgres`, `objects`) at `epoch`. The history of primaries; the index
/// projects it into the `failovers` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaFailover {
    /// The projection target whose primary changed: `postgres` (or `objects`).
    pub target: String,
    /// The previous primary (none for the first election).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The new primary.
    pub to: String,
    /// The new fencing epoch (strictly increasing per target).
    pub epoch: u64,
    /// Why, for people: `initial election`, `primary pg1 down: ...`, `manual: ...`.
    pub reason: String,
    /// Asked for by an operator (manual failover or switchover), not detected.
    #[serde(default)]
    pub manual: bool,
    /// When the watcher wrote the new primary.
    pub occurred_at: DateTime<Utc>,
}

/// Any event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// See [`CrawlRequested`].
    CrawlRequested(CrawlRequested),
    /// See [`CrawlStopped`].
    CrawlStopped(CrawlStopped),
    /// See [`PageDiscovered`].
    PageDiscovered(PageDiscovered),
    /// See [`PageFetched`].
    PageFetched(PageFetched),
    /// See [`PageFailed`].
    PageFailed(PageFailed),
    /// See [`ImageDiscovered`].
    ImageDiscovered(ImageDiscovered),
    /// See [`ImageDownloaded`].
    ImageDownloaded(ImageDownloaded),
    /// See [`ImageRejected`].
    ImageRejected(ImageRejected),
    /// See [`ImageStored`].
    ImageStored(ImageStored),
    /// See [`ImageIndexed`] (legacy, decoded but no longer published).
    ImageIndexed(ImageIndexed),
    /// See [`ImagesIndexed`].
    ImagesIndexed(ImagesIndexed),
    /// See [`ImageDeleted`].
    ImageDeleted(ImageDeleted),
    /// See [`CrawlCompleted`].
    CrawlCompleted(CrawlCompleted),
    /// See [`HaFailover`].
    HaFailover(HaFailover),
}

impl Event {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::CrawlRequested(_) => EventKind::CrawlRequested,
            Event::CrawlStopped(_) => EventKind::CrawlStopped,
            Event::PageDiscovered(_) => EventKind::PageDiscovered,
            Event::PageFetched(_) => EventKind::PageFetched,
            Event::PageFailed(_) => EventKind::PageFailed,
            Event::ImageDiscovered(_) => EventKind::ImageDiscovered,
            Event::ImageDownloaded(_) => EventKind::ImageDownloaded,
            Event::ImageRejected(_) => EventKind::ImageRejected,
            Event::ImageStored(_) => EventKind::ImageStored,
            Event::ImageIndexed(_) => EventKind::ImageIndexed,
            Event::ImagesIndexed(_) => EventKind::ImagesIndexed,
            Event::ImageDeleted(_) => EventKind::ImageDeleted,
            Event::CrawlCompleted(_) => EventKind::CrawlCompleted,
            Event::HaFailover(_) => EventKind::HaFailover,
        }
    }

    /// The job this event belongs to (none for deletions and id-less requests).
    pub fn job_id(&self) -> Option<Uuid> {
        match self {
            Event::CrawlRequested(e) => e.job_id,
            Event::CrawlStopped(e) => Some(e.job_id),
            Event::PageDiscovered(e) => Some(e.job_id),
            Event::PageFetched(e) => Some(e.job_id),
            Event::PageFailed(e) => Some(e.job_id),
            Event::ImageDiscovered(e) => Some(e.job_id),
            Event::ImageDownloaded(e) => Some(e.job_id),
            Event::ImageRejected(e) => Some(e.job_id),
            Event::ImageStored(e) => Some(e.job_id),
            Event::ImageIndexed(e) => Some(e.job_id),
            Event::ImagesIndexed(e) => Some(e.job_id),
            Event::ImageDeleted(_) | Event::HaFailover(_) => None,
            Event::CrawlCompleted(e) => Some(e.job_id),
        }
    }

    /// The deterministic `Nats-Msg-Id`: derived from what the event is about, so a
    /// producer that crashes after publishing and publishes again is deduplicated by the
    /// stream. The two outcomes of one page (fetched/failed) share an id, and so do the
    /// two outcomes of one image URL (downloaded/rejected): a retry can never record both.
    /// A page's ids carry its link depth: a page found again at a smaller depth (see the
    /// seen-set) is a second visit, which the first visit's ids must not swallow.
    pub fn msg_id(&self) -> String {
        match self {
            Event::CrawlRequested(e) => match (e.job_id, e.occurred_at) {
                (Some(j), _) => format!("crawl.requested:{j}"),
                (None, Some(t)) => format!(
                    "crawl.requested:{}:{}",
                    t.timestamp_nanos_opt().unwrap_or(0),
                    e.url.as_deref().unwrap_or("")
                ),
                (None, None) => format!("crawl.requested:{}", uuid::Uuid::new_v4()),
            },
            Event::CrawlStopped(e) => format!("crawl.stopped:{}", e.job_id),
            Event::PageDiscovered(e) => format!(
                "page.discovered:{}:{}:{}",
                e.job_id,
                url_key(&e.url),
                e.depth
            ),
            Event::PageFetched(e) => {
                format!("page.outcome:{}:{}:{}", e.job_id, url_key(&e.url), e.depth)
            }
            Event::PageFailed(e) => {
                format!("page.outcome:{}:{}:{}", e.job_id, url_key(&e.url), e.depth)
            }
            Event::ImageDiscovered(e) => {
                format!("image.discovered:{}:{}", e.job_id, url_key(&e.url))
            }
            Event::ImageDownloaded(e) => format!("image.outcome:{}:{}", e.job_id, url_key(&e.url)),
            Event::ImageRejected(e) => format!("image.outcome:{}:{}", e.job_id, url_key(&e.url)),
            Event::ImageStored(e) => format!("image.stored:{}:{}", e.job_id, url_key(&e.url)),
            Event::ImageIndexed(e) => format!("image.indexed:{}:{}", e.job_id, url_key(&e.url)),
            Event::ImagesIndexed(e) => {
                format!("images.indexed:{}:{}:{}", e.checkpoint, e.job_id, e.part)
            }
            Event::ImageDeleted(e) => format!(
                "image.deleted:{}:{}",
                e.sha256,
                e.occurred_at.timestamp_millis()
            ),
            Event::CrawlCompleted(e) => format!("crawl.completed:{}", e.job_id),
            Event::HaFailover(e) => format!("ha.failover:{}:{}", e.target, e.epoch),
        }
    }

    /// When the producer says the event happened (`None` only for a hand-published request).
    pub fn occurred_at(&self) -> Option<DateTime<Utc>> {
        Some(match self {
            Event::CrawlRequested(e) => return e.occurred_at,
            Event::CrawlStopped(e) => e.occurred_at,
            Event::PageDiscovered(e) => e.occurred_at,
            Event::PageFetched(e) => e.occurred_at,
            Event::PageFailed(e) => e.occurred_at,
            Event::ImageDiscovered(e) => e.occurred_at,
            Event::ImageDownloaded(e) => e.occurred_at,
            Event::ImageRejected(e) => e.occurred_at,
            Event::ImageStored(e) => e.occurred_at,
            Event::ImageIndexed(e) => e.occurred_at,
            Event::ImagesIndexed(e) => e.occurred_at,
            Event::ImageDeleted(e) => e.occurred_at,
            Event::CrawlCompleted(e) => e.occurred_at,
            Event::HaFailover(e) => e.occurred_at,
        })
    }
}
