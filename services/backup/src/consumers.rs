//! Re-creating the stage consumers of the event stream after a restore: each with
//! its archived configuration, then acknowledged up to its archived ack floor, so a
//! stage started on the restored stream carries on where it was instead of doing
//! everything again. Messages above the floor are delivered again (the stages are
//! idempotent: deterministic message ids, content-addressed writes).

use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;

use crate::error::nats;
use crate::manifest::ConsumerState;
use crate::BackupError;

/// Re-creates `states` on `stream` (whose last sequence is `last`); returns how many.
pub async fn restore(
    js: &jetstream::Context,
    stream: &str,
    states: &[ConsumerState],
    last: u64,
) -> Result<usize, BackupError> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| nats(format!("get stream {stream}"))(&e))?;
    for c in states {
        let config: consumer::pull::Config = serde_json::from_value(c.config.clone())
            .map_err(|e| BackupError::Manifest(format!("consumer {}: {e}", c.name)))?;
        let batch = usize::try_from(config.max_ack_pending.clamp(1, 1000)).unwrap_or(1000);
        let pull: consumer::PullConsumer = s
            .create_consumer(config)
            .await
            .map_err(|e| nats(format!("create consumer {}", c.name))(&e))?;
        let floor = c.ack_floor.min(last);
        if floor > 0 {
            advance(&pull, &c.name, floor, batch).await?;
        }
    }
    Ok(states.len())
}

/// Acknowledges everything the consumer delivers up to `floor`.
async fn advance(
    pull: &consumer::PullConsumer,
    name: &str,
    floor: u64,
    batch: usize,
) -> Result<(), BackupError> {
    loop {
        let mut msgs = pull
            .fetch()
            .max_messages(batch)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .map_err(|e| nats(format!("advance consumer {name}"))(&e))?;
        let mut batch_msgs = Vec::new();
        while let Some(m) = msgs.next().await {
            let m = m.map_err(|e| nats(format!("advance consumer {name}"))(&e))?;
            let seq = m
                .info()
                .map_err(|e| nats("message info")(&e))?
                .stream_sequence;
            batch_msgs.push((seq, m));
        }
        let got = batch_msgs.len();
        let mut above = false;
        let last_below = batch_msgs.iter().rposition(|(seq, _)| *seq <= floor);
        for (i, (seq, m)) in batch_msgs.into_iter().enumerate() {
            if seq > floor {
                above = true;
                m.ack_with(jetstream::AckKind::Nak(None))
                    .await
                    .map_err(|e| nats(format!("nak {name}"))(&*e))?;
            } else if Some(i) == last_below {
                // confirmed, so the next fetch sees every ack of this batch
                m.double_ack()
                    .await
                    .map_err(|e| nats(format!("ack {name}"))(&*e))?;
            } else {
                m.ack()
                    .await
                    .map_err(|e| nats(format!("ack {name}"))(&*e))?;
            }
        }
        if above || got == 0 {
            return Ok(());
        }
    }
}
