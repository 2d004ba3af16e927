//! Publishing the history: events sent in order with the bus's `Publisher` (headers,
//! deterministic message ids), PubAcks awaited asynchronously with a bounded window so
//! the generator runs at the server's pace.

use std::future::IntoFuture;

use anyhow::{bail, Context, Result};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use imgcrawl_bus::publish::{headers, Publisher};
use imgcrawl_events::Event;

/// PubAcks outstanding at most.
const WINDOW: usize = 4096;

/// What was published.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// Events acknowledged as stored.
    pub stored: u64,
    /// Events the server reported as duplicates (should be none).
    pub duplicates: u64,
    /// JSON payload bytes.
    pub payload_bytes: u64,
}

/// Publishes `events` in order and waits for every PubAck.
pub async fn publish(publisher: &Publisher, events: &[Event], out: &mut Published) -> Result<()> {
    let mut acks = FuturesUnordered::new();
    for e in events {
        let enc = e.encode();
        out.payload_bytes += enc.payload.len() as u64;
        let ack = publisher
            .send_raw(&publisher.subject_of(e), headers(&enc), enc.payload.into())
            .await
            .with_context(|| format!("publish {}", e.kind()))?;
        acks.push(ack.into_future());
        if acks.len() >= WINDOW {
            count(acks.next().await, out)?;
        }
    }
    while let Some(ack) = acks.next().await {
        count(Some(ack), out)?;
    }
    Ok(())
}

type Ack = Result<
    async_nats::jetstream::publish::PublishAck,
    async_nats::jetstream::context::PublishError,
>;

fn count(ack: Option<Ack>, out: &mut Published) -> Result<()> {
    match ack {
        Some(Ok(a)) if a.duplicate => out.duplicates += 1,
        Some(Ok(_)) => out.stored += 1,
        Some(Err(e)) => bail!("pub ack: {e}"),
        None => {}
    }
    Ok(())
}
