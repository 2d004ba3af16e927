//! Dead letters: poison events go to `imgcrawl.dlq.<stage>` with the reason.
//!
//! A dead letter is itself an event in the stream (so it is durable and replayable)
//! and points at the original by stream sequence; the original stays in the stream.
//! Stages never consume `imgcrawl.dlq.>`.

use async_nats::jetstream;
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use imgcrawl_events::{HEADER_EVENT, HEADER_MSG_ID, SUBJECT_PREFIX};
use serde::{Deserialize, Serialize};

use crate::{Bus, BusError};

/// The `Imgcrawl-Event` header value of dead letters.
pub const DEAD_LETTER_EVENT: &str = "dlq.v1";

/// The subject a stage's dead letters go to.
pub fn subject(stage: &str) -> String {
    format!("{SUBJECT_PREFIX}.dlq.{stage}")
}

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The consumer (stage) that gave up on it.
    pub stage: String,
    /// Why.
    pub reason: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its sequence in the event stream.
    pub stream_sequence: u64,
    /// Deliveries made before giving up.
    pub delivered: i64,
    /// Its `Imgcrawl-Event` header, if any.
    #[serde(default)]
    pub event_header: Option<String>,
    /// The body as text (lossy for non-UTF-8 bytes; the original stays in the stream).
    pub payload: String,
    /// When it was dead-lettered.
    pub occurred_at: DateTime<Utc>,
}

impl DeadLetter {
    /// Builds a dead letter for `msg`.
    pub fn from_message(
        stage: &str,
        msg: &jetstream::Message,
        seq: u64,
        delivered: i64,
        reason: String,
    ) -> Self {
        DeadLetter {
            stage: stage.to_string(),
            reason,
            subject: msg.subject.to_string(),
            stream_sequence: seq,
            delivered,
            event_header: msg
                .headers
                .as_ref()
                .and_then(|h| h.get(HEADER_EVENT))
                .map(|v| v.as_str().to_string()),
            payload: String::from_utf8_lossy(&msg.payload).into_owned(),
            occurred_at: Utc::now(),
        }
    }
}

/// Publishes a dead letter and waits for its PubAck. Deduplicated per stage and
/// original sequence, so a retried dead-lettering is recorded once.
pub async fn dead_letter(bus: &Bus, dl: &DeadLetter) -> Result<(), BusError> {
    let subject = subject(&dl.stage);
    let mut h = HeaderMap::new();
    h.insert(
        HEADER_MSG_ID,
        format!("dlq:{}:{}", dl.stage, dl.stream_sequence).as_str(),
    );
    h.insert(HEADER_EVENT, DEAD_LETTER_EVENT);
    let body = serde_json::to_vec(dl).expect("dead letters always serialize");
    let ack = bus.publisher().send_raw(&subject, h, body.into()).await?;
    ack.await.map_err(|e| BusError::Publish {
        subject,
        detail: e.to_string(),
    })?;
    Ok(())
}
