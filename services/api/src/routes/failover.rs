//! `POST /api/ha/failover`: a manual failover (or the switchover back), carried out by
//! the HA watcher holding the lease.
//!
//! The request is checked here first (an unknown node is 404, the primary 409
//! `already_primary`, a single node 409 `no_standby`; without a target the one standby
//! is picked, several are 422 `target_required`), then handed to the watcher through
//! KV (`imgcrawl_bus::ha_requests`, the protocol `imgcrawl ha failover` uses) and
//! answered with the watcher's answer: 200 with the new pointer, 409
//! `failover_refused` with its reason, or 503 `no_watcher` when no watcher answered
//! within `failover_wait_ms` (the request is then withdrawn). On success the reads of
//! this server move to the new primary before the answer leaves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imgcrawl_bus::ha::HaStore;
use imgcrawl_bus::ha_requests::{request_failover, FailoverResult};
use tracing::{info, warn};

use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::RawBody;
use crate::model::ha::{FailoverDone, FailoverRequest};
use crate::state::AppState;

/// The body: empty (the one standby), or a [`FailoverRequest`].
fn parse(body: &[u8]) -> HttpResult<FailoverRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(FailoverRequest::default());
    }
    let req: FailoverRequest = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            HttpError::unprocessable("invalid_body", e.to_string())
        }
        _ => HttpError::bad_request("malformed_json", e.to_string()),
    })?;
    crate::validate::reason(req.reason.as_deref())?;
    Ok(req)
}

/// The node to promote: the one asked for, else the only standby.
fn pick_target(state: &AppState, asked: Option<&str>) -> HttpResult<String> {
    let p = state.nodes.primary();
    let primary = p.name();
    let names: Vec<&str> = state.nodes.list().iter().map(|n| n.name.as_str()).collect();
    match asked {
        Some(t) if t == primary => Err(HttpError::conflict(
            "already_primary",
            format!("{t} is already the primary"),
        )),
        Some(t) if !names.contains(&t) => Err(HttpError::not_found(format!(
            "unknown node {t:?}; the nodes are: {}",
            names.join(", ")
        ))
        .field("target")),
        _ if names.len() < 2 => Err(HttpError::conflict(
            "no_standby",
            format!("single node ({primary}): there is no standby to fail over to"),
        )),
        Some(t) => Ok(t.to_string()),
        None => {
            let standbys: Vec<&str> = names.iter().copied().filter(|n| *n != primary).collect();
            match standbys.as_slice() {
                [one] => Ok(one.to_string()),
                several => Err(HttpError::unprocessable(
                    "target_required",
                    format!(
                        "several standbys ({}): name the node to promote in `target`",
                        several.join(", ")
                    ),
                )
                .field("target")),
            }
        }
    }
}

/// The watcher's answer as ours.
fn answer(state: &AppState, r: FailoverResult) -> HttpResult<Json<FailoverDone>> {
    let FailoverResult {
        ok,
        error,
        by,
        pointer,
        ..
    } = r;
    match (ok, pointer) {
        (true, Some(p)) => {
            state.nodes.follow_pointer(Some(p.clone()));
            info!(primary = %p.primary, epoch = p.epoch, watcher = %by, "failover done");
            Ok(Json(FailoverDone {
                primary: p.primary,
                epoch: p.epoch,
                reason: p.reason,
                at: p.at,
                previous: p.previous,
                watcher: by,
            }))
        }
        (true, None) => Err(HttpError::internal(
            "fail over",
            format!("watcher {by} answered ok without a pointer"),
        )),
        (false, _) => Err(HttpError::conflict(
            "failover_refused",
            format!(
                "the HA watcher ({by}) refused: {}",
                error.as_deref().unwrap_or("no reason given")
            ),
        )),
    }
}

/// Makes `target` (or the only standby) the primary, through the HA watcher holding the
/// lease; waits for its answer (`failover_wait_ms`, 15 s by default).
#[utoipa::path(post, path = "/api/ha/failover", tag = "ha",
    request_body(content = Option<FailoverRequest>, description = "Optional; an empty body promotes the standby when there is exactly one"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The target is the primary now: the new pointer", body = FailoverDone),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown target node", body = ErrorBody),
        (status = 409, description = "No standby to fail over to (`no_standby`), the target is already primary (`already_primary`), or the HA watcher refused (`failover_refused`: target down, not checked yet, or lagging without `force`)", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body, or several standbys and no target (`target_required`)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "No HA watcher holding the lease answered in time (`no_watcher`; the request is withdrawn), or NATS unavailable", body = ErrorBody),
    ))]
pub async fn failover(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> HttpResult<Json<FailoverDone>> {
    let req = parse(&body)?;
    let target = pick_target(&state, req.target.as_deref())?;
    let nats_down = |e: imgcrawl_bus::BusError| {
        warn!(error = %e, "failover request failed");
        HttpError::unavailable(
            "nats is unavailable: the failover could not be requested or its answer read; check /api/ha-status before asking again",
        )
    };
    let store = HaStore::open(&state.bus).await.map_err(nats_down)?;
    let wait = state.config.failover_wait();
    let asked = request_failover(&store, &target, req.reason, req.force, wait).await;
    match asked.map_err(nats_down)? {
        Some(r) => answer(&state, r),
        None => Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_watcher",
            format!(
                "no HA watcher holding the lease answered within {:.1} s (is `imgcrawl ha` running?); the request was withdrawn",
                wait.as_secs_f64()
            ),
        )),
    }
}
