//! Image sources (many URLs, one image) and the pages they were found on: what the
//! API shows for one image, and what `imgcrawl images` and `imgcrawl demo` list for
//! one job. Only downloaded or stored sources are listed.

use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{db, ReadModelError};

/// Most sources listed for one image.
pub const MAX_SOURCES: i64 = 200;

/// One source of an image.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceRow {
    /// The job that found it.
    pub job_id: Uuid,
    /// The image URL.
    pub url: String,
    /// The URL after redirects.
    pub final_url: Option<String>,
    /// The page it was found on.
    pub page_url: String,
    /// Its alt text.
    pub alt: Option<String>,
    /// How it was found (`img`, `srcset`, ...).
    pub found_by: Option<String>,
    /// `downloaded` or `stored`.
    pub status: String,
    /// When it was discovered.
    pub discovered_at: DateTime<Utc>,
    /// When it was downloaded.
    pub downloaded_at: Option<DateTime<Utc>>,
    /// When it was stored.
    pub stored_at: Option<DateTime<Utc>>,
}

/// A page an image was found on, with what the index knows of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PageRow {
    /// The job.
    pub job_id: Uuid,
    /// The page URL.
    pub url: String,
    /// Its title, if fetched.
    pub title: Option<String>,
    /// Its status (none if the page row is missing).
    pub status: Option<String>,
    /// Its HTTP status.
    pub http_status: Option<i32>,
    /// Its depth.
    pub depth: Option<i32>,
}

/// The image's downloaded sources, oldest first, at most [`MAX_SOURCES`] + 1.
pub async fn of_image(pool: &PgPool, sha256: &str) -> Result<Vec<SourceRow>, ReadModelError> {
    sqlx::query_as(
        "SELECT job_id, url, final_url, page_url, alt, found_by, status, discovered_at, downloaded_at, stored_at
         FROM image_sources WHERE sha256 = $1 AND status IN ('downloaded', 'stored')
         ORDER BY seq LIMIT $2",
    )
    .bind(sha256)
    .bind(MAX_SOURCES + 1)
    .fetch_all(pool)
    .await
    .map_err(db("read image sources"))
}

/// The pages the image's sources were found on (at most [`MAX_SOURCES`]).
pub async fn pages_of_image(pool: &PgPool, sha256: &str) -> Result<Vec<PageRow>, ReadModelError> {
    sqlx::query_as(
        "SELECT s.job_id, s.page_url AS url, p.title, p.status, p.http_status, p.depth
         FROM (SELECT DISTINCT job_id, page_url FROM image_sources
               WHERE sha256 = $1 AND status IN ('downloaded', 'stored')) s
         LEFT JOIN pages p ON p.job_id = s.job_id AND p.url = s.page_url
         ORDER BY s.page_url, s.job_id LIMIT $2",
    )
    .bind(sha256)
    .bind(MAX_SOURCES)
    .fetch_all(pool)
    .await
    .map_err(db("read image pages"))
}

/// One image of a job, by source URL (`imgcrawl images`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobImage {
    /// The image URL.
    pub url: String,
    /// The page it was found on.
    pub page_url: Option<String>,
    /// SHA-256.
    pub sha256: String,
    /// Size.
    pub bytes: i64,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
    /// Format.
    pub format: String,
    /// Bucket key, once stored.
    pub object_key: Option<String>,
}

/// The live images of `job`, one per downloaded or stored source, by URL; streamed,
/// so a large job is never held in memory.
pub fn of_job(
    pool: &PgPool,
    job: Uuid,
) -> impl Stream<Item = Result<JobImage, ReadModelError>> + '_ {
    sqlx::query_as(
        "select s.url, s.page_url, i.sha256, i.bytes, i.width, i.height, i.format, i.object_key
         from image_sources s join images i on i.sha256 = s.sha256
         where s.job_id = $1 and s.status in ('downloaded', 'stored') and not i.deleted
         order by s.url",
    )
    .bind(job)
    .fetch(pool)
    .map_err(|source| ReadModelError::Database {
        op: "list a job's images",
        source,
    })
}

/// `(url, sha256)` of every stored source of `job` (the demo's ground-truth check).
pub async fn stored_of_job(
    pool: &PgPool,
    job: Uuid,
) -> Result<Vec<(String, Option<String>)>, ReadModelError> {
    sqlx::query_as("select url, sha256 from image_sources where job_id = $1 and status = 'stored'")
        .bind(job)
        .fetch_all(pool)
        .await
        .map_err(db("list a job's stored sources"))
}
