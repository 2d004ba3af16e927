//! WebP: the RIFF size must match the file length (within one padding byte), the
//! chunks must tile the container, and the first chunk must be a valid `VP8 ` (lossy),
//! `VP8L` (lossless) or `VP8X` (extended, followed by image data) chunk.

use super::bytes::{fourcc, le16, le32};
use super::Rejection;
use imgcrawl_events::Format;

const F: Format = Format::Webp;

/// Validates the container; returns the dimensions for simple lossy files (whose
/// 14-bit size fields carry scaling bits the generic size reader does not mask).
pub(crate) fn check(b: &[u8]) -> Result<Option<(u32, u32)>, Rejection> {
    let Some(riff) = le32(b, 4) else {
        return Err(Rejection::truncated(F, "riff header cut off"));
    };
    let riff_end = 8 + riff as usize;
    if riff_end > b.len() + 1 {
        return Err(Rejection::truncated(
            F,
            format_args!("riff declares {riff_end} bytes, file has {}", b.len()),
        ));
    }
    if riff_end + 1 < b.len() {
        let extra = b.len() - riff_end;
        return Err(Rejection::corrupt(
            F,
            format_args!("{extra} bytes after the riff container"),
        ));
    }
    let chunks = walk(b, riff_end)?;
    let Some(&(first, at, size)) = chunks.first() else {
        return Err(Rejection::corrupt(F, "no chunks"));
    };
    let payload = b.get(at..(at + size).min(b.len())).unwrap_or_default();
    match first {
        b"VP8 " => vp8(payload).map(Some),
        b"VP8L" if payload.len() >= 5 && payload[0] == 0x2F => Ok(None),
        b"VP8L" => Err(Rejection::corrupt(F, "bad vp8l signature")),
        b"VP8X" if payload.len() < 10 => Err(Rejection::corrupt(F, "vp8x chunk too short")),
        b"VP8X"
            if chunks
                .iter()
                .any(|(k, ..)| matches!(*k, b"VP8 " | b"VP8L" | b"ANMF")) =>
        {
            Ok(None)
        }
        b"VP8X" => Err(Rejection::corrupt(F, "vp8x file without image data")),
        other => Err(Rejection::corrupt(
            F,
            format_args!("unexpected first chunk {:?}", fourcc(other)),
        )),
    }
}

/// A chunk: fourcc, payload offset, payload size.
type Chunk<'a> = (&'a [u8; 4], usize, usize);

/// The chunks inside the container.
fn walk(b: &[u8], riff_end: usize) -> Result<Vec<Chunk<'_>>, Rejection> {
    let end = riff_end.min(b.len());
    let mut pos = 12;
    let mut chunks = Vec::new();
    while pos < end {
        let (Some(kind), Some(size)) = (b.get(pos..pos + 4), le32(b, pos + 4)) else {
            return Err(Rejection::truncated(F, "chunk header cut off"));
        };
        let kind: &[u8; 4] = kind
            .try_into()
            .map_err(|_| Rejection::truncated(F, "chunk header cut off"))?;
        let size = size as usize;
        let payload_end = pos + 8 + size;
        if payload_end > end {
            return Err(Rejection::truncated(
                F,
                format_args!("{} chunk cut off", fourcc(kind)),
            ));
        }
        chunks.push((kind, pos + 8, size));
        pos = payload_end + (size & 1);
    }
    Ok(chunks)
}

/// Lossy bitstream: frame tag (3 bytes), start code `9d 01 2a`, 14-bit width and height.
fn vp8(p: &[u8]) -> Result<(u32, u32), Rejection> {
    if p.get(3..6) != Some(&[0x9D, 0x01, 0x2A][..]) {
        return Err(Rejection::corrupt(F, "bad vp8 start code"));
    }
    match (le16(p, 6), le16(p, 8)) {
        (Some(w), Some(h)) => Ok((u32::from(w & 0x3FFF), u32::from(h & 0x3FFF))),
        _ => Err(Rejection::truncated(F, "vp8 frame header cut off")),
    }
}
