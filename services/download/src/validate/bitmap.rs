//! BMP and ICO: fixed headers whose offsets and sizes must point inside the file.

use super::bytes::{le16, le32};
use super::Rejection;
use imgcrawl_events::Format;

/// BMP DIB header sizes we understand (core, info, v2, v3, os/2 v2, v4, v5).
pub(crate) const DIB_SIZES: [u32; 7] = [12, 40, 52, 56, 64, 108, 124];

/// Validates a BMP and returns `(width, height)`. Heights are signed (negative =
/// top-down), which the generic size reader gets wrong, so they are read here. For
/// uncompressed bitmaps the pixel array must fit in the file.
pub(crate) fn check_bmp(b: &[u8]) -> Result<(u32, u32), Rejection> {
    const F: Format = Format::Bmp;
    let (Some(offset), Some(dib)) = (le32(b, 10), le32(b, 14)) else {
        return Err(Rejection::truncated(F, "header cut off"));
    };
    if !DIB_SIZES.contains(&dib) {
        return Err(Rejection::corrupt(
            F,
            format_args!("unknown dib header size {dib}"),
        ));
    }
    let header = if dib == 12 {
        le16(b, 18)
            .zip(le16(b, 20))
            .zip(le16(b, 24))
            .map(|((w, h), bpp)| (i64::from(w), i64::from(h), bpp, 0))
    } else {
        let wh = le32(b, 18).zip(le32(b, 22));
        wh.zip(le16(b, 28))
            .zip(le32(b, 30))
            .map(|(((w, h), bpp), c)| (i64::from(w as i32), i64::from(h as i32), bpp, c))
    };
    let Some((w, h, bpp, compression)) = header else {
        return Err(Rejection::truncated(F, "dib header cut off"));
    };
    if w <= 0 || h == 0 {
        return Err(Rejection::corrupt(
            F,
            format_args!("invalid dimensions {w}x{h}"),
        ));
    }
    let (w, h) = (w.unsigned_abs(), h.unsigned_abs());
    let offset = offset as usize;
    if offset < 14 + dib as usize || offset > b.len() {
        return Err(Rejection::truncated(
            F,
            format_args!("pixel data offset {offset} is outside the file"),
        ));
    }
    // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: the pixel array size is known.
    if matches!(compression, 0 | 3 | 6) {
        if !matches!(bpp, 1 | 2 | 4 | 8 | 16 | 24 | 32) {
            return Err(Rejection::corrupt(
                F,
                format_args!("invalid bit depth {bpp}"),
            ));
        }
        let row = (u64::from(bpp) * w).div_ceil(32) * 4;
        let need = row.saturating_mul(h);
        let have = (b.len() - offset) as u64;
        if need > have {
            return Err(Rejection::truncated(
                F,
                format_args!("pixel data needs {need} bytes, has {have}"),
            ));
        }
    }
    let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Ok((side(w), side(h)))
}

/// Validates an ICO directory: at least one entry, and every entry's image inside the file.
pub(crate) fn check_ico(b: &[u8]) -> Result<(), Rejection> {
    const F: Format = Format::Ico;
    let Some(count) = le16(b, 4) else {
        return Err(Rejection::truncated(F, "header cut off"));
    };
    if count == 0 {
        return Err(Rejection::corrupt(F, "no images in the directory"));
    }
    let dir_end = 6 + 16 * usize::from(count);
    if dir_end > b.len() {
        return Err(Rejection::truncated(
            F,
            format_args!("directory of {count} entries cut off"),
        ));
    }
    for i in 0..usize::from(count) {
        let entry = 6 + 16 * i;
        let (Some(size), Some(offset)) = (le32(b, entry + 8), le32(b, entry + 12)) else {
            return Err(Rejection::truncated(F, "directory cut off"));
        };
        let (size, offset) = (size as usize, offset as usize);
        if size == 0 || offset < dir_end || offset + size > b.len() {
            return Err(Rejection::truncated(
                F,
                format_args!("image {i} ({size} bytes at {offset}) is outside the file"),
            ));
        }
    }
    Ok(())
}
