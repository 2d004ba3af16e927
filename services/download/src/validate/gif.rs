//! GIF: header, logical screen, then every block (extensions, image descriptors with
//! their LZW data) up to the `0x3B` trailer; at least one image is required. Bytes after
//! the trailer are ignored.

use super::Rejection;
use imgcrawl_events::Format;

const F: Format = Format::Gif;

/// Bytes of a color table whose packed flags are `flags`, or 0 without one.
fn color_table(flags: u8) -> usize {
    if flags & 0x80 == 0 {
        0
    } else {
        3 << ((flags & 0x07) + 1)
    }
}

/// Walks the blocks from the logical screen descriptor to the trailer.
pub(crate) fn check(b: &[u8]) -> Result<(), Rejection> {
    if !(b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a")) {
        return Err(Rejection::corrupt(F, "bad header"));
    }
    let Some(&flags) = b.get(10) else {
        return Err(Rejection::truncated(F, "logical screen descriptor cut off"));
    };
    let mut pos = 13 + color_table(flags);
    let mut images = 0u32;
    loop {
        match b.get(pos) {
            None => return Err(Rejection::truncated(F, "no trailer")),
            Some(0x3B) if images > 0 => return Ok(()),
            Some(0x3B) => return Err(Rejection::corrupt(F, "no image in the file")),
            Some(0x21) => pos = sub_blocks(b, pos + 2)?,
            Some(0x2C) => {
                let Some(&flags) = b.get(pos + 9) else {
                    return Err(Rejection::truncated(F, "image descriptor cut off"));
                };
                pos += 10 + color_table(flags);
                match b.get(pos) {
                    None => return Err(Rejection::truncated(F, "image data cut off")),
                    Some(&code_size) if !(1..=12).contains(&code_size) => {
                        return Err(Rejection::corrupt(
                            F,
                            format_args!("invalid lzw code size {code_size}"),
                        ));
                    }
                    Some(_) => {}
                }
                pos = sub_blocks(b, pos + 1)?;
                images += 1;
            }
            Some(x) => {
                return Err(Rejection::corrupt(
                    F,
                    format_args!("unknown block {x:#04x} at offset {pos}"),
                ))
            }
        }
    }
}

/// Skips a chain of data sub-blocks starting at `pos`; returns the offset after the
/// terminating empty block.
fn sub_blocks(b: &[u8], mut pos: usize) -> Result<usize, Rejection> {
    loop {
        match b.get(pos) {
            None => return Err(Rejection::truncated(F, "data sub-blocks cut off")),
            Some(0) => return Ok(pos + 1),
            Some(&n) => pos += 1 + usize::from(n),
        }
    }
}
