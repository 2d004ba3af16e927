//! Thumbnails: small JPEG renditions for the gallery grid, rendered on first request
//! and cached on disk under `<cache_dir>/<sha[0..2]>/<sha>-<size>.jpg`, so a grid of a
//! hundred images costs a hundred small file reads once warm.
//!
//! JPEG, PNG, GIF (first frame) and WebP are decoded (with pixel and allocation
//! limits), shrunk to fit `size` x `size`, flattened onto white and encoded as JPEG.
//! SVG is served as is (it scales by itself). Formats this build cannot decode (AVIF,
//! HEIF, BMP, ICO, TIFF) are served as is when small, as a placeholder otherwise;
//! so are images too large to decode safely. Rendering is CPU-bound: it runs on the
//! blocking pool, `concurrency` at a time.

use std::io::Cursor;
use std::path::PathBuf;

use axum::http::HeaderValue;
use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageReader, Limits, RgbImage};
use imgcrawl_events::Format;
use object_store::ObjectStore;
use tokio::sync::Semaphore;

use crate::config::Thumbnails;
use crate::db::images::ImageRow;
use crate::error::{HttpError, HttpResult};
use crate::media::content_type;
use crate::ApiError;

/// Largest original served as its own thumbnail (SVG, undecodable formats).
const MAX_AS_IS: i64 = 1 << 20;

/// Formats decoded here.
const DECODED: [Format; 4] = [Format::Jpeg, Format::Png, Format::Gif, Format::Webp];

/// A thumbnail ready to send.
#[derive(Debug, Clone)]
pub struct Thumb {
    /// Its Content-Type.
    pub content_type: HeaderValue,
    /// Its bytes.
    pub body: Bytes,
}

/// Renders and caches thumbnails.
#[derive(Debug)]
pub struct Thumbnailer {
    config: Thumbnails,
    permits: Semaphore,
}

/// A neutral placeholder naming the format.
pub fn placeholder(format: &str, size: u32) -> Thumb {
    let label: String = format
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_uppercase();
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 100 100\">\
         <rect width=\"100\" height=\"100\" fill=\"#e5e7eb\"/>\
         <text x=\"50\" y=\"55\" font-family=\"sans-serif\" font-size=\"14\" text-anchor=\"middle\" fill=\"#6b7280\">{label}</text></svg>"
    );
    Thumb {
        content_type: HeaderValue::from_static("image/svg+xml"),
        body: Bytes::from(svg),
    }
}

/// Decodes `bytes`, shrinks them to fit `size`, flattens alpha onto white and encodes
/// a JPEG of `quality`.
pub fn render(bytes: &[u8], size: u32, quality: u8, max_side: u32) -> Result<Vec<u8>, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| e.to_string())?;
    let img = if img.width() > size || img.height() > size {
        img.thumbnail(size, size)
    } else {
        img
    };
    let rgb = flatten(&img);
    let mut out = Vec::with_capacity(16 * 1024);
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(&rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn flatten(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let p = rgba.get_pixel(x, y).0;
        let a = u16::from(p[3]);
        let mix = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
        image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
    })
}

impl Thumbnailer {
    /// A thumbnailer caching in `config.cache_dir` (created).
    pub fn new(config: Thumbnails) -> Result<Self, ApiError> {
        std::fs::create_dir_all(&config.cache_dir).map_err(|e| {
            ApiError::Config(format!(
                "thumbnail cache {}: {e}",
                config.cache_dir.display()
            ))
        })?;
        Ok(Thumbnailer {
            permits: Semaphore::new(config.concurrency.max(1)),
            config,
        })
    }

    /// The cache file of `sha`.
    pub fn cache_path(&self, sha: &str) -> PathBuf {
        let shard = sha.get(0..2).unwrap_or("xx");
        self.config
            .cache_dir
            .join(shard)
            .join(format!("{sha}-{}.jpg", self.config.size))
    }

    /// Forgets the cached thumbnail of `sha` (after a deletion).
    pub async fn forget(&self, sha: &str) {
        let _ = tokio::fs::remove_file(self.cache_path(sha)).await;
    }

    async fn original(
        &self,
        store: &dyn ObjectStore,
        prefix: &str,
        key: &str,
    ) -> HttpResult<Bytes> {
        let (at, got) = crate::object::read_either(prefix, key, |path| async move {
            match store.get(&path).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            }
        })
        .await;
        got.map_err(|e| crate::error::bucket(&at, e))
    }

    /// The thumbnail of `row`, whose object is `key` in a bucket with image `prefix`.
    pub async fn get(
        &self,
        store: &dyn ObjectStore,
        prefix: &str,
        row: &ImageRow,
        key: &str,
    ) -> HttpResult<Thumb> {
        let size = self.config.size.max(16);
        if !DECODED.iter().any(|f| f.name() == row.format) {
            if row.bytes > MAX_AS_IS {
                return Ok(placeholder(&row.format, size));
            }
            let body = self.original(store, prefix, key).await?;
            return Ok(Thumb {
                content_type: content_type(&row.content_type),
                body,
            });
        }
        let pixels = u64::try_from(row.width).unwrap_or(0) * u64::try_from(row.height).unwrap_or(0);
        let too_big = u64::try_from(row.bytes).unwrap_or(u64::MAX) > self.config.max_source_bytes
            || pixels > self.config.max_source_pixels;
        if too_big {
            return Ok(placeholder(&row.format, size));
        }
        let file = self.cache_path(&row.sha256);
        if let Ok(body) = tokio::fs::read(&file).await {
            return Ok(jpeg(body));
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HttpError::internal("render a thumbnail", e))?;
        if let Ok(body) = tokio::fs::read(&file).await {
            return Ok(jpeg(body));
        }
        let original = self.original(store, prefix, key).await?;
        let (quality, max_side) = (self.config.quality, 1 << 15);
        let rendered =
            tokio::task::spawn_blocking(move || render(&original, size, quality, max_side))
                .await
                .map_err(|e| HttpError::internal("render a thumbnail", e))?;
        match rendered {
            Ok(body) => {
                self.store(&file, &body).await;
                Ok(jpeg(body))
            }
            Err(e) => {
                tracing::debug!(sha = %row.sha256, error = %e, "thumbnail not rendered");
                Ok(placeholder(&row.format, size))
            }
        }
    }

    /// Writes a rendered thumbnail atomically (temp file, then rename); a failure only
    /// costs a render next time.
    async fn store(&self, file: &std::path::Path, body: &[u8]) {
        let Some(dir) = file.parent() else { return };
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let res = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&tmp, body).await?;
            tokio::fs::rename(&tmp, file).await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(file = %file.display(), error = %e, "thumbnail not cached");
            let _ = tokio::fs::remove_file(&tmp).await;
        }
    }
}

fn jpeg(body: Vec<u8>) -> Thumb {
    Thumb {
        content_type: HeaderValue::from_static("image/jpeg"),
        body: Bytes::from(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, RgbaImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([
                (x % 256) as u8,
                (y % 256) as u8,
                90,
                if x < w / 2 { 0 } else { 255 },
            ])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn large_images_shrink_to_fit_and_small_ones_keep_their_size() {
        let thumb = render(&png(800, 400), 256, 80, 1 << 15).unwrap();
        let img = image::load_from_memory(&thumb).unwrap();
        assert_eq!(image::guess_format(&thumb).unwrap(), ImageFormat::Jpeg);
        assert_eq!((img.width(), img.height()), (256, 128));
        // transparent pixels become white
        let p = img.to_rgb8().get_pixel(2, 2).0;
        assert!(p.iter().all(|c| *c > 240), "{p:?}");
        let small =
            image::load_from_memory(&render(&png(40, 30), 256, 80, 1 << 15).unwrap()).unwrap();
        assert_eq!((small.width(), small.height()), (40, 30));
    }

    #[test]
    fn garbage_and_oversized_images_are_refused() {
        assert!(render(b"not an image", 256, 80, 1 << 15).is_err());
        assert!(
            render(&png(300, 10), 256, 80, 100).is_err(),
            "wider than the decode limit"
        );
    }

    #[test]
    fn placeholders_name_the_format_and_nothing_else() {
        let p = placeholder("avif<script>", 256);
        let s = std::str::from_utf8(&p.body).unwrap();
        assert!(s.contains(">AVIFSCRI<"), "{s}");
        assert!(!s.contains("<script"));
    }

    #[test]
    fn cache_files_are_sharded_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let t = Thumbnailer::new(Thumbnails {
            cache_dir: dir.path().join("t"),
            ..Thumbnails::default()
        })
        .unwrap();
        let sha = "ab".repeat(32);
        assert_eq!(
            t.cache_path(&sha),
            dir.path()
                .join("t")
                .join("ab")
                .join(format!("{sha}-256.jpg"))
        );
    }
}
