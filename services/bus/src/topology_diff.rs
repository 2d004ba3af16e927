//! What `imgcrawl topology apply` would change: the settings a [`BusConfig`] asks of
//! each stream and bucket ([`targets`]), compared with what exists ([`diff`]) and
//! turned into the updated stream configuration ([`updated`]). Pure functions, no I/O.
//!
//! Each KV bucket and the object store are streams underneath (`KV_<bucket>`,
//! `OBJ_<bucket>`); their replicas (and the seen-set's max age) change like the event
//! stream's. Storage cannot change in place. A change that weakens (fewer replicas, a
//! shorter age or dedup window, a smaller size limit: data or safety lost) is applied
//! only when the operator allows it explicitly.

use std::time::Duration;

use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};

use crate::topology::limit;
use crate::BusConfig;

/// What a stream backs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The event stream.
    Stream,
    /// A KV bucket.
    Kv,
    /// The object store.
    ObjectStore,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Stream => "stream",
            Kind::Kv => "kv bucket",
            Kind::ObjectStore => "object store",
        })
    }
}

/// The settings the configuration asks of one stream; `None` is not managed here.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// Replicas.
    pub replicas: usize,
    /// Storage.
    pub storage: StorageType,
    /// Dedup window.
    pub duplicate_window: Option<Duration>,
    /// Maximum age (zero: forever).
    pub max_age: Option<Duration>,
    /// Maximum bytes (-1: unlimited).
    pub max_bytes: Option<i64>,
}

/// One stream or bucket of the topology and what the configuration asks of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What it is.
    pub kind: Kind,
    /// The stream or bucket name users know.
    pub name: String,
    /// The JetStream stream underneath.
    pub stream: String,
    /// What the configuration asks.
    pub wanted: Wanted,
}

/// Every stream and bucket of the topology: the event stream first, then the stream of
/// max-deliveries advisories, the KV buckets, the object store.
pub fn targets(cfg: &BusConfig) -> Vec<Target> {
    let base = Wanted {
        replicas: cfg.replicas,
        storage: cfg.storage.to_nats(),
        duplicate_window: None,
        max_age: None,
        max_bytes: None,
    };
    let stream = Target {
        kind: Kind::Stream,
        name: cfg.stream.clone(),
        stream: cfg.stream.clone(),
        wanted: Wanted {
            duplicate_window: Some(Duration::from_secs(cfg.duplicate_window_secs)),
            max_age: Some(Duration::from_secs(cfg.max_age_secs)),
            max_bytes: Some(limit(cfg.max_bytes)),
            ..base.clone()
        },
    };
    let kv = |bucket: &str, wanted: Wanted| Target {
        kind: Kind::Kv,
        name: bucket.to_string(),
        stream: format!("KV_{bucket}"),
        wanted,
    };
    let advisories = crate::dlq::advisory_stream(&cfg.stream);
    vec![
        stream,
        Target {
            kind: Kind::Stream,
            name: advisories.clone(),
            stream: advisories,
            wanted: base.clone(),
        },
        kv(
            &cfg.seen_bucket,
            Wanted {
                max_age: Some(Duration::from_secs(cfg.seen_max_age_secs)),
                ..base.clone()
            },
        ),
        kv(&cfg.jobs_bucket, base.clone()),
        kv(crate::tombstones::TOMBSTONE_BUCKET, base.clone()),
        kv(crate::ha::HA_BUCKET, base.clone()),
        kv(crate::hosts::HOSTS_BUCKET, base.clone()),
        kv(crate::ownership::PARTITIONS_BUCKET, base.clone()),
        Target {
            kind: Kind::ObjectStore,
            name: cfg.blob_bucket.clone(),
            stream: format!("OBJ_{}", cfg.blob_bucket),
            wanted: base,
        },
    ]
}

/// A setting [`diff`] compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `num_replicas`.
    Replicas,
    /// `storage`.
    Storage,
    /// `duplicate_window`.
    DuplicateWindow,
    /// `max_age`.
    MaxAge,
    /// `max_bytes`.
    MaxBytes,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Field::Replicas => "replicas",
            Field::Storage => "storage",
            Field::DuplicateWindow => "duplicate_window",
            Field::MaxAge => "max_age",
            Field::MaxBytes => "max_bytes",
        })
    }
}

/// Whether and how a difference can be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A stream update makes it so.
    Apply,
    /// A stream update makes it so, but it weakens the topology: only when allowed.
    Weakens,
    /// Cannot change in place; the reason says what to do instead.
    CannotChange(&'static str),
}

/// One difference between what exists and what the configuration asks.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The setting.
    pub field: Field,
    /// Its current value, for people.
    pub current: String,
    /// The configured value, for people.
    pub wanted: String,
    /// Whether it can be applied.
    pub verdict: Verdict,
}

/// How storage changes: not in place.
pub const STORAGE_FIXED: &str =
    "storage cannot be changed in place: back the stream up, delete it and let a start recreate it";

/// The differences between an existing stream's configuration and what is wanted.
pub fn diff(current: &StreamConfig, wanted: &Wanted) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |field, current: String, wanted: String, verdict| {
        out.push(Change {
            field,
            current,
            wanted,
            verdict,
        })
    };
    if current.num_replicas.max(1) != wanted.replicas {
        let v = match wanted.replicas < current.num_replicas {
            true => Verdict::Weakens,
            false => Verdict::Apply,
        };
        push(
            Field::Replicas,
            current.num_replicas.max(1).to_string(),
            wanted.replicas.to_string(),
            v,
        );
    }
    if current.storage != wanted.storage {
        push(
            Field::Storage,
            storage(current.storage),
            storage(wanted.storage),
            Verdict::CannotChange(STORAGE_FIXED),
        );
    }
    if let Some(w) = wanted.duplicate_window {
        if current.duplicate_window != w {
            let v = if w < current.duplicate_window {
                Verdict::Weakens
            } else {
                Verdict::Apply
            };
            push(
                Field::DuplicateWindow,
                secs(current.duplicate_window),
                secs(w),
                v,
            );
        }
    }
    if let Some(w) = wanted.max_age {
        if current.max_age != w {
            let v = weaker_limit(current.max_age.as_nanos(), w.as_nanos(), 0);
            push(Field::MaxAge, age(current.max_age), age(w), v);
        }
    }
    if let Some(w) = wanted.max_bytes {
        let (c, w) = (current.max_bytes.max(-1), w.max(-1));
        if c != w {
            push(Field::MaxBytes, bytes(c), bytes(w), weaker_limit(c, w, -1));
        }
    }
    out
}

/// A limit where `unlimited` means none: setting one, or lowering it, weakens.
fn weaker_limit<T: PartialOrd>(current: T, wanted: T, unlimited: T) -> Verdict {
    let tighter = wanted != unlimited && (current == unlimited || wanted < current);
    match tighter {
        true => Verdict::Weakens,
        false => Verdict::Apply,
    }
}

/// The stream configuration with the applicable changes made: `Apply` always,
/// `Weakens` only when `allow_weaker`, `CannotChange` never.
pub fn updated(
    current: &StreamConfig,
    wanted: &Wanted,
    changes: &[Change],
    allow_weaker: bool,
) -> StreamConfig {
    let mut next = current.clone();
    for c in changes {
        let go = match c.verdict {
            Verdict::Apply => true,
            Verdict::Weakens => allow_weaker,
            Verdict::CannotChange(_) => false,
        };
        if !go {
            continue;
        }
        match c.field {
            Field::Replicas => next.num_replicas = wanted.replicas,
            Field::Storage => {}
            Field::DuplicateWindow => {
                next.duplicate_window = wanted.duplicate_window.unwrap_or(next.duplicate_window)
            }
            Field::MaxAge => next.max_age = wanted.max_age.unwrap_or(next.max_age),
            Field::MaxBytes => next.max_bytes = wanted.max_bytes.unwrap_or(next.max_bytes),
        }
    }
    next
}

/// `file` or `memory`.
pub fn storage(s: StorageType) -> String {
    match s {
        StorageType::File => "file".into(),
        StorageType::Memory => "memory".into(),
    }
}

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// An age limit for people (`forever` for none).
pub fn age(d: Duration) -> String {
    match d.is_zero() {
        true => "forever".into(),
        false => secs(d),
    }
}

/// A byte limit for people (`unlimited` for none).
pub fn bytes(b: i64) -> String {
    match b {
        b if b < 0 => "unlimited".into(),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
#[path = "topology_diff_tests.rs"]
mod tests;
