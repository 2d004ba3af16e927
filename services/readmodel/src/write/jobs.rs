//! The `jobs` and `job_stops` tables: requests, stops, counters and status.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use imgcrawl_events::CrawlStopped;
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{Item, Request};
use super::clean::{big, json, opt_text, ts};
use super::progress::{Counters, Decision, JobStatus, Progress};
use crate::error::{db, ReadModelError};

/// Inserts new jobs (the first request per job id wins). A stop recorded before the
/// request starts the job as `stopping`.
pub(crate) async fn insert_requests(
    c: &mut PgConnection,
    reqs: &[Request],
) -> Result<(), ReadModelError> {
    if reqs.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = reqs.iter().map(|r| r.spec.job_id).collect();
    let seqs: Vec<i64> = reqs.iter().map(|r| big(r.seq)).collect();
    let specs: Vec<serde_json::Value> = reqs
        .iter()
        .map(|r| json(serde_json::to_value(&r.spec).unwrap_or_default()))
        .collect();
    let labels: Vec<Option<String>> = reqs
        .iter()
        .map(|r| opt_text(r.spec.label.as_deref()))
        .collect();
    let ats: Vec<DateTime<Utc>> = reqs.iter().map(|r| ts(r.spec.requested_at)).collect();
    sqlx::query(
        "INSERT INTO jobs (job_id, request_seq, seeds, spec, label, status, requested_at, stopped_at, last_event_at, last_seq)
         SELECT u.job_id, u.seq, ARRAY(SELECT jsonb_array_elements_text(u.spec -> 'seeds')), u.spec, u.label,
                CASE WHEN s.job_id IS NULL THEN 'running' ELSE 'stopping' END, u.at, s.occurred_at, u.at, u.seq
         FROM UNNEST($1::uuid[], $2::int8[], $3::jsonb[], $4::text[], $5::timestamptz[]) AS u(job_id, seq, spec, label, at)
         LEFT JOIN job_stops s ON s.job_id = u.job_id AND s.seq < u.seq
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&seqs)
    .bind(&specs)
    .bind(&labels)
    .bind(&ats)
    .execute(c)
    .await
    .map_err(db("insert jobs"))?;
    Ok(())
}

/// The request sequence of each of `ids` that is a known job.
pub(crate) async fn known(
    c: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, u64>, ReadModelError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT job_id, request_seq FROM jobs WHERE job_id = ANY($1)")
            .bind(ids)
            .fetch_all(c)
            .await
            .map_err(db("select jobs"))?;
    Ok(rows
        .into_iter()
        .map(|(j, s)| (j, u64::try_from(s).unwrap_or(0)))
        .collect())
}

/// Records the first stop per job, whether or not the job is known yet.
pub(crate) async fn record_stops(
    c: &mut PgConnection,
    stops: &[Item<&CrawlStopped>],
) -> Result<(), ReadModelError> {
    if stops.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = stops.iter().map(|s| s.ev.job_id).collect();
    let seqs: Vec<i64> = stops.iter().map(|s| big(s.seq)).collect();
    let reasons: Vec<Option<String>> = stops
        .iter()
        .map(|s| opt_text(s.ev.reason.as_deref()))
        .collect();
    let ats: Vec<DateTime<Utc>> = stops.iter().map(|s| ts(s.at)).collect();
    sqlx::query(
        "INSERT INTO job_stops AS t (job_id, seq, reason, occurred_at)
         SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::timestamptz[])
         ON CONFLICT (job_id) DO UPDATE SET seq = EXCLUDED.seq, reason = EXCLUDED.reason, occurred_at = EXCLUDED.occurred_at
         WHERE EXCLUDED.seq < t.seq",
    )
    .bind(&ids)
    .bind(&seqs)
    .bind(&reasons)
    .bind(&ats)
    .execute(c)
    .await
    .map_err(db("insert job_stops"))?;
    Ok(())
}

/// A job after its counters were updated.
#[derive(Debug, Clone)]
pub(crate) struct JobRow {
    pub status: JobStatus,
    pub counters: Counters,
}

/// A row the counter update returns.
#[derive(sqlx::FromRow)]
struct CounterRow {
    job_id: Uuid,
    status: String,
    #[sqlx(flatten)]
    counters: Counters,
}

/// Adds each job's counter deltas and moves `last_seq`/`last_event_at`, in one
/// statement for every job with an event in the batch. Returns the jobs' status and
/// counters after the update.
pub(crate) async fn apply_progress(
    c: &mut PgConnection,
    progress: &Progress,
    job_last: &BTreeMap<Uuid, (u64, DateTime<Utc>)>,
) -> Result<BTreeMap<Uuid, JobRow>, ReadModelError> {
    if job_last.is_empty() {
        return Ok(BTreeMap::new());
    }
    let zero = Counters::default();
    let deltas: Vec<(&Uuid, Counters)> = job_last
        .keys()
        .map(|j| (j, progress.get(j).map_or(zero, |p| p.delta)))
        .collect();
    let col = |f: fn(&Counters) -> i64| deltas.iter().map(|(_, d)| f(d)).collect::<Vec<i64>>();
    let ids: Vec<Uuid> = deltas.iter().map(|(j, _)| **j).collect();
    let last_seq: Vec<i64> = job_last.values().map(|(s, _)| big(*s)).collect();
    let last_at: Vec<DateTime<Utc>> = job_last.values().map(|(_, t)| ts(*t)).collect();
    let rows: Vec<CounterRow> = sqlx::query_as(
        "UPDATE jobs j SET
            pages_discovered = j.pages_discovered + u.pd, pages_fetched = j.pages_fetched + u.pf,
            pages_failed = j.pages_failed + u.pl, images_discovered = j.images_discovered + u.id,
            images_downloaded = j.images_downloaded + u.idl, images_rejected = j.images_rejected + u.ir,
            images_stored = j.images_stored + u.ist, bytes_downloaded = j.bytes_downloaded + u.b,
            last_event_at = CASE WHEN u.last_seq > j.last_seq THEN u.last_at ELSE j.last_event_at END,
            last_seq = GREATEST(j.last_seq, u.last_seq)
         FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[],
                     $9::int8[], $10::int8[], $11::timestamptz[])
              AS u(job_id, pd, pf, pl, id, idl, ir, ist, b, last_seq, last_at)
         WHERE j.job_id = u.job_id
         RETURNING j.job_id, j.status, j.pages_discovered, j.pages_fetched, j.pages_failed, j.images_discovered,
                   j.images_downloaded, j.images_rejected, j.images_stored, j.bytes_downloaded",
    )
    .bind(&ids)
    .bind(col(|d| d.pages_discovered))
    .bind(col(|d| d.pages_fetched))
    .bind(col(|d| d.pages_failed))
    .bind(col(|d| d.images_discovered))
    .bind(col(|d| d.images_downloaded))
    .bind(col(|d| d.images_rejected))
    .bind(col(|d| d.images_stored))
    .bind(col(|d| d.bytes_downloaded))
    .bind(&last_seq)
    .bind(&last_at)
    .fetch_all(c)
    .await
    .map_err(db("update job counters"))?;
    Ok(rows.into_iter().filter_map(job_row).collect())
}

fn job_row(r: CounterRow) -> Option<(Uuid, JobRow)> {
    let status = JobStatus::parse(&r.status)?;
    Some((
        r.job_id,
        JobRow {
            status,
            counters: r.counters,
        },
    ))
}

/// Applies stops and completions; returns the new status of each job updated.
pub(crate) async fn apply_status(
    c: &mut PgConnection,
    decisions: &[(Uuid, Decision)],
) -> Result<BTreeMap<Uuid, JobStatus>, ReadModelError> {
    if decisions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<Uuid> = decisions.iter().map(|(j, _)| *j).collect();
    let stop_at: Vec<Option<DateTime<Utc>>> =
        decisions.iter().map(|(_, d)| d.stop_at.map(ts)).collect();
    let complete: Vec<bool> = decisions
        .iter()
        .map(|(_, d)| d.complete.is_some())
        .collect();
    let done_at: Vec<Option<DateTime<Utc>>> = decisions
        .iter()
        .map(|(_, d)| d.complete.map(|c| ts(c.at)))
        .collect();
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "UPDATE jobs j SET
            status = CASE
                WHEN j.status NOT IN ('running', 'stopping') THEN j.status
                WHEN u.complete AND (j.status = 'stopping' OR u.stop_at IS NOT NULL) THEN 'stopped'
                WHEN u.complete THEN 'completed'
                WHEN u.stop_at IS NOT NULL THEN 'stopping'
                ELSE j.status END,
            stopped_at = CASE WHEN j.status = 'running' AND u.stop_at IS NOT NULL THEN u.stop_at ELSE j.stopped_at END,
            completed_at = CASE WHEN j.status IN ('running', 'stopping') AND u.complete THEN u.done_at ELSE j.completed_at END
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::bool[], $4::timestamptz[]) AS u(job_id, stop_at, complete, done_at)
         WHERE j.job_id = u.job_id
         RETURNING j.job_id, j.status",
    )
    .bind(&ids)
    .bind(&stop_at)
    .bind(&complete)
    .bind(&done_at)
    .fetch_all(c)
    .await
    .map_err(db("update job status"))?;
    Ok(rows
        .into_iter()
        .filter_map(|(j, s)| Some((j, JobStatus::parse(&s)?)))
        .collect())
}
