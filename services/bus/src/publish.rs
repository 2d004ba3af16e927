//! Publishing events with their headers; PubAcks awaited in batches.
//!
//! [`Publisher::send`] returns once the message is on the wire and hands back the
//! PubAck future; [`Publisher::publish_all`] sends a whole batch and then awaits every
//! PubAck concurrently, so a page with 200 image URLs costs one round trip of latency,
//! not 200. Only after `publish_all` returns is the batch durable, and only then may
//! the caller ack the message that caused it.

use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use futures::future::try_join_all;
use imgcrawl_events::{EncodedEvent, Event, HEADER_EVENT, HEADER_MSG_ID, HEADER_TRACEPARENT};

use crate::partitions::Partitioning;
use crate::BusError;

/// Publishes events on the JetStream context it was made from.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
    routing: Option<Partitioning>,
}

/// The headers every event carries. Published while a delivery is handled, the
/// `traceparent` names the delivery's span as the parent (same trace); otherwise it is
/// the event's own (trace id = job id, see `imgcrawl_events::traceparent`).
pub fn headers(enc: &EncodedEvent) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HEADER_MSG_ID, enc.msg_id.as_str());
    h.insert(HEADER_EVENT, enc.event_header.as_str());
    match imgcrawl_telemetry::trace::current() {
        Some(ctx) => h.insert(HEADER_TRACEPARENT, ctx.header().as_str()),
        None => h.insert(HEADER_TRACEPARENT, enc.traceparent.as_str()),
    }
    h
}

impl Publisher {
    /// A publisher on `js`.
    pub fn new(js: jetstream::Context) -> Self {
        Publisher { js, routing: None }
    }

    /// The publisher, sending routed kinds (`page.discovered`, `image.discovered`) to
    /// their partition's subject ([`crate::partitions`]).
    pub fn routed(mut self, partitioning: Partitioning) -> Self {
        self.routing = Some(partitioning);
        self
    }

    /// The subject `event` goes to.
    pub fn subject_of(&self, event: &Event) -> String {
        match &self.routing {
            Some(p) => p.subject_of(event),
            None => event.kind().subject(),
        }
    }

    /// Sends one event; the returned future resolves to its PubAck.
    pub async fn send(&self, event: &Event) -> Result<PublishAckFuture, BusError> {
        let enc = event.encode();
        let subject = self.subject_of(event);
        self.send_raw(&subject, headers(&enc), enc.payload.into())
            .await
    }

    /// Sends raw bytes with headers on a subject; the future resolves to its PubAck.
    pub async fn send_raw(
        &self,
        subject: &str,
        headers: HeaderMap,
        payload: bytes::Bytes,
    ) -> Result<PublishAckFuture, BusError> {
        self.js
            .publish_with_headers(subject.to_string(), headers, payload)
            .await
            .map_err(|e| BusError::Publish {
                subject: subject.to_string(),
                detail: e.to_string(),
            })
    }

    /// Publishes one event and waits for its PubAck.
    pub async fn publish(&self, event: &Event) -> Result<(), BusError> {
        self.publish_all(std::slice::from_ref(event)).await
    }

    /// Publishes every event (in order) and waits for all their PubAcks. Duplicates
    /// (same message id inside the window) are acknowledged by the server as such and
    /// count as success.
    pub async fn publish_all(&self, events: &[Event]) -> Result<(), BusError> {
        // Send strictly in order, then await every PubAck concurrently.
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            pending.push((self.subject_of(e), self.send(e).await?));
        }
        try_join_all(pending.into_iter().map(|(subject, fut)| async move {
            let ack = fut.await.map_err(|err| BusError::Publish {
                subject: subject.clone(),
                detail: err.to_string(),
            })?;
            stored(&ack).map_err(|detail| BusError::Publish { subject, detail })
        }))
        .await
        .map(|_| ())
    }
}

/// Whether a PubAck means the message is in the stream. A duplicate normally names
/// the sequence of the copy already stored; nats-server before 2.11 also answers
/// "duplicate" with sequence 0 for a message id it staged for a proposal that a
/// leader change then dropped (nats-server#6415, fixed in 2.11 by #6486): nothing is
/// stored, and taking that for success lost an event in the chaos partition case. It
/// is an error, so the caller retries (the id stays blocked for the duplicate
/// window; a retry that keeps failing ends as a dead letter, never as silent loss).
pub fn stored(ack: &jetstream::publish::PublishAck) -> Result<(), String> {
    if ack.duplicate && ack.sequence == 0 {
        return Err(format!(
            "stream {} answered duplicate without a sequence (a proposal dropped by a leader change): not stored",
            ack.stream
        ));
    }
    Ok(())
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    fn ack(sequence: u64, duplicate: bool) -> jetstream::publish::PublishAck {
        serde_json::from_value(serde_json::json!({
            "stream": "IMGCRAWL", "seq": sequence, "duplicate": duplicate
        }))
        .expect("a PubAck")
    }

    #[test]
    fn only_a_duplicate_without_a_sequence_is_not_stored() {
        assert!(stored(&ack(7, false)).is_ok());
        assert!(
            stored(&ack(7, true)).is_ok(),
            "a real duplicate names its copy"
        );
        let e = stored(&ack(0, true)).unwrap_err();
        assert!(e.contains("not stored"), "{e}");
    }
}
