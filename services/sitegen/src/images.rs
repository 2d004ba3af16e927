//! Real, deterministic images: pixels drawn from a seed, encoded by the `image` crate
//! (JPEG, PNG, GIF, lossless WebP) or written by hand (SVG).
//!
//! Every image is a gradient with stripes and a disc whose colours, angle and sizes come
//! from the seed; lossless formats also carry the seed's 64 bits as black/white pixels in
//! the first row, so two seeds never give the same pixels.

use bytes::Bytes;
use image::codecs::gif::GifEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};
use imgcrawl_events::Sha256;

use crate::error::SiteError;
use crate::rng::Rng;

/// An image format the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// JPEG (baseline, lossy).
    Jpeg,
    /// PNG (RGB, 8 bits).
    Png,
    /// GIF (at most 64 colours, exact palette).
    Gif,
    /// WebP, lossless.
    WebP,
    /// SVG, hand-written XML.
    Svg,
}

impl Format {
    /// The pipeline's format this one is.
    pub fn pipeline(self) -> imgcrawl_events::Format {
        match self {
            Format::Jpeg => imgcrawl_events::Format::Jpeg,
            Format::Png => imgcrawl_events::Format::Png,
            Format::Gif => imgcrawl_events::Format::Gif,
            Format::WebP => imgcrawl_events::Format::Webp,
            Format::Svg => imgcrawl_events::Format::Svg,
        }
    }

    /// The name the pipeline uses in `image.downloaded.format`.
    pub fn name(self) -> &'static str {
        self.pipeline().name()
    }

    /// The usual file extension (no dot).
    pub fn extension(self) -> &'static str {
        self.pipeline().extension()
    }

    /// The MIME type.
    pub fn content_type(self) -> &'static str {
        self.pipeline().content_type()
    }
}

/// An encoded image and what a correct downloader must report about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its format.
    pub format: Format,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded bytes.
    pub bytes: Bytes,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl Image {
    /// Wraps encoded bytes, computing their SHA-256.
    pub fn new(format: Format, width: u32, height: u32, bytes: Vec<u8>) -> Image {
        let sha256 = Sha256::hex(&bytes);
        Image {
            format,
            width,
            height,
            bytes: Bytes::from(bytes),
            sha256,
        }
    }
}

/// What to draw and how to encode it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    /// Output format.
    pub format: Format,
    /// Width in pixels (1..=65535).
    pub width: u32,
    /// Height in pixels (1..=65535).
    pub height: u32,
    /// Picks colours, angle and shapes.
    pub seed: u64,
    /// JPEG quality (1..=100); ignored by the other formats.
    pub quality: u8,
    /// Amplitude of per-pixel noise (0 = smooth); more noise, bigger files.
    pub noise: u8,
}

impl ImageSpec {
    /// A smooth image with JPEG quality 85.
    pub fn new(format: Format, width: u32, height: u32, seed: u64) -> ImageSpec {
        ImageSpec {
            format,
            width,
            height,
            seed,
            quality: 85,
            noise: 0,
        }
    }
}

/// Draws and encodes one image.
pub fn render(spec: &ImageSpec) -> Result<Image, SiteError> {
    let (w, h) = (spec.width, spec.height);
    if w == 0 || h == 0 || w > 65_535 || h > 65_535 {
        return Err(SiteError::Encode {
            what: format!("{w}x{h} image"),
            detail: "dimensions out of range".into(),
        });
    }
    if spec.format == Format::Svg {
        return Ok(Image::new(
            Format::Svg,
            w,
            h,
            svg(w, h, spec.seed).into_bytes(),
        ));
    }
    let px = pixels(spec, spec.format == Format::Gif);
    let mut out = Vec::with_capacity((w * h) as usize / 4 + 1024);
    let color = ExtendedColorType::Rgb8;
    let res = match spec.format {
        Format::Jpeg => JpegEncoder::new_with_quality(&mut out, spec.quality.clamp(1, 100))
            .write_image(&px, w, h, color),
        Format::Png => {
            PngEncoder::new_with_quality(&mut out, CompressionType::Default, FilterType::Adaptive)
                .write_image(&px, w, h, color)
        }
        Format::Gif => GifEncoder::new_with_speed(&mut out, 30).encode(&px, w, h, color),
        Format::WebP => WebPEncoder::new_lossless(&mut out).write_image(&px, w, h, color),
        Format::Svg => Ok(()),
    };
    res.map_err(|e| SiteError::Encode {
        what: format!("{w}x{h} {}", spec.format.name()),
        detail: e.to_string(),
    })?;
    Ok(Image::new(spec.format, w, h, out))
}

/// Drawing parameters derived from a seed.
struct Look {
    c0: [i32; 3],
    c1: [i32; 3],
    disc: [i32; 3],
    dx: i32,
    dy: i32,
    period: u32,
    cx: i64,
    cy: i64,
    r2: i64,
}

impl Look {
    fn new(seed: u64, w: u32, h: u32) -> Look {
        let mut r = Rng::derive(seed, 0x1a6e);
        let col = |r: &mut Rng| [r.byte() as i32, r.byte() as i32, r.byte() as i32];
        let (c0, c1, disc) = (col(&mut r), col(&mut r), col(&mut r));
        let radius = r.range(u64::from(w.min(h)) / 8, u64::from(w.min(h)) / 3 + 1) as i64;
        Look {
            c0,
            c1,
            disc,
            dx: r.range(0, 16) as i32 - 8,
            dy: r.range(1, 8) as i32,
            period: r.range(4, 40) as u32,
            cx: r.range(0, u64::from(w)) as i64,
            cy: r.range(0, u64::from(h)) as i64,
            r2: radius * radius,
        }
    }
}

/// RGB pixels for `spec`; `posterize` keeps at most 64 colours (for an exact GIF palette).
fn pixels(spec: &ImageSpec, posterize: bool) -> Vec<u8> {
    let (w, h) = (spec.width, spec.height);
    let look = Look::new(spec.seed, w, h);
    let offset = i64::from(look.dx.unsigned_abs() * w);
    let span = (2 * offset + i64::from(look.dy.unsigned_abs() * h)).max(1);
    let mut noise = Rng::derive(spec.seed, 0x0015e);
    let amp = i32::from(spec.noise);
    let mut px = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let proj =
                i64::from(x) * i64::from(look.dx) + i64::from(y) * i64::from(look.dy) + offset;
            let t = (proj * 256 / span).clamp(0, 256) as i32;
            let stripe = if ((x + y) / look.period) & 1 == 0 {
                0
            } else {
                24
            };
            let (dxp, dyp) = (i64::from(x) - look.cx, i64::from(y) - look.cy);
            let inside = dxp * dxp + dyp * dyp <= look.r2;
            let n = if amp > 0 {
                (noise.byte() as i32 % (amp + 1)) - amp / 2
            } else {
                0
            };
            for c in 0..3 {
                let base = if inside {
                    look.disc[c]
                } else {
                    look.c0[c] + (look.c1[c] - look.c0[c]) * t / 256
                };
                let mut v = (base + stripe + n).clamp(0, 255) as u8;
                if posterize {
                    v = (v & 0xc0) | 0x20;
                }
                px.push(v);
            }
        }
    }
    stamp_seed(&mut px, w, spec.seed);
    px
}

/// Writes the seed's 64 bits as black/white pixels at the start of the first row.
fn stamp_seed(px: &mut [u8], w: u32, seed: u64) {
    for bit in 0..64.min(w as usize) {
        let v = if seed >> bit & 1 == 1 { 0xe0 } else { 0x20 };
        px[bit * 3..bit * 3 + 3].copy_from_slice(&[v, v, v]);
    }
}

/// A hand-written SVG of `w`x`h` with seeded colours.
fn svg(w: u32, h: u32, seed: u64) -> String {
    let mut r = Rng::derive(seed, 0x5f6);
    let mut col = || format!("#{:02x}{:02x}{:02x}", r.byte(), r.byte(), r.byte());
    let (bg, fg, stroke) = (col(), col(), col());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n\
         <!-- imgcrawl-sitegen seed {seed:016x} -->\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"{bg}\"/>\n\
         <circle cx=\"{cx}\" cy=\"{cy}\" r=\"{rad}\" fill=\"{fg}\" stroke=\"{stroke}\" stroke-width=\"3\"/>\n\
         </svg>\n",
        cx = w / 2,
        cy = h / 2,
        rad = w.min(h) / 3,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(img: &Image) -> (u32, u32) {
        let f = match img.format {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::WebP => image::ImageFormat::WebP,
            Format::Svg => unreachable!("svg is not decoded here"),
        };
        let d = image::load_from_memory_with_format(&img.bytes, f).expect("decodes");
        (d.width(), d.height())
    }

    #[test]
    fn every_raster_format_decodes_to_its_stated_size() {
        for (i, f) in [Format::Jpeg, Format::Png, Format::Gif, Format::WebP]
            .into_iter()
            .enumerate()
        {
            let img = render(&ImageSpec::new(f, 97 + i as u32, 41, 5)).unwrap();
            assert_eq!(decode(&img), (img.width, img.height), "{f:?}");
            assert_eq!(img.sha256, Sha256::hex(&img.bytes));
            let guessed = image::guess_format(&img.bytes).unwrap();
            assert!(
                guessed.extensions_str().contains(&f.extension()),
                "{f:?} guessed {guessed:?}"
            );
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_pixels() {
        for f in [
            Format::Jpeg,
            Format::Png,
            Format::Gif,
            Format::WebP,
            Format::Svg,
        ] {
            let a = render(&ImageSpec::new(f, 80, 60, 1)).unwrap();
            let b = render(&ImageSpec::new(f, 80, 60, 1)).unwrap();
            let c = render(&ImageSpec::new(f, 80, 60, 2)).unwrap();
            assert_eq!(a, b, "{f:?}");
            assert_ne!(a.sha256, c.sha256, "{f:?}");
        }
    }

    #[test]
    fn gif_keeps_exact_pixels_and_svg_states_its_size() {
        let spec = ImageSpec::new(Format::Gif, 70, 30, 11);
        let img = render(&spec).unwrap();
        let decoded = image::load_from_memory(&img.bytes).unwrap().to_rgb8();
        assert_eq!(decoded.into_raw(), pixels(&spec, true));
        let svg = render(&ImageSpec::new(Format::Svg, 120, 80, 3)).unwrap();
        let text = std::str::from_utf8(&svg.bytes).unwrap();
        assert!(text.contains("width=\"120\" height=\"80\""));
    }

    #[test]
    fn bad_dimensions_are_an_error() {
        assert!(render(&ImageSpec::new(Format::Png, 0, 10, 1)).is_err());
        assert!(render(&ImageSpec::new(Format::Gif, 70_000, 10, 1)).is_err());
    }
}
