//! Jobs as the index holds them: one crawl request each, with its state and counters
//! (read by the API, the gallery, the CLI and the benchmarks), and the jobs completed
//! recently (re-announced by the index at start-up).

use chrono::{DateTime, Utc};
use imgcrawl_events::{CompletionStatus, CrawlCompleted};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{db, ReadModelError};
use crate::Counters;

const COLUMNS: &str = "job_id, status, label, seeds, requested_at, stopped_at, completed_at, last_event_at,
    pages_discovered, pages_fetched, pages_failed, images_discovered, images_downloaded, images_rejected,
    images_stored, bytes_downloaded";

/// One `jobs` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// The job.
    pub job_id: Uuid,
    /// `running`, `stopping`, `completed` or `stopped`.
    pub status: String,
    /// The request's label.
    pub label: Option<String>,
    /// Seed URLs.
    pub seeds: Vec<String>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// When a stop was requested.
    pub stopped_at: Option<DateTime<Utc>>,
    /// When it completed or stopped.
    pub completed_at: Option<DateTime<Utc>>,
    /// Time of its latest event.
    pub last_event_at: DateTime<Utc>,
    /// Its counters.
    #[sqlx(flatten)]
    pub counters: Counters,
}

/// Jobs, newest request first, optionally only those with `status`.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    limit: u32,
) -> Result<Vec<JobRow>, ReadModelError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE ($1::text IS NULL OR status = $1)
         ORDER BY request_seq DESC LIMIT $2"
    ))
    .bind(status)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db("list jobs"))
}

/// One job, if the index has it.
pub async fn get(pool: &PgPool, job: Uuid) -> Result<Option<JobRow>, ReadModelError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE job_id = $1"))
        .bind(job)
        .fetch_optional(pool)
        .await
        .map_err(db("read job"))
}

/// How many distinct images the job's sources resolved to.
pub async fn distinct_images(pool: &PgPool, job: Uuid) -> Result<i64, ReadModelError> {
    sqlx::query_scalar(
        "SELECT count(DISTINCT sha256) FROM image_sources WHERE job_id = $1 AND sha256 IS NOT NULL",
    )
    .bind(job)
    .fetch_one(pool)
    .await
    .map_err(db("count distinct images"))
}

/// The status column of a job, if the index has it.
pub async fn status(pool: &PgPool, job: Uuid) -> Result<Option<String>, ReadModelError> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE job_id = $1")
        .bind(job)
        .fetch_optional(pool)
        .await
        .map_err(db("read job status"))
}

/// Which of `ids` the index has.
pub async fn known(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, ReadModelError> {
    sqlx::query_scalar("SELECT job_id FROM jobs WHERE job_id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
        .map_err(db("list jobs"))
}

/// How many jobs are in each status, by status.
pub async fn count_by_status(pool: &PgPool) -> Result<Vec<(String, i64)>, ReadModelError> {
    sqlx::query_as("SELECT status, count(*) FROM jobs GROUP BY status ORDER BY status")
        .fetch_all(pool)
        .await
        .map_err(db("count jobs by status"))
}

type Completed = (Uuid, String, i64, i64, i64, i64, i64, DateTime<Utc>);

/// `crawl.completed` for the jobs of projection `checkpoint_name` that completed
/// within `window_secs` (stream time) before its checkpoint, oldest first.
pub async fn recent_completions(
    pool: &PgPool,
    checkpoint_name: &str,
    window_secs: u64,
) -> Result<Vec<CrawlCompleted>, ReadModelError> {
    let rows: Vec<Completed> = sqlx::query_as(
        "SELECT j.job_id, j.status, j.pages_fetched, j.pages_failed, j.images_stored, j.images_rejected,
                j.bytes_downloaded, j.completed_at
         FROM jobs j JOIN projection_checkpoint c ON c.name = $1
         WHERE j.status IN ('completed', 'stopped') AND j.completed_at IS NOT NULL
           AND j.completed_at >= c.updated_at - make_interval(secs => $2)
         ORDER BY j.completed_at, j.job_id",
    )
    .bind(checkpoint_name)
    .bind(window_secs as f64)
    .fetch_all(pool)
    .await
    .map_err(db("select recent completions"))?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|r| CrawlCompleted {
            job_id: r.0,
            status: if r.1 == "stopped" {
                CompletionStatus::Stopped
            } else {
                CompletionStatus::Completed
            },
            pages_fetched: u(r.2),
            pages_failed: u(r.3),
            images_stored: u(r.4),
            images_rejected: u(r.5),
            bytes: u(r.6),
            occurred_at: r.7,
        })
        .collect())
}
