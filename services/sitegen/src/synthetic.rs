//! Large synthetic sites for benchmarks: many pages in a shallow link tree, each with a
//! few images drawn from a pool of distinct, real images (JPEG, PNG, lossless WebP).
//!
//! Page `0` is `/`, page `i` is `/p/<i>.html`; image `k` is `/img/<k>.<ext>`. Page `i`
//! links to its children in a tree (so every page is reachable within a few hops) and to
//! pseudo-random other pages; image slot `s` (page `s / images_per_page`) shows image
//! `s % distinct_images`, so images repeat across pages when slots outnumber them.
//!
//! With [`SyntheticSpec::bytes`] set, every image is fitted into a file size drawn from
//! that range: too large, it is re-encoded with less noise, a lower JPEG quality, then
//! smaller sides (never under `min_side`); too small, it is padded with metadata
//! ([`crate::pad`]). [`SyntheticSpec::benchmark`] is the benchmark's site.

use std::num::NonZeroUsize;

use crate::builder::Builder;
use crate::error::SiteError;
use crate::html::Page;
use crate::images::{render, Format, Image, ImageSpec};
use crate::pad::pad_to;
use crate::rng::Rng;
use crate::site::{Resource, Site};

/// Shape of a synthetic site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of pages (at least 1).
    pub pages: usize,
    /// Links on each page (tree children first, then pseudo-random pages).
    pub links_per_page: usize,
    /// Images on each page.
    pub images_per_page: usize,
    /// Size of the image pool.
    pub distinct_images: usize,
    /// Seeds everything.
    pub seed: u64,
    /// Smallest image side in pixels.
    pub min_side: u32,
    /// Largest image side in pixels.
    pub max_side: u32,
    /// Worker threads encoding images (0 = available parallelism).
    pub threads: usize,
    /// File size range of each image in bytes, inclusive (`None`: whatever the pixels
    /// encode to).
    pub bytes: Option<(u32, u32)>,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec {
            pages: 2000,
            links_per_page: 10,
            images_per_page: 10,
            distinct_images: 20_000,
            seed: 1,
            min_side: 64,
            max_side: 800,
            threads: 0,
            bytes: None,
        }
    }
}

impl SyntheticSpec {
    /// The benchmark's site: 2,000 pages linking 5 others and showing 10 images each,
    /// 20,000 distinct images of 5-30 KiB (about 350 MB), 64-800 px, seed 1.
    pub fn benchmark() -> SyntheticSpec {
        SyntheticSpec {
            pages: 2000,
            links_per_page: 5,
            images_per_page: 10,
            distinct_images: 20_000,
            seed: 1,
            bytes: Some((5 * 1024, 30 * 1024)),
            ..SyntheticSpec::default()
        }
    }
}

/// A synthetic site with default image sizes (see [`SyntheticSpec`]).
pub fn synthetic(
    pages: usize,
    links_per_page: usize,
    images_per_page: usize,
    distinct_images: usize,
    seed: u64,
) -> Result<Site, SiteError> {
    let spec = SyntheticSpec {
        pages,
        links_per_page,
        images_per_page,
        distinct_images,
        seed,
        ..Default::default()
    };
    synthetic_with(&spec)
}

/// A synthetic site shaped by `spec`.
pub fn synthetic_with(spec: &SyntheticSpec) -> Result<Site, SiteError> {
    let pages = spec.pages.max(1);
    let slots = pages * spec.images_per_page;
    let used = spec.distinct_images.min(slots);
    let images = render_pool(spec, used)?;
    let mut b = Builder::default();
    b.resource(
        "/robots.txt",
        Resource::new("text/plain; charset=utf-8", "User-agent: *\nAllow: /\n"),
    );
    for (k, image) in images.iter().enumerate() {
        b.image(&image_path(k, image.format), image);
    }
    let fanout = spec
        .links_per_page
        .div_ceil(2)
        .max(1)
        .min(spec.links_per_page);
    let mut rng = Rng::derive(spec.seed, 0x9a6e5);
    for i in 0..pages {
        let mut links: Vec<usize> = (i * fanout + 1..=i * fanout + fanout)
            .filter(|&c| c < pages)
            .collect();
        while links.len() < spec.links_per_page && pages > 1 {
            links.push(rng.range(0, pages as u64 - 1) as usize);
        }
        let mut p = Page::new(&format!("page {i}"));
        p.body(&format!("<h1>page {i}</h1>"));
        for s in (i * spec.images_per_page..(i + 1) * spec.images_per_page).filter(|_| used > 0) {
            let k = s % used;
            let path = image_path(k, images[k].format);
            p.body(&format!(
                "<img src=\"{path}\" alt=\"image {k}\" width=\"{}\">",
                images[k].width
            ))
            .images(&[&path]);
        }
        for l in links {
            let path = page_path(l);
            p.body(&format!("<a href=\"{path}\">page {l}</a>"))
                .links(&[&path]);
        }
        b.page(&page_path(i), &p);
    }
    Ok(b.finish("/"))
}

/// URL path of page `i`.
pub fn page_path(i: usize) -> String {
    if i == 0 {
        "/".into()
    } else {
        format!("/p/{i}.html")
    }
}

fn image_path(k: usize, format: Format) -> String {
    format!("/img/{k}.{}", format.extension())
}

/// What image `k` of the pool looks like: half JPEG, a quarter each PNG and WebP;
/// sides skewed towards small, like real sites.
fn image_spec(spec: &SyntheticSpec, k: usize) -> ImageSpec {
    let mut r = Rng::derive(spec.seed, k as u64);
    let format = match r.range(0, 3) {
        0 | 1 => Format::Jpeg,
        2 => Format::Png,
        _ => Format::WebP,
    };
    let (lo, hi) = (
        spec.min_side.max(1),
        spec.max_side.max(spec.min_side.max(1)),
    );
    let mut side = || lo + ((f64::from(hi - lo)) * r.unit() * r.unit()) as u32;
    let (width, height) = (side(), side());
    let mut s = ImageSpec::new(format, width, height, r.next_u64());
    s.quality = r.range(70, 90) as u8;
    s.noise = if format == Format::Jpeg {
        r.range(8, 40) as u8
    } else {
        0
    };
    s
}

/// Image `k`, fitted into `spec.bytes` when set.
fn fitted(spec: &SyntheticSpec, k: usize) -> Result<Image, SiteError> {
    let mut s = image_spec(spec, k);
    let Some((lo, hi)) = spec.bytes else {
        return render(&s);
    };
    let target = Rng::derive(spec.seed ^ 0xb17e5, k as u64).range(u64::from(lo), u64::from(hi));
    let target = target as usize;
    let min_side = spec.min_side.max(1);
    loop {
        let img = render(&s)?;
        let len = img.bytes.len();
        if len <= target {
            return Ok(pad_to(&img, target));
        }
        if s.noise > 0 {
            s.noise /= 2;
        } else if s.format == Format::Jpeg && s.quality > 40 {
            s.quality = s.quality.saturating_sub(15).max(40);
        } else if s.width > min_side || s.height > min_side {
            let scale = (target as f64 / len as f64).sqrt() * 0.9;
            let shrink = |side: u32| ((f64::from(side) * scale) as u32).clamp(min_side, side);
            (s.width, s.height) = (shrink(s.width), shrink(s.height));
        } else {
            return Ok(img);
        }
    }
}

/// Renders images `0..count` on worker threads.
fn render_pool(spec: &SyntheticSpec, count: usize) -> Result<Vec<Image>, SiteError> {
    let threads = match spec.threads {
        0 => std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        n => n,
    }
    .min(count.max(1));
    let parts: Vec<Result<Vec<(usize, Image)>, SiteError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|k| fitted(spec, k).map(|img| (k, img)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(SiteError::WorkerPanicked)))
            .collect()
    });
    let mut out: Vec<Option<Image>> = vec![None; count];
    for part in parts {
        for (k, img) in part? {
            out[k] = Some(img);
        }
    }
    out.into_iter()
        .map(|i| i.ok_or(SiteError::WorkerPanicked))
        .collect()
}
