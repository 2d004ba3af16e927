//! `GET /healthz` (the process answers) and `GET /readyz` (NATS and the primary
//! PostgreSQL node answer). Neither is rate limited.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use imgcrawl_bus::Bus;

use crate::db::ping;
use crate::model::{Check, Health, Ready};
use crate::state::AppState;

/// How long a readiness check waits for each dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Whether NATS answers: the connection is up and a flush round trip completes.
pub async fn nats_check(bus: &Bus) -> Check {
    let start = Instant::now();
    let state = bus.client.connection_state();
    if state != async_nats::connection::State::Connected {
        return Check {
            ok: false,
            latency_ms: None,
            error: Some(format!("connection {state}")),
        };
    }
    match tokio::time::timeout(CHECK_TIMEOUT, bus.client.flush()).await {
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

/// Ready when NATS and the primary database both answer.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "Not ready; the checks say why", body = Ready),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let (nats, pg) = tokio::join!(nats_check(&state.bus), ping(&state.db, CHECK_TIMEOUT));
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
    };
    (status, Json(body))
}
