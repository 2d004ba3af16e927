//! Format detection from magic bytes. The URL's extension and the server's
//! Content-Type are never consulted: only the bytes say what an image is.

use crate::validate::bytes::{be32, le16, le32};
use crate::validate::svg;
use imgcrawl_events::Format;

/// AVIF brands (`ftyp` major or compatible).
const AVIF_BRANDS: [&[u8; 4]; 2] = [b"avif", b"avis"];
/// Other HEIF image brands.
const HEIF_BRANDS: [&[u8; 4]; 8] = [
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
];

/// The format the bytes are in, or `None` when they are no image format we accept.
pub fn sniff(b: &[u8]) -> Option<Format> {
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if b.starts_with(&crate::validate::PNG_SIGNATURE) {
        return Some(Format::Png);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if b.len() >= 12 && b.starts_with(b"RIFF") && &b[8..12] == b"WEBP" {
        return Some(Format::Webp);
    }
    if b.get(4..8) == Some(b"ftyp") {
        return ftyp(b);
    }
    if b.starts_with(b"BM")
        && le32(b, 14).is_some_and(|dib| crate::validate::DIB_SIZES.contains(&dib))
    {
        return Some(Format::Bmp);
    }
    // ICONDIR: reserved 0, type 1, at least one entry whose reserved byte is 0.
    if b.starts_with(&[0, 0, 1, 0]) && le16(b, 4).is_some_and(|n| n > 0) && b.get(9) == Some(&0) {
        return Some(Format::Ico);
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        return Some(Format::Tiff);
    }
    if svg::find_root(b).is_some() {
        return Some(Format::Svg);
    }
    None
}

/// AVIF or HEIF from the `ftyp` box's major and compatible brands; other ISOBMFF
/// files (MP4 video, ...) are not images.
fn ftyp(b: &[u8]) -> Option<Format> {
    let size = be32(b, 0)? as usize;
    let end = size.min(b.len());
    let major = b.get(8..12)?;
    let compatible = b.get(16..end).unwrap_or_default().chunks_exact(4);
    let brands: Vec<&[u8]> = std::iter::once(major).chain(compatible).collect();
    let has = |set: &[&[u8; 4]]| brands.iter().any(|br| set.iter().any(|s| &s[..] == *br));
    if has(&AVIF_BRANDS) {
        Some(Format::Avif)
    } else if has(&HEIF_BRANDS) {
        Some(Format::Heif)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ftyp_box(major: &[u8; 4], compat: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compat.len() as u32;
        let mut v = size.to_be_bytes().to_vec();
        v.extend_from_slice(b"ftyp");
        v.extend_from_slice(major);
        v.extend_from_slice(&[0; 4]);
        for c in compat {
            v.extend_from_slice(*c);
        }
        v
    }

    #[test]
    fn magic_bytes_decide_not_names() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some(Format::Png));
        assert_eq!(sniff(b"GIF89a..."), Some(Format::Gif));
        assert_eq!(sniff(b"GIF87a..."), Some(Format::Gif));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(sniff(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(sniff(b"II+\0\x08\0\0\0"), None, "bigtiff is not supported");
        assert_eq!(
            sniff(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            Some(Format::Svg)
        );
        assert_eq!(sniff(b"<!DOCTYPE html><html>"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\xFF\xD8"), None);
    }

    #[test]
    fn bmp_and_ico_need_more_than_two_letters() {
        let mut bmp = b"BM".to_vec();
        bmp.resize(14, 0);
        bmp.extend_from_slice(&40u32.to_le_bytes());
        assert_eq!(sniff(&bmp), Some(Format::Bmp));
        assert_eq!(sniff(b"BMW is a car brand, not a bitmap"), None);
        assert_eq!(sniff(&[0, 0, 1, 0, 1, 0, 16, 16, 0, 0]), Some(Format::Ico));
        assert_eq!(sniff(&[0, 0, 1, 0, 0, 0, 16, 16, 0, 0]), None);
    }

    #[test]
    fn ftyp_brands_separate_avif_heif_and_video() {
        assert_eq!(
            sniff(&ftyp_box(b"avif", &[b"mif1", b"miaf"])),
            Some(Format::Avif)
        );
        assert_eq!(sniff(&ftyp_box(b"mif1", &[b"avif"])), Some(Format::Avif));
        assert_eq!(sniff(&ftyp_box(b"heic", &[b"mif1"])), Some(Format::Heif));
        assert_eq!(sniff(&ftyp_box(b"mif1", &[b"heic"])), Some(Format::Heif));
        assert_eq!(sniff(&ftyp_box(b"isom", &[b"iso2", b"mp41"])), None);
        assert_eq!(sniff(&ftyp_box(b"qt  ", &[])), None);
    }
}
