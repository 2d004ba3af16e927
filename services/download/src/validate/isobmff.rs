//! AVIF / HEIF (ISO base media file format): the top-level boxes must tile the file
//! exactly (a box running past the end is truncation), starting with `ftyp`; a `meta`
//! box must hold an item location box (`iloc`) whose file extents all lie inside the
//! file (so a file cut inside or before its `mdat` is caught).

use super::bytes::{be16, be32, be64, fourcc};
use super::Rejection;
use imgcrawl_events::Format;

/// Walks the top-level boxes.
pub(crate) fn check(format: Format, b: &[u8]) -> Result<(), Rejection> {
    let mut pos = 0usize;
    let mut meta = None;
    while pos < b.len() {
        let (Some(size), Some(kind)) = (be32(b, pos), b.get(pos + 4..pos + 8)) else {
            return Err(Rejection::truncated(format, "box header cut off"));
        };
        let name = fourcc(kind);
        if pos == 0 && kind != b"ftyp" {
            return Err(Rejection::corrupt(format, "first box is not ftyp"));
        }
        let len = match size {
            0 => (b.len() - pos) as u64,
            1 => match be64(b, pos + 8) {
                Some(l) if l >= 16 => l,
                Some(l) => {
                    return Err(Rejection::corrupt(
                        format,
                        format_args!("{name} box has size {l}"),
                    ))
                }
                None => return Err(Rejection::truncated(format, "box header cut off")),
            },
            n if n < 8 => {
                return Err(Rejection::corrupt(
                    format,
                    format_args!("{name} box has size {n}"),
                ))
            }
            n => u64::from(n),
        };
        let remaining = (b.len() - pos) as u64;
        if len > remaining {
            return Err(Rejection::truncated(
                format,
                format_args!("{name} box needs {len} bytes, {remaining} left"),
            ));
        }
        if kind == b"meta" && meta.is_none() {
            let header = if size == 1 { 16 } else { 8 };
            meta = b.get(pos + header..pos + len as usize);
        }
        pos += len as usize;
    }
    let Some(meta) = meta else {
        return Err(Rejection::corrupt(format, "no meta box"));
    };
    // `meta` is a full box: 4 bytes of version and flags before its children.
    let Some(iloc) = child(meta.get(4..).unwrap_or_default(), b"iloc") else {
        return Err(Rejection::corrupt(format, "no item location box"));
    };
    check_extents(format, iloc, b.len() as u64)
}

/// The payload of the first child box of type `kind` in `b`.
fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut pos = 0usize;
    while pos + 8 <= b.len() {
        let size = be32(b, pos)? as usize;
        if size < 8 {
            return None;
        }
        if b.get(pos + 4..pos + 8)? == kind {
            return b.get(pos + 8..pos + size);
        }
        pos += size;
    }
    None
}

/// A big-endian unsigned integer of `n` (0, 4 or 8) bytes.
fn uint(b: &[u8], at: &mut usize, n: u8) -> Option<u64> {
    let v = match n {
        0 => 0,
        4 => u64::from(be32(b, *at)?),
        8 => be64(b, *at)?,
        _ => return None,
    };
    *at += usize::from(n);
    Some(v)
}

/// Reads an `iloc` payload and checks every extent stored at a file offset.
fn check_extents(format: Format, iloc: &[u8], file_len: u64) -> Result<(), Rejection> {
    let bad = || Rejection::corrupt(format, "malformed item location box");
    let version = *iloc.first().ok_or_else(bad)?;
    let sizes = be16(iloc, 4).ok_or_else(bad)?;
    let (off_size, len_size, base_size) = (
        (sizes >> 12) as u8,
        (sizes >> 8 & 0xF) as u8,
        (sizes >> 4 & 0xF) as u8,
    );
    let index_size = if version >= 1 { (sizes & 0xF) as u8 } else { 0 };
    let mut at = 6;
    let wide = version >= 2;
    let items = if wide {
        uint(iloc, &mut at, 4)
    } else {
        be16(iloc, at).map(|v| {
            at += 2;
            u64::from(v)
        })
    };
    let items = items.ok_or_else(bad)?;
    let mut extents = 0u64;
    for _ in 0..items {
        at += if wide { 4 } else { 2 }; // item id
        let method = if version >= 1 {
            be16(iloc, at)
                .map(|v| {
                    at += 2;
                    v & 0xF
                })
                .ok_or_else(bad)?
        } else {
            0
        };
        at += 2; // data reference index
        let base = uint(iloc, &mut at, base_size).ok_or_else(bad)?;
        let count = be16(iloc, at).ok_or_else(bad)?;
        at += 2;
        for _ in 0..count {
            uint(iloc, &mut at, index_size).ok_or_else(bad)?;
            let offset = uint(iloc, &mut at, off_size).ok_or_else(bad)?;
            let length = uint(iloc, &mut at, len_size).ok_or_else(bad)?;
            let end = base.saturating_add(offset).saturating_add(length);
            if method == 0 && end > file_len {
                return Err(Rejection::truncated(
                    format,
                    format_args!("image data ends at {end}, file has {file_len} bytes"),
                ));
            }
            extents += 1;
        }
    }
    if extents == 0 {
        return Err(Rejection::corrupt(format, "no image data"));
    }
    Ok(())
}
