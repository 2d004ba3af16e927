//! Tests of [`inspect`] on real encoder output (Pillow-made fixtures in `testdata/`)
//! and on hand-built hostile inputs.

use super::*;
use imgcrawl_events::RejectReason::{DecodeFailed, NotAnImage, TooLarge};

const MP: u64 = 100_000_000;

/// `(file, format, width, height)` of every fixture.
const FIXTURES: &[(&str, Format, u32, u32)] = &[
    ("baseline.jpg", Format::Jpeg, 21, 13),
    ("progressive.jpg", Format::Jpeg, 21, 13),
    ("rgba.png", Format::Png, 21, 13),
    ("interlaced.png", Format::Png, 21, 13),
    ("still.gif", Format::Gif, 21, 13),
    ("anim.gif", Format::Gif, 21, 13),
    ("lossy.webp", Format::Webp, 21, 13),
    ("lossless.webp", Format::Webp, 21, 13),
    ("alpha.webp", Format::Webp, 21, 13),
    ("anim.webp", Format::Webp, 21, 13),
    ("still.avif", Format::Avif, 21, 13),
    ("rgb24.bmp", Format::Bmp, 21, 13),
    ("icon.ico", Format::Ico, 32, 32),
    ("plain.tif", Format::Tiff, 21, 13),
    ("lzw.tif", Format::Tiff, 21, 13),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn reason(r: Result<ImageInfo, Rejection>) -> RejectReason {
    r.expect_err("expected a rejection").reason
}

#[test]
fn real_files_are_recognised_with_their_dimensions() {
    for &(name, format, width, height) in FIXTURES {
        let info = inspect(&fixture(name), MP).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(
            info,
            ImageInfo {
                format,
                width,
                height,
                content_type: format.content_type()
            },
            "{name}"
        );
    }
}

#[test]
fn every_truncation_of_every_fixture_is_refused() {
    for &(name, ..) in FIXTURES {
        let b = fixture(name);
        for n in 0..b.len() {
            if let Ok(info) = inspect(&b[..n], MP) {
                panic!(
                    "{name} cut to {n} of {} bytes was accepted as {info:?}",
                    b.len()
                );
            }
        }
    }
}

#[test]
fn trailing_bytes_after_the_end_marker_are_accepted() {
    for name in ["baseline.jpg", "rgba.png", "still.gif"] {
        let mut b = fixture(name);
        b.extend_from_slice(b"\0\0trailing garbage from a broken cms");
        assert!(inspect(&b, MP).is_ok(), "{name}");
    }
}

#[test]
fn webp_riff_size_must_match_the_file() {
    let mut b = fixture("lossy.webp");
    b.extend_from_slice(&[0]);
    assert!(inspect(&b, MP).is_ok(), "one padding byte is tolerated");
    b.extend_from_slice(&[0, 0]);
    assert_eq!(reason(inspect(&b, MP)), DecodeFailed);
}

#[test]
fn a_flipped_bit_in_png_data_fails_the_crc() {
    let mut b = fixture("rgba.png");
    let idat = b.windows(4).position(|w| w == b"IDAT").expect("idat");
    b[idat + 6] ^= 0x01;
    let r = inspect(&b, MP).expect_err("corrupt");
    assert_eq!(r.reason, DecodeFailed);
    assert!(r.detail.contains("crc"), "{}", r.detail);
}

/// A structurally valid PNG with the given IHDR size.
fn png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = png::crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut out = png::SIGNATURE.to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn decompression_bombs_and_absurd_sizes_are_refused() {
    assert!(
        inspect(&png(10_000, 10_000), MP).is_ok(),
        "exactly the limit is fine"
    );
    let r = inspect(&png(10_000, 10_001), MP).expect_err("bomb");
    assert_eq!(r.reason, TooLarge);
    assert!(r.detail.contains("decompression bomb"), "{}", r.detail);
    assert_eq!(reason(inspect(&png(70_000, 1), MP)), TooLarge);
    assert_eq!(reason(inspect(&png(0, 5), MP)), DecodeFailed);
    assert_eq!(
        reason(inspect(&png(100, 100), 9_999)),
        TooLarge,
        "the limit is configurable"
    );
}

#[test]
fn jpeg_and_gif_headers_cannot_smuggle_huge_canvases() {
    let mut jpg = fixture("baseline.jpg");
    let sof = jpg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("sof0");
    jpg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]); // 60000 x 60000
    assert_eq!(reason(inspect(&jpg, MP)), TooLarge);
    let mut gif = fixture("still.gif");
    gif[6..10].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(reason(inspect(&gif, MP)), TooLarge);
}

#[test]
fn jpeg_structure_errors_are_named() {
    let b = fixture("baseline.jpg");
    let sos = b.windows(2).position(|w| w == [0xFF, 0xDA]).expect("sos");
    let mut no_frame = b[..2].to_vec();
    no_frame.extend_from_slice(&b[sos..]);
    let r = inspect(&no_frame, MP).expect_err("no frame");
    assert!(
        r.detail.contains("scan before the frame header"),
        "{}",
        r.detail
    );
    let r = inspect(&[0xFF, 0xD8, 0xFF, 0xD9], MP).expect_err("empty");
    assert_eq!(r.reason, DecodeFailed);
}

#[test]
fn svg_documents() {
    let ok = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="120px" height='80'><rect/></svg>"#;
    let info = inspect(ok, MP).expect("valid svg");
    assert_eq!(
        (info.format, info.width, info.height, info.content_type),
        (Format::Svg, 120, 80, "image/svg+xml")
    );
    let vb = inspect(b"<svg viewBox=\"0 0 48 24\"/>", MP).expect("self-closing");
    assert_eq!((vb.width, vb.height), (48, 24));
    let no_size = inspect(b"<svg></svg>\n", MP).expect("no intrinsic size");
    assert_eq!((no_size.width, no_size.height), (0, 0));
    let huge = inspect(b"<svg width=\"100000\" height=\"10\"></svg>", MP).expect_err("too wide");
    assert_eq!(huge.reason, TooLarge);
}

#[test]
fn hostile_svgs_are_refused() {
    let laughs = br#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><svg>&lol2;</svg>"#;
    let r = inspect(laughs, MP).expect_err("entities");
    assert_eq!(r.reason, DecodeFailed);
    assert!(r.detail.contains("entity"), "{}", r.detail);
    let cut = inspect(b"<svg width=\"10\" height=\"10\"><rect width=\"5\" he", MP)
        .expect_err("truncated");
    assert!(cut.detail.contains("truncated"), "{}", cut.detail);
    let open_tag = inspect(b"<svg width=\"10", MP).expect_err("cut in the root tag");
    assert_eq!(open_tag.reason, DecodeFailed);
    let unquoted = inspect(b"<svg width=10></svg>", MP).expect_err("unquoted");
    assert!(unquoted.detail.contains("malformed"), "{}", unquoted.detail);
}

#[test]
fn non_images_are_described() {
    let html = inspect(b"<!DOCTYPE html><html><body>404</body></html>", MP).expect_err("html");
    assert_eq!(
        (html.reason, html.detail.as_str()),
        (NotAnImage, "html document, not an image")
    );
    assert_eq!(inspect(b"", MP).expect_err("empty").detail, "empty body");
    let bin = inspect(&[0x50, 0x4B, 0x03, 0x04, 1, 2, 3, 4, 5], MP).expect_err("zip");
    assert_eq!(bin.reason, NotAnImage);
    assert!(bin.detail.contains("504b0304"), "{}", bin.detail);
}

#[test]
fn bmp_top_down_height_is_positive() {
    let mut b = fixture("rgb24.bmp");
    let h = i32::from_le_bytes([b[22], b[23], b[24], b[25]]);
    b[22..26].copy_from_slice(&(-h).to_le_bytes());
    let info = inspect(&b, MP).expect("top-down bmp");
    assert_eq!((info.width, info.height), (21, 13));
}

#[test]
fn random_bytes_behind_valid_magic_never_panic() {
    // A cheap deterministic fuzz: every format's magic followed by pseudo-random bytes.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as u8
    };
    for &(name, ..) in FIXTURES {
        let real = fixture(name);
        for round in 0..200 {
            let keep = (round * 7) % real.len().min(64);
            let mut b = real[..keep.max(4)].to_vec();
            b.extend((0..(round % 97)).map(|_| next()));
            let _ = inspect(&b, MP);
            let mut flipped = real.clone();
            let i = usize::from(next()) * real.len() / 256;
            flipped[i] ^= next() | 1;
            let _ = inspect(&flipped, MP);
        }
    }
}
