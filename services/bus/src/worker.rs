//! The pull loop every stage runs, and the ack discipline that goes with it.
//!
//! A handler gets a decoded [`Delivery`] and answers with an [`Outcome`]:
//!
//! | outcome | what the loop does |
//! |---|---|
//! | `Done` | Ack (the handler has made its effect durable first) |
//! | `Retry` | Nak with exponential backoff; on the last allowed delivery, dead-letter and Term |
//! | `Poison` | dead-letter with the reason, then Term |
//!
//! Messages that do not decode (bad JSON, unknown version, schema violation) never
//! reach the handler: they are dead-lettered with the decoder's reason. A handler that
//! panics is poison too, with the panic message as the reason (it would panic again).
//! If the dead-letter publish itself fails, the message is Nak'ed instead; should that
//! have been its last delivery, the server's `MAX_DELIVERIES` advisory is captured in a
//! stream and dead-letters it later ([`crate::dlq::run_advisories`]), so nothing is
//! lost.
//!
//! While a handler works, the loop tells the server so (`+WPI`, in-progress acks) every
//! third of the consumer's `ack_wait`: slow hosts, robots delays and big downloads keep
//! their message, and the `ack_wait` itself stays short, so the work of a process that
//! died comes back to the others within one `ack_wait`.
//!
//! Telemetry, the same for every stage: each delivery is handled in a `delivery` span
//! whose trace context is a child of the event's `traceparent` (events the handler
//! publishes name it as their parent, see `imgcrawl_telemetry::trace`); the loop counts
//! outcomes (`imgcrawl_deliveries_total`), times handling
//! (`imgcrawl_delivery_duration_seconds`), tracks in-flight handlers, marks the
//! consumer bound for `/readyz` and polls the consumer's pending counts
//! ([`crate::consumer_stats`]). None of it changes when or how a message is acked.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use imgcrawl_events::{decode, Event, HEADER_EVENT, HEADER_TRACEPARENT};
use imgcrawl_telemetry::{metrics, ready, trace, TraceContext};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, field, warn, Instrument};

use crate::dlq::{dead_letter, DeadLetter};
use crate::retry::Policy;
use crate::topology::{ensure_consumer, ConsumerSpec};
use crate::{Bus, BusError};

/// What a handler decided about one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The effect is durable: ack.
    Done,
    /// A transient failure: redeliver after (at least) `after`, doubled per delivery.
    Retry {
        /// Base delay before the next delivery.
        after: Duration,
        /// Why, for logs and for the dead letter if retries run out.
        reason: String,
    },
    /// Retrying cannot help: dead-letter with the reason and terminate.
    Poison(String),
}

impl Outcome {
    /// A retry after one second.
    pub fn retry(reason: impl Into<String>) -> Outcome {
        Outcome::Retry {
            after: Duration::from_secs(1),
            reason: reason.into(),
        }
    }
}

/// One decoded message handed to a stage.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// The subject it arrived on.
    pub subject: String,
    /// Its position in the stream.
    pub stream_sequence: u64,
    /// How many times it has been delivered (1 = first).
    pub delivered: i64,
    /// When the stream stored it.
    pub published: DateTime<Utc>,
}

/// How a worker pulls and retries.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Handlers running at once in this process.
    pub concurrency: usize,
    /// Upper bound for the exponential retry delay.
    pub max_backoff: Duration,
    /// How long to wait for in-flight handlers on shutdown.
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 32,
            max_backoff: Duration::from_secs(120),
            grace: Duration::from_secs(10),
        }
    }
}

/// Converts a JetStream timestamp.
pub fn to_chrono(t: time::OffsetDateTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_nanos(t.unix_timestamp_nanos() as i64)
}

/// The pause after a pull error (missed heartbeats and similar are transient).
pub(crate) const PULL_ERRORS: Policy = Policy::fixed(Duration::from_millis(200));

/// The retry delay for the `delivered`-th delivery.
pub fn backoff(base: Duration, delivered: i64, max: Duration) -> Duration {
    let n = delivered.clamp(1, i64::from(u32::MAX)) as u32;
    Policy::exponential(base, max).delay(n).min(max)
}

/// Runs the pull loop for `spec` until `shutdown` fires, then waits (up to
/// `opts.grace`) for in-flight handlers. Unfinished messages are redelivered by the
/// server after `ack_wait`.
pub async fn run_worker<H, Fut>(
    bus: &Bus,
    spec: ConsumerSpec,
    opts: WorkerOptions,
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    // right after a cluster (re)starts, the stream's or the meta leader's election
    // answers "temporarily unavailable": ridden out, not a failed start
    let consumer = crate::patience::patiently("create consumer", || {
        ensure_consumer(&bus.js, &bus.config.stream, &spec)
    })
    .await?;
    let bound = format!("consumer/{}", spec.durable);
    ready::global().set(bound.clone(), Ok(()));
    let polling = shutdown.child_token();
    tokio::spawn(crate::consumer_stats::poll(
        consumer.clone(),
        spec.durable.clone(),
        polling.clone(),
    ));
    let _stop_polling = polling.drop_guard();
    let consume_err = |e: &dyn std::fmt::Display| BusError::Consume {
        consumer: spec.durable.clone(),
        detail: e.to_string(),
    };
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(opts.concurrency.max(1))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| consume_err(&e))?;
    let permits = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let tracker = TaskTracker::new();
    let advisories = tokio::spawn(crate::dlq::run_advisories(
        bus.clone(),
        spec.durable.clone(),
        shutdown.clone(),
    ));
    let mut pull_errors = PULL_ERRORS.backoff();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = messages.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // Missed heartbeats and similar are transient; the stream recovers.
                warn!(consumer = %spec.durable, error = %e, "pull error");
                if !pull_errors.pause(&shutdown).await {
                    break;
                }
                continue;
            }
            None => return Err(consume_err(&"message stream ended")),
        };
        let (bus, spec, opts, handler) = (bus.clone(), spec.clone(), opts.clone(), handler.clone());
        tracker.spawn(async move {
            handle_one(&bus, &spec, &opts, handler, msg).await;
            drop(permit);
        });
    }
    drop(messages);
    match advisories.await {
        Ok(Err(e)) => {
            warn!(consumer = %spec.durable, error = %e, "max-deliveries dead-lettering stopped")
        }
        Err(e) => {
            warn!(consumer = %spec.durable, error = %e, "max-deliveries dead-lettering panicked")
        }
        Ok(Ok(())) => {}
    }
    ready::global().set(bound, Err("stopped".into()));
    tracker.close();
    if tokio::time::timeout(opts.grace, tracker.wait())
        .await
        .is_err()
    {
        warn!(consumer = %spec.durable, "shutdown grace elapsed with handlers in flight; they will be redelivered");
    }
    Ok(())
}

/// The trace context of a delivery: a child of its `traceparent`, else the root of a
/// trace named after its job (a new one when it has none).
fn delivery_context(
    msg: &jetstream::Message,
    event: Option<&Event>,
) -> (TraceContext, Option<TraceContext>) {
    let parent = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_TRACEPARENT))
        .and_then(|v| TraceContext::parse(v.as_str()));
    let ctx = match parent {
        Some(p) => p.child(),
        None => {
            let job = event
                .and_then(Event::job_id)
                .map_or([0; 16], |j| j.into_bytes());
            TraceContext::root(job)
        }
    };
    (ctx, parent)
}

/// Handles one message in its `delivery` span, with the loop's metrics.
async fn handle_one<H, Fut>(
    bus: &Bus,
    spec: &ConsumerSpec,
    opts: &WorkerOptions,
    handler: H,
    msg: jetstream::Message,
) where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let Ok(info) = msg.info() else {
        warn!(subject = %msg.subject, "message without jetstream metadata; ignoring");
        return;
    };
    let (seq, delivered, published) = (
        info.stream_sequence,
        info.delivered,
        to_chrono(info.published),
    );
    let started = Instant::now();
    let m = metrics();
    let stage = metrics::stage(&spec.durable);
    let in_flight = m.in_flight.get_or_create_owned(&stage);
    in_flight.inc();
    let header = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(HEADER_EVENT))
        .map(|v| v.as_str().to_string());
    let decoded = decode(msg.subject.as_str(), header.as_deref(), &msg.payload);
    let (ctx, parent) = delivery_context(&msg, decoded.as_ref().ok());
    let span = tracing::info_span!(
        "delivery",
        consumer = %spec.durable,
        subject = %msg.subject,
        seq,
        delivered,
        job_id = field::Empty,
        trace_id = %ctx.trace_hex(),
        span_id = %ctx.span_hex(),
        parent_span_id = field::Empty,
        outcome = field::Empty,
    );
    if let Some(p) = parent {
        span.record("parent_span_id", p.span_hex());
    }
    if let Some(job) = decoded.as_ref().ok().and_then(Event::job_id) {
        span.record("job_id", field::display(job));
    }
    let d = decoded.map(|event| Delivery {
        event,
        subject: msg.subject.to_string(),
        stream_sequence: seq,
        delivered,
        published,
    });
    let work = trace::scope(ctx, decide(bus, spec, opts, handler, &msg, d));
    let outcome = work.instrument(span.clone()).await;
    span.record("outcome", outcome);
    m.deliveries
        .get_or_create(&imgcrawl_telemetry::labels::StageOutcome {
            stage: spec.durable.clone(),
            outcome,
        })
        .inc();
    m.delivery_duration
        .get_or_create(&stage)
        .observe(started.elapsed().as_secs_f64());
    in_flight.dec();
}

/// Runs the handler on a decoded delivery (or poisons what did not decode), then acks
/// accordingly. Returns the outcome's metric label: `done`, `retried` or `poisoned`.
async fn decide<H, Fut>(
    bus: &Bus,
    spec: &ConsumerSpec,
    opts: &WorkerOptions,
    handler: H,
    msg: &jetstream::Message,
    d: Result<Delivery, imgcrawl_events::DecodeError>,
) -> &'static str
where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (seq, delivered) = match &d {
        Ok(d) => (d.stream_sequence, d.delivered),
        Err(_) => msg
            .info()
            .map_or((0, 1), |i| (i.stream_sequence, i.delivered)),
    };
    let outcome = match d {
        Err(e) => Outcome::Poison(e.to_string()),
        Ok(d) => {
            let work = AssertUnwindSafe(handler(d)).catch_unwind();
            match with_progress(msg, spec.ack_wait, work).await {
                Ok(outcome) => outcome,
                Err(panic) => {
                    Outcome::Poison(format!("handler panicked: {}", panic_message(&*panic)))
                }
            }
        }
    };
    let (ack, label) = match outcome {
        Outcome::Done => (AckKind::Ack, "done"),
        Outcome::Retry { after, reason } if delivered < spec.max_deliver => {
            let delay = backoff(after, delivered, opts.max_backoff);
            debug!(consumer = %spec.durable, seq, delivered, ?delay, %reason, "retry");
            (AckKind::Nak(Some(delay)), "retried")
        }
        Outcome::Retry { reason, .. } => {
            let reason = format!("gave up after {delivered} deliveries: {reason}");
            (
                poison(bus, spec, msg, seq, delivered, reason).await,
                "poisoned",
            )
        }
        Outcome::Poison(reason) => (
            poison(bus, spec, msg, seq, delivered, reason).await,
            "poisoned",
        ),
    };
    if let Err(e) = msg.ack_with(ack).await {
        warn!(consumer = %spec.durable, seq, error = %e, "ack failed; the message will be redelivered");
    }
    label
}

/// Awaits `work`, sending an in-progress ack every third of `ack_wait` meanwhile.
async fn with_progress<F: Future>(
    msg: &jetstream::Message,
    ack_wait: Duration,
    work: F,
) -> F::Output {
    let every = (ack_wait / 3).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = ticks.tick() => {
                if let Err(e) = msg.ack_with(AckKind::Progress).await {
                    debug!(subject = %msg.subject, error = %e, "in-progress ack failed");
                }
            }
        }
    }
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}

async fn poison(
    bus: &Bus,
    spec: &ConsumerSpec,
    msg: &jetstream::Message,
    seq: u64,
    delivered: i64,
    reason: String,
) -> AckKind {
    warn!(consumer = %spec.durable, seq, %reason, "dead-lettering");
    let dl = DeadLetter::from_message(&spec.durable, msg, seq, delivered, reason);
    match dead_letter(bus, &dl).await {
        Ok(()) => AckKind::Term,
        Err(e) => {
            warn!(consumer = %spec.durable, seq, error = %e, "dead-letter publish failed; will redeliver");
            AckKind::Nak(Some(Duration::from_secs(5)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_reasons() {
        let s: Box<dyn std::any::Any + Send> = Box::new("boom");
        assert_eq!(panic_message(s.as_ref()), "boom");
        let owned: Box<dyn std::any::Any + Send> = Box::new(format!("index {} out of range", 3));
        assert_eq!(panic_message(owned.as_ref()), "index 3 out of range");
        let other: Box<dyn std::any::Any + Send> = Box::new(7u8);
        assert_eq!(panic_message(other.as_ref()), "a non-text panic payload");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_secs(1);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(b, 1, max), Duration::from_secs(1));
        assert_eq!(backoff(b, 2, max), Duration::from_secs(2));
        assert_eq!(backoff(b, 4, max), Duration::from_secs(8));
        assert_eq!(backoff(b, 5, max), max);
        assert_eq!(backoff(b, 1000, max), max);
    }
}
