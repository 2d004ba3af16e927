//! Where the event stream is: its end (last sequence and times), and the oldest event
//! after a sequence on given subjects. The index's lag (`imgcrawl_readmodel::lag`) is
//! computed from these and a projection's checkpoint.

use async_nats::jetstream::message::StreamMessage;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::Serialize;

use crate::error::BusError;
use crate::worker::to_chrono;
use crate::Bus;

/// The stream's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamEnd {
    /// Last sequence (0 when empty).
    pub last_seq: u64,
    /// When the last message was stored.
    pub last_at: DateTime<Utc>,
    /// When the first message still in the stream was stored.
    pub first_at: DateTime<Utc>,
}

fn stream_err(e: impl std::fmt::Display) -> BusError {
    BusError::Topology(format!("read the stream: {e}"))
}

/// Reads the end of the bus's event stream.
pub async fn stream_end(bus: &Bus) -> Result<StreamEnd, BusError> {
    let mut stream = bus
        .js
        .get_stream(&bus.config.stream)
        .await
        .map_err(stream_err)?;
    let info = stream.info().await.map_err(stream_err)?;
    Ok(StreamEnd {
        last_seq: info.state.last_sequence,
        last_at: to_chrono(info.state.last_timestamp),
        first_at: to_chrono(info.state.first_timestamp),
    })
}

/// The oldest message above sequence `after` on any of `subjects`: its sequence and
/// when the stream stored it (one direct get per subject, concurrently).
pub async fn oldest_after(
    bus: &Bus,
    subjects: &[String],
    after: u64,
) -> Result<Option<(u64, DateTime<Utc>)>, BusError> {
    let stream = bus
        .js
        .get_stream(&bus.config.stream)
        .await
        .map_err(stream_err)?;
    let found = join_all(
        subjects
            .iter()
            .map(|s| stream.direct_get_next_for_subject(s, Some(after + 1))),
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
    Ok(oldest.map(|m| (m.sequence, to_chrono(m.time))))
}
