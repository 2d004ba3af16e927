//! Images: listing pages, one image with its sources, deletion.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Orders of `GET /api/images`; every order is a keyset on a unique key, so pages
/// never repeat or skip an image however many are added meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Most recently indexed first (by id, which grows with the stream).
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Largest files first (ties by id).
    Largest,
    /// Smallest files first (ties by id).
    Smallest,
}

impl Sort {
    /// The name used in URLs and cursors.
    pub fn name(self) -> &'static str {
        match self {
            Sort::Newest => "newest",
            Sort::Oldest => "oldest",
            Sort::Largest => "largest",
            Sort::Smallest => "smallest",
        }
    }
}

/// Filters, order and page of `GET /api/images`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImageQuery {
    /// Only images with a source in this job.
    pub job: Option<Uuid>,
    /// Only images with a source URL on this host (case-insensitive, no port).
    pub host: Option<String>,
    /// Only these formats, comma-separated (`jpeg,png`).
    pub format: Option<String>,
    /// Smallest width in pixels.
    pub min_width: Option<u32>,
    /// Largest width in pixels.
    pub max_width: Option<u32>,
    /// Smallest height in pixels.
    pub min_height: Option<u32>,
    /// Largest height in pixels.
    pub max_height: Option<u32>,
    /// Smallest size in bytes.
    pub min_bytes: Option<u64>,
    /// Largest size in bytes.
    pub max_bytes: Option<u64>,
    /// First seen at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// First seen before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Order (default `newest`).
    pub sort: Option<Sort>,
    /// Page size (default 50, at most the server's maximum, 500 by default).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (opaque; only valid with the same sort).
    pub cursor: Option<String>,
}

/// One image (one SHA-256) as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageSummary {
    /// Stable id (the stream sequence of its first download).
    pub id: i64,
    /// Lowercase hex SHA-256 of the bytes; also the content's ETag.
    pub sha256: String,
    /// The URL it was first downloaded from.
    pub url: String,
    /// File name from that URL.
    pub filename: Option<String>,
    /// Size in bytes.
    pub bytes: i64,
    /// Width in pixels.
    pub width: i32,
    /// Height in pixels.
    pub height: i32,
    /// Format detected from the bytes (`jpeg`, `png`, ...).
    pub format: String,
    /// Content type served with the bytes.
    pub content_type: String,
    /// First download.
    pub first_seen_at: DateTime<Utc>,
    /// Latest download.
    pub last_seen_at: DateTime<Utc>,
    /// Related URLs.
    pub links: ImageLinks,
}

/// URLs of an image's resources on this server.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageLinks {
    /// Metadata and sources.
    pub detail: String,
    /// The bytes.
    pub content: String,
    /// A small JPEG rendition (SVG as is).
    pub thumbnail: String,
}

/// A page of images.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImagePage {
    /// The images.
    pub items: Vec<ImageSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The page size used.
    pub limit: u32,
    /// The order used.
    pub sort: Sort,
}

/// `GET /api/images/{id}`: the image, where it was found and on which pages.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageDetail {
    /// The image.
    pub image: ImageSummary,
    /// Its key in the bucket.
    pub object_key: Option<String>,
    /// Image URLs (per job) whose bytes are this image, oldest first.
    pub sources: Vec<ImageSource>,
    /// More sources exist than listed.
    pub sources_truncated: bool,
    /// The pages those URLs were found on.
    pub pages: Vec<PageRef>,
}

/// One URL (in one job) whose bytes are the image.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageSource {
    /// The job.
    pub job_id: Uuid,
    /// The image URL.
    pub url: String,
    /// The URL after redirects.
    pub final_url: Option<String>,
    /// The page it was found on.
    pub page_url: String,
    /// The `alt` text.
    pub alt: Option<String>,
    /// How it was found (`img_src`, `srcset`, ...).
    pub found_by: Option<String>,
    /// `downloaded` or `stored`.
    pub status: String,
    /// When the URL was discovered.
    pub discovered_at: DateTime<Utc>,
    /// When it was downloaded.
    pub downloaded_at: Option<DateTime<Utc>>,
    /// When it was stored.
    pub stored_at: Option<DateTime<Utc>>,
}

/// A page an image was found on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PageRef {
    /// The job.
    pub job_id: Uuid,
    /// The page URL.
    pub url: String,
    /// Its `<title>`.
    pub title: Option<String>,
    /// `discovered`, `fetched` or `failed`.
    pub status: Option<String>,
    /// HTTP status of the page.
    pub http_status: Option<i32>,
    /// Link depth from the seed.
    pub depth: Option<i32>,
}

/// `202` answer to a deletion.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ImageDeleting {
    /// The image id.
    pub id: i64,
    /// Its SHA-256 (the tombstone's key).
    pub sha256: String,
    /// Always `deleting`: `image.deleted` is in the stream; the projections drop it.
    pub state: String,
}

/// Optional reason of a deletion (`DELETE /api/images/{id}?reason=...&purge=true`).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Why, for people (at most 500 characters).
    pub reason: Option<String>,
    /// Takedown: also remove the bytes for good, from the blob store and every future
    /// backup segment and restore (`imgcrawl purge`, docs/backup.md).
    pub purge: Option<bool>,
}
