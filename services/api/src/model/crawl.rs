//! Crawl requests, stops and job status.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/crawl/start`: seed URL(s) and optional scope, politeness and image
/// filters; anything left out takes the pipeline's defaults (see docs/events.md).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCrawl {
    /// A seed URL.
    #[serde(default)]
    pub url: Option<String>,
    /// More seed URLs.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Which URLs belong to the job.
    #[serde(default)]
    pub scope: Option<ScopeRequest>,
    /// How gently to treat the crawled hosts.
    #[serde(default)]
    pub politeness: Option<PolitenessRequest>,
    /// Which downloaded images are kept.
    #[serde(default)]
    pub images: Option<ImageFiltersRequest>,
    /// A label shown in listings (at most 200 characters).
    #[serde(default)]
    pub label: Option<String>,
}

/// Scope rules; every field optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeRequest {
    /// Hosts whose pages are crawled (default: the seeds' hosts).
    pub hosts: Option<Vec<String>>,
    /// Also crawl subdomains of those hosts (default false).
    pub subdomains: Option<bool>,
    /// Link depth from a seed (default 5).
    pub max_depth: Option<u32>,
    /// Most pages fetched (default 10,000).
    pub max_pages: Option<u64>,
    /// Most image URLs downloaded (default 100,000).
    pub max_images: Option<u64>,
    /// Page path patterns to keep (`*` wildcard, trailing `$` anchors).
    pub include: Option<Vec<String>>,
    /// Page path patterns to skip.
    pub exclude: Option<Vec<String>>,
    /// Images may come from any host (default true).
    pub images_any_host: Option<bool>,
}

/// Politeness rules; every field optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolitenessRequest {
    /// Obey robots.txt (default true).
    pub obey_robots: Option<bool>,
    /// Minimum milliseconds between two requests to one host (default 0).
    pub delay_ms: Option<u64>,
    /// Upper bound applied to a robots.txt `Crawl-delay` (default 10,000).
    pub max_crawl_delay_ms: Option<u64>,
    /// Requests in flight per host (default 16).
    pub per_host_concurrency: Option<u32>,
}

/// Image filters; every field optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageFiltersRequest {
    /// Smallest accepted width in pixels.
    pub min_width: Option<u32>,
    /// Smallest accepted height in pixels.
    pub min_height: Option<u32>,
    /// Smallest accepted size in bytes.
    pub min_bytes: Option<u64>,
    /// Largest accepted size in bytes (default 20 MiB).
    pub max_bytes: Option<u64>,
    /// Accepted formats (`jpeg`, `png`, `gif`, `webp`, `svg`, `avif`, `heif`, `bmp`,
    /// `ico`, `tiff`); empty or absent = all.
    pub formats: Option<Vec<String>>,
}

/// `202` answer to a crawl request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CrawlStarted {
    /// The new job's id (UUIDv7).
    pub job_id: Uuid,
    /// Always `requested`: the request is in the stream.
    pub state: JobState,
    /// The normalised seed URLs.
    pub seeds: Vec<String>,
    /// Where to follow the job.
    pub status_url: String,
}

/// `POST /api/crawl/stop`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StopCrawl {
    /// The job to stop.
    pub job_id: Uuid,
    /// Why, for people (at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `202` answer to a stop.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CrawlStopping {
    /// The job.
    pub job_id: Uuid,
    /// Always `stopping`: in-flight work drains, nothing new starts.
    pub state: JobState,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Published; the index has not applied the request yet.
    Requested,
    /// Crawling.
    Running,
    /// A stop was requested; in-flight work drains.
    Stopping,
    /// Everything reachable was crawled.
    Completed,
    /// Stopped by request.
    Stopped,
}

impl JobState {
    /// The state of an index `jobs.status` value.
    pub fn from_db(status: &str) -> JobState {
        match status {
            "stopping" => JobState::Stopping,
            "completed" => JobState::Completed,
            "stopped" => JobState::Stopped,
            _ => JobState::Running,
        }
    }

    /// Completed or stopped.
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Stopped)
    }
}

/// A job's counters, rates and state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobStatus {
    /// The job.
    pub job_id: Uuid,
    /// Where it is.
    pub state: JobState,
    /// Its label.
    pub label: Option<String>,
    /// Seed URLs.
    pub seeds: Vec<String>,
    /// When it was requested.
    pub requested_at: Option<DateTime<Utc>>,
    /// When a stop was applied.
    pub stopped_at: Option<DateTime<Utc>>,
    /// When it completed or stopped.
    pub completed_at: Option<DateTime<Utc>>,
    /// Time of the latest event of the job.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Pages.
    pub pages: PageCounters,
    /// Image URLs.
    pub images: ImageCounters,
    /// Bytes downloaded.
    pub bytes_downloaded: i64,
    /// Seconds from the request to completion (or to now while running).
    pub elapsed_secs: f64,
    /// Throughput over `elapsed_secs`.
    pub rate: Rates,
}

/// Page counters of a job.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PageCounters {
    /// In the frontier so far.
    pub discovered: i64,
    /// Fetched.
    pub fetched: i64,
    /// Failed or skipped.
    pub failed: i64,
    /// Discovered, no outcome yet.
    pub pending: i64,
}

/// Image-URL counters of a job.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ImageCounters {
    /// Image URLs found.
    pub discovered: i64,
    /// Downloaded and valid.
    pub downloaded: i64,
    /// Rejected (see the reasons in the index's `rejections`).
    pub rejected: i64,
    /// In the bucket.
    pub stored: i64,
    /// Discovered, neither stored nor rejected yet.
    pub pending: i64,
    /// Distinct images (by SHA-256); only in the single-job report.
    pub distinct: Option<i64>,
}

/// Throughput of a job.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Rates {
    /// Pages with an outcome per second.
    pub pages_per_sec: f64,
    /// Image URLs stored per second.
    pub images_per_sec: f64,
    /// Bytes downloaded per second.
    pub bytes_per_sec: f64,
}

/// How far the index is behind the stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct IndexLag {
    /// Last stream sequence the index applied.
    pub checkpoint: u64,
    /// Last sequence in the stream.
    pub stream_last_seq: u64,
    /// Stream sequences between the checkpoint and the newest event the index applies
    /// (0 when it is caught up; the index's own outputs do not count).
    pub lag_events: u64,
    /// Age in seconds of the oldest event not applied yet (0 when caught up).
    pub lag_seconds: f64,
}

/// `GET /api/crawl/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobList {
    /// Jobs, newest request first (jobs requested through this server and not yet in
    /// the index come first, as `requested`).
    pub jobs: Vec<JobStatus>,
    /// The index's position.
    pub index: IndexLag,
}

/// `GET /api/crawl/status/{job}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobReport {
    /// The job.
    pub job: JobStatus,
    /// The index's position.
    pub index: IndexLag,
}
