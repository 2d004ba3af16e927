//! `POST /api/crawl/start`, `GET /api/crawl/status[/{job}]`, `POST /api/crawl/stop`:
//! requests and stops are published as events; status is read from the index.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use imgcrawl_events::{CrawlStopped, Event};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::db::jobs;
use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::lag;
use crate::model::crawl::{
    CrawlStarted, CrawlStopping, JobList, JobReport, JobState, StartCrawl, StopCrawl,
};
use crate::routes::publish_failed;
use crate::state::{AppState, RecentJob};
use crate::validate;

/// Starts a crawl: validates the request, publishes `crawl.requested` with a new
/// UUIDv7 job id, answers 202 with the id.
#[utoipa::path(post, path = "/api/crawl/start", tag = "crawl", request_body = StartCrawl,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The request is in the stream", body = CrawlStarted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Unknown bearer token (`forbidden`) or a read token (`insufficient_scope`): an admin token is needed", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Refused: bad URL, private address, bad scope or filter", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StartCrawl>,
) -> HttpResult<(StatusCode, Json<CrawlStarted>)> {
    let (job_id, now) = (Uuid::now_v7(), Utc::now());
    let label = body.label.clone();
    let (req, seeds) = validate::crawl_request(body, &state.config, job_id, now).await?;
    state
        .bus
        .publisher()
        .publish(&Event::CrawlRequested(req))
        .await
        .map_err(publish_failed)?;
    tracing::info!(%job_id, seeds = seeds.len(), "crawl requested");
    state.recent.push(RecentJob {
        job_id,
        seeds: seeds.clone(),
        label,
        requested_at: now,
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(CrawlStarted {
            job_id,
            state: JobState::Requested,
            seeds,
            status_url: format!("/api/crawl/status/{job_id}"),
        }),
    ))
}

/// Filters of the job list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Most jobs listed (default 50).
    pub limit: Option<u32>,
}

/// Lists jobs, newest first, with their counters and the index's lag.
#[utoipa::path(get, path = "/api/crawl/status", tag = "crawl", params(JobListQuery),
    responses(
        (status = 200, description = "Jobs", body = JobList),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or NATS unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<JobListQuery>,
) -> HttpResult<Json<JobList>> {
    let limit = state
        .config
        .page_size(q.limit)
        .map_err(|m| HttpError::bad_request("bad_query", m).field("limit"))?;
    let db_state = q.state.filter(|s| *s != JobState::Requested).map(|s| {
        serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    });
    let mut listed = Vec::new();
    if q.state.is_none() || q.state == Some(JobState::Requested) {
        listed = pending_requests(&state).await?;
    }
    if q.state != Some(JobState::Requested) {
        let indexed = jobs::list(&state.db(), db_state.as_deref(), limit)
            .await
            .map_err(|e| crate::error::db("list jobs", e))?;
        listed.extend(indexed);
    }
    listed.truncate(limit as usize);
    let index = lag::index_lag(&state).await?;
    Ok(Json(JobList {
        jobs: listed,
        index,
    }))
}

/// Jobs requested here that the index does not have yet, as `requested`.
async fn pending_requests(state: &AppState) -> HttpResult<Vec<crate::model::crawl::JobStatus>> {
    let recent = state.recent.newest_first();
    if recent.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = recent.iter().map(|j| j.job_id).collect();
    let known = jobs::known(&state.db(), &ids)
        .await
        .map_err(|e| crate::error::db("list jobs", e))?;
    let known: HashSet<Uuid> = known.into_iter().collect();
    Ok(recent
        .iter()
        .filter(|j| !known.contains(&j.job_id))
        .map(RecentJob::status)
        .collect())
}

/// One job: counters, pending work, rates, state, and the index's lag.
#[utoipa::path(get, path = "/api/crawl/status/{job}", tag = "crawl",
    params(("job" = Uuid, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = JobReport),
        (status = 400, description = "Not a job id", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or NATS unavailable", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    PathParams(job): PathParams<Uuid>,
) -> HttpResult<Json<JobReport>> {
    let indexed = jobs::get(&state.db(), job)
        .await
        .map_err(|e| crate::error::db("read job", e))?;
    let job_status = match indexed {
        Some(s) => s,
        None => match known_elsewhere(&state, job).await? {
            Some(r) => r.status(),
            None => return Err(HttpError::not_found(format!("unknown job {job}"))),
        },
    };
    let index = lag::index_lag(&state).await?;
    Ok(Json(JobReport {
        job: job_status,
        index,
    }))
}

/// A job the index does not have yet but that exists: requested here, or accepted by
/// the crawl stage (its spec is in the jobs bucket).
async fn known_elsewhere(state: &AppState, job: Uuid) -> HttpResult<Option<RecentJob>> {
    if let Some(r) = state.recent.get(job) {
        return Ok(Some(r));
    }
    let rec = state.bus.jobs.get(job).await.map_err(|e| {
        tracing::warn!(error = %e, "read jobs bucket");
        HttpError::unavailable("nats is unavailable; try again shortly")
    })?;
    Ok(rec.and_then(|r| r.spec.clone()).map(|spec| RecentJob {
        job_id: job,
        seeds: spec.seeds.clone(),
        label: spec.label.clone(),
        requested_at: spec.requested_at,
    }))
}

/// Stops a job: publishes `crawl.stopped`; in-flight work drains, nothing new starts.
#[utoipa::path(post, path = "/api/crawl/stop", tag = "crawl", request_body = StopCrawl,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The stop is in the stream", body = CrawlStopping),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Unknown bearer token (`forbidden`) or a read token (`insufficient_scope`): an admin token is needed", body = ErrorBody),
        (status = 404, description = "Unknown job", body = ErrorBody),
        (status = 409, description = "The job has already finished", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or NATS unavailable", body = ErrorBody),
    ))]
pub async fn stop(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<StopCrawl>,
) -> HttpResult<(StatusCode, Json<CrawlStopping>)> {
    let job = body.job_id;
    crate::validate::reason(body.reason.as_deref())?;
    match jobs::state_of(&state.db(), job)
        .await
        .map_err(|e| crate::error::db("read job", e))?
    {
        Some(s) if s.is_finished() => {
            return Err(HttpError::conflict(
                "job_finished",
                format!("job {job} has already finished"),
            ))
        }
        Some(_) => {}
        None if known_elsewhere(&state, job).await?.is_some() => {}
        None => return Err(HttpError::not_found(format!("unknown job {job}")).field("job_id")),
    }
    let event = Event::CrawlStopped(CrawlStopped {
        job_id: job,
        reason: body.reason,
        occurred_at: Utc::now(),
    });
    state
        .bus
        .publisher()
        .publish(&event)
        .await
        .map_err(publish_failed)?;
    tracing::info!(job_id = %job, "crawl stop requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(CrawlStopping {
            job_id: job,
            state: JobState::Stopping,
        }),
    ))
}
