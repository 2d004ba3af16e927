//! Dead letters: poison events go to `imgcrawl.dlq.<stage>` with the reason.
//!
//! A dead letter is itself an event in the stream (so it is durable and replayable)
//! and points at the original by stream sequence; the original stays in the stream.
//! Stages never consume `imgcrawl.dlq.>`.
//!
//! **The last resort.** A worker dead-letters on a message's last delivery; if that
//! publish fails (NATS unreachable, the subject refused) the server delivers the
//! message no more and emits a `MAX_DELIVERIES` advisory. Those advisories are
//! captured in their own stream ([`advisory_stream`], created with the topology), and
//! every worker also runs [`run_advisories`] for its consumer: it dead-letters each
//! advisory's message, acking the advisory only after the dead letter's PubAck. So a
//! message is never silently dropped, even when the dead-letter subject refuses writes
//! for a while.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::stream::Stream;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use imgcrawl_events::{HEADER_EVENT, HEADER_MSG_ID, SUBJECT_PREFIX};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

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
        Self::new(
            stage,
            &msg.subject,
            msg.headers.as_ref(),
            &msg.payload,
            seq,
            delivered,
            reason,
        )
    }

    /// Builds a dead letter for the message at `seq`.
    pub fn new(
        stage: &str,
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: &[u8],
        seq: u64,
        delivered: i64,
        reason: String,
    ) -> Self {
        DeadLetter {
            stage: stage.to_string(),
            reason,
            subject: subject.to_string(),
            stream_sequence: seq,
            delivered,
            event_header: headers
                .and_then(|h| h.get(HEADER_EVENT))
                .map(|v| v.as_str().to_string()),
            payload: String::from_utf8_lossy(payload).into_owned(),
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
    let ack = ack.await.map_err(|e| BusError::Publish {
        subject,
        detail: e.to_string(),
    })?;
    if !ack.duplicate {
        let m = imgcrawl_telemetry::metrics();
        m.dead_letters
            .get_or_create(&imgcrawl_telemetry::metrics::stage(&dl.stage))
            .inc();
    }
    Ok(())
}

/// The stream that captures the server's `MAX_DELIVERIES` advisories of the event
/// stream `stream`.
pub fn advisory_stream(stream: &str) -> String {
    format!("{stream}_ADVISORIES")
}

/// The advisory subject for `consumer` of `stream` (`*` for every consumer).
pub fn advisory_subject(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}")
}

/// The fields of a `MAX_DELIVERIES` advisory we use.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: i64,
}

/// Dead-letters the messages the server gave up on for the consumers `consumers` of
/// `stage` (its shared consumer and its partitions'; see the module docs), until
/// `shutdown`. Replicas of a stage share one durable consumer on the advisory stream.
pub async fn run_advisories(
    bus: Bus,
    stage: String,
    consumers: Vec<String>,
    shutdown: CancellationToken,
) -> Result<(), BusError> {
    let consumer = stage;
    let err = |e: &dyn std::fmt::Display| BusError::Consume {
        consumer: format!("dlq-{consumer}"),
        detail: e.to_string(),
    };
    let advisories = bus
        .js
        .get_stream(advisory_stream(&bus.config.stream))
        .await
        .map_err(|e| err(&e))?;
    let mut filters: Vec<String> = consumers
        .iter()
        .map(|c| advisory_subject(&bus.config.stream, c))
        .collect();
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters.remove(0), Vec::new())
    } else {
        (String::new(), filters)
    };
    // create or update: a stage that gained partitions widens its filter
    let reader: PullConsumer = advisories
        .create_consumer(pull::Config {
            durable_name: Some(format!("dlq-{consumer}")),
            description: Some(format!(
                "dead letters for {consumer} from max-deliveries advisories"
            )),
            filter_subject,
            filter_subjects,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let mut messages = reader
        .stream()
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| err(&e))?;
    let events = bus
        .js
        .get_stream(&bus.config.stream)
        .await
        .map_err(|e| err(&e))?;
    let mut pull_errors = crate::worker::PULL_ERRORS.backoff();
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = messages.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                warn!(consumer = %consumer, error = %e, "advisory pull error");
                if !pull_errors.pause(&shutdown).await {
                    return Ok(());
                }
                continue;
            }
            None => return Err(err(&"advisory stream ended")),
        };
        let ack = match serde_json::from_slice::<MaxDeliveries>(&msg.payload) {
            Err(e) => {
                warn!(consumer = %consumer, error = %e, "unreadable max-deliveries advisory; skipped");
                AckKind::Ack
            }
            Ok(adv) => {
                let dl = from_advisory(&events, &consumer, &adv).await;
                match dead_letter(&bus, &dl).await {
                    Ok(()) => {
                        warn!(consumer = %consumer, seq = adv.stream_seq, "dead-lettered after max deliveries");
                        AckKind::Ack
                    }
                    Err(e) => {
                        warn!(consumer = %consumer, seq = adv.stream_seq, error = %e, "dead letter still refused; keeping the advisory");
                        AckKind::Nak(Some(Duration::from_secs(5)))
                    }
                }
            }
        };
        if let Err(e) = msg.ack_with(ack).await {
            warn!(consumer = %consumer, error = %e, "advisory ack failed; it will come again");
        }
    }
}

/// The dead letter for an advisory's message (read back from the event stream).
async fn from_advisory(events: &Stream, consumer: &str, adv: &MaxDeliveries) -> DeadLetter {
    let reason = format!(
        "delivered {} times without an ack or a dead letter (max deliveries reached)",
        adv.deliveries
    );
    match events.get_raw_message(adv.stream_seq).await {
        Ok(m) => DeadLetter::new(
            consumer,
            &m.subject,
            Some(&m.headers),
            &m.payload,
            adv.stream_seq,
            adv.deliveries,
            reason,
        ),
        Err(e) => DeadLetter::new(
            consumer,
            "",
            None,
            b"",
            adv.stream_seq,
            adv.deliveries,
            format!("{reason}; the message could not be read back: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advisories_are_read_and_named_per_consumer() {
        let adv: MaxDeliveries = serde_json::from_str(
            r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"x","timestamp":"2026-01-01T00:00:00Z",
                "stream":"IMGCRAWL","consumer":"download","stream_seq":42,"deliveries":8}"#,
        )
        .unwrap();
        assert_eq!((adv.stream_seq, adv.deliveries), (42, 8));
        assert_eq!(
            advisory_subject("IMGCRAWL", "download"),
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.IMGCRAWL.download"
        );
        assert_eq!(advisory_stream("IMGCRAWL"), "IMGCRAWL_ADVISORIES");
    }
}
