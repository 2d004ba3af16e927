//! How far a projection is behind the stream.
//!
//! The checkpoint is the last stream sequence the index applied; the stream's last
//! sequence is where the log ends. The index does not apply its own outputs
//! (`image.indexed`, `crawl.completed`), which usually end the stream, so the lag is
//! the distance to the stream's end only while an event the index applies is waiting
//! above the checkpoint, and 0 otherwise. The age of the oldest waiting event gives the
//! lag in seconds.

use async_nats::jetstream::message::StreamMessage;
use chrono::Utc;
use futures::future::join_all;
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_bus::Bus;
use imgcrawl_events::EventKind;
use sqlx::PgPool;

use super::DbError;
use crate::model::crawl::IndexLag;

/// The subjects the index applies: every event but its own outputs.
pub fn applied_subjects() -> Vec<String> {
    EventKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, EventKind::ImageIndexed | EventKind::CrawlCompleted))
        .map(EventKind::subject)
        .collect()
}

/// The last applied sequence of the checkpoint row `name` (None before the first batch).
pub async fn checkpoint(db: &PgPool, name: &str) -> Result<Option<u64>, sqlx::Error> {
    let s: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM projection_checkpoint WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    Ok(s.map(|s| u64::try_from(s).unwrap_or(0)))
}

/// The last applied sequence and the fencing epoch recorded on a node (checkpoint row
/// `name`; none before the first batch).
pub async fn node_checkpoint(db: &PgPool, name: &str) -> Result<Option<(u64, u64)>, sqlx::Error> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT last_seq, epoch FROM projection_checkpoint WHERE name = $1")
            .bind(name)
            .fetch_optional(db)
            .await?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(row.map(|(s, e)| (u(s), u(e))))
}

/// The stream's name and last sequence.
pub async fn stream_end(bus: &Bus) -> Result<(String, u64), DbError> {
    let name = bus.config.stream.clone();
    let stream = bus
        .js
        .get_stream(&name)
        .await
        .map_err(|e| nats_down("read the stream", e))?;
    let info = stream
        .get_info()
        .await
        .map_err(|e| nats_down("read the stream", e))?;
    Ok((name, info.state.last_sequence))
}

fn nats_down(op: &'static str, e: impl std::fmt::Display) -> DbError {
    tracing::warn!(op, error = %e, "nats unavailable");
    DbError::Nats {
        op,
        detail: e.to_string(),
    }
}

/// The oldest event above `checkpoint` that the index applies: its age in seconds.
async fn oldest_waiting(bus: &Bus, checkpoint: u64) -> Result<Option<f64>, DbError> {
    let stream = bus
        .js
        .get_stream(&bus.config.stream)
        .await
        .map_err(|e| nats_down("read the stream", e))?;
    let subjects = applied_subjects();
    let found = join_all(
        subjects
            .iter()
            .map(|s| stream.direct_get_next_for_subject(s, Some(checkpoint + 1))),
    )
    .await;
    let mut oldest: Option<StreamMessage> = None;
    for m in found.into_iter().flatten() {
        let Ok(m) = StreamMessage::try_from(m.message) else {
            continue;
        };
        if oldest.as_ref().is_none_or(|o| m.sequence < o.sequence) {
            oldest = Some(m);
        }
    }
    Ok(oldest.map(|m| {
        let age = Utc::now() - to_chrono(m.time);
        (age.num_milliseconds().max(0) as f64) / 1000.0
    }))
}

/// The lag of a projection at checkpoint `cp` when the stream ends at `last`.
pub async fn lag_at(bus: &Bus, cp: u64, last: u64) -> Result<IndexLag, DbError> {
    let waiting = if cp < last {
        oldest_waiting(bus, cp).await?
    } else {
        None
    };
    Ok(IndexLag {
        checkpoint: cp,
        stream_last_seq: last,
        lag_events: if waiting.is_some() { last - cp } else { 0 },
        lag_seconds: waiting.unwrap_or(0.0),
    })
}

/// Measures the lag of checkpoint row `name` in `db`.
pub async fn measure(bus: &Bus, db: &PgPool, name: &str) -> Result<IndexLag, DbError> {
    let (_, last) = stream_end(bus).await?;
    let cp = checkpoint(db, name)
        .await
        .map_err(|source| DbError::Query {
            op: "read the checkpoint",
            source,
        })?
        .unwrap_or(0);
    lag_at(bus, cp, last).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_outputs_are_not_waited_for() {
        let s = applied_subjects();
        assert_eq!(s.len(), EventKind::ALL.len() - 2);
        assert!(!s.contains(&EventKind::ImageIndexed.subject()));
        assert!(!s.contains(&EventKind::CrawlCompleted.subject()));
        assert!(s.contains(&EventKind::ImageDeleted.subject()));
    }
}
