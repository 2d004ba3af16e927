//! Reading the event stream in order, from the checkpoint on, in batches.
//!
//! **Why an ordered consumer and not a durable one.** A projection whose position
//! lives in PostgreSQL must never apply an event while an earlier one is still
//! missing: everything at or below the checkpoint is skipped forever after. A durable
//! pull consumer with `AckPolicy::All` breaks that in two ways: after a restart the
//! server delivers new messages before it redelivers the unacked ones (their
//! `ack_wait` has not expired), and acking a batch's last message also acks any
//! message of the batch lost in transit. Both silently drop events. The checkpoint
//! already is the cursor, so the stage reads with an ordered consumer (ephemeral, no
//! acks, gap detection built in) started at `checkpoint + 1`: nothing is redelivered,
//! nothing is skipped, and a batch that cannot be committed is simply retried from
//! memory. The client library re-creates an ordered consumer on a gap; if that happens
//! before the first message it restarts from the stream's first sequence, which shows
//! up here as a sequence at or below the last one seen, and we re-create the consumer
//! at the right place ourselves.
//!
//! **No server-side filter.** The reader asks for the whole stream and the batch
//! preparation drops what the index does not apply (its own outputs, dead letters)
//! without moving the checkpoint over them. A filtered consumer would spare that
//! traffic, but nats-server 2.10's file store reloads a whole message block (up to
//! 8 MB) for every message a filtered consumer reads from a block it has not cached,
//! so reading a backlog (a replay, or the live index catching up after downtime) ran
//! at a few hundred messages per second instead of about 190,000 unfiltered on the
//! 2-core reference machine (docs/replay.md, "Performance").
//!
//! **A limit, for replays.** With a limit the reader hands out nothing above it and
//! reports itself [`EventSource::exhausted`] once every consumed event up to the limit
//! was handed out: when a message says nothing more is pending, when the consumer
//! starts with nothing pending, or when a message above the limit arrives (it is held
//! back, and handed out first if the limit is lifted to keep following).

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, Message};
use futures::StreamExt;

/// How long the reader waits for an event, with none in hand, before it re-opens its
/// ordered consumer where it was (cheap, and it bounds a silent stall).
const IDLE_REOPEN: Duration = Duration::from_secs(15);
use imgcrawl_bus::retry::Policy;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Pauses between failed attempts to (re)open the stream: 400 ms doubling to 12.8 s.
const REOPEN: Policy =
    Policy::exponential(Duration::from_millis(400), Duration::from_millis(12_800));

/// The subject filters the index applies: every event except its own outputs (one
/// definition, shared with the lag: [`imgcrawl_readmodel::lag::applied_subjects`]).
pub fn consumed_subjects() -> Vec<String> {
    imgcrawl_readmodel::lag::applied_subjects()
}

/// An in-order reader of the event stream.
pub(crate) struct EventSource {
    js: jetstream::Context,
    stream: String,
    description: String,
    messages: Option<Ordered>,
    /// The last stream sequence handed out (or the checkpoint at start).
    last_seen: u64,
    /// Hand out nothing above this sequence.
    limit: Option<u64>,
    /// A message above the limit, read but not handed out.
    held: Option<Message>,
    /// Everything up to the limit was handed out.
    exhausted: bool,
}

impl EventSource {
    /// A reader that starts after sequence `after` and hands out nothing above `limit`.
    pub(crate) fn new(
        js: jetstream::Context,
        stream: String,
        description: String,
        after: u64,
        limit: Option<u64>,
    ) -> Self {
        EventSource {
            js,
            stream,
            description,
            messages: None,
            last_seen: after,
            exhausted: limit.is_some_and(|l| l <= after),
            limit,
            held: None,
        }
    }

    /// Whether every event up to the limit has been handed out (never without a limit).
    pub(crate) fn exhausted(&self) -> bool {
        self.limit.is_some() && self.exhausted
    }

    /// Whether the reader has a limit (it does not follow the stream yet).
    pub(crate) fn limited(&self) -> bool {
        self.limit.is_some()
    }

    /// Lifts the limit: from now on the reader follows the stream.
    pub(crate) fn unlimit(&mut self) {
        self.limit = None;
        self.exhausted = false;
    }

    async fn open(&mut self) -> Result<(), String> {
        let deliver_policy = match self.last_seen {
            0 => DeliverPolicy::All,
            n => DeliverPolicy::ByStartSequence {
                start_sequence: n + 1,
            },
        };
        let config = OrderedConfig {
            description: Some(self.description.clone()),
            deliver_policy,
            ..Default::default()
        };
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| format!("get stream: {e}"))?;
        let consumer = stream
            .create_consumer(config)
            .await
            .map_err(|e| format!("create consumer: {e}"))?;
        if consumer.cached_info().num_pending == 0 {
            self.exhausted = true;
        }
        self.messages = Some(
            consumer
                .messages()
                .await
                .map_err(|e| format!("pull: {e}"))?,
        );
        debug!(after = self.last_seen, "ordered consumer opened");
        Ok(())
    }

    /// Starts reading again after sequence `after` (the database's checkpoint went
    /// back: a failover to a node that is behind, or a restore).
    pub(crate) fn rewind(&mut self, after: u64) {
        self.last_seen = after;
        self.messages = None;
        self.held = None;
        self.exhausted = self.limit.is_some_and(|l| l <= after);
    }

    /// The next batch: waits for a first message (until `shutdown`), then lingers up to
    /// `linger` for more, at most `max`. Returns an empty batch on shutdown or once
    /// [`exhausted`](Self::exhausted); the messages are in stream order and all above
    /// the previous batch.
    pub(crate) async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<Message> {
        let mut batch = Vec::new();
        let mut deadline: Option<Instant> = None;
        let mut reopen = REOPEN.backoff();
        if self.limit.is_none() {
            batch.extend(self.held.take());
        }
        while batch.len() < max && !self.exhausted() {
            if self.messages.is_none() {
                if let Err(e) = self.open().await {
                    if !batch.is_empty() {
                        break;
                    }
                    warn!(error = %e, "cannot read the event stream; retrying");
                    if !reopen.pause(shutdown).await {
                        return Vec::new();
                    }
                    continue;
                }
                continue; // opened: it may have found nothing left up to the limit
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            // With nothing in hand, wait at most IDLE_REOPEN before re-opening: an
            // ordered consumer the server dropped while the writer was stalled (a long
            // database outage) can stay silent forever instead of failing.
            let waiting = deadline.or_else(|| Some(Instant::now() + IDLE_REOPEN));
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Vec::new(),
                n = next_until(messages, waiting) => n,
            };
            match next {
                Next::Elapsed if batch.is_empty() => {
                    debug!(
                        after = self.last_seen,
                        "no event for a while; re-opening the reader"
                    );
                    self.messages = None;
                }
                Next::Elapsed => break,
                Next::Message(msg) => {
                    if self.accept(&msg) {
                        self.take(*msg, &mut batch);
                        deadline.get_or_insert_with(|| Instant::now() + linger);
                    }
                }
                Next::Broken(reason) => {
                    warn!(%reason, after = self.last_seen, "event stream interrupted; re-opening");
                    self.messages = None;
                }
            }
        }
        batch
    }

    /// Hands `msg` out, or holds it back if it is above the limit; notes when nothing up
    /// to the limit is left.
    fn take(&mut self, msg: Message, batch: &mut Vec<Message>) {
        let Some(limit) = self.limit else {
            return batch.push(msg);
        };
        let Ok(info) = msg.info() else { return };
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > limit {
            self.held = Some(msg);
            self.exhausted = true;
            return;
        }
        batch.push(msg);
        if pending == 0 || seq == limit {
            self.exhausted = true;
        }
    }

    /// Takes a message if it is the next one in order; a message at or below the last
    /// one seen means the consumer restarted from the wrong place: re-open it.
    fn accept(&mut self, msg: &Message) -> bool {
        let Ok(info) = msg.info() else {
            warn!(subject = %msg.subject, "message without jetstream metadata; ignoring");
            return false;
        };
        if info.stream_sequence <= self.last_seen {
            debug!(
                seq = info.stream_sequence,
                last = self.last_seen,
                "consumer restarted behind; re-opening"
            );
            self.messages = None;
            return false;
        }
        self.last_seen = info.stream_sequence;
        true
    }
}

enum Next {
    Message(Box<Message>),
    Elapsed,
    Broken(String),
}

async fn next_until(messages: &mut Ordered, deadline: Option<Instant>) -> Next {
    let next = async {
        match messages.next().await {
            Some(Ok(m)) => Next::Message(Box::new(m)),
            Some(Err(e)) => Next::Broken(e.to_string()),
            None => Next::Broken("message stream ended".into()),
        }
    };
    match deadline {
        None => next.await,
        Some(d) => tokio::time::timeout_at(d, next)
            .await
            .unwrap_or(Next::Elapsed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_never_consumes_its_own_outputs() {
        let s = consumed_subjects();
        assert!(s.contains(&"imgcrawl.crawl.requested".to_string()));
        assert!(s.contains(&"imgcrawl.page.discovered.*".to_string()));
        assert!(s.contains(&"imgcrawl.image.deleted".to_string()));
        assert!(!s
            .iter()
            .any(|x| x.ends_with("indexed") || x.ends_with("crawl.completed")));
    }
}
