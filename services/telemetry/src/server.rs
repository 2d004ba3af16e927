//! The telemetry listener: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers) and `/readyz` (its [`Readiness`] report: 200 when ready, else 503), on an
//! address of its own so that scraping and probing never go through (or wait behind)
//! a process's own API, its authentication or its rate limit.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{metrics, Readiness, TelemetryError};

/// How long each readiness probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The routes, over `readiness`.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn serve_metrics() -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(),
    )
        .into_response()
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.report(PROBE_TIMEOUT).await;
    let status = if report.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}

/// Binds `addr` and serves the telemetry routes over `readiness` until `shutdown`, in
/// a task of its own. Returns the bound address (port 0 picks a free one).
pub async fn spawn(
    addr: SocketAddr,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<SocketAddr, TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| TelemetryError::Bind {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| TelemetryError::Serve(e.to_string()))?;
    info!(listen = %bound, "serving /metrics, /healthz and /readyz");
    let app = router(readiness);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            warn!(error = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}
