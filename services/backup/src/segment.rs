//! The segment format: a zstd frame holding a magic line and then one record per
//! stream message, in stream order.
//!
//! ```text
//! "IMGCRAWL-SEGMENT 1\n"
//! record := seq u64 | time_ns i64 | subject_len u16 | subject | header_count u16
//!           | (name_len u16 | name | value_len u32 | value)* | payload_len u32 | payload
//! ```
//!
//! Integers are little-endian; `time_ns` is when the stream stored the message (Unix
//! nanoseconds). A segment covers a range of sequences: messages deleted from the
//! stream inside the range simply have no record. The manifest keeps the SHA-256 of
//! the compressed bytes, so a segment is checked before it is decompressed.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::io::Write;

/// The first bytes of every decompressed segment.
pub const MAGIC: &[u8] = b"IMGCRAWL-SEGMENT 1\n";

/// One stream message as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its stream sequence.
    pub seq: u64,
    /// When the stream stored it (Unix nanoseconds).
    pub time_ns: i64,
    /// Its subject.
    pub subject: String,
    /// Its headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub payload: Bytes,
}

impl Record {
    /// Bytes of the record in the format (before compression).
    pub fn encoded_len(&self) -> usize {
        8 + 8
            + 2
            + self.subject.len()
            + 2
            + self
                .headers
                .iter()
                .map(|(k, v)| 2 + k.len() + 4 + v.len())
                .sum::<usize>()
            + 4
            + self.payload.len()
    }
}

/// A segment being written: records are compressed as they come, so memory holds
/// the compressed bytes only.
pub struct SegmentWriter {
    encoder: zstd::stream::Encoder<'static, Vec<u8>>,
    /// First sequence the segment covers.
    pub first: u64,
    /// Last sequence the segment covers (the last record's).
    pub last: u64,
    /// Records written.
    pub count: u64,
    /// Uncompressed bytes written.
    pub raw_bytes: u64,
}

/// A closed segment's bytes and what the manifest records about them.
pub struct Sealed {
    /// The compressed bytes.
    pub bytes: Bytes,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

fn io_err(e: std::io::Error) -> String {
    format!("compress: {e}")
}

impl SegmentWriter {
    /// A segment covering sequences from `first` on.
    pub fn new(first: u64, level: i32) -> Result<SegmentWriter, String> {
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), level).map_err(io_err)?;
        encoder.write_all(MAGIC).map_err(io_err)?;
        Ok(SegmentWriter {
            encoder,
            first,
            last: first.saturating_sub(1),
            count: 0,
            raw_bytes: MAGIC.len() as u64,
        })
    }

    /// Appends a record (its sequence must be above the last one).
    pub fn push(&mut self, r: &Record) -> Result<(), String> {
        if r.seq <= self.last && self.count > 0 || r.seq < self.first {
            return Err(format!("record {} out of order after {}", r.seq, self.last));
        }
        let mut buf = Vec::with_capacity(r.encoded_len());
        buf.extend_from_slice(&r.seq.to_le_bytes());
        buf.extend_from_slice(&r.time_ns.to_le_bytes());
        put_str16(&mut buf, &r.subject)?;
        let n = u16::try_from(r.headers.len()).map_err(|_| "too many headers".to_string())?;
        buf.extend_from_slice(&n.to_le_bytes());
        for (k, v) in &r.headers {
            put_str16(&mut buf, k)?;
            put_bytes32(&mut buf, v.as_bytes())?;
        }
        put_bytes32(&mut buf, &r.payload)?;
        self.encoder.write_all(&buf).map_err(io_err)?;
        self.last = r.seq;
        self.count += 1;
        self.raw_bytes += buf.len() as u64;
        Ok(())
    }

    /// Finishes the zstd frame and checksums it.
    pub fn seal(self) -> Result<Sealed, String> {
        let bytes = self.encoder.finish().map_err(io_err)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(Sealed {
            bytes: bytes.into(),
            sha256,
        })
    }
}

fn put_str16(buf: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let n = u16::try_from(s.len()).map_err(|_| format!("string of {} bytes", s.len()))?;
    buf.extend_from_slice(&n.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_bytes32(buf: &mut Vec<u8>, b: &[u8]) -> Result<(), String> {
    let n = u32::try_from(b.len()).map_err(|_| format!("value of {} bytes", b.len()))?;
    buf.extend_from_slice(&n.to_le_bytes());
    buf.extend_from_slice(b);
    Ok(())
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn checksum(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decompresses and parses a segment (whose checksum the caller has checked).
pub fn decode(compressed: &[u8]) -> Result<Vec<Record>, String> {
    let raw = zstd::stream::decode_all(compressed).map_err(|e| format!("decompress: {e}"))?;
    let Some(mut rest) = raw.strip_prefix(MAGIC) else {
        return Err("not a segment (bad magic)".into());
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let r = parse_record(&mut rest)
            .ok_or_else(|| format!("truncated record after {} record(s)", out.len()))?;
        if out.last().is_some_and(|p: &Record| p.seq >= r.seq) {
            return Err(format!("record {} out of order", r.seq));
        }
        out.push(r);
    }
    Ok(out)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (a, b) = rest.split_at(n);
    *rest = b;
    Some(a)
}

fn u16_at(rest: &mut &[u8]) -> Option<usize> {
    take(rest, 2).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
}

fn u32_at(rest: &mut &[u8]) -> Option<usize> {
    take(rest, 4).and_then(|b| usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok())
}

fn u64_at(rest: &mut &[u8]) -> Option<[u8; 8]> {
    take(rest, 8).and_then(|b| b.try_into().ok())
}

fn string(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

fn parse_record(rest: &mut &[u8]) -> Option<Record> {
    let seq = u64::from_le_bytes(u64_at(rest)?);
    let time_ns = i64::from_le_bytes(u64_at(rest)?);
    let n = u16_at(rest)?;
    let subject = string(take(rest, n)?)?;
    let count = u16_at(rest)?;
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let n = u16_at(rest)?;
        let k = string(take(rest, n)?)?;
        let n = u32_at(rest)?;
        let v = string(take(rest, n)?)?;
        headers.push((k, v));
    }
    let n = u32_at(rest)?;
    let payload = Bytes::copy_from_slice(take(rest, n)?);
    Some(Record {
        seq,
        time_ns,
        subject,
        headers,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record {
            seq,
            time_ns: 1_700_000_000_000_000_000 + seq as i64,
            subject: format!("imgcrawl.page.fetched.{seq}"),
            headers: vec![
                ("Nats-Msg-Id".into(), format!("m{seq}")),
                ("a".into(), String::new()),
            ],
            payload: Bytes::from(vec![seq as u8; seq as usize * 10]),
        }
    }

    #[test]
    fn records_round_trip_through_a_sealed_segment() {
        let mut w = SegmentWriter::new(3, 3).unwrap();
        for s in [3, 4, 7, 9] {
            w.push(&rec(s)).unwrap();
        }
        assert!(w.push(&rec(8)).is_err(), "out of order is refused");
        assert_eq!((w.first, w.last, w.count), (3, 9, 4));
        let sealed = w.seal().unwrap();
        assert_eq!(sealed.sha256, checksum(&sealed.bytes));
        let back = decode(&sealed.bytes).unwrap();
        assert_eq!(back, vec![rec(3), rec(4), rec(7), rec(9)]);
    }

    #[test]
    fn truncated_or_corrupted_segments_are_refused() {
        let mut w = SegmentWriter::new(1, 3).unwrap();
        for s in 1..50 {
            w.push(&rec(s)).unwrap();
        }
        let bytes = w.seal().unwrap().bytes;
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        let mut bad = bytes.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        assert!(decode(&bad).is_err() || decode(&bad).unwrap() != decode(&bytes).unwrap());
        assert!(decode(b"not zstd").is_err());
    }
}
