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

use std::collections::HashMap;
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
use crate::ownership::Ownership;
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
    /// Handlers running at once in this process. A handler that only waits (for a
    /// host's politeness gate) gives its slot back meanwhile
    /// ([`imgcrawl_telemetry::slot::idle`]).
    pub concurrency: usize,
    /// Deliveries taken at once, running or waiting (0: four times `concurrency`):
    /// how far past a busy host's waiting deliveries a worker may look for work.
    pub admitted: usize,
    /// Upper bound for the exponential retry delay.
    pub max_backoff: Duration,
    /// How long to wait for in-flight handlers on shutdown.
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 32,
            admitted: 0,
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

/// What a stage's replicas consume: a consumer every replica pulls from, work split
/// into partitions of which each replica pulls its share, or both.
#[derive(Debug, Clone)]
pub struct Work {
    /// The stage: readiness (`consumer/<stage>`), dead letters, metrics.
    pub stage: String,
    /// A consumer every replica pulls from (control events such as `crawl.requested`).
    pub shared: Option<ConsumerSpec>,
    /// Host-partitioned work: a template whose subjects are the routed kinds' own; the
    /// consumer of partition `p` is [`ConsumerSpec::partition`]`(p)`, pulled by the
    /// replica holding `p`'s lease ([`crate::ownership`]).
    pub partitioned: Option<ConsumerSpec>,
}

impl Work {
    /// One consumer shared by every replica.
    pub fn shared(spec: ConsumerSpec) -> Work {
        Work {
            stage: spec.stage.clone(),
            shared: Some(spec),
            partitioned: None,
        }
    }

    /// Every durable consumer this work may pull from, given `count` partitions.
    pub fn consumers(&self, count: u16) -> Vec<String> {
        let mut out: Vec<String> = self.shared.iter().map(|s| s.durable.clone()).collect();
        if let Some(t) = &self.partitioned {
            out.extend((0..count).map(|p| t.partition(p).durable));
        }
        out
    }
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
    run_work(bus, Work::shared(spec), opts, handler, shutdown).await
}

/// What every pull loop of one worker shares: the handler, the concurrency limit and
/// the handlers in flight.
struct Pool<H> {
    bus: Bus,
    opts: WorkerOptions,
    handler: H,
    /// Handler slots: `concurrency`.
    permits: Arc<Semaphore>,
    /// Deliveries taken, running or waiting idle: `admitted`.
    window: Arc<Semaphore>,
    tracker: TaskTracker,
}

/// Deliveries a worker takes at once (see [`WorkerOptions::admitted`]).
fn admitted(opts: &WorkerOptions) -> usize {
    let concurrency = opts.concurrency.max(1);
    match opts.admitted {
        0 => concurrency * 4,
        n => n.max(concurrency),
    }
}

/// A running pull loop: stop it with `stop`, its task ends once it pulls no more.
/// Dropped (its worker's future dropped), the loop is aborted.
struct Pull {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), BusError>>>,
}

impl Pull {
    fn start<H, Fut>(
        pool: &Arc<Pool<H>>,
        spec: ConsumerSpec,
        batch: usize,
        parent: &CancellationToken,
    ) -> Pull
    where
        H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let stop = parent.child_token();
        let task = tokio::spawn(pull(pool.clone(), spec, batch, stop.clone()));
        Pull {
            stop,
            task: Some(task),
        }
    }

    /// Whether the loop has ended (stopped, or failed).
    fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the loop to end by itself: only a failure ends it before `stop`.
    async fn ended(&mut self) -> Result<(), BusError> {
        match self.task.as_mut() {
            Some(t) => {
                let r = joined(t.await);
                self.task = None;
                r
            }
            None => std::future::pending().await,
        }
    }

    /// Stops pulling and waits until the loop has let go of its consumer.
    async fn finish(mut self) -> Result<(), BusError> {
        self.stop.cancel();
        match self.task.take() {
            Some(t) => joined(t.await),
            None => Ok(()),
        }
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

fn joined(r: Result<Result<(), BusError>, tokio::task::JoinError>) -> Result<(), BusError> {
    r.unwrap_or_else(|e| {
        Err(BusError::Consume {
            consumer: "pull loop".into(),
            detail: format!("panicked: {e}"),
        })
    })
}

/// Runs `work` until `shutdown` fires: the shared consumer's pull loop, and for
/// partitioned work the ownership ticks that start and stop the partitions' pull
/// loops. All loops share `opts.concurrency` handlers. On shutdown the partitions are
/// released (another replica takes them at once) and in-flight handlers get
/// `opts.grace`.
pub async fn run_work<H, Fut>(
    bus: &Bus,
    work: Work,
    opts: WorkerOptions,
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let concurrency = opts.concurrency.max(1);
    let pool = Arc::new(Pool {
        bus: bus.clone(),
        opts: opts.clone(),
        handler,
        permits: Arc::new(Semaphore::new(concurrency)),
        window: Arc::new(Semaphore::new(admitted(&opts))),
        tracker: TaskTracker::new(),
    });
    let count = bus.partitioning.count;
    let advisories = tokio::spawn(crate::dlq::run_advisories(
        bus.clone(),
        work.stage.clone(),
        work.consumers(count),
        shutdown.clone(),
    ));
    let pulling = shutdown.child_token();
    let mut shared = None;
    if let Some(spec) = &work.shared {
        // right after a cluster (re)starts, the stream's or the meta leader's election
        // answers "temporarily unavailable": ridden out, not a failed start
        crate::patience::patiently("create consumer", || {
            ensure_consumer(&bus.js, &bus.config.stream, spec)
        })
        .await?;
        shared = Some(Pull::start(&pool, spec.clone(), concurrency, &pulling));
    }
    let bound = format!("consumer/{}", work.stage);
    let result = match &work.partitioned {
        None => {
            ready::global().set(bound.clone(), Ok(()));
            match shared.as_mut() {
                Some(p) => tokio::select! {
                    _ = shutdown.cancelled() => Ok(()),
                    r = p.ended() => r.and(Err(BusError::Consume {
                        consumer: work.stage.clone(),
                        detail: "message stream ended".into(),
                    })),
                },
                None => Ok(()),
            }
        }
        Some(template) => {
            partitioned(
                bus,
                &pool,
                template,
                &pulling,
                &shutdown,
                &bound,
                shared.as_mut(),
            )
            .await
        }
    };
    pulling.cancel();
    if let Some(p) = shared {
        let _ = p.finish().await;
    }
    match advisories.await {
        Ok(Err(e)) => {
            warn!(stage = %work.stage, error = %e, "max-deliveries dead-lettering stopped")
        }
        Err(e) => {
            warn!(stage = %work.stage, error = %e, "max-deliveries dead-lettering panicked")
        }
        Ok(Ok(())) => {}
    }
    ready::global().set(bound, Err("stopped".into()));
    pool.tracker.close();
    if tokio::time::timeout(opts.grace, pool.tracker.wait())
        .await
        .is_err()
    {
        warn!(stage = %work.stage, "shutdown grace elapsed with handlers in flight; they will be redelivered");
    }
    result
}

/// The ownership loop of partitioned work: every tick, stop the pull loops of
/// partitions lost or given up, release the latter, start loops for partitions taken.
async fn partitioned<H, Fut>(
    bus: &Bus,
    pool: &Arc<Pool<H>>,
    template: &ConsumerSpec,
    pulling: &CancellationToken,
    shutdown: &CancellationToken,
    bound: &str,
    mut shared: Option<&mut Pull>,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let kv = crate::ownership::open(bus).await?;
    // "<client name>-<random>": operators can tell who owns what in the bucket
    let name: String = bus
        .config
        .client_name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    let me = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    let ttl = Duration::from_millis(bus.config.partition_lease_ttl_ms.max(300));
    let mut own = Ownership::new(kv, &template.stage, &me, bus.partitioning.count, ttl);
    let mut pulls: HashMap<u16, Pull> = HashMap::new();
    let mut ticks = tokio::time::interval(own.period());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ready = false;
    let result = loop {
        let shared_done = async {
            match shared.as_mut() {
                Some(p) => p.ended().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            r = shared_done => {
                let detail = match r {
                    Err(e) => e.to_string(),
                    Ok(()) => "message stream ended".into(),
                };
                break Err(BusError::Consume { consumer: template.stage.clone(), detail });
            }
            _ = ticks.tick() => {}
        }
        // a partition's loop that failed is restarted by losing and retaking it
        let failed: Vec<u16> = pulls
            .iter()
            .filter(|(_, p)| p.is_finished())
            .map(|(p, _)| *p)
            .collect();
        for p in &failed {
            if let Some(pull) = pulls.remove(p) {
                if let Err(e) = pull.finish().await {
                    warn!(stage = %template.stage, partition = p, error = %e, "partition pull loop failed; giving the partition up");
                }
            }
        }
        own.release(&failed).await;
        let changes = match own.tick().await {
            Ok(c) => c,
            Err(e) => {
                warn!(stage = %template.stage, error = %e, "partition ownership tick failed");
                continue;
            }
        };
        for p in changes.lost.iter().chain(&changes.surplus) {
            if let Some(pull) = pulls.remove(p) {
                let _ = pull.finish().await;
            }
        }
        own.release(&changes.surplus).await;
        let held = own.held().count().max(1);
        let batch = (admitted(&pool.opts) / held).max(1);
        for p in changes.acquired {
            pulls.insert(p, Pull::start(pool, template.partition(p), batch, pulling));
        }
        if !ready {
            ready::global().set(bound.to_string(), Ok(()));
            ready = true;
        }
    };
    for (_, pull) in pulls.drain() {
        let _ = pull.finish().await;
    }
    own.release_all().await;
    result
}

/// One consumer's pull loop: takes a message whenever a handler slot is free, until
/// `stop` fires. Ends with an error only if the message stream itself ended.
async fn pull<H, Fut>(
    pool: Arc<Pool<H>>,
    spec: ConsumerSpec,
    batch: usize,
    stop: CancellationToken,
) -> Result<(), BusError>
where
    H: Fn(Delivery) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let bus = &pool.bus;
    let created = tokio::select! {
        _ = stop.cancelled() => return Ok(()),
        c = crate::patience::patiently("create consumer", || {
            ensure_consumer(&bus.js, &bus.config.stream, &spec)
        }) => c,
    };
    let consumer = created?;
    tokio::spawn(crate::consumer_stats::poll(
        consumer.clone(),
        spec.durable.clone(),
        stop.child_token(),
    ));
    let consume_err = |e: &dyn std::fmt::Display| BusError::Consume {
        consumer: spec.durable.clone(),
        detail: e.to_string(),
    };
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(batch.max(1))
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| consume_err(&e))?;
    let mut pull_errors = PULL_ERRORS.backoff();
    loop {
        // The message first, then room in the window (then, in its task, a handler
        // slot): loops of one worker share both, and one waiting for a message must
        // not hold room another loop could use. A message waiting for room keeps its
        // ack_wait alive with in-progress acks; each loop holds at most one such message.
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            m = messages.next() => m,
        };
        let msg = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                // Missed heartbeats and similar are transient; the stream recovers.
                warn!(consumer = %spec.durable, error = %e, "pull error");
                if !pull_errors.pause(&stop).await {
                    break;
                }
                continue;
            }
            None => return Err(consume_err(&"message stream ended")),
        };
        let room = with_progress(&msg, spec.ack_wait, pool.window.clone().acquire_owned());
        let admitted = tokio::select! {
            _ = stop.cancelled() => {
                let _ = msg.ack_with(AckKind::Nak(Some(HANDED_BACK))).await;
                break;
            }
            p = room => p.expect("semaphore is never closed"),
        };
        let (pool2, spec2) = (pool.clone(), spec.clone());
        pool.tracker.spawn(async move {
            let slot = with_progress(&msg, spec2.ack_wait, pool2.permits.clone().acquire_owned())
                .await
                .expect("semaphore is never closed");
            let handling = handle_one(&pool2.bus, &spec2, &pool2.opts, pool2.handler.clone(), msg);
            imgcrawl_telemetry::slot::scope(pool2.permits.clone(), slot, handling).await;
            drop(admitted);
        });
    }
    // Messages already delivered to this loop but not taken go back now rather than
    // after their ack_wait (a partition handed to another replica starts at once).
    // Delayed: an immediate nak would come straight back to this very subscription
    // (its pull requests are still open) and spin through every allowed delivery.
    // Until quiet for 20 ms, but bounded: the subscription keeps refilling while it is
    // read, so on a busy partition it is never quiet (that stalled the ownership
    // loop). What arrives after the last read waits for its ack_wait.
    let until = tokio::time::Instant::now() + Duration::from_millis(250);
    for _ in 0..4 * batch.max(1) {
        let quiet = (tokio::time::Instant::now() + Duration::from_millis(20)).min(until);
        match tokio::time::timeout_at(quiet, messages.next()).await {
            Ok(Some(Ok(m))) => {
                let _ = m.ack_with(AckKind::Nak(Some(HANDED_BACK))).await;
            }
            _ => break,
        }
    }
    Ok(())
}

/// How long a message handed back by a stopping pull loop waits before the server
/// delivers it again: longer than the loop takes to let go of its subscription.
const HANDED_BACK: Duration = Duration::from_secs(1);

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
    let stage = metrics::stage(&spec.stage);
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
            stage: spec.stage.clone(),
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
    let dl = DeadLetter::from_message(&spec.stage, msg, seq, delivered, reason);
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
