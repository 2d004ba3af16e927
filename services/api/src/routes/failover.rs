//! `POST /api/ha/failover`: a manual failover (or the switchover back), carried out by
//! the HA watcher holding the lease.
//!
//! The body, the choice of the target, the request to the watcher and the mapping of
//! its answer are the HA API's (`imgcrawl_web::ha`): an unknown node is 404, the
//! primary 409 `already_primary`, a single node 409 `no_standby`; without a target the
//! one standby is picked, several are 422 `target_required`; the watcher's answer is
//! 200 with the new pointer, 409 `failover_refused` with its reason, or 503
//! `no_watcher` when no watcher answered within `failover_wait_ms` (the request is
//! then withdrawn). On success the reads of this server move to the new primary before
//! the answer leaves.

use axum::extract::State;
use axum::Json;
use imgcrawl_bus::ha::HaStore;
use imgcrawl_bus::ha_requests::FailoverResult;
use imgcrawl_web::ha;
use tracing::info;

use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::RawBody;
use crate::model::ha::{FailoverDone, FailoverRequest};
use crate::state::AppState;

/// The watcher's answer (it did fail over) as ours.
fn answer(state: &AppState, r: FailoverResult) -> HttpResult<Json<FailoverDone>> {
    let FailoverResult { by, pointer, .. } = r;
    match pointer {
        Some(p) => {
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
        None => Err(HttpError::internal(
            "fail over",
            format!("watcher {by} answered ok without a pointer"),
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
        (status = 403, description = "Unknown bearer token (`forbidden`) or a read token (`insufficient_scope`): an admin token is needed", body = ErrorBody),
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
    let req = ha::parse_failover(&body)?;
    let primary = state.nodes.primary();
    let names: Vec<&str> = state.nodes.list().iter().map(|n| n.name.as_str()).collect();
    let target = ha::pick_target(Some(primary.name()), &names, req.target.as_deref())?;
    let store = HaStore::open(&state.bus).await.map_err(ha::nats_down)?;
    let done = ha::failover(&store, &target, req, state.config.failover_wait()).await?;
    answer(&state, done)
}
