//! `GET /api/ha-status`, `GET /api/ha/sync-status`, `POST /api/ha/failover`.
//!
//! Until the HA watcher runs there is one node: the configured database is the
//! primary, healthy if it answers, and its lag is the index's (stream last sequence vs
//! checkpoint). A failover needs a standby, so it is refused with 409.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::Utc;

use crate::db::{endpoint, lag, ping};
use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::RawBody;
use crate::model::crawl::IndexLag;
use crate::model::ha::{
    FailoverAccepted, FailoverRequest, HaNode, HaStatus, NodeSync, StreamState, SyncStatus,
};
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The node, measured now; `None` lag when the node or NATS does not answer.
pub(crate) async fn primary(state: &AppState) -> (HaNode, Option<IndexLag>) {
    let name = state.config.checkpoint_name.clone();
    let (healthy, latency, error) = match ping(&state.db, CHECK_TIMEOUT).await {
        Ok(ms) => (true, Some(ms), None),
        Err(e) => (false, None, Some(e)),
    };
    let lag = if healthy {
        lag::index_lag(state).await.ok()
    } else {
        None
    };
    let node = HaNode {
        name,
        role: "primary".into(),
        endpoint: endpoint(&state.config.database_url),
        healthy,
        latency_ms: latency,
        checkpoint: lag.as_ref().map(|l| l.checkpoint),
        lag_events: lag.as_ref().map(|l| l.lag_events),
        lag_seconds: lag.as_ref().map(|l| l.lag_seconds),
        error,
    };
    (node, lag)
}

async fn stream(state: &AppState, lag: Option<&IndexLag>) -> HttpResult<StreamState> {
    let (name, last_seq) = match lag {
        Some(l) => (state.bus.config.stream.clone(), l.stream_last_seq),
        None => lag::stream_end(&state.bus).await?,
    };
    Ok(StreamState { name, last_seq })
}

/// The nodes, which is primary, their health and lag.
#[utoipa::path(get, path = "/api/ha-status", tag = "ha",
    responses(
        (status = 200, description = "HA state", body = HaStatus),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
pub async fn status(State(state): State<AppState>) -> HttpResult<Json<HaStatus>> {
    let (node, lag) = primary(&state).await;
    let stream = stream(&state, lag.as_ref()).await?;
    Ok(Json(HaStatus {
        mode: "single".into(),
        primary: node.name.clone(),
        epoch: 0,
        nodes: vec![node],
        stream,
        checked_at: Utc::now(),
    }))
}

/// How far each node is behind the stream.
#[utoipa::path(get, path = "/api/ha/sync-status", tag = "ha",
    responses(
        (status = 200, description = "Synchronisation per node", body = SyncStatus),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "NATS unavailable", body = ErrorBody),
    ))]
pub async fn sync_status(State(state): State<AppState>) -> HttpResult<Json<SyncStatus>> {
    let (node, lag) = primary(&state).await;
    let stream = stream(&state, lag.as_ref()).await?;
    let in_sync = node.lag_events == Some(0);
    Ok(Json(SyncStatus {
        in_sync,
        nodes: vec![NodeSync {
            name: node.name,
            checkpoint: node.checkpoint,
            lag_events: node.lag_events,
            lag_seconds: node.lag_seconds,
            in_sync,
        }],
        stream,
        checked_at: Utc::now(),
    }))
}

/// Asks for a failover to `target` (or the best standby). With a single node there is
/// nothing to fail over to: 409.
#[utoipa::path(post, path = "/api/ha/failover", tag = "ha",
    request_body(content = Option<FailoverRequest>, description = "Optional; an empty body picks the best standby"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Failover published (once an HA watcher runs)", body = FailoverAccepted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Wrong bearer token", body = ErrorBody),
        (status = 404, description = "Unknown target node", body = ErrorBody),
        (status = 409, description = "No standby to fail over to, or the target is already primary", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
    ))]
pub async fn failover(
    State(state): State<AppState>,
    RawBody(body): RawBody,
) -> HttpResult<Json<FailoverAccepted>> {
    let req: FailoverRequest = if body.iter().all(u8::is_ascii_whitespace) {
        FailoverRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                HttpError::unprocessable("invalid_body", e.to_string())
            }
            _ => HttpError::bad_request("malformed_json", e.to_string()),
        })?
    };
    let primary = &state.config.checkpoint_name;
    match req.target.as_deref() {
        Some(t) if t == primary => Err(HttpError::conflict(
            "already_primary",
            format!("{t} is already the primary"),
        )),
        Some(t) => Err(HttpError::not_found(format!(
            "unknown node {t:?}; the nodes are: {primary}"
        ))
        .field("target")),
        None => Err(HttpError::conflict(
            "no_standby",
            format!("single node ({primary}): there is no standby to fail over to"),
        )),
    }
}
