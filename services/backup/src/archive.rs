//! The continuous archive: one task per archived stream reads it in order from where
//! the manifest ends and closes a segment when it is `segment_secs` old or
//! `segment_max_bytes` large (and on shutdown), so the data not yet in the archive is
//! bounded by design. A segment is stored before the manifest lists it: after a
//! crash the archive continues from the manifest's last sequence, with no gap and no
//! duplicate.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use futures::StreamExt;
use imgcrawl_bus::identity::STREAM_ID_KEY;
use imgcrawl_bus::Bus;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::nats;
use crate::lock::ArchiverLease;
use crate::manifest::{ConsumerState, Manifest, Role, SegmentEntry, StreamArchive};
use crate::segment::SegmentWriter;
use crate::streams::{archived_streams, purged_sha};
use crate::target::Target;
use crate::{read, BackupError, Config};

/// What one pass archived.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchiveSummary {
    /// Segments closed.
    pub segments: u64,
    /// Messages archived.
    pub messages: u64,
    /// Compressed bytes written.
    pub bytes: u64,
    /// Uncompressed bytes archived.
    pub raw_bytes: u64,
}

/// Shared by the stream tasks: the manifest and the totals.
struct Shared {
    target: Target,
    manifest: Mutex<(Manifest, ArchiveSummary)>,
}

/// Archives continuously until `shutdown`, then closes the open segments.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), BackupError> {
    archive(&bus, &config, false, shutdown).await.map(|_| ())
}

/// Archives everything the streams hold now, closes the segments and returns.
pub async fn backup_once(bus: &Bus, config: &Config) -> Result<ArchiveSummary, BackupError> {
    archive(bus, config, true, CancellationToken::new()).await
}

async fn archive(
    bus: &Bus,
    config: &Config,
    once: bool,
    shutdown: CancellationToken,
) -> Result<ArchiveSummary, BackupError> {
    let target = Target::open(config)?;
    // one archiver per target; the manifest is read once the lease is held
    let lost = CancellationToken::new();
    let Some(lease) = ArchiverLease::take(
        bus,
        &target.describe,
        lease_ttl(config),
        !once,
        &shutdown,
        lost.clone(),
    )
    .await?
    else {
        return Ok(ArchiveSummary::default());
    };
    let shutdown = shutdown.child_token();
    {
        let (lost, work) = (lost.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = lost.cancelled() => work.cancel(),
                _ = work.cancelled() => {}
            }
        });
    }
    let result = archive_held(bus, config, once, target, shutdown.clone()).await;
    shutdown.cancel();
    lease.release().await;
    if lost.is_cancelled() {
        return Err(BackupError::Locked(format!(
            "another archiver took the lease of {}; this one stopped",
            config.target
        )));
    }
    result
}

/// The archiver lease's time to live.
fn lease_ttl(config: &Config) -> Duration {
    Duration::from_secs(config.lease_secs.max(1))
}

/// [`archive`] with the target's lease held.
async fn archive_held(
    bus: &Bus,
    config: &Config,
    once: bool,
    target: Target,
    shutdown: CancellationToken,
) -> Result<ArchiveSummary, BackupError> {
    let mut manifest = target
        .manifest()
        .await?
        .unwrap_or_else(|| Manifest::new(&bus.config.stream));
    if manifest.events_stream != bus.config.stream {
        return Err(BackupError::Manifest(format!(
            "{} holds the backup of stream {}, not {}",
            target.describe, manifest.events_stream, bus.config.stream
        )));
    }
    if !once {
        // buckets created on first use: made now, so a running archive follows them
        // from their first message (a purge must reach the manifest)
        crate::purge::ensure_bucket(bus).await?;
        imgcrawl_bus::tombstones::Tombstones::open(bus).await?;
    }
    let mut tasks = Vec::new();
    for (name, role) in archived_streams(bus, config) {
        let Some(info) = imgcrawl_bus::topology::stream_info(&bus.js, &name).await? else {
            continue;
        };
        if role == Role::Events {
            let id = info.config.metadata.get(STREAM_ID_KEY).cloned();
            if manifest.stream_id.is_some() && id.is_some() && manifest.stream_id != id {
                return Err(BackupError::Manifest(format!(
                    "{} holds the backup of stream {} with id {}, this one has id {}; use another target",
                    target.describe,
                    name,
                    manifest.stream_id.clone().unwrap_or_default(),
                    id.unwrap_or_default()
                )));
            }
            manifest.stream_id = id;
        }
        let config_json = serde_json::to_value(&info.config).unwrap_or_default();
        let entry = manifest
            .streams
            .entry(name.clone())
            .or_insert_with(|| StreamArchive {
                role,
                config: config_json.clone(),
                origin_seq: info.state.first_sequence.max(1),
                segments: Vec::new(),
            });
        entry.config = config_json;
        tasks.push((name, role, info.state.last_sequence));
    }
    let shared = Arc::new(Shared {
        target,
        manifest: Mutex::new((manifest, ArchiveSummary::default())),
    });
    let mut set = tokio::task::JoinSet::new();
    for (name, role, last) in tasks {
        let (js, shared, config, shutdown) = (
            bus.js.clone(),
            shared.clone(),
            config.clone(),
            shutdown.clone(),
        );
        let end = once.then_some(last);
        set.spawn(
            async move { archive_stream(js, shared, config, name, role, end, shutdown).await },
        );
    }
    if !once {
        let (bus, shared, config, shutdown) = (
            bus.clone(),
            shared.clone(),
            config.clone(),
            shutdown.clone(),
        );
        set.spawn(async move { maintain(bus, shared, config, shutdown).await });
    }
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        let r = r.unwrap_or_else(|e| Err(BackupError::Manifest(format!("archive task: {e}"))));
        if let Err(e) = r {
            shutdown.cancel();
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let guard = shared.manifest.lock().await;
    Ok(guard.1.clone())
}

/// Archives one stream until `end` (once) or shutdown.
async fn archive_stream(
    js: jetstream::Context,
    shared: Arc<Shared>,
    config: Config,
    name: String,
    role: Role,
    end: Option<u64>,
    shutdown: CancellationToken,
) -> Result<(), BackupError> {
    let mut next = {
        let g = shared.manifest.lock().await;
        g.0.streams.get(&name).map_or(1, StreamArchive::next_seq)
    };
    if end.is_some_and(|e| e < next) {
        return Ok(());
    }
    let interval = Duration::from_secs(config.segment_secs.max(1));
    let mut purged = BTreeSet::new();
    'reopen: loop {
        let (mut messages, pending) = read::open(&js, &name, next).await?;
        if end.is_some() && pending == 0 {
            return Ok(());
        }
        let mut open: Option<(SegmentWriter, Instant)> = None;
        loop {
            let deadline = open.as_ref().map(|(_, at)| *at + interval);
            tokio::select! {
                () = shutdown.cancelled() => {
                    if let Some((w, _)) = open.take() {
                        close(&shared, &js, &name, role, w, &mut purged).await?;
                    }
                    return Ok(());
                }
                () = sleep_until(deadline) => {
                    if let Some((w, _)) = open.take() {
                        next = w.last + 1;
                        close(&shared, &js, &name, role, w, &mut purged).await?;
                    }
                }
                m = messages.next() => {
                    let m = match m {
                        Some(Ok(m)) => m,
                        other => {
                            warn!(stream = %name, error = ?other.and_then(Result::err), "stream reader stopped; reopening");
                            if let Some((w, _)) = open.take() {
                                next = w.last + 1;
                                close(&shared, &js, &name, role, w, &mut purged).await?;
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue 'reopen;
                        }
                    };
                    let (rec, left) = read::record(&m)?;
                    if rec.seq < next {
                        continue; // already archived (a reader re-opened before the first message)
                    }
                    if let Some(sha) = purged_sha(&rec) {
                        purged.insert(sha);
                    }
                    let (w, _) = match &mut open {
                        Some(o) => o,
                        None => open.insert((
                            SegmentWriter::new(next, config.zstd_level).map_err(|e| seg_err(&name, e))?,
                            Instant::now(),
                        )),
                    };
                    w.push(&rec).map_err(|e| seg_err(&name, e))?;
                    let full = w.raw_bytes >= config.segment_max_bytes as u64;
                    let done = end.is_some_and(|e| rec.seq >= e || left == 0);
                    if full || done {
                        let (w, _) = open.take().expect("open segment");
                        next = w.last + 1;
                        close(&shared, &js, &name, role, w, &mut purged).await?;
                    }
                    if done {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// While archiving continuously: a full snapshot whenever the newest is older than
/// `snapshot_every_days`, followed by retention; checked hourly.
async fn maintain(
    bus: Bus,
    shared: Arc<Shared>,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), BackupError> {
    loop {
        let manifest = shared.manifest.lock().await.0.clone();
        if crate::snapshot::due(&manifest, &config) {
            let streams: Vec<String> = manifest.streams.keys().cloned().collect();
            let snap =
                crate::snapshot::take_snapshot(&bus, &shared.target, &streams, &config).await?;
            info!(snapshot = %snap.id, "snapshot taken");
            let mut g = shared.manifest.lock().await;
            g.0.snapshots.push(snap);
            let plan = crate::retention::plan(&g.0, &config, Utc::now());
            crate::retention::prune(&shared.target, &mut g.0, &plan).await?;
            info!(
                segments = plan.segments.len(),
                snapshots = plan.snapshots.len(),
                bytes = plan.removed_bytes,
                "retention applied"
            );
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn seg_err(stream: &str, detail: String) -> BackupError {
    BackupError::Segment {
        name: format!("(open segment of {stream})"),
        detail,
    }
}

/// The object name of an incremental segment.
pub fn segment_name(stream: &str, first: u64, last: u64) -> String {
    format!("segments/{stream}/{first:020}-{last:020}.seg.zst")
}

/// Seals `w`, stores it, then lists it in the manifest (with the consumers' positions
/// for the event stream).
async fn close(
    shared: &Shared,
    js: &jetstream::Context,
    stream: &str,
    role: Role,
    w: SegmentWriter,
    purged: &mut BTreeSet<String>,
) -> Result<(), BackupError> {
    let (first, last, count, raw_bytes) = (w.first, w.last, w.count, w.raw_bytes);
    let name = segment_name(stream, first, last);
    let sealed = w.seal().map_err(|detail| BackupError::Segment {
        name: name.clone(),
        detail,
    })?;
    let bytes = sealed.bytes.len() as u64;
    shared.target.put(&name, sealed.bytes).await?;
    let consumers = if role == Role::Events {
        Some(consumer_states(js, stream).await?)
    } else {
        None
    };
    let mut g = shared.manifest.lock().await;
    let (manifest, summary) = &mut *g;
    let archive = manifest
        .streams
        .get_mut(stream)
        .ok_or_else(|| BackupError::Manifest(format!("stream {stream} vanished")))?;
    archive.segments.push(SegmentEntry {
        name: name.clone(),
        first_seq: first,
        last_seq: last,
        count,
        raw_bytes,
        bytes,
        sha256: sealed.sha256,
        closed_at: Utc::now(),
    });
    if let Some(c) = consumers {
        manifest.consumers = c;
    }
    manifest.purged.append(purged);
    manifest.updated_at = Utc::now();
    shared.target.write_manifest(manifest).await?;
    summary.segments += 1;
    summary.messages += count;
    summary.bytes += bytes;
    summary.raw_bytes += raw_bytes;
    info!(segment = %name, count, bytes, "segment closed");
    Ok(())
}

/// The durable consumers of the event stream and their ack floors.
async fn consumer_states(
    js: &jetstream::Context,
    stream: &str,
) -> Result<Vec<ConsumerState>, BackupError> {
    let s = js
        .get_stream(stream)
        .await
        .map_err(|e| nats("get stream")(&e))?;
    let mut out = Vec::new();
    let mut list = s.consumers();
    while let Some(c) = list.next().await {
        let c = c.map_err(|e| nats("list consumers")(&e))?;
        if c.config.durable_name.is_none() {
            continue;
        }
        out.push(ConsumerState {
            name: c.name.clone(),
            config: serde_json::to_value(&c.config).unwrap_or_default(),
            ack_floor: c.ack_floor.stream_sequence,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
