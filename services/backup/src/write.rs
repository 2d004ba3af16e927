//! Writing one archived stream back: the event stream at its original sequences,
//! the blob store and KV buckets in order.
//!
//! **Keeping sequences.** Every event is published with `Nats-Expected-Last-Sequence`
//! set to the sequence before its own, pipelined (up to [`WINDOW`] in flight), and
//! each PubAck must carry the original sequence. A sequence the original stream had
//! deleted is filled with a placeholder on `imgcrawl.backup.gap` that is deleted again
//! once the stream is written, so the gap is where it was. An event whose
//! `Nats-Msg-Id` the server takes for a duplicate (two events with one id published
//! further apart than the duplicate window, now published within it) is published
//! again with the id moved to `Imgcrawl-Restored-Msg-Id`. Any failure is recovered
//! by asking the stream for its last sequence and continuing after it.
//!
//! **Timestamps.** JetStream stamps messages when it stores them, so the restored
//! events carry their original store time in the `Imgcrawl-Stored-At` header
//! ([`imgcrawl_events::HEADER_STORED_AT`]); the index reads it in place of the
//! message time (a hand-published request without `occurred_at` keeps its time).

use std::collections::{BTreeSet, HashSet, VecDeque};

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat};
use imgcrawl_events::{HEADER_STORED_AT, SUBJECT_PREFIX};

use crate::error::nats;
use crate::manifest::{Role, SegmentEntry};
use crate::segment::{self, Record};
use crate::target::Target;
use crate::BackupError;

/// Publishes in flight at once.
pub const WINDOW: usize = 1024;

/// What writing one stream did.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Messages restored.
    pub messages: u64,
    /// The stream's last sequence afterwards.
    pub last_seq: u64,
    /// Blob messages of purged images left out.
    pub purged_skipped: u64,
}

struct Outgoing {
    seq: u64,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    filler: bool,
}

async fn load(target: &Target, s: &SegmentEntry) -> Result<Vec<Record>, BackupError> {
    let bytes = target
        .get(&s.name)
        .await?
        .ok_or_else(|| BackupError::Segment {
            name: s.name.clone(),
            detail: "missing".into(),
        })?;
    if segment::checksum(&bytes) != s.sha256 {
        return Err(BackupError::Segment {
            name: s.name.clone(),
            detail: "checksum changed since it was checked".into(),
        });
    }
    segment::decode(&bytes).map_err(|detail| BackupError::Segment {
        name: s.name.clone(),
        detail,
    })
}

fn headers(r: &Record, role: Role) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in &r.headers {
        if k.to_ascii_lowercase().starts_with("nats-expected-") {
            continue;
        }
        h.append(k.as_str(), v.as_str());
    }
    if role == Role::Events {
        let at = DateTime::from_timestamp_nanos(r.time_ns);
        h.insert(
            HEADER_STORED_AT,
            at.to_rfc3339_opts(SecondsFormat::Nanos, true).as_str(),
        );
    }
    h
}

/// The nuids of the blobs of purged images (their infos name them).
async fn purged_nuids(
    target: &Target,
    chain: &[SegmentEntry],
    purged: &BTreeSet<String>,
) -> Result<HashSet<String>, BackupError> {
    #[derive(serde::Deserialize)]
    struct Info {
        name: String,
        nuid: String,
    }
    let mut out = HashSet::new();
    for s in chain {
        for r in load(target, s).await? {
            if !r.subject.contains(".M.") {
                continue;
            }
            if let Ok(i) = serde_json::from_slice::<Info>(&r.payload) {
                if purged.contains(&i.name) {
                    out.insert(i.nuid);
                }
            }
        }
    }
    Ok(out)
}

/// Whether a blob-store record belongs to a purged image.
fn is_purged(r: &Record, nuids: &HashSet<String>, purged: &BTreeSet<String>) -> bool {
    if let Some((_, nuid)) = r.subject.split_once(".C.") {
        return nuids.contains(nuid);
    }
    if r.subject.contains(".M.") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.payload) {
            return v["name"].as_str().is_some_and(|n| purged.contains(n));
        }
    }
    false
}

/// Writes `chain` into the (new, empty) stream `name`.
pub async fn restore_stream(
    js: &jetstream::Context,
    target: &Target,
    name: &str,
    role: Role,
    chain: &[SegmentEntry],
    purged: &BTreeSet<String>,
) -> Result<Written, BackupError> {
    let nuids = if purged.is_empty() {
        HashSet::new()
    } else {
        purged_nuids(target, chain, purged).await?
    };
    let mut w = Written::default();
    let mut next = chain.first().map_or(1, |s| s.first_seq);
    let mut fillers = Vec::new();
    for s in chain {
        let mut out = Vec::new();
        for r in load(target, s).await? {
            if role == Role::Blobs && is_purged(&r, &nuids, purged) {
                w.purged_skipped += 1;
                continue;
            }
            if role == Role::Events {
                while next < r.seq {
                    out.push(Outgoing {
                        seq: next,
                        subject: format!("{SUBJECT_PREFIX}.backup.gap"),
                        headers: HeaderMap::new(),
                        payload: Bytes::new(),
                        filler: true,
                    });
                    next += 1;
                }
                next = r.seq + 1;
            }
            out.push(Outgoing {
                seq: r.seq,
                headers: headers(&r, role),
                subject: r.subject,
                payload: r.payload,
                filler: false,
            });
        }
        w.messages += out.iter().filter(|o| !o.filler).count() as u64;
        fillers.extend(out.iter().filter(|o| o.filler).map(|o| o.seq));
        if role == Role::Events {
            publish_aligned(js, name, &mut out).await?;
        } else {
            publish_plain(js, name, out).await?;
        }
    }
    let mut stream = js
        .get_stream(name)
        .await
        .map_err(|e| nats(format!("get stream {name}"))(&e))?;
    for seq in fillers {
        stream
            .delete_message(seq)
            .await
            .map_err(|e| nats(format!("delete placeholder {seq} of {name}"))(&e))?;
    }
    let info = stream
        .info()
        .await
        .map_err(|e| nats(format!("stream info {name}"))(&e))?;
    w.last_seq = info.state.last_sequence;
    Ok(w)
}

/// Publishes in order without caring about sequences.
async fn publish_plain(
    js: &jetstream::Context,
    name: &str,
    out: Vec<Outgoing>,
) -> Result<(), BackupError> {
    let mut inflight = VecDeque::new();
    for o in out {
        if inflight.len() >= WINDOW {
            let f: jetstream::context::PublishAckFuture = inflight.pop_front().expect("in flight");
            f.await.map_err(|e| nats(format!("restore {name}"))(&e))?;
        }
        let f = js
            .publish_with_headers(o.subject, o.headers, o.payload)
            .await
            .map_err(|e| nats(format!("restore {name}"))(&e))?;
        inflight.push_back(f);
    }
    for f in inflight {
        f.await.map_err(|e| nats(format!("restore {name}"))(&e))?;
    }
    Ok(())
}

/// Publishes `out` so that each message lands at its `seq`; recovers from any
/// failure by continuing after the stream's last sequence.
async fn publish_aligned(
    js: &jetstream::Context,
    name: &str,
    out: &mut [Outgoing],
) -> Result<(), BackupError> {
    let mut i = 0;
    let mut attempts = 0;
    while i < out.len() {
        let failed = pipeline(js, name, out, i).await?;
        let Some((k, duplicate, why)) = failed else {
            return Ok(());
        };
        if duplicate {
            let h = &mut out[k].headers;
            if let Some(id) = h.get("Nats-Msg-Id").map(|v| v.as_str().to_string()) {
                let mut fresh = HeaderMap::new();
                for (key, values) in h.iter() {
                    if key.to_string().eq_ignore_ascii_case("Nats-Msg-Id") {
                        continue;
                    }
                    for v in values {
                        fresh.append(key.to_string().as_str(), v.as_str());
                    }
                }
                fresh.insert("Imgcrawl-Restored-Msg-Id", id.as_str());
                *h = fresh;
            }
        }
        let mut stream = js
            .get_stream(name)
            .await
            .map_err(|e| nats(format!("get stream {name}"))(&e))?;
        let last = stream
            .info()
            .await
            .map_err(|e| nats(format!("stream info {name}"))(&e))?
            .state
            .last_sequence;
        let resume = out.iter().position(|o| o.seq > last).unwrap_or(out.len());
        if resume <= i {
            attempts += 1;
            if attempts > 5 {
                return Err(BackupError::Nats {
                    what: format!("restore {name} at sequence {}", out[k].seq),
                    detail: why,
                });
            }
        } else {
            attempts = 0;
        }
        i = resume;
    }
    Ok(())
}

/// Publishes from `start` on; the first message that did not land where it should:
/// (index, whether it was a duplicate, why).
async fn pipeline(
    js: &jetstream::Context,
    name: &str,
    out: &[Outgoing],
    start: usize,
) -> Result<Option<(usize, bool, String)>, BackupError> {
    let mut inflight = VecDeque::new();
    let mut j = start;
    let mut failed: Option<(usize, bool, String)> = None;
    loop {
        while failed.is_none() && j < out.len() && inflight.len() < WINDOW {
            let o = &out[j];
            let mut h = o.headers.clone();
            h.insert(
                "Nats-Expected-Last-Sequence",
                (o.seq - 1).to_string().as_str(),
            );
            match js
                .publish_with_headers(o.subject.clone(), h, o.payload.clone())
                .await
            {
                Ok(f) => inflight.push_back((j, f)),
                Err(e) => {
                    failed = Some((j, false, e.to_string()));
                    break;
                }
            }
            j += 1;
        }
        let Some((k, f)) = inflight.pop_front() else {
            break;
        };
        let r: Result<jetstream::publish::PublishAck, _> = f.await;
        if failed.is_some() {
            continue;
        }
        match r {
            Ok(ack) if ack.duplicate => failed = Some((k, true, "duplicate message id".into())),
            Ok(ack) if ack.sequence != out[k].seq => {
                return Err(BackupError::Nats {
                    what: format!("restore {name}"),
                    detail: format!("sequence {} stored at {}", out[k].seq, ack.sequence),
                })
            }
            Ok(_) => {}
            Err(e) => failed = Some((k, false, e.to_string())),
        }
    }
    Ok(failed)
}
