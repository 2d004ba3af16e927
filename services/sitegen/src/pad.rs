//! Growing an encoded image to an exact byte size with metadata every decoder skips:
//! a JPEG comment segment, a PNG `tEXt` chunk, a WebP `XMP ` chunk (the file becomes an
//! extended, `VP8X` WebP). Real images carry metadata of this size (EXIF, ICC, XMP), and
//! it lets a benchmark site have the byte sizes it asks for whatever the pixels compress to.

use crate::images::{Format, Image};

/// Overhead of the smallest padding per format (headers of the inserted parts).
fn overhead(format: Format) -> usize {
    match format {
        Format::Jpeg => 4,
        Format::Png => 12 + 8,
        Format::WebP => 18 + 8 + XMP_HEAD.len() + XMP_TAIL.len(),
        Format::Gif | Format::Svg => usize::MAX,
    }
}

/// `image` grown to `target` bytes, when its format can carry padding and `target`
/// leaves room for it; otherwise `image` unchanged. Pixels and dimensions are kept.
pub fn pad_to(image: &Image, target: usize) -> Image {
    let len = image.bytes.len();
    let o = overhead(image.format);
    if target < len.saturating_add(o) {
        return image.clone();
    }
    let fill = target - len - o;
    let bytes = match image.format {
        Format::Jpeg => jpeg(&image.bytes, fill),
        Format::Png => png(&image.bytes, fill),
        Format::WebP => webp(&image.bytes, image.width, image.height, fill),
        Format::Gif | Format::Svg => None,
    };
    match bytes {
        Some(b) => Image::new(image.format, image.width, image.height, b),
        None => image.clone(),
    }
}

/// Filler text of `n` bytes.
fn filler(n: usize) -> Vec<u8> {
    b"imgcrawl-sitegen padding "
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// Comment segments (`FF FE`, at most 65,533 bytes each) right after SOI.
fn jpeg(b: &[u8], fill: usize) -> Option<Vec<u8>> {
    if b.get(..2) != Some(&[0xFF, 0xD8][..]) || fill > 65_533 {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() + fill + 4);
    out.extend_from_slice(&b[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((fill + 2) as u16).to_be_bytes());
    out.extend(filler(fill));
    out.extend_from_slice(&b[2..]);
    Some(out)
}

/// A `tEXt` chunk (keyword `Comment`) just before `IEND`.
fn png(b: &[u8], fill: usize) -> Option<Vec<u8>> {
    let iend = b.len().checked_sub(12)?;
    if b.get(iend + 4..iend + 8) != Some(&b"IEND"[..]) {
        return None;
    }
    let mut data = b"tEXtComment\0".to_vec();
    data.extend(filler(fill));
    let len = u32::try_from(data.len() - 4).ok()?;
    let mut out = Vec::with_capacity(b.len() + data.len() + 8);
    out.extend_from_slice(&b[..iend]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&crc32(&data).to_be_bytes());
    out.extend_from_slice(&b[iend..]);
    Some(out)
}

const XMP_HEAD: &[u8] = b"<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
const XMP_TAIL: &[u8] = b"<?xpacket end=\"w\"?>";

/// A simple WebP rewritten as `VP8X` + its image chunk + an `XMP ` chunk whose packet
/// is padded with spaces (as XMP allows). RIFF files have even sizes, so an odd target
/// ends one byte short.
fn webp(b: &[u8], width: u32, height: u32, fill: usize) -> Option<Vec<u8>> {
    if b.get(..4) != Some(&b"RIFF"[..]) || b.get(8..12) != Some(&b"WEBP"[..]) {
        return None;
    }
    if !matches!(b.get(12..16), Some(b"VP8L") | Some(b"VP8 ")) || width == 0 || height == 0 {
        return None;
    }
    let spaces = fill - (XMP_HEAD.len() + fill + XMP_TAIL.len()) % 2;
    let xmp_len = XMP_HEAD.len() + spaces + XMP_TAIL.len();
    let mut out = Vec::with_capacity(b.len() + fill + 64);
    out.extend_from_slice(b"RIFF\0\0\0\0WEBPVP8X");
    out.extend_from_slice(&10u32.to_le_bytes());
    out.extend_from_slice(&[0x04, 0, 0, 0]); // flags: XMP metadata present
    out.extend_from_slice(&(width - 1).to_le_bytes()[..3]);
    out.extend_from_slice(&(height - 1).to_le_bytes()[..3]);
    out.extend_from_slice(&b[12..]);
    out.extend_from_slice(b"XMP ");
    out.extend_from_slice(&u32::try_from(xmp_len).ok()?.to_le_bytes());
    out.extend_from_slice(XMP_HEAD);
    out.extend(std::iter::repeat_n(b' ', spaces));
    out.extend_from_slice(XMP_TAIL);
    let riff = u32::try_from(out.len() - 8).ok()?;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Some(out)
}

/// CRC-32 (IEEE, reflected), as PNG chunks use it.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &byte in data {
        c ^= u32::from(byte);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::{render, ImageSpec};

    #[test]
    fn crc_matches_the_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn padded_images_have_the_exact_size_and_decode_to_the_same_pixels() {
        for f in [Format::Jpeg, Format::Png, Format::WebP] {
            let img = render(&ImageSpec::new(f, 90, 70, 4)).unwrap();
            let want = image::load_from_memory(&img.bytes).unwrap().to_rgb8();
            for extra in [300, 301, 5000] {
                let target = img.bytes.len() + extra;
                let padded = pad_to(&img, target);
                let short = usize::from(f == Format::WebP && target % 2 == 1);
                assert_eq!(padded.bytes.len(), target - short, "{f:?} +{extra}");
                let got = image::load_from_memory(&padded.bytes)
                    .unwrap_or_else(|e| panic!("{f:?} +{extra}: {e}"))
                    .to_rgb8();
                assert_eq!(got, want, "{f:?} +{extra}");
                assert_ne!(padded.sha256, img.sha256);
            }
            assert_eq!(pad_to(&img, img.bytes.len() + 1), img, "no room: unchanged");
        }
    }
}
