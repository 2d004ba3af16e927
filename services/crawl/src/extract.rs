//! Extraction of links, image URLs and the title from one HTML page, with `scraper`.
//!
//! Synchronous on purpose: scraper's DOM is `!Send`, so it must never live across an
//! `.await`; callers parse, extract into owned data, and drop the DOM in one call.
//!
//! | where | found_by |
//! |---|---|
//! | `<img src>` | `img_src` |
//! | every candidate of `<img srcset>` | `srcset` |
//! | `<picture><source srcset>` | `picture_source` |
//! | `data-src`, `data-srcset`, `data-original`, `data-lazy-src`, `data-lazy` on `<img>` / `<source>` (and on any element when the URL names an image file) | `lazy_attribute` |
//! | `url(...)` in an inline `style`'s `background` / `background-image`, any element | `inline_style` |
//! | `<meta property\|name="og:image">` (`og:image:url`, `og:image:secure_url`) | `og_image` |
//! | `<meta name\|property="twitter:image">` (`twitter:image:src`) | `twitter_image` |
//! | `<a href>` whose path ends in an image extension | `link` |
//! | `<link rel~="icon" / "apple-touch-icon" / "apple-touch-icon-precomposed" / "mask-icon">` | `icon` |
//! | `url()` / `image-set()` of any image property in a `<style>` block | `style_block` |
//! | `<link rel="preload" as="image">` `href` and `imagesrcset` | `preload` |
//! | `<video poster>` | `video_poster` |
//! | `<input type="image" src>` | `input_image` |
//! | `<object data>` / `<embed src>` with an `image/*` type (or an image file URL) | `embed` |
//! | SVG `<image href>` / `xlink:href` | `svg_image` |
//! | `image` / `logo` / `thumbnailUrl` in `<script type="application/ld+json">` | `json_ld` |
//! | `itemprop="image"` (`logo`, `thumbnailUrl`) microdata values | `microdata` |
//!
//! Stylesheets (`<link rel="stylesheet">`, `@import` in `<style>`) and web app
//! manifests (`<link rel="manifest">`) are collected for the `resources` step, which
//! fetches them and adds `stylesheet` and `manifest` images. `<img>` inside
//! `<noscript>` (a common lazy-loading fallback) is found too. Links are `<a href>`,
//! `<area href>`, `<iframe src>` / `<frame src>` and `<meta http-equiv="refresh">`
//! targets, except those to image files. Comments and scripts (but JSON-LD) are never
//! read, so URLs in them are not found. Everything is resolved
//! against `<base href>` (itself resolved against the page URL) and normalised; other
//! schemes (`data:`, `javascript:`, `mailto:`...) are ignored. Alt text comes from the
//! `<img>` (for `<source>`, from its `<picture>`'s `<img>`).

use std::collections::{HashMap, HashSet};

use imgcrawl_events::FoundBy;
use scraper::{ElementRef, Html};
use url::Url;

use crate::normalize::normalize;
use crate::sources;
use crate::srcset;
use crate::style::background_urls;

/// Lazy-loading attributes holding one URL.
const LAZY_SRC: [&str; 4] = ["data-src", "data-original", "data-lazy-src", "data-lazy"];
/// Lazy-loading attribute holding a srcset.
const LAZY_SRCSET: &str = "data-srcset";
/// Path extensions that mark an image file.
const IMAGE_EXTENSIONS: [&str; 12] = [
    "jpg", "jpeg", "png", "gif", "webp", "avif", "svg", "bmp", "ico", "tif", "tiff", "jfif",
];
/// `rel` tokens of icon links.
const ICON_RELS: [&str; 4] = [
    "icon",
    "apple-touch-icon",
    "apple-touch-icon-precomposed",
    "mask-icon",
];
/// Most stylesheets and manifests one page may name.
const MAX_RESOURCES: usize = 64;
/// Longest title and alt text kept, in characters.
const MAX_TEXT: usize = 1000;

/// Caps on what one page may yield (memory stays bounded on hostile pages).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most distinct links kept.
    pub max_links: usize,
    /// Most distinct image URLs kept.
    pub max_images: usize,
}

/// An image URL found on a page.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundImage {
    /// Normalised absolute URL.
    pub url: Url,
    /// Alt text, if any.
    pub alt: Option<String>,
    /// How it was found (the first way, for URLs found several times).
    pub found_by: FoundBy,
}

/// What a page yielded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The `<title>`, whitespace collapsed.
    pub title: Option<String>,
    /// Distinct page links in document order (normalised, http(s)).
    pub links: Vec<Url>,
    /// Link occurrences, before dedup and caps.
    pub links_found: u32,
    /// Distinct images in document order.
    pub images: Vec<FoundImage>,
    /// Image URL occurrences, before dedup and caps.
    pub images_found: u32,
    /// Stylesheets to fetch (`<link rel="stylesheet">`, `@import` in `<style>`), distinct,
    /// in document order.
    pub stylesheets: Vec<Url>,
    /// Web app manifests to fetch (`<link rel="manifest">`), distinct.
    pub manifests: Vec<Url>,
}

impl Extracted {
    /// Adds an image found after the parse (a stylesheet's, a manifest's, a rendered
    /// DOM's), unless it is already there or `max_images` are; counts it as found.
    pub fn add_image(&mut self, url: Url, found_by: FoundBy, max_images: usize) {
        self.images_found = self.images_found.saturating_add(1);
        if self.images.len() < max_images && !self.images.iter().any(|i| i.url == url) {
            self.images.push(FoundImage {
                url,
                alt: None,
                found_by,
            });
        }
    }

    /// Adds a link found after the parse (a rendered DOM's), unless it is already there
    /// or `max_links` are; counts it as found.
    pub fn add_link(&mut self, url: Url, max_links: usize) {
        self.links_found = self.links_found.saturating_add(1);
        if self.links.len() < max_links && !self.links.contains(&url) {
            self.links.push(url);
        }
    }
}

/// Collapses whitespace, trims, caps the length; `None` when empty.
fn clean_text(s: &str) -> Option<String> {
    let t: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TEXT)
        .collect();
    (!t.is_empty()).then_some(t)
}

/// Does the URL's path end in an image file extension?
pub fn has_image_extension(url: &Url) -> bool {
    let last = url.path().rsplit('/').next().unwrap_or("");
    last.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e)))
}

/// The visitor's state: the base URL, caps, and what was found so far.
pub(crate) struct Collector {
    pub(crate) base: Url,
    limits: Limits,
    out: Extracted,
    seen_links: HashSet<String>,
    seen_images: HashMap<String, usize>,
}

impl Collector {
    pub(crate) fn link(&mut self, raw: &str) {
        let Some(url) = normalize(&self.base, raw) else {
            return;
        };
        if has_image_extension(&url) {
            return self.image_url(url, FoundBy::Link, None);
        }
        self.out.links_found = self.out.links_found.saturating_add(1);
        if self.out.links.len() < self.limits.max_links
            && self.seen_links.insert(url.as_str().to_string())
        {
            self.out.links.push(url);
        }
    }

    pub(crate) fn image(&mut self, raw: &str, found_by: FoundBy, alt: Option<&str>) {
        if let Some(url) = normalize(&self.base, raw) {
            self.image_url(url, found_by, alt);
        }
    }

    pub(crate) fn image_url(&mut self, url: Url, found_by: FoundBy, alt: Option<&str>) {
        self.out.images_found = self.out.images_found.saturating_add(1);
        let alt = alt.and_then(clean_text);
        if let Some(&i) = self.seen_images.get(url.as_str()) {
            if self.out.images[i].alt.is_none() {
                self.out.images[i].alt = alt;
            }
            return;
        }
        if self.out.images.len() < self.limits.max_images {
            self.seen_images
                .insert(url.as_str().to_string(), self.out.images.len());
            self.out.images.push(FoundImage { url, alt, found_by });
        }
    }

    /// A stylesheet to fetch after the parse.
    pub(crate) fn stylesheet(&mut self, url: Url) {
        if self.out.stylesheets.len() < MAX_RESOURCES && !self.out.stylesheets.contains(&url) {
            self.out.stylesheets.push(url);
        }
    }

    /// A web app manifest to fetch after the parse.
    pub(crate) fn manifest(&mut self, url: Url) {
        if self.out.manifests.len() < MAX_RESOURCES && !self.out.manifests.contains(&url) {
            self.out.manifests.push(url);
        }
    }

    fn srcset(&mut self, value: &str, found_by: FoundBy, alt: Option<&str>) {
        for u in srcset::urls(value) {
            self.image(u, found_by, alt);
        }
    }

    /// Lazy attributes of `<img>` / `<source>` (any URL) or other elements (image files only).
    fn lazy(&mut self, el: &ElementRef<'_>, alt: Option<&str>, media: bool) {
        for a in LAZY_SRC {
            if let Some(v) = el.attr(a) {
                match normalize(&self.base, v) {
                    Some(u) if media || has_image_extension(&u) => {
                        self.image_url(u, FoundBy::LazyAttribute, alt)
                    }
                    _ => {}
                }
            }
        }
        if let Some(v) = el.attr(LAZY_SRCSET) {
            for u in srcset::urls(v) {
                match normalize(&self.base, u) {
                    Some(u) if media || has_image_extension(&u) => {
                        self.image_url(u, FoundBy::LazyAttribute, alt)
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The `alt` of the `<img>` of the `<picture>` that holds `source`.
fn picture_alt<'a>(source: &ElementRef<'a>) -> (bool, Option<&'a str>) {
    let Some(parent) = source.parent().and_then(ElementRef::wrap) else {
        return (false, None);
    };
    if parent.value().name() != "picture" {
        return (false, None);
    }
    let alt = parent
        .children()
        .filter_map(ElementRef::wrap)
        .find(|c| c.value().name() == "img")
        .and_then(|img| img.attr("alt"));
    (true, alt)
}

fn visit(c: &mut Collector, el: ElementRef<'_>, in_noscript: bool) {
    let name = el.value().name();
    match name {
        "img" => {
            let alt = el.attr("alt");
            if let Some(v) = el.attr("src") {
                c.image(v, FoundBy::ImgSrc, alt);
            }
            if let Some(v) = el.attr("srcset") {
                c.srcset(v, FoundBy::Srcset, alt);
            }
            c.lazy(&el, alt, true);
        }
        "source" => {
            let (in_picture, alt) = picture_alt(&el);
            if in_picture {
                if let Some(v) = el.attr("srcset") {
                    c.srcset(v, FoundBy::PictureSource, alt);
                }
            }
            c.lazy(&el, alt, in_picture);
        }
        "meta" => {
            meta(c, &el);
            sources::refresh(c, &el);
        }
        "a" | "area" => {
            if let Some(v) = el.attr("href") {
                c.link(v);
            }
        }
        "link" => {
            let rel = el.attr("rel").unwrap_or("").to_ascii_lowercase();
            if rel.split_ascii_whitespace().any(|t| ICON_RELS.contains(&t)) {
                if let Some(v) = el.attr("href") {
                    c.image(v, FoundBy::Icon, None);
                }
            }
            sources::link(c, &el);
        }
        "style" => sources::style_block(c, &el),
        "script" => sources::script(c, &el),
        "noscript" if !in_noscript => {
            let inner: String = el.text().collect();
            if inner.contains('<') {
                let frag = Html::parse_fragment(&inner);
                for e in frag
                    .root_element()
                    .descendants()
                    .filter_map(ElementRef::wrap)
                {
                    visit(c, e, true);
                }
            }
        }
        _ => {
            sources::element(c, &el);
            c.lazy(&el, None, false);
        }
    }
    sources::microdata(c, &el);
    if let Some(style) = el.attr("style") {
        for u in background_urls(style) {
            c.image(&u, FoundBy::InlineStyle, None);
        }
    }
}

fn meta(c: &mut Collector, el: &ElementRef<'_>) {
    let Some(content) = el.attr("content") else {
        return;
    };
    for key in [el.attr("property"), el.attr("name")].into_iter().flatten() {
        let found_by = match key.trim().to_ascii_lowercase().as_str() {
            "og:image" | "og:image:url" | "og:image:secure_url" => FoundBy::OgImage,
            "twitter:image" | "twitter:image:src" => FoundBy::TwitterImage,
            _ => continue,
        };
        return c.image(content, found_by, None);
    }
}

/// The document's base URL: the first `<base href>` resolved against the page URL, if
/// it is a valid http(s) URL; otherwise the page URL.
fn base_url(doc: &Html, page: &Url) -> Url {
    doc.root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| e.value().name() == "base" && e.attr("href").is_some())
        .and_then(|e| e.attr("href"))
        .and_then(|h| page.join(h.trim()).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .unwrap_or_else(|| page.clone())
}

/// The first HTML `<title>` (not an SVG one).
fn title(doc: &Html) -> Option<String> {
    doc.root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
        .find(|e| {
            e.value().name() == "title" && &*e.value().name.ns == "http://www.w3.org/1999/xhtml"
        })
        .and_then(|e| clean_text(&e.text().collect::<String>()))
}

/// Parses `html` (fetched from `page_url`) and extracts title, links and images.
pub fn extract(html: &str, page_url: &Url, limits: Limits) -> Extracted {
    let doc = Html::parse_document(html);
    let mut c = Collector {
        base: base_url(&doc, page_url),
        limits,
        out: Extracted {
            title: title(&doc),
            ..Default::default()
        },
        seen_links: HashSet::new(),
        seen_images: HashMap::new(),
    };
    for el in doc
        .root_element()
        .descendants()
        .filter_map(ElementRef::wrap)
    {
        visit(&mut c, el, false);
    }
    c.out
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
