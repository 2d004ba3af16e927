//! The manifest (`manifest.json` at the target's root): per archived stream its
//! configuration and the closed segments in sequence order, the full snapshots, the
//! stage consumers' positions and the purged images.
//!
//! The manifest is rewritten (one atomic put) after each segment is stored, so a
//! segment the manifest lists is always complete; a segment object it does not list
//! (a crash between the two puts) is ignored and written again.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The manifest's object name.
pub const MANIFEST: &str = "manifest.json";
/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;

/// What an archived stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The event stream: restored with its sequence numbers.
    Events,
    /// The blob store (a JetStream object store's stream).
    Blobs,
    /// A KV bucket's stream.
    Kv,
}

/// One closed segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Object name under the target.
    pub name: String,
    /// First stream sequence it covers.
    pub first_seq: u64,
    /// Last stream sequence it covers.
    pub last_seq: u64,
    /// Messages in it (sequences of the range deleted from the stream have none).
    pub count: u64,
    /// Uncompressed bytes.
    pub raw_bytes: u64,
    /// Compressed bytes (the object's size).
    pub bytes: u64,
    /// Lowercase hex SHA-256 of the object.
    pub sha256: String,
    /// When it was closed.
    pub closed_at: DateTime<Utc>,
}

/// One archived stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamArchive {
    /// What it is.
    pub role: Role,
    /// The stream's JetStream configuration (as JSON) when last seen.
    pub config: serde_json::Value,
    /// The first sequence the incremental archive started from.
    pub origin_seq: u64,
    /// The incremental segments, contiguous, in order.
    pub segments: Vec<SegmentEntry>,
}

impl StreamArchive {
    /// The next sequence to archive.
    pub fn next_seq(&self) -> u64 {
        self.segments
            .last()
            .map_or(self.origin_seq, |s| s.last_seq + 1)
    }
}

/// A full copy of every archived stream at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Its id (the time it was taken, compact).
    pub id: String,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
    /// Per stream: the last sequence it covers and its segments.
    pub streams: BTreeMap<String, SnapshotStream>,
}

/// One stream in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStream {
    /// The stream's last sequence when the snapshot was taken.
    pub through: u64,
    /// The segments (contiguous from the stream's first sequence then).
    pub segments: Vec<SegmentEntry>,
}

/// A durable consumer's position, restored with the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerState {
    /// Its durable name.
    pub name: String,
    /// Its configuration (as JSON).
    pub config: serde_json::Value,
    /// Everything up to this stream sequence was acknowledged.
    pub ack_floor: u64,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// The event stream's name.
    pub events_stream: String,
    /// The event stream's id (`imgcrawl.stream-id` in its metadata).
    pub stream_id: Option<String>,
    /// Archived streams by name.
    pub streams: BTreeMap<String, StreamArchive>,
    /// Full snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// Durable consumers of the event stream, as of the last events segment.
    pub consumers: Vec<ConsumerState>,
    /// SHA-256s of purged images: a restore never brings their bytes back.
    pub purged: BTreeSet<String>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

impl Manifest {
    /// An empty manifest for the event stream `events_stream`.
    pub fn new(events_stream: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            events_stream: events_stream.to_string(),
            stream_id: None,
            streams: BTreeMap::new(),
            snapshots: Vec::new(),
            consumers: Vec::new(),
            purged: BTreeSet::new(),
            updated_at: Utc::now(),
        }
    }

    /// Parses a manifest, refusing another format version.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if m.format != FORMAT {
            return Err(format!(
                "format {} (this binary reads format {FORMAT})",
                m.format
            ));
        }
        Ok(m)
    }

    /// The segments a restore of `stream` reads, in order: the incremental segments
    /// if they still start at their origin, else the newest snapshot that reaches
    /// them followed by the incremental segments after it. `None` when retention left
    /// a hole no snapshot covers.
    pub fn chain(&self, stream: &str) -> Option<Vec<SegmentEntry>> {
        let a = self.streams.get(stream)?;
        let first = a.segments.first().map_or(a.next_seq(), |s| s.first_seq);
        if first <= a.origin_seq {
            return Some(a.segments.clone());
        }
        let snap = self
            .snapshots
            .iter()
            .rev()
            .find_map(|s| s.streams.get(stream).filter(|ss| ss.through + 1 >= first))?;
        let mut out = snap.segments.clone();
        out.extend(
            a.segments
                .iter()
                .filter(|s| s.first_seq > snap.through)
                .cloned(),
        );
        Some(out)
    }

    /// Problems with the continuity of the incremental segments of every stream
    /// (a sequence range missing or covered twice), by segment name.
    pub fn continuity(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, a) in &self.streams {
            let mut expect = a.segments.first().map_or(a.origin_seq, |s| s.first_seq);
            for s in &a.segments {
                if s.first_seq != expect {
                    out.push((
                        s.name.clone(),
                        format!(
                            "stream {name}: starts at sequence {} where {expect} was expected ({})",
                            s.first_seq,
                            if s.first_seq > expect {
                                "a gap"
                            } else {
                                "an overlap"
                            }
                        ),
                    ));
                }
                if s.last_seq < s.first_seq {
                    out.push((s.name.clone(), format!("stream {name}: empty range")));
                }
                expect = s.last_seq + 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(first: u64, last: u64) -> SegmentEntry {
        SegmentEntry {
            name: format!("s/{first}-{last}"),
            first_seq: first,
            last_seq: last,
            count: last - first + 1,
            raw_bytes: 1,
            bytes: 1,
            sha256: String::new(),
            closed_at: Utc::now(),
        }
    }

    fn with(segments: Vec<SegmentEntry>) -> Manifest {
        let mut m = Manifest::new("IMGCRAWL");
        m.streams.insert(
            "IMGCRAWL".into(),
            StreamArchive {
                role: Role::Events,
                config: serde_json::Value::Null,
                origin_seq: 1,
                segments,
            },
        );
        m
    }

    #[test]
    fn continuity_names_gaps_and_overlaps() {
        assert!(with(vec![seg(1, 5), seg(6, 9)]).continuity().is_empty());
        let gap = with(vec![seg(1, 5), seg(7, 9)]).continuity();
        assert_eq!(gap.len(), 1);
        assert_eq!(gap[0].0, "s/7-9");
        assert!(gap[0].1.contains("a gap"));
        let overlap = with(vec![seg(1, 5), seg(5, 9)]).continuity();
        assert!(overlap[0].1.contains("an overlap"));
    }

    #[test]
    fn a_chain_uses_a_snapshot_once_early_segments_are_gone() {
        let m = with(vec![seg(1, 5), seg(6, 9)]);
        assert_eq!(m.chain("IMGCRAWL").unwrap().len(), 2);
        let mut pruned = with(vec![seg(6, 9), seg(10, 12)]);
        assert!(pruned.chain("IMGCRAWL").is_none(), "a hole, no snapshot");
        pruned.snapshots.push(Snapshot {
            id: "a".into(),
            taken_at: Utc::now(),
            streams: BTreeMap::from([(
                "IMGCRAWL".into(),
                SnapshotStream {
                    through: 9,
                    segments: vec![seg(1, 9)],
                },
            )]),
        });
        let chain = pruned.chain("IMGCRAWL").unwrap();
        let names: Vec<&str> = chain.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["s/1-9", "s/10-12"]);
    }
}
