//! The synthetic images: deterministic random bytes per image number (5 to 30 KB by
//! default), a format, dimensions, and their SHA-256; put into the NATS blob store
//! exactly as the download stage does (object name = hex SHA-256).
//!
//! The object replay never decodes image bytes, so random bytes are as good as real
//! JPEGs for it; what matters is their number and sizes.

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use imgcrawl_bus::Bus;
use imgcrawl_events::{Format, Sha256};

use imgcrawl_sitegen::rng::Rng;

/// What the events say about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// `jpeg`, `png`, `webp` or `gif`.
    pub format: &'static str,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
}

impl BlobInfo {
    /// The Content-Type of the format.
    pub fn content_type(&self) -> &'static str {
        Format::from_name(self.format).map_or("image/jpeg", Format::content_type)
    }
}

/// How the images are made.
#[derive(Debug, Clone, Copy)]
pub struct BlobSpec {
    /// Seed of every image's bytes.
    pub seed: u64,
    /// Smallest image, bytes.
    pub min_bytes: u64,
    /// Largest image, bytes.
    pub max_bytes: u64,
}

impl BlobSpec {
    /// The bytes and description of image `n` (same `n`, same bytes).
    pub fn make(&self, n: u64) -> (Bytes, BlobInfo) {
        let mut rng = Rng::for_item(self.seed ^ 0xB10B, n);
        let size = rng.range(self.min_bytes, self.max_bytes);
        let format = match rng.range(0, 99) {
            0..=59 => "jpeg",
            60..=84 => "png",
            85..=94 => "webp",
            _ => "gif",
        };
        let (width, height) = (rng.range(64, 2400) as u32, rng.range(64, 1800) as u32);
        let mut buf = vec![0u8; size as usize];
        rng.fill(&mut buf);
        let sha256 = Sha256::hex(&buf);
        let info = BlobInfo {
            sha256,
            size,
            format,
            width,
            height,
        };
        (Bytes::from(buf), info)
    }
}

/// Puts images `0..count` into the bus's blob store, `concurrency` at a time; returns
/// their descriptions in order.
pub async fn put_all(
    bus: &Bus,
    spec: BlobSpec,
    count: u64,
    concurrency: usize,
) -> Result<Vec<BlobInfo>> {
    futures::stream::iter(0..count)
        .map(|n| async move {
            let (body, info) = spec.make(n);
            let mut reader: &[u8] = &body;
            bus.blobs
                .put(info.sha256.as_str(), &mut reader)
                .await
                .with_context(|| format!("put blob {}", info.sha256))?;
            Ok::<_, anyhow::Error>(info)
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_deterministic_sized_and_named_by_their_hash() {
        let spec = BlobSpec {
            seed: 1,
            min_bytes: 5000,
            max_bytes: 30000,
        };
        let (a, ia) = spec.make(3);
        let (b, ib) = spec.make(3);
        assert_eq!((a.clone(), ia.clone()), (b, ib));
        assert_eq!(ia.size, a.len() as u64);
        assert!((5000..=30000).contains(&ia.size));
        assert_eq!(ia.sha256, Sha256::hex(&a));
        assert_ne!(spec.make(4).1.sha256, ia.sha256);
        assert!(ia.content_type().starts_with("image/"));
    }
}
