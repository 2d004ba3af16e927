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

use crate::BusError;

/// Publishes events on the JetStream context it was made from.
#[derive(Clone)]
pub struct Publisher {
    js: jetstream::Context,
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
        Publisher { js }
    }

    /// Sends one event; the returned future resolves to its PubAck.
    pub async fn send(&self, event: &Event) -> Result<PublishAckFuture, BusError> {
        let enc = event.encode();
        self.send_raw(&enc.subject, headers(&enc), enc.payload.into())
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
            pending.push((e.kind().subject(), self.send(e).await?));
        }
        try_join_all(pending.into_iter().map(|(subject, fut)| async move {
            fut.await.map_err(|err| BusError::Publish {
                subject,
                detail: err.to_string(),
            })
        }))
        .await
        .map(|_| ())
    }
}
