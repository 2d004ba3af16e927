//! Retention: incremental segments younger than `keep_days` are kept, and so is every
//! segment no kept snapshot covers (a restore needs a contiguous chain); the newest
//! snapshot is always kept, older ones only while younger than `keep_days`.
//! [`plan`] lists what would go (the dry run); [`prune`] writes the manifest without
//! it first, then deletes the objects.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::manifest::Manifest;
use crate::target::Target;
use crate::{BackupError, Config};

/// One object retention would remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// The object name.
    pub name: String,
    /// Its size.
    pub bytes: u64,
    /// Why it may go.
    pub reason: String,
}

/// What retention would remove and what stays.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionPlan {
    /// Incremental segments to remove (a prefix of each stream's).
    pub segments: Vec<Removal>,
    /// Snapshots to remove (by id) and their segments.
    pub snapshots: Vec<(String, Vec<Removal>)>,
    /// Bytes that stay.
    pub kept_bytes: u64,
    /// Bytes that go.
    pub removed_bytes: u64,
}

/// What retention would remove from `m` at `now`.
pub fn plan(m: &Manifest, config: &Config, now: DateTime<Utc>) -> RetentionPlan {
    let keep = chrono::Duration::days(i64::try_from(config.keep_days).unwrap_or(36_500));
    let young = |t: DateTime<Utc>| now - t < keep;
    let mut p = RetentionPlan::default();
    let newest = m.snapshots.len().checked_sub(1);
    let kept: Vec<usize> = (0..m.snapshots.len())
        .filter(|&i| Some(i) == newest || young(m.snapshots[i].taken_at))
        .collect();
    for (i, s) in m.snapshots.iter().enumerate() {
        let removals: Vec<_> = s
            .streams
            .values()
            .flat_map(|ss| ss.segments.iter())
            .map(|seg| Removal {
                name: seg.name.clone(),
                bytes: seg.bytes,
                reason: format!(
                    "snapshot {} is older than {} days and not the newest",
                    s.id, config.keep_days
                ),
            })
            .collect();
        let bytes: u64 = removals.iter().map(|r| r.bytes).sum();
        if kept.contains(&i) {
            p.kept_bytes += bytes;
        } else {
            p.removed_bytes += bytes;
            p.snapshots.push((s.id.clone(), removals));
        }
    }
    for (name, a) in &m.streams {
        // the highest sequence a kept snapshot covers for this stream
        let covered = kept
            .iter()
            .filter_map(|&i| m.snapshots[i].streams.get(name).map(|ss| ss.through))
            .max();
        let mut removing = true;
        for seg in &a.segments {
            removing &= !young(seg.closed_at) && covered.is_some_and(|c| seg.last_seq <= c);
            if removing {
                p.removed_bytes += seg.bytes;
                p.segments.push(Removal {
                    name: seg.name.clone(),
                    bytes: seg.bytes,
                    reason: format!(
                        "older than {} days and covered by a snapshot through sequence {}",
                        config.keep_days,
                        covered.unwrap_or(0)
                    ),
                });
            } else {
                p.kept_bytes += seg.bytes;
            }
        }
    }
    p
}

/// Applies `plan` to `m`: the manifest without the removed objects is written first,
/// then the objects are deleted (a crash in between leaves unlisted objects only).
pub async fn prune(
    target: &Target,
    m: &mut Manifest,
    plan: &RetentionPlan,
) -> Result<(), BackupError> {
    let gone: std::collections::HashSet<&str> =
        plan.segments.iter().map(|r| r.name.as_str()).collect();
    for a in m.streams.values_mut() {
        a.segments.retain(|s| !gone.contains(s.name.as_str()));
    }
    let ids: Vec<&str> = plan.snapshots.iter().map(|(id, _)| id.as_str()).collect();
    m.snapshots.retain(|s| !ids.contains(&s.id.as_str()));
    m.updated_at = Utc::now();
    target.write_manifest(m).await?;
    for r in plan
        .segments
        .iter()
        .chain(plan.snapshots.iter().flat_map(|(_, r)| r.iter()))
    {
        target.delete(&r.name).await?;
    }
    Ok(())
}
