//! A durable consumer's backlog for the metrics: every [`EVERY`] the worker loop asks
//! the server for its consumer's info and sets `imgcrawl_consumer_pending_messages`
//! (not yet delivered) and `imgcrawl_consumer_ack_pending_messages` (delivered, not
//! yet acked). Replicas of a stage share the consumer, so they report the same values
//! (aggregate with `max`, not `sum`).

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use imgcrawl_telemetry::labels::Consumer;
use imgcrawl_telemetry::metrics;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// How often the consumer's info is read.
pub const EVERY: Duration = Duration::from_secs(5);

/// Polls `consumer`'s info until `stop`, setting the pending gauges of `name`.
pub async fn poll(mut consumer: PullConsumer, name: String, stop: CancellationToken) {
    let m = metrics();
    let label = Consumer { consumer: name };
    let pending = m.consumer_pending.get_or_create_owned(&label);
    let ack_pending = m.consumer_ack_pending.get_or_create_owned(&label);
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match consumer.info().await {
            Ok(info) => {
                pending.set(i64::try_from(info.num_pending).unwrap_or(i64::MAX));
                ack_pending.set(i64::try_from(info.num_ack_pending).unwrap_or(i64::MAX));
            }
            Err(e) => debug!(consumer = %label.consumer, error = %e, "consumer info unavailable"),
        }
    }
}
