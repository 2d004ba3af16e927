//! Jobs through the read model (`imgcrawl_readmodel::jobs`), as the API shows them:
//! counters, state, rates. No SQL here.

use chrono::{DateTime, Utc};
use imgcrawl_readmodel::jobs::{self, JobRow};
use imgcrawl_readmodel::ReadModelError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::model::crawl::{ImageCounters, JobState, JobStatus, PageCounters, Rates};

/// Jobs, newest request first, optionally only those in `state`.
pub async fn list(
    db: &PgPool,
    state: Option<&str>,
    limit: u32,
) -> Result<Vec<JobStatus>, ReadModelError> {
    let rows = jobs::list(db, state, limit).await?;
    let now = Utc::now();
    Ok(rows.into_iter().map(|r| to_status(r, None, now)).collect())
}

/// One job with its distinct-image count, if the index has it.
pub async fn get(db: &PgPool, job: Uuid) -> Result<Option<JobStatus>, ReadModelError> {
    let Some(row) = jobs::get(db, job).await? else {
        return Ok(None);
    };
    let distinct = jobs::distinct_images(db, job).await?;
    Ok(Some(to_status(row, Some(distinct), Utc::now())))
}

/// The status column of a job, if the index has it.
pub async fn state_of(db: &PgPool, job: Uuid) -> Result<Option<JobState>, ReadModelError> {
    Ok(jobs::status(db, job)
        .await?
        .as_deref()
        .map(JobState::from_db))
}

/// Whether the index has the job.
pub async fn exists(db: &PgPool, job: Uuid) -> Result<bool, ReadModelError> {
    Ok(state_of(db, job).await?.is_some())
}

/// Which of `ids` the index has.
pub async fn known(db: &PgPool, ids: &[Uuid]) -> Result<Vec<Uuid>, ReadModelError> {
    jobs::known(db, ids).await
}

fn per_sec(n: i64, secs: f64) -> f64 {
    let r = n as f64 / secs.max(1e-3);
    (r * 100.0).round() / 100.0
}

fn to_status(r: JobRow, distinct: Option<i64>, now: DateTime<Utc>) -> JobStatus {
    let state = JobState::from_db(&r.status);
    let end = match (state.is_finished(), r.completed_at) {
        (true, Some(t)) => t,
        (true, None) => r.last_event_at,
        (false, _) => now,
    };
    let elapsed = ((end - r.requested_at).num_milliseconds().max(0) as f64) / 1000.0;
    let c = r.counters;
    let outcomes = c.pages_fetched + c.pages_failed;
    JobStatus {
        job_id: r.job_id,
        state,
        label: r.label,
        seeds: r.seeds,
        requested_at: Some(r.requested_at),
        stopped_at: r.stopped_at,
        completed_at: r.completed_at,
        last_event_at: Some(r.last_event_at),
        pages: PageCounters {
            discovered: c.pages_discovered,
            fetched: c.pages_fetched,
            failed: c.pages_failed,
            pending: c.pages_pending(),
        },
        images: ImageCounters {
            discovered: c.images_discovered,
            downloaded: c.images_downloaded,
            rejected: c.images_rejected,
            stored: c.images_stored,
            pending: c.images_pending(),
            distinct,
        },
        bytes_downloaded: c.bytes_downloaded,
        elapsed_secs: elapsed,
        rate: Rates {
            pages_per_sec: per_sec(outcomes, elapsed),
            images_per_sec: per_sec(c.images_stored, elapsed),
            bytes_per_sec: per_sec(c.bytes_downloaded, elapsed),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgcrawl_readmodel::Counters;

    fn row(status: &str) -> JobRow {
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        JobRow {
            job_id: Uuid::nil(),
            status: status.into(),
            label: None,
            seeds: vec!["http://a/".into()],
            requested_at: t0,
            stopped_at: None,
            completed_at: Some(t0 + chrono::Duration::seconds(4)),
            last_event_at: t0 + chrono::Duration::seconds(4),
            counters: Counters {
                pages_discovered: 10,
                pages_fetched: 6,
                pages_failed: 2,
                images_discovered: 20,
                images_downloaded: 12,
                images_rejected: 3,
                images_stored: 10,
                bytes_downloaded: 4000,
            },
        }
    }

    #[test]
    fn counters_pending_and_rates_follow_the_row() {
        let s = to_status(row("completed"), Some(7), Utc::now());
        assert_eq!(s.state, JobState::Completed);
        assert_eq!((s.pages.pending, s.images.pending), (2, 7));
        assert_eq!(s.images.distinct, Some(7));
        assert_eq!(s.elapsed_secs, 4.0);
        assert_eq!(
            (
                s.rate.pages_per_sec,
                s.rate.images_per_sec,
                s.rate.bytes_per_sec
            ),
            (2.0, 2.5, 1000.0)
        );
        let running = to_status(row("running"), None, Utc::now());
        assert!(
            running.elapsed_secs > 4.0,
            "a running job's clock runs to now"
        );
    }
}
