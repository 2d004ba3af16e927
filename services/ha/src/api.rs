//! The HA HTTP API (the seed's paths), served by every watcher; JSON in and out, with
//! the main API's error shape, token check and extractors (`imgcrawl_web`).
//!
//! | method and path | token | what |
//! |---|---|---|
//! | `GET /api/health` | none | 200 if the primary is healthy, 503 otherwise |
//! | `GET /api/status` | read, unless `public_reads` | nodes (role, health, checkpoint, epoch, lag), primary, epoch, last failover, lease, consistency |
//! | `GET /api/sync-status` | read, unless `public_reads` | the last consistency report, and whether one is running |
//! | `POST /api/failover` | admin | `{"target": "pg2", "reason": "...", "force": false}` (or empty: the one standby): manual failover or switchover; waits for the lease holder |
//! | `POST /api/sync` | admin | run a consistency check now; `?wait=true&timeout_secs=N` (1..=3600) waits for its report |
//!
//! Requests go through KV, so any watcher's API works: the lease holder carries them
//! out and records the answer (failovers: `imgcrawl_bus::ha_requests`, the protocol
//! the CLI and the imgcrawl API use too; the HTTP side is `imgcrawl_web::ha`, the
//! API's `POST /api/ha/failover` too).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use imgcrawl_bus::ha_requests::FailoverResult;
use imgcrawl_web::auth::{require, Guard, Scope, Tokens};
use imgcrawl_web::extract::{QueryParams, RawBody};
use imgcrawl_web::{ha, HttpError, HttpResult, RustlsConfig};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use uuid::Uuid;

use crate::health::Health;
use crate::report::{Report, SyncRequest};
use crate::state::{self, sync_report_key, sync_request_key, Shared};

/// Largest request body (a failover request is a few hundred bytes).
const BODY_LIMIT: usize = 64 * 1024;

/// Default wait of `POST /api/sync?wait=true`, in seconds.
const SYNC_WAIT_SECS: u64 = 300;

/// The routes, each guarded by the scope it needs.
pub(crate) fn router(shared: Arc<Shared>, tokens: Arc<Tokens>, public_reads: bool) -> Router {
    let guard = |needed| Guard {
        tokens: tokens.clone(),
        needed,
    };
    let reads = Router::new()
        .route("/api/status", get(status))
        .route("/api/sync-status", get(sync_status));
    let reads = if public_reads {
        reads
    } else {
        reads.route_layer(from_fn_with_state(guard(Scope::Read), require))
    };
    let mutations = Router::new()
        .route("/api/failover", post(failover))
        .route("/api/sync", post(sync))
        .route_layer(from_fn_with_state(guard(Scope::Admin), require));
    Router::new()
        .route("/api/health", get(health))
        .merge(reads)
        .merge(mutations)
        .fallback(|| async {
            HttpError::new(StatusCode::NOT_FOUND, "no_route", "no such endpoint")
        })
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// Serves `app` on `listener` (HTTPS with `tls`) until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<RustlsConfig>,
    shutdown: CancellationToken,
) {
    if let Err(e) = imgcrawl_web::serve(listener, app, tls, shutdown).await {
        warn!(error = %e, "ha api stopped");
    }
}

type St = State<Arc<Shared>>;

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

/// `POST /api/failover`: the shared checks, then the lease holder's answer.
async fn failover(State(shared): St, RawBody(body): RawBody) -> HttpResult<Json<FailoverResult>> {
    let req = ha::parse_failover(&body)?;
    let (primary, _) = shared
        .store
        .pointer(imgcrawl_bus::ha::POSTGRES)
        .await
        .map_err(ha::nats_down)?
        .unzip();
    let names: Vec<&str> = shared
        .config
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    let primary = primary.map(|p| p.primary);
    let target = ha::pick_target(primary.as_deref(), &names, req.target.as_deref())?;
    let done = ha::failover(&shared.store, &target, req, shared.config.request_timeout()).await?;
    Ok(Json(done))
}

/// Query of `POST /api/sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncQuery {
    #[serde(default)]
    wait: bool,
    /// Seconds to wait with `wait=true` (default 300, at most [`ha::MAX_WAIT_SECS`]).
    #[serde(default)]
    timeout_secs: Option<u64>,
}

async fn sync(State(shared): St, QueryParams(q): QueryParams<SyncQuery>) -> HttpResult<Response> {
    let wait = ha::wait_secs(
        "timeout_secs",
        q.timeout_secs,
        SYNC_WAIT_SECS,
        ha::MAX_WAIT_SECS,
    )?;
    let req = SyncRequest {
        id: Uuid::now_v7(),
        at: Utc::now(),
    };
    shared
        .store
        .put(&sync_request_key(), &req)
        .await
        .map_err(ha::nats_down)?;
    shared.wake.notify_one();
    if !q.wait {
        return Ok(reply(
            StatusCode::ACCEPTED,
            json!({ "id": req.id, "status": "requested" }),
        ));
    }
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if let Ok(Some((r, _))) = shared.store.get::<Report>(&sync_report_key()).await {
            if r.request_id == Some(req.id) {
                return Ok(reply(StatusCode::OK, json!(r)));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(HttpError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "no_report",
        format!(
            "no consistency report within {} s (request {}); see GET /api/sync-status",
            wait.as_secs(),
            req.id
        ),
    ))
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
