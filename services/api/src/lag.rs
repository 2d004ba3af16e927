//! The index's lag as the API serves it: the stream's end and the oldest waiting event
//! read from NATS (`imgcrawl_bus::position`), the checkpoint from the read model, and
//! the one definition of lag (`imgcrawl_readmodel::lag`). Measurements are reused for
//! a second (the gallery polls).

use std::time::{Duration, Instant};

use chrono::Utc;
use imgcrawl_bus::position;
use imgcrawl_bus::Bus;
use imgcrawl_readmodel::{checkpoint, lag};
use sqlx::PgPool;

use crate::error::HttpError;
use crate::model::crawl::IndexLag;
use crate::state::AppState;

/// How long a measurement is reused.
const REUSE: Duration = Duration::from_secs(1);

/// The stream's name and last sequence.
pub async fn stream_end(bus: &Bus) -> Result<(String, u64), HttpError> {
    let end = position::stream_end(bus)
        .await
        .map_err(|e| nats_down("read the stream", e))?;
    Ok((bus.config.stream.clone(), end.last_seq))
}

fn nats_down(op: &str, e: impl std::fmt::Display) -> HttpError {
    tracing::warn!(op, error = %e, "nats unavailable");
    HttpError::unavailable("nats is unavailable; try again shortly")
}

/// The lag of a projection at checkpoint `cp` when the stream ends at `last`.
pub async fn lag_at(bus: &Bus, cp: u64, last: u64) -> Result<IndexLag, HttpError> {
    let waiting = if lag::behind(cp, last) {
        position::oldest_after(bus, &lag::applied_subjects(), cp)
            .await
            .map_err(|e| nats_down("read the stream", e))?
            .map(|(_, at)| at)
    } else {
        None
    };
    let l = lag::lag(cp, last, waiting, Utc::now());
    Ok(IndexLag {
        checkpoint: l.checkpoint,
        stream_last_seq: l.stream_last_seq,
        lag_events: l.events,
        lag_seconds: l.seconds,
    })
}

/// Measures the lag of checkpoint row `name` in `db`.
pub async fn measure(bus: &Bus, db: &PgPool, name: &str) -> Result<IndexLag, HttpError> {
    let (_, last) = stream_end(bus).await?;
    let cp = checkpoint::read(db, name)
        .await
        .map_err(|e| crate::error::db("read the checkpoint", e))?
        .map_or(0, |c| c.last_seq);
    lag_at(bus, cp, last).await
}

/// The primary's lag, measured at most once a second (and again after the primary
/// changed).
pub async fn index_lag(state: &AppState) -> Result<IndexLag, HttpError> {
    let primary = state.nodes.primary();
    if let Some((at, node, lag)) = state
        .lag_cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
    {
        if at.elapsed() < REUSE && node == primary.node {
            return Ok(lag);
        }
    }
    let lag = measure(&state.bus, &primary.pool, &state.config.checkpoint_name).await?;
    *state.lag_cache.lock().unwrap_or_else(|p| p.into_inner()) =
        Some((Instant::now(), primary.node.clone(), lag.clone()));
    Ok(lag)
}
