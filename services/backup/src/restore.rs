//! `imgcrawl restore`: rebuilds the archived streams into an empty JetStream.
//!
//! 1. **Check first.** Every segment of every stream's restore chain is fetched and
//!    checked against the manifest (size, SHA-256) and the chains are checked for
//!    continuity before anything is written. A damaged archive is refused, naming the
//!    segments; with `up_to_last_good` each stream is restored up to the segment
//!    before its first damaged one instead, and the summary says where it stopped.
//! 2. **Empty targets only.** A stream that exists and holds messages is refused; an
//!    empty one (made by a process that started first) is deleted and re-created.
//! 3. **Same sequences.** The event stream is created from its archived configuration
//!    (its id in the metadata included, so projections recognise it) starting at the
//!    archive's first sequence, and every message is published at its original
//!    sequence ([`crate::write`]); sequences deleted from the original are deleted
//!    again. The blob store and the KV buckets are restored message by message
//!    (their sequences matter to nobody); bytes of purged images are skipped.
//! 4. **Consumers.** The stage consumers are re-created with their configuration and
//!    acknowledged up to their archived ack floor ([`crate::consumers`]).

use std::collections::BTreeSet;

use async_nats::jetstream::{self, stream};
use serde::Serialize;
use tracing::info;

use crate::error::nats;
use crate::manifest::{Manifest, Role, SegmentEntry};
use crate::target::Target;
use crate::verify::{check_segment, Problem};
use crate::{consumers, write, BackupError, Config};

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore each stream up to its last good segment instead of refusing a damaged
    /// archive.
    pub up_to_last_good: bool,
    /// Replicas of the re-created streams (default: as archived; a single server
    /// needs 1).
    pub replicas: Option<usize>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Per stream: (name, messages restored, last sequence).
    pub streams: Vec<(String, u64, u64)>,
    /// Damaged segments passed over (with `up_to_last_good`).
    pub damaged: Vec<Problem>,
    /// Streams restored only up to a sequence (name, last good sequence).
    pub truncated: Vec<(String, u64)>,
    /// Blob messages of purged images left out.
    pub purged_skipped: u64,
    /// Consumers re-created.
    pub consumers: usize,
}

/// Restores the archive `config.target` holds into the JetStream of `js`.
pub async fn restore(
    js: &jetstream::Context,
    config: &Config,
    options: &RestoreOptions,
) -> Result<RestoreSummary, BackupError> {
    let target = Target::open(config)?;
    let manifest = target.manifest().await?.ok_or_else(|| {
        BackupError::Manifest(format!("{} holds no backup (no manifest)", target.describe))
    })?;
    let mut summary = RestoreSummary::default();
    let plan = plan(&target, &manifest, options, &mut summary).await?;
    for (name, _, _) in &plan {
        if let Some(info) = imgcrawl_bus::topology::stream_info(js, name).await? {
            if info.state.messages > 0 {
                return Err(BackupError::NotEmpty(format!("stream {name}")));
            }
        }
    }
    // KV buckets and blobs first, the event stream last: a stage started right after
    // finds the state its events refer to.
    let mut ordered = plan;
    ordered.sort_by_key(|(_, role, _)| *role == Role::Events);
    for (name, role, chain) in ordered {
        let archived = &manifest.streams[&name];
        let mut cfg: stream::Config = serde_json::from_value(archived.config.clone())
            .map_err(|e| BackupError::Manifest(format!("stream {name} config: {e}")))?;
        if let Some(r) = options.replicas {
            cfg.num_replicas = r;
        }
        let first = chain.first().map_or(archived.origin_seq, |s| s.first_seq);
        cfg.first_sequence = (role == Role::Events && first > 1).then_some(first);
        if imgcrawl_bus::topology::stream_info(js, &name)
            .await?
            .is_some()
        {
            js.delete_stream(&name)
                .await
                .map_err(|e| nats(format!("delete empty stream {name}"))(&e))?;
        }
        js.create_stream(cfg)
            .await
            .map_err(|e| nats(format!("create stream {name}"))(&e))?;
        let purged: BTreeSet<String> = if role == Role::Blobs {
            manifest.purged.clone()
        } else {
            BTreeSet::new()
        };
        let w = write::restore_stream(js, &target, &name, role, &chain, &purged).await?;
        info!(stream = %name, messages = w.messages, last = w.last_seq, "stream restored");
        summary.purged_skipped += w.purged_skipped;
        summary.streams.push((name.clone(), w.messages, w.last_seq));
        if role == Role::Events {
            summary.consumers =
                consumers::restore(js, &name, &manifest.consumers, w.last_seq).await?;
        }
    }
    Ok(summary)
}

/// Per stream the chain to restore, after checking every segment of it.
async fn plan(
    target: &Target,
    manifest: &Manifest,
    options: &RestoreOptions,
    summary: &mut RestoreSummary,
) -> Result<Vec<(String, Role, Vec<SegmentEntry>)>, BackupError> {
    let mut out = Vec::new();
    let mut damaged = Vec::new();
    for (name, a) in &manifest.streams {
        let Some(chain) = manifest.chain(name) else {
            damaged.push(Problem {
                segment: a
                    .segments
                    .first()
                    .map_or_else(String::new, |s| s.name.clone()),
                kind: "hole",
                detail: format!(
                    "stream {name}: earlier segments were removed and no snapshot covers them"
                ),
            });
            continue;
        };
        let mut good = Vec::with_capacity(chain.len());
        let mut expect = chain.first().map(|s| s.first_seq);
        let mut bad = None;
        for s in chain {
            if expect.is_some_and(|e| e != s.first_seq) {
                bad = Some(Problem {
                    segment: s.name.clone(),
                    kind: "continuity",
                    detail: format!(
                        "starts at {} where {} was expected",
                        s.first_seq,
                        expect.unwrap_or(0)
                    ),
                });
                break;
            }
            if let Some(p) = check_segment(target, &s).await? {
                bad = Some(p);
                break;
            }
            expect = Some(s.last_seq + 1);
            good.push(s);
        }
        if let Some(p) = bad {
            let last_good = good.last().map_or(0, |s| s.last_seq);
            summary.truncated.push((name.clone(), last_good));
            damaged.push(p);
        }
        out.push((name.clone(), a.role, good));
    }
    if !damaged.is_empty() {
        if !options.up_to_last_good {
            let names: Vec<String> = damaged
                .iter()
                .map(|p| format!("{} ({}: {})", p.segment, p.kind, p.detail))
                .collect();
            return Err(BackupError::Damaged(names.join(", ")));
        }
        summary.damaged = damaged;
    }
    Ok(out)
}
