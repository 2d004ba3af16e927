//! Reading one or two event subjects in stream order, from a position up to an end,
//! for the object replay and the bucket check: an ordered consumer (ephemeral, no
//! acks) that stops at the end and re-opens itself where it was if interrupted.
//!
//! A subject that is a large part of the stream (`image.downloaded`) is read with
//! [`Reader::bulk`]: filtered on the server when the server does that at full speed
//! (2.11 and later), else the whole stream, filtered here: nats-server 2.10's file
//! store reloads a whole message block for every message a filtered consumer reads
//! from a block it has not cached, which made a filtered read of a backlog run at a
//! few hundred messages per second (docs/replay.md, "Performance"). A rare subject
//! (`image.deleted`) is always cheaper filtered on the server: [`Reader::new`].

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::{self, Message};
use futures::StreamExt;
use imgcrawl_bus::identity::StreamIdentity;
use imgcrawl_bus::{topology, Bus};
use imgcrawl_events::{decode, Event, HEADER_EVENT};
use tracing::{debug, warn};

use crate::StoreError;

/// How long a read may wait for the next message before the reader gives up.
const STALL: Duration = Duration::from_secs(60);

/// The event stream's identity and end, as the server reports them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Which stream (name and id).
    pub identity: StreamIdentity,
    /// Last sequence (0 when empty).
    pub last_seq: u64,
}

/// Reads the bus's stream identity and last sequence.
pub async fn stream_info(bus: &Bus) -> Result<StreamInfo, StoreError> {
    let name = &bus.config.stream;
    let info = topology::stream_info(&bus.js, name)
        .await?
        .ok_or_else(|| StoreError::Stream(format!("{name}: no such stream")))?;
    let identity = StreamIdentity::of(&info).ok_or_else(|| {
        StoreError::Stream(format!(
            "{name}: no stream id in its metadata yet (any imgcrawl worker adopts one at start)"
        ))
    })?;
    Ok(StreamInfo {
        identity,
        last_seq: info.state.last_sequence,
    })
}

/// An in-order reader of `subjects` in `(after, end]`.
pub(crate) struct Reader {
    js: jetstream::Context,
    stream: String,
    subjects: Vec<String>,
    /// Filter on the server (else: read everything, keep `subjects` here).
    server_filter: bool,
    messages: Option<Ordered>,
    last: u64,
    end: u64,
    done: bool,
}

impl Reader {
    /// A reader of `subjects` after sequence `after`, up to `end`, filtered on the
    /// server: for subjects that are a small part of the stream.
    pub(crate) fn new(bus: &Bus, subjects: Vec<String>, after: u64, end: u64) -> Reader {
        Reader {
            server_filter: true,
            ..Reader::scanning(bus, subjects, after, end)
        }
    }

    /// A reader of `subjects` after sequence `after`, up to `end`, for subjects that
    /// are a large part of the stream: filtered on the server if it is fast at that
    /// ([`Bus::fast_filtered_reads`]), else reading the whole stream and keeping
    /// `subjects`.
    pub(crate) fn bulk(bus: &Bus, subjects: Vec<String>, after: u64, end: u64) -> Reader {
        Reader {
            server_filter: bus.fast_filtered_reads(),
            ..Reader::scanning(bus, subjects, after, end)
        }
    }

    /// A reader of `subjects` after sequence `after`, up to `end`, that reads the whole
    /// stream and keeps `subjects`.
    fn scanning(bus: &Bus, subjects: Vec<String>, after: u64, end: u64) -> Reader {
        Reader {
            js: bus.js.clone(),
            stream: bus.config.stream.clone(),
            subjects,
            server_filter: false,
            messages: None,
            last: after,
            end,
            done: after >= end,
        }
    }

    async fn open(&mut self) -> Result<(), StoreError> {
        let err = |e: &dyn std::fmt::Display| StoreError::Stream(format!("read events: {e}"));
        let filter_subjects = match self.server_filter {
            true => self.subjects.clone(),
            false => Vec::new(),
        };
        let config = OrderedConfig {
            filter_subjects,
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: self.last + 1,
            },
            ..Default::default()
        };
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| err(&e))?;
        let consumer = stream.create_consumer(config).await.map_err(|e| err(&e))?;
        if consumer.cached_info().num_pending == 0 {
            self.done = true;
        }
        self.messages = Some(consumer.messages().await.map_err(|e| err(&e))?);
        Ok(())
    }

    /// The next event up to the end with its sequence, `None` at the
    /// end. Messages that do not decode are skipped (the stage dead-lettered them).
    pub(crate) async fn next(&mut self) -> Result<Option<(u64, Event)>, StoreError> {
        let mut failures = 0;
        while !self.done {
            if self.messages.is_none() {
                self.open().await?;
                continue;
            }
            let Some(messages) = self.messages.as_mut() else {
                continue;
            };
            let next = tokio::time::timeout(STALL, messages.next()).await;
            let msg = match next {
                Err(_) => return Err(StoreError::Stream("reading the stream stalled".into())),
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) if failures < 5 => {
                    failures += 1;
                    warn!(error = %e, after = self.last, "event stream interrupted; re-opening");
                    self.messages = None;
                    continue;
                }
                Ok(Some(Err(e))) => return Err(StoreError::Stream(format!("read events: {e}"))),
                Ok(None) => {
                    self.messages = None;
                    continue;
                }
            };
            if let Some(found) = self.accept(&msg) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    fn accept(&mut self, msg: &Message) -> Option<(u64, Event)> {
        let info = msg.info().ok()?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq <= self.last {
            self.messages = None;
            return None;
        }
        if seq > self.end {
            self.done = true;
            return None;
        }
        self.last = seq;
        if pending == 0 || seq == self.end {
            self.done = true;
        }
        if !self.subjects.iter().any(|s| s == msg.subject.as_str()) {
            return None;
        }
        let header = msg
            .headers
            .as_ref()
            .and_then(|h| h.get(HEADER_EVENT))
            .map(|v| v.as_str().to_string());
        match decode(msg.subject.as_str(), header.as_deref(), &msg.payload) {
            Ok(event) => Some((seq, event)),
            Err(e) => {
                debug!(seq, error = %e, "skipping an undecodable event");
                None
            }
        }
    }
}
