//! `GET /healthz` (the process answers) and `GET /readyz` (NATS and the current
//! primary PostgreSQL node answer, each within `check_timeout_ms`). Neither is rate
//! limited.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imgcrawl_bus::Bus;

use crate::db::ping;
use crate::model::{Check, Health, Ready};
use crate::state::AppState;

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether NATS answers: the connection is up and a flush round trip completes within
/// `timeout`.
pub async fn nats_check(bus: &Bus, timeout: Duration) -> Check {
    let start = Instant::now();
    let state = bus.client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Check {
            ok: false,
            latency_ms: None,
            error: Some(format!("connection {state}")),
        };
    }
    match tokio::time::timeout(timeout, bus.client.flush()).await {
        Ok(Ok(())) => Check {
            ok: true,
            latency_ms: Some(start.elapsed().as_secs_f64() * 1000.0),
            error: None,
        },
        Ok(Err(e)) => Check {
            ok: false,
            latency_ms: None,
            error: Some(e.to_string()),
        },
        Err(_) => Check {
            ok: false,
            latency_ms: None,
            error: Some("no answer in time".into()),
        },
    }
}

/// Ready when NATS and the current primary database both answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready; the checks say why", body = Ready),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let (timeout, primary) = (state.config.check_timeout(), state.nodes.primary());
    let (nats, pg) = tokio::join!(
        nats_check(&state.bus, timeout),
        ping(&primary.pool, timeout)
    );
    let postgres = match pg {
        Ok(ms) => Check {
            ok: true,
            latency_ms: Some(ms),
            error: None,
        },
        Err(e) => Check {
            ok: false,
            latency_ms: None,
            error: Some(e),
        },
    };
    let ready = nats.ok && postgres.ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" }.into(),
        nats,
        postgres,
        primary: primary.node.clone(),
    };
    (status, Json(body))
}
