//! Full snapshots: every archived stream copied as it is now (from its first sequence
//! to its last) into `snapshots/<id>/<stream>/…`. Once a snapshot covers them,
//! retention may remove old incremental segments; a restore then starts from the
//! snapshot and continues with the incremental segments after it.

use std::collections::BTreeMap;

use chrono::Utc;
use futures::StreamExt;
use imgcrawl_bus::Bus;

use crate::manifest::{Manifest, SegmentEntry, Snapshot, SnapshotStream};
use crate::segment::SegmentWriter;
use crate::target::Target;
use crate::{read, BackupError, Config};

/// The object name of a snapshot segment.
pub fn snapshot_segment_name(id: &str, stream: &str, first: u64, last: u64) -> String {
    format!("snapshots/{id}/{stream}/{first:020}-{last:020}.seg.zst")
}

/// Whether a snapshot is due: the newest is older than `snapshot_every_days`, or there
/// is none and the oldest segment is that old.
pub fn due(m: &Manifest, config: &Config) -> bool {
    if config.snapshot_every_days == 0 {
        return false;
    }
    let every = chrono::Duration::days(
        i64::try_from(config.snapshot_every_days).unwrap_or(i64::MAX / 86_400_000),
    );
    let since = match m.snapshots.last() {
        Some(s) => s.taken_at,
        None => match m
            .streams
            .values()
            .flat_map(|a| a.segments.first())
            .map(|s| s.closed_at)
            .min()
        {
            Some(t) => t,
            None => return false,
        },
    };
    Utc::now() - since >= every
}

/// Copies every stream `streams` names (as they are now) into a new snapshot and
/// returns it; the caller adds it to the manifest.
pub async fn take_snapshot(
    bus: &Bus,
    target: &Target,
    streams: &[String],
    config: &Config,
) -> Result<Snapshot, BackupError> {
    let taken_at = Utc::now();
    let id = taken_at.format("%Y%m%dT%H%M%SZ").to_string();
    let mut out = BTreeMap::new();
    for name in streams {
        let Some(info) = imgcrawl_bus::topology::stream_info(&bus.js, name).await? else {
            continue;
        };
        let through = info.state.last_sequence;
        let first = info.state.first_sequence.max(1);
        let segments = copy_range(bus, target, config, &id, name, first, through).await?;
        out.insert(name.clone(), SnapshotStream { through, segments });
    }
    Ok(Snapshot {
        id,
        taken_at,
        streams: out,
    })
}

/// Copies sequences `first..=through` of `stream` into snapshot segments.
async fn copy_range(
    bus: &Bus,
    target: &Target,
    config: &Config,
    id: &str,
    stream: &str,
    first: u64,
    through: u64,
) -> Result<Vec<SegmentEntry>, BackupError> {
    let mut segments = Vec::new();
    if through < first {
        return Ok(segments);
    }
    let seg_err = |detail: String| BackupError::Segment {
        name: format!("(snapshot {id} of {stream})"),
        detail,
    };
    let (mut messages, pending) = read::open(&bus.js, stream, first).await?;
    let mut w = SegmentWriter::new(first, config.zstd_level).map_err(seg_err)?;
    let mut left = pending;
    while left > 0 {
        let Some(m) = messages.next().await else {
            break;
        };
        let m = m.map_err(|e| crate::error::nats(format!("read {stream}"))(&e))?;
        let (rec, pending) = read::record(&m)?;
        left = pending;
        if rec.seq > through {
            break;
        }
        w.push(&rec).map_err(seg_err)?;
        if w.raw_bytes >= config.segment_max_bytes as u64 && rec.seq < through {
            let next = rec.seq + 1;
            let full = std::mem::replace(
                &mut w,
                SegmentWriter::new(next, config.zstd_level).map_err(seg_err)?,
            );
            segments.push(store(target, id, stream, full).await?);
        }
        if rec.seq >= through {
            break;
        }
    }
    w.last = through;
    segments.push(store(target, id, stream, w).await?);
    Ok(segments)
}

async fn store(
    target: &Target,
    id: &str,
    stream: &str,
    w: SegmentWriter,
) -> Result<SegmentEntry, BackupError> {
    let (first, last, count, raw_bytes) = (w.first, w.last, w.count, w.raw_bytes);
    let name = snapshot_segment_name(id, stream, first, last);
    let sealed = w.seal().map_err(|detail| BackupError::Segment {
        name: name.clone(),
        detail,
    })?;
    let bytes = sealed.bytes.len() as u64;
    target.put(&name, sealed.bytes).await?;
    Ok(SegmentEntry {
        name,
        first_seq: first,
        last_seq: last,
        count,
        raw_bytes,
        bytes,
        sha256: sealed.sha256,
        closed_at: Utc::now(),
    })
}
