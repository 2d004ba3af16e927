//! Reading a stream in order from a sequence on (an ordered consumer: ephemeral, no
//! acks, gaps detected by the client) and turning its messages into [`Record`]s.

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, Message};

use crate::error::nats;
use crate::segment::Record;
use crate::BackupError;

/// An ordered reader of stream `stream` from sequence `from` on, and how many
/// messages were pending when it opened.
pub async fn open(
    js: &jetstream::Context,
    stream: &str,
    from: u64,
) -> Result<(Ordered, u64), BackupError> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| nats(format!("get stream {stream}"))(&e))?;
    let deliver_policy = if from <= 1 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence {
            start_sequence: from,
        }
    };
    let consumer = s
        .create_consumer(OrderedConfig {
            description: Some("imgcrawl backup".into()),
            deliver_policy,
            ..Default::default()
        })
        .await
        .map_err(|e| nats(format!("read {stream}"))(&e))?;
    let pending = consumer.cached_info().num_pending;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| nats(format!("read {stream}"))(&e))?;
    Ok((messages, pending))
}

/// A message as an archive record, with the number of messages still pending after
/// it.
pub fn record(m: &Message) -> Result<(Record, u64), BackupError> {
    let info = m.info().map_err(|e| nats("message info")(&e))?;
    let mut headers = Vec::new();
    if let Some(h) = &m.headers {
        for (k, values) in h.iter() {
            for v in values {
                headers.push((k.to_string(), v.as_str().to_string()));
            }
        }
        headers.sort();
    }
    let time_ns = i64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(i64::MAX);
    Ok((
        Record {
            seq: info.stream_sequence,
            time_ns,
            subject: m.subject.to_string(),
            headers,
            payload: m.payload.clone(),
        },
        info.pending,
    ))
}
