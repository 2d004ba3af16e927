//! `imgcrawl backup verify`: every segment the manifest lists (incremental and
//! snapshots) is there with its size and SHA-256, and the incremental segments of
//! each stream are contiguous. Problems are reported by segment name.

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::manifest::{Manifest, SegmentEntry};
use crate::segment::checksum;
use crate::target::Target;
use crate::BackupError;

/// One thing wrong with the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The segment (object name).
    pub segment: String,
    /// `missing`, `truncated`, `corrupted`, `continuity` or `hole`.
    pub kind: &'static str,
    /// Details for people.
    pub detail: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Segments whose size and checksum match.
    pub ok: u64,
    /// Messages in the incremental segments.
    pub messages: u64,
    /// Compressed bytes of every segment.
    pub bytes: u64,
    /// Per stream: the last sequence of the incremental archive.
    pub last_seq: Vec<(String, u64)>,
    /// What is wrong, in manifest order.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether the archive is whole.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks one segment's presence, size and checksum.
pub async fn check_segment(
    target: &Target,
    s: &SegmentEntry,
) -> Result<Option<Problem>, BackupError> {
    let problem = |kind, detail: String| {
        Some(Problem {
            segment: s.name.clone(),
            kind,
            detail,
        })
    };
    let Some(bytes) = target.get(&s.name).await? else {
        return Ok(problem(
            "missing",
            format!(
                "sequences {}..={} are not in the archive",
                s.first_seq, s.last_seq
            ),
        ));
    };
    if (bytes.len() as u64) < s.bytes {
        return Ok(problem(
            "truncated",
            format!("{} bytes, the manifest says {}", bytes.len(), s.bytes),
        ));
    }
    let sum = checksum(&bytes);
    if bytes.len() as u64 != s.bytes || sum != s.sha256 {
        return Ok(problem(
            "corrupted",
            format!(
                "sha-256 {} ({} bytes), the manifest says {} ({} bytes)",
                &sum[..16],
                bytes.len(),
                s.sha256.get(..16).unwrap_or(&s.sha256),
                s.bytes
            ),
        ));
    }
    Ok(None)
}

/// Checks every segment of the manifest, `concurrency` at a time.
pub async fn verify(
    target: &Target,
    manifest: &Manifest,
    concurrency: usize,
) -> Result<VerifyReport, BackupError> {
    let mut report = VerifyReport::default();
    let mut all: Vec<&SegmentEntry> = Vec::new();
    for (name, a) in &manifest.streams {
        all.extend(a.segments.iter());
        report.messages += a.segments.iter().map(|s| s.count).sum::<u64>();
        report
            .last_seq
            .push((name.clone(), a.next_seq().saturating_sub(1)));
        if manifest.chain(name).is_none() {
            report.problems.push(Problem {
                segment: a.segments.first().map_or_else(String::new, |s| s.name.clone()),
                kind: "hole",
                detail: format!(
                    "stream {name}: the segments before this one were removed and no snapshot covers them"
                ),
            });
        }
    }
    for s in &manifest.snapshots {
        for ss in s.streams.values() {
            all.extend(ss.segments.iter());
        }
    }
    for (segment, detail) in manifest.continuity() {
        report.problems.push(Problem {
            segment,
            kind: "continuity",
            detail,
        });
    }
    report.segments = all.len() as u64;
    report.bytes = all.iter().map(|s| s.bytes).sum();
    let results: Vec<_> = stream::iter(all)
        .map(|s| check_segment(target, s))
        .buffered(concurrency.max(1))
        .collect()
        .await;
    for r in results {
        match r? {
            Some(p) => report.problems.push(p),
            None => report.ok += 1,
        }
    }
    Ok(report)
}
