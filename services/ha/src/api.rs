//! The HA HTTP API (the seed's paths), served by every watcher; JSON in and out.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /api/status` | nodes (role, health, checkpoint, epoch, lag), primary, epoch, last failover, lease, consistency |
//! | `GET /api/health` | 200 if the primary is healthy, 503 otherwise |
//! | `POST /api/failover` | `{"target": "pg2", "reason": "...", "force": false}`: manual failover or switchover; waits for the lease holder |
//! | `POST /api/sync` | run a consistency check now; `?wait=true` waits for its report |
//! | `GET /api/sync-status` | the last consistency report, and whether one is running |
//!
//! Requests go through KV, so any watcher's API works: the lease holder carries them
//! out and records the answer (failovers: `imgcrawl_bus::ha_requests`, the protocol
//! the CLI and the imgcrawl API use too).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use imgcrawl_bus::ha_requests::request_failover;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::health::Health;
use crate::report::{Report, SyncRequest};
use crate::state::{self, sync_report_key, sync_request_key, Shared};

type St = State<Arc<Shared>>;

/// Serves the API on `listener` until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/api/status", get(status))
        .route("/api/health", get(health))
        .route("/api/failover", post(failover))
        .route("/api/sync", post(sync))
        .route("/api/sync-status", get(sync_status))
        .with_state(shared);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Err(e) = served {
        warn!(error = %e, "ha api stopped");
    }
}

fn reply(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

async fn status(State(shared): St) -> Response {
    Json(state::status(&shared)).into_response()
}

async fn health(State(shared): St) -> Response {
    let i = shared.lock();
    let primary = i.pointer().map(|p| p.primary.clone());
    let healthy = |n: &str| {
        i.nodes
            .iter()
            .any(|s| s.name == n && s.health == Health::Up)
    };
    let primary_ok = primary.as_deref().is_some_and(healthy);
    let all_up = i.nodes.iter().all(|n| n.health == Health::Up);
    let nodes: serde_json::Map<String, serde_json::Value> = i
        .nodes
        .iter()
        .map(|n| (n.name.clone(), json!(n.health)))
        .collect();
    let status = match (primary_ok, all_up) {
        (true, true) => "ok",
        (true, false) => "degraded",
        (false, _) => "down",
    };
    let code = if primary_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": status,
        "primary": primary,
        "epoch": i.pointer().map(|p| p.epoch),
        "nodes": nodes,
        "lease_holder": i.holder,
        "watcher": shared.me,
    });
    drop(i);
    reply(code, body)
}

/// Body of `POST /api/failover`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverBody {
    target: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn failover(State(shared): St, Json(body): Json<FailoverBody>) -> Response {
    if !shared.config.nodes.iter().any(|n| n.name == body.target) {
        let msg = format!("unknown node {:?}", body.target);
        return reply(
            StatusCode::BAD_REQUEST,
            json!({ "ok": false, "error": msg }),
        );
    }
    let wait = shared.config.request_timeout();
    let asked = request_failover(&shared.store, &body.target, body.reason, body.force, wait);
    match asked.await {
        Ok(Some(r)) if r.ok => reply(StatusCode::OK, json!(r)),
        Ok(Some(r)) => reply(StatusCode::CONFLICT, json!(r)),
        Ok(None) => {
            let msg = "no watcher holding the lease answered in time; the request was withdrawn";
            reply(
                StatusCode::GATEWAY_TIMEOUT,
                json!({ "ok": false, "error": msg }),
            )
        }
        Err(e) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "ok": false, "error": e.to_string() }),
        ),
    }
}

/// Query of `POST /api/sync`.
#[derive(Debug, Deserialize)]
struct SyncQuery {
    #[serde(default)]
    wait: bool,
    /// Seconds to wait with `wait=true` (default 300).
    #[serde(default)]
    timeout_secs: Option<u64>,
}

async fn sync(State(shared): St, Query(q): Query<SyncQuery>) -> Response {
    let req = SyncRequest {
        id: Uuid::now_v7(),
        at: Utc::now(),
    };
    if let Err(e) = shared.store.put(&sync_request_key(), &req).await {
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "error": e.to_string() }),
        );
    }
    shared.wake.notify_one();
    if !q.wait {
        return reply(
            StatusCode::ACCEPTED,
            json!({ "id": req.id, "status": "requested" }),
        );
    }
    let wait = Duration::from_secs(q.timeout_secs.unwrap_or(300));
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some((r, _))) = shared.store.get::<Report>(&sync_report_key()).await {
            if r.request_id == Some(req.id) {
                return reply(StatusCode::OK, json!(r));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reply(
        StatusCode::GATEWAY_TIMEOUT,
        json!({ "id": req.id, "error": "no report in time" }),
    )
}

async fn sync_status(State(shared): St) -> Response {
    let last = match shared.store.get::<Report>(&sync_report_key()).await {
        Ok(Some((r, _))) => Some(r),
        _ => shared.lock().last_report.clone(),
    };
    let pending = shared
        .store
        .get::<SyncRequest>(&sync_request_key())
        .await
        .ok()
        .flatten()
        .map(|(r, _)| r);
    let requested = pending.filter(|p| {
        last.as_ref()
            .is_none_or(|l| l.request_id != Some(p.id) && l.started_at < p.at)
    });
    let running = shared.lock().consistency_running;
    reply(
        StatusCode::OK,
        json!({ "running": running, "requested": requested, "last": last }),
    )
}
