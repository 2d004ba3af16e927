//! TIFF (classic): the first image file directory must lie inside the file, declare the
//! dimensions, and every value and strip (or tile) it points at must lie inside the file.

use super::bytes::{be16, be32, le16, le32};
use super::Rejection;
use imgcrawl_events::Format;

const F: Format = Format::Tiff;

/// Most strips or tiles we look at (more is corrupt for any image we would accept).
const MAX_PARTS: u32 = 1 << 20;

/// A little- or big-endian reader.
#[derive(Clone, Copy)]
struct Endian(bool);

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        if self.0 {
            le16(b, at)
        } else {
            be16(b, at)
        }
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        if self.0 {
            le32(b, at)
        } else {
            be32(b, at)
        }
    }
}

/// One IFD entry holding an array of SHORT or LONG values.
#[derive(Clone, Copy)]
struct Array {
    /// Where the values start.
    at: usize,
    /// How many there are.
    count: u32,
    /// Bytes per value (2 or 4).
    width: usize,
}

impl Array {
    fn get(self, e: Endian, b: &[u8], i: u32) -> Option<u64> {
        let at = self.at + i as usize * self.width;
        if self.width == 2 {
            e.u16(b, at).map(u64::from)
        } else {
            e.u32(b, at).map(u64::from)
        }
    }
}

/// Validates the first IFD and the strips or tiles it references.
pub(crate) fn check(b: &[u8]) -> Result<(), Rejection> {
    let e = Endian(b.starts_with(b"II"));
    let Some(ifd) = e.u32(b, 4).map(|v| v as usize) else {
        return Err(Rejection::truncated(F, "header cut off"));
    };
    let Some(n) = (if ifd >= 8 { e.u16(b, ifd) } else { None }) else {
        return Err(Rejection::truncated(
            F,
            format_args!("image directory at {ifd} is outside the file"),
        ));
    };
    if ifd + 2 + 12 * usize::from(n) > b.len() {
        return Err(Rejection::truncated(F, "image directory cut off"));
    }
    let (mut offsets, mut counts, mut dims) = (None, None, (false, false));
    for i in 0..usize::from(n) {
        let entry = ifd + 2 + 12 * i;
        let (Some(tag), Some(kind), Some(count)) =
            (e.u16(b, entry), e.u16(b, entry + 2), e.u32(b, entry + 4))
        else {
            return Err(Rejection::truncated(F, "image directory cut off"));
        };
        check_value(e, b, entry, kind, count)?;
        match tag {
            256 => dims.0 = true,
            257 => dims.1 = true,
            273 | 324 => offsets = Some(array(e, b, entry, kind, count)?),
            279 | 325 => counts = Some(array(e, b, entry, kind, count)?),
            _ => {}
        }
    }
    if dims != (true, true) {
        return Err(Rejection::corrupt(F, "no image width or length"));
    }
    let (Some(offsets), Some(counts)) = (offsets, counts) else {
        return Err(Rejection::corrupt(
            F,
            "no strip or tile offsets and byte counts",
        ));
    };
    if offsets.count != counts.count || offsets.count == 0 {
        return Err(Rejection::corrupt(
            F,
            "strip offsets and byte counts disagree",
        ));
    }
    for i in 0..offsets.count {
        let (Some(off), Some(len)) = (offsets.get(e, b, i), counts.get(e, b, i)) else {
            return Err(Rejection::truncated(F, "strip table cut off"));
        };
        if off + len > b.len() as u64 {
            return Err(Rejection::truncated(
                F,
                format_args!("strip {i} ({len} bytes at {off}) is outside the file"),
            ));
        }
    }
    Ok(())
}

/// Checks that an entry's out-of-line values (more than 4 bytes) lie inside the file.
fn check_value(e: Endian, b: &[u8], entry: usize, kind: u16, count: u32) -> Result<(), Rejection> {
    let unit: u64 = match kind {
        1 | 2 | 6 | 7 => 1,
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 => 8,
        _ => return Ok(()), // unknown types are skipped, as the specification says
    };
    let bytes = unit * u64::from(count);
    if bytes <= 4 {
        return Ok(());
    }
    let at = e.u32(b, entry + 8).map(u64::from).unwrap_or(u64::MAX);
    if at.saturating_add(bytes) > b.len() as u64 {
        return Err(Rejection::truncated(
            F,
            format_args!(
                "values of a directory entry ({bytes} bytes at {at}) are outside the file"
            ),
        ));
    }
    Ok(())
}

/// Locates the values of the entry at `entry` (inline when they fit in 4 bytes).
fn array(e: Endian, b: &[u8], entry: usize, kind: u16, count: u32) -> Result<Array, Rejection> {
    let width = match kind {
        3 => 2,
        4 => 4,
        _ => {
            return Err(Rejection::corrupt(
                F,
                format_args!("strip table of type {kind}"),
            ))
        }
    };
    if count > MAX_PARTS {
        return Err(Rejection::corrupt(F, format_args!("{count} strips")));
    }
    let bytes = count as usize * width;
    let at = if bytes <= 4 {
        entry + 8
    } else {
        e.u32(b, entry + 8)
            .map(|v| v as usize)
            .ok_or_else(|| Rejection::truncated(F, "image directory cut off"))?
    };
    if at + bytes > b.len() {
        return Err(Rejection::truncated(F, "strip table is outside the file"));
    }
    Ok(Array { at, count, width })
}
