//! The image formats the pipeline knows: their names in events and job filters, their
//! content types, file extensions and the aliases people and servers write for them.
//!
//! This is the one list. The download stage detects these formats from the bytes, the
//! API accepts their names (and aliases) in job filters, the bucket derives object-key
//! extensions from them.

use std::fmt;

/// An image format (detected from the bytes, never from the URL or the server's claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// JPEG (JFIF / Exif).
    Jpeg,
    /// PNG (APNG included).
    Png,
    /// GIF 87a / 89a.
    Gif,
    /// WebP (VP8, VP8L or VP8X).
    Webp,
    /// SVG (XML text).
    Svg,
    /// AVIF (AV1 in HEIF).
    Avif,
    /// HEIF / HEIC (other HEIF brands).
    Heif,
    /// Windows bitmap.
    Bmp,
    /// Windows icon.
    Ico,
    /// TIFF (classic, not BigTIFF).
    Tiff,
}

impl Format {
    /// Every format, for tests and listings.
    pub const ALL: [Format; 10] = [
        Format::Jpeg,
        Format::Png,
        Format::Gif,
        Format::Webp,
        Format::Svg,
        Format::Avif,
        Format::Heif,
        Format::Bmp,
        Format::Ico,
        Format::Tiff,
    ];

    /// Every format's [`name`](Format::name), in the order of [`Format::ALL`].
    pub const NAMES: [&'static str; 10] = Format::each(false);

    /// Every format's [`extension`](Format::extension), in the order of [`Format::ALL`].
    pub const EXTENSIONS: [&'static str; 10] = Format::each(true);

    /// Every format's extension (or name), in the order of [`Format::ALL`].
    const fn each(extension: bool) -> [&'static str; 10] {
        let mut out = [""; 10];
        let mut i = 0;
        while i < Format::ALL.len() {
            let f = Format::ALL[i];
            out[i] = if extension { f.extension() } else { f.name() };
            i += 1;
        }
        out
    }

    /// The name used in events and job filters: `jpeg`, `png`, ...
    pub const fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Svg => "svg",
            Format::Avif => "avif",
            Format::Heif => "heif",
            Format::Bmp => "bmp",
            Format::Ico => "ico",
            Format::Tiff => "tiff",
        }
    }

    /// The content type matching the format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Gif => "image/gif",
            Format::Webp => "image/webp",
            Format::Svg => "image/svg+xml",
            Format::Avif => "image/avif",
            Format::Heif => "image/heif",
            Format::Bmp => "image/bmp",
            Format::Ico => "image/x-icon",
            Format::Tiff => "image/tiff",
        }
    }

    /// The usual file extension, without the dot.
    pub const fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Tiff => "tif",
            other => other.name(),
        }
    }

    /// Reads a format name as people write it in job filters: case-insensitive, with the
    /// usual aliases (`jpg`, `pjpeg`, `apng`, `tif`, `heic`, `svg+xml`, `x-ms-bmp`,
    /// `image/png`, `.gif`...).
    pub fn from_name(name: &str) -> Option<Format> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_prefix("image/").unwrap_or(&n);
        let n = n.strip_prefix('.').unwrap_or(n);
        Some(match n {
            "jpeg" | "jpg" | "jpe" | "jfif" | "pjpeg" => Format::Jpeg,
            "png" | "apng" => Format::Png,
            "gif" => Format::Gif,
            "webp" => Format::Webp,
            "svg" | "svg+xml" => Format::Svg,
            "avif" => Format::Avif,
            "heif" | "heic" => Format::Heif,
            "bmp" | "x-ms-bmp" => Format::Bmp,
            "ico" | "x-icon" | "vnd.microsoft.icon" => Format::Ico,
            "tiff" | "tif" => Format::Tiff,
            _ => return None,
        })
    }

    /// Reads a `Content-Type` header value (`image/webp; charset=binary`): only `image/`
    /// types, parameters ignored, aliases as in [`Format::from_name`].
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let lower = essence.to_ascii_lowercase();
        lower.strip_prefix("image/").and(Format::from_name(&lower))
    }

    /// Whether the format is vector (no pixel grid; dimensions are nominal).
    pub const fn is_vector(self) -> bool {
        matches!(self, Format::Svg)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_resolve() {
        for f in Format::ALL {
            assert_eq!(Format::from_name(f.name()), Some(f));
            assert_eq!(Format::from_name(f.extension()), Some(f));
            assert_eq!(Format::from_name(f.content_type()), Some(f));
            assert_eq!(Format::from_content_type(f.content_type()), Some(f));
            assert!(f.content_type().starts_with("image/"));
        }
        assert_eq!(Format::from_name(" JPG "), Some(Format::Jpeg));
        assert_eq!(Format::from_name("heic"), Some(Format::Heif));
        assert_eq!(Format::from_name("svg+xml"), Some(Format::Svg));
        assert_eq!(Format::from_name("psd"), None);
        assert_eq!(Format::from_name(""), None);
    }

    #[test]
    fn content_types_need_the_image_type_and_drop_parameters() {
        assert_eq!(
            Format::from_content_type("image/webp; charset=binary"),
            Some(Format::Webp)
        );
        assert_eq!(
            Format::from_content_type("Image/X-MS-BMP"),
            Some(Format::Bmp)
        );
        assert_eq!(Format::from_content_type("png"), None);
        assert_eq!(Format::from_content_type("text/plain"), None);
    }

    #[test]
    fn extensions_follow_all() {
        for ((f, ext), name) in Format::ALL
            .iter()
            .zip(Format::EXTENSIONS)
            .zip(Format::NAMES)
        {
            assert_eq!((f.extension(), f.name()), (ext, name));
        }
    }
}
