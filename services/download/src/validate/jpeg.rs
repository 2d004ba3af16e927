//! JPEG: walk the marker segments from `SOI` through every scan to `EOI`.
//!
//! Segments before the first scan are skipped by their length; a frame header (`SOFn`)
//! must come before the first scan (`SOS`) and gives the dimensions. After a scan the
//! entropy-coded data is searched for the next marker (`FF 00` is a stuffed byte,
//! `FF D0`..`FF D7` are restart markers); progressive files have many scans with
//! tables between them. The image ends at `EOI`; bytes after it are ignored.

use super::bytes::be16;
use super::Rejection;
use imgcrawl_events::Format;

const F: Format = Format::Jpeg;

/// Walks the file; returns `(width, height)` from the first frame header.
pub(crate) fn check(b: &[u8]) -> Result<(u32, u32), Rejection> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(Rejection::corrupt(F, "no start-of-image marker"));
    }
    let mut pos = 2;
    let mut dims: Option<(u32, u32)> = None;
    let mut in_scan = false;
    loop {
        if in_scan {
            pos = next_marker(b, pos)?;
        }
        if b.get(pos) != Some(&0xFF) {
            return match b.get(pos) {
                None => Err(Rejection::truncated(F, "no end-of-image marker")),
                Some(x) => Err(Rejection::corrupt(
                    F,
                    format_args!("expected a marker at offset {pos}, found {x:#04x}"),
                )),
            };
        }
        while b.get(pos + 1) == Some(&0xFF) {
            pos += 1; // fill bytes
        }
        let Some(&marker) = b.get(pos + 1) else {
            return Err(Rejection::truncated(F, "no end-of-image marker"));
        };
        pos += 2;
        match marker {
            0xD9 if in_scan => return dims.ok_or_else(|| Rejection::corrupt(F, "no frame header")),
            0xD9 => return Err(Rejection::corrupt(F, "end of image before any scan")),
            0xD8 => return Err(Rejection::corrupt(F, "second start-of-image marker")),
            0xD0..=0xD7 | 0x01 => {} // standalone markers
            0x00 => {
                return Err(Rejection::corrupt(
                    F,
                    format_args!("invalid marker 0xff00 at offset {}", pos - 2),
                ))
            }
            _ => {
                let seg = segment(b, pos, marker)?;
                if is_frame_header(marker) && dims.is_none() {
                    dims = Some(frame_size(seg)?);
                }
                if marker == 0xDA {
                    if dims.is_none() {
                        return Err(Rejection::corrupt(F, "scan before the frame header"));
                    }
                    in_scan = true;
                }
                pos += seg.len();
            }
        }
    }
}

/// The segment (length field included) of `marker` starting at `pos`.
fn segment(b: &[u8], pos: usize, marker: u8) -> Result<&[u8], Rejection> {
    let Some(len) = be16(b, pos) else {
        return Err(Rejection::truncated(
            F,
            format_args!("segment 0xff{marker:02x} cut off"),
        ));
    };
    if len < 2 {
        return Err(Rejection::corrupt(
            F,
            format_args!("segment 0xff{marker:02x} has length {len}"),
        ));
    }
    b.get(pos..pos + usize::from(len))
        .ok_or_else(|| Rejection::truncated(F, format_args!("segment 0xff{marker:02x} cut off")))
}

/// `SOF0`..`SOF15` except `DHT` (C4), `JPG` (C8) and `DAC` (CC).
fn is_frame_header(marker: u8) -> bool {
    (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
}

/// Width and height from a frame header segment: length(2) precision(1) height(2) width(2).
fn frame_size(seg: &[u8]) -> Result<(u32, u32), Rejection> {
    match (be16(seg, 3), be16(seg, 5)) {
        (Some(h), Some(w)) => Ok((u32::from(w), u32::from(h))),
        _ => Err(Rejection::corrupt(F, "frame header too short")),
    }
}

/// The offset of the next marker after entropy-coded data starting at `pos`.
fn next_marker(b: &[u8], mut pos: usize) -> Result<usize, Rejection> {
    loop {
        let Some(i) = b
            .get(pos..)
            .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
        else {
            return Err(Rejection::truncated(F, "no end-of-image marker"));
        };
        let at = pos + i;
        match b.get(at + 1) {
            None => return Err(Rejection::truncated(F, "no end-of-image marker")),
            Some(0x00) | Some(0xD0..=0xD7) => pos = at + 2,
            Some(0xFF) => pos = at + 1,
            Some(_) => return Ok(at),
        }
    }
}
