//! `GET /api/ha-status`, `GET /api/ha/sync-status` (`POST /api/ha/failover` is in
//! [`super::failover`]).
//!
//! The nodes are this server's (see [`crate::nodes`]): in `single` mode the configured
//! database, always the primary; in `watched` mode the HA nodes, the primary being the
//! one the HA pointer names. Every node is checked on each call, all at once: `SELECT
//! 1` within `check_timeout_ms` (reachable or not), then its checkpoint row (the last
//! stream sequence it applied, the fencing epoch it recorded) and from those its lag:
//! the stream's last sequence minus the checkpoint while an event the index applies is
//! waiting, and that event's age.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use futures::future::join_all;

use crate::db::{endpoint, ping};
use crate::error::{ErrorBody, HttpResult};
use crate::lag;
use crate::model::ha::{HaNode, HaPointer, HaStatus, NodeSync, StreamState, SyncStatus};
use crate::nodes::{NodeConn, Primary};
use crate::state::AppState;
use imgcrawl_readmodel::checkpoint;

/// Every node, measured now.
pub(crate) struct Measured {
    /// The primary (and pointer) the nodes were measured against.
    pub primary: Arc<Primary>,
    /// Per node, in configuration order.
    pub nodes: Vec<HaNode>,
    /// The stream's name and last sequence, or why not.
    pub stream: HttpResult<(String, u64)>,
}

async fn node(state: &AppState, p: &Primary, n: &NodeConn, last: Option<u64>) -> HaNode {
    let mut node = HaNode {
        name: n.name.clone(),
        role: if p.name() == n.name {
            "primary"
        } else {
            "standby"
        }
        .into(),
        endpoint: endpoint(&n.url),
        url: n.url.clone(),
        healthy: false,
        latency_ms: None,
        checkpoint: None,
        epoch: None,
        lag_events: None,
        lag_seconds: None,
        error: None,
    };
    let Some(pool) = state.nodes.check_pool(p, &n.name) else {
        node.error = Some("no pool for this node".into());
        return node;
    };
    match ping(&pool, state.config.check_timeout()).await {
        Ok(ms) => (node.healthy, node.latency_ms) = (true, Some(ms)),
        Err(e) => {
            node.error = Some(e);
            return node;
        }
    }
    let Ok(row) = checkpoint::read(&pool, &state.config.checkpoint_name).await else {
        return node; // reachable, not projected yet (no schema)
    };
    let (cp, epoch) = row.map_or((0, 0), |c| {
        (c.last_seq, u64::try_from(c.epoch).unwrap_or(0))
    });
    (node.checkpoint, node.epoch) = (Some(cp), Some(epoch));
    if let Some(last) = last {
        if let Ok(l) = lag::lag_at(&state.bus, cp, last).await {
            (node.lag_events, node.lag_seconds) = (Some(l.lag_events), Some(l.lag_seconds));
        }
    }
    node
}

/// Checks every node now (concurrently); lags are missing where NATS or the node does
/// not answer.
pub(crate) async fn measure(state: &AppState) -> Measured {
    let primary = state.nodes.primary();
    let stream = lag::stream_end(&state.bus).await;
    let last = stream.as_ref().ok().map(|(_, l)| *l);
    let nodes = join_all(
        state
            .nodes
            .list()
            .iter()
            .map(|n| node(state, &primary, n, last)),
    )
    .await;
    Measured {
        primary,
        nodes,
        stream,
    }
}

fn stream(m: &Measured) -> HttpResult<StreamState> {
    let (name, last_seq) = m.stream.clone()?;
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
    let m = measure(&state).await;
    let stream = stream(&m)?;
    let pointer = m.primary.pointer.as_ref().map(|p| HaPointer {
        primary: p.primary.clone(),
        epoch: p.epoch,
        reason: p.reason.clone(),
        at: p.at,
        previous: p.previous.clone(),
    });
    Ok(Json(HaStatus {
        mode: state.nodes.mode().into(),
        primary: m.primary.name().to_string(),
        epoch: pointer
            .as_ref()
            .map_or(0, |p| i64::try_from(p.epoch).unwrap_or(i64::MAX)),
        reads_from: m.primary.node.clone(),
        pointer,
        nodes: m.nodes,
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
    let m = measure(&state).await;
    let stream = stream(&m)?;
    let nodes: Vec<NodeSync> = m
        .nodes
        .into_iter()
        .map(|n| NodeSync {
            in_sync: n.lag_events == Some(0),
            name: n.name,
            checkpoint: n.checkpoint,
            lag_events: n.lag_events,
            lag_seconds: n.lag_seconds,
        })
        .collect();
    Ok(Json(SyncStatus {
        in_sync: nodes.iter().all(|n| n.in_sync),
        nodes,
        stream,
        checked_at: Utc::now(),
    }))
}
