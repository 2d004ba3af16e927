//! Structural validation and dimensions: is this really a complete image of the format
//! its magic bytes claim, and how big is it? Pure functions, no I/O, no pixel decoding.
//!
//! Each format has a walker that follows the container structure to its end marker and
//! catches truncation and corruption (PNG chunk CRCs and `IEND`; JPEG segments up to
//! the scans and `EOI`; GIF blocks up to the trailer; the WebP RIFF size; ISOBMFF boxes;
//! BMP/ICO/TIFF offsets inside the file; an SVG root element and its closing tag).
//!
//! Trailing bytes: after a format's end marker (JPEG `EOI`, PNG `IEND`, GIF trailer)
//! extra bytes are **accepted and ignored**. Real files carry them (Motion Photos and
//! MPF second images after a JPEG's `EOI`, padding from broken CMSs) and browsers show
//! those files; truncation is what we must catch, and it removes the end marker. The
//! RIFF (WebP) and ISOBMFF (AVIF/HEIF) containers declare their own sizes, so there
//! the file must match (WebP: within one padding byte).
//!
//! Decompression bombs: dimensions are checked before anything decodes the image, see
//! [`inspect`].

mod bitmap;
pub(crate) mod bytes;
mod gif;
mod isobmff;
mod jpeg;
mod png;
pub(crate) mod svg;
mod tiff;
mod webp;

use std::fmt;

pub(crate) use bitmap::DIB_SIZES;
pub(crate) use png::SIGNATURE as PNG_SIGNATURE;

use imgcrawl_events::RejectReason;

use crate::sniff::sniff;
use imgcrawl_events::Format;

/// Largest accepted width or height, for every format.
pub const MAX_SIDE: u32 = 65_535;

/// What the bytes turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The detected format.
    pub format: Format,
    /// Width in pixels (SVG: nominal CSS pixels; 0 when the SVG declares no size).
    pub width: u32,
    /// Height in pixels (SVG: nominal CSS pixels; 0 when the SVG declares no size).
    pub height: u32,
    /// Content type matching the format.
    pub content_type: &'static str,
}

/// Why the bytes are refused, in the vocabulary of `image.rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Human-readable detail.
    pub detail: String,
}

impl Rejection {
    /// A rejection with `reason` and `detail`.
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    /// The bytes claim a format but are corrupt.
    pub(crate) fn corrupt(format: Format, detail: impl fmt::Display) -> Self {
        Rejection::new(RejectReason::DecodeFailed, format!("{format}: {detail}"))
    }

    /// The bytes claim a format but end too early.
    pub(crate) fn truncated(format: Format, detail: impl fmt::Display) -> Self {
        Rejection::new(
            RejectReason::DecodeFailed,
            format!("{format}: truncated: {detail}"),
        )
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.reason, self.detail)
    }
}

/// Detects the format, validates the structure, reads the dimensions and refuses
/// decompression bombs: more than `max_pixels` pixels, a side above [`MAX_SIDE`], or a
/// raster side of zero.
pub fn inspect(bytes: &[u8], max_pixels: u64) -> Result<ImageInfo, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::new(RejectReason::NotAnImage, "empty body"));
    }
    let Some(format) = sniff(bytes) else {
        return Err(Rejection::new(
            RejectReason::NotAnImage,
            describe_unknown(bytes),
        ));
    };
    let known = check_structure(format, bytes)?;
    let (width, height) = match known {
        Some(dims) => dims,
        None => raster_size(format, bytes)?,
    };
    check_dimensions(format, width, height, max_pixels)?;
    Ok(ImageInfo {
        format,
        width,
        height,
        content_type: format.content_type(),
    })
}

/// Runs `format`'s structural walker on `b` whatever its magic bytes say (the fuzz
/// targets drive each walker this way); some return dimensions they parsed anyway.
pub fn check_structure(format: Format, b: &[u8]) -> Result<Option<(u32, u32)>, Rejection> {
    match format {
        Format::Jpeg => jpeg::check(b).map(Some),
        Format::Png => png::check(b).map(|()| None),
        Format::Gif => gif::check(b).map(|()| None),
        Format::Webp => webp::check(b),
        Format::Svg => svg::check(b).map(Some),
        Format::Avif | Format::Heif => isobmff::check(format, b).map(|()| None),
        Format::Bmp => bitmap::check_bmp(b).map(Some),
        Format::Ico => bitmap::check_ico(b).map(|()| None),
        Format::Tiff => tiff::check(b).map(|()| None),
    }
}

/// Dimensions through `imagesize`, guarded so a bug in it cannot panic the stage.
fn raster_size(format: Format, b: &[u8]) -> Result<(u32, u32), Rejection> {
    let size = std::panic::catch_unwind(|| imagesize::blob_size(b))
        .map_err(|_| Rejection::corrupt(format, "cannot read dimensions (size reader panicked)"))?
        .map_err(|e| Rejection::corrupt(format, format_args!("cannot read dimensions: {e}")))?;
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    Ok((side(size.width), side(size.height)))
}

/// The decompression-bomb and sanity limits.
fn check_dimensions(format: Format, w: u32, h: u32, max_pixels: u64) -> Result<(), Rejection> {
    if (w == 0 || h == 0) && !format.is_vector() {
        return Err(Rejection::corrupt(
            format,
            format_args!("zero dimension ({w}x{h})"),
        ));
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        let detail = format!("{format}: {w}x{h} exceeds {MAX_SIDE} pixels per side");
        return Err(Rejection::new(RejectReason::TooLarge, detail));
    }
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        let detail = format!("{format}: {w}x{h} = {pixels} pixels exceeds the limit of {max_pixels} (decompression bomb)");
        return Err(Rejection::new(RejectReason::TooLarge, detail));
    }
    Ok(())
}

/// A short description of bytes that are no known image, for the rejection detail.
fn describe_unknown(b: &[u8]) -> String {
    let head: Vec<u8> = b.iter().take(256).map(u8::to_ascii_lowercase).collect();
    let text = String::from_utf8_lossy(&head);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with("<!doctype html") || t.starts_with("<html") || t.starts_with("<head") {
        return "html document, not an image".into();
    }
    if t.starts_with('{') || t.starts_with('[') {
        return "looks like json, not an image".into();
    }
    let hex: String = b.iter().take(8).map(|x| format!("{x:02x}")).collect();
    format!("unrecognised format (first bytes {hex})")
}

#[cfg(test)]
mod tests;
