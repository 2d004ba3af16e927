//! The HTML sources beyond `<img>`: frames and refreshes (pages), stylesheets and
//! manifests (resources fetched after the parse, see `resources`), `<style>` blocks,
//! preloads, posters, image inputs, `<object>` / `<embed>`, SVG `<image>`, JSON-LD and
//! microdata. Called from [`crate::extract`]'s visitor with its collector; the table of
//! what is found where is in `docs/extraction.md`.

use imgcrawl_events::FoundBy;
use scraper::ElementRef;

use crate::css;
use crate::extract::{has_image_extension, Collector};
use crate::normalize::normalize;
use crate::srcset;

/// Schema.org properties whose values are images, in JSON-LD and microdata.
const IMAGE_PROPS: [&str; 3] = ["image", "logo", "thumbnailurl"];
/// Deepest JSON-LD nesting walked (hostile documents stay cheap).
const MAX_JSON_DEPTH: usize = 32;
/// Largest JSON-LD script parsed, in bytes.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// Does a `rel` attribute hold `token`?
pub(crate) fn rel_has(el: &ElementRef<'_>, token: &str) -> bool {
    el.attr("rel")
        .unwrap_or("")
        .split_ascii_whitespace()
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// `<link>` beyond icons: stylesheets and manifests to fetch, image preloads.
pub(crate) fn link(c: &mut Collector, el: &ElementRef<'_>) {
    let href = el.attr("href");
    if rel_has(el, "stylesheet") {
        if let Some(u) = href.and_then(|h| normalize(&c.base, h)) {
            c.stylesheet(u);
        }
    }
    if rel_has(el, "manifest") {
        if let Some(u) = href.and_then(|h| normalize(&c.base, h)) {
            c.manifest(u);
        }
    }
    let as_image = el
        .attr("as")
        .is_some_and(|a| a.trim().eq_ignore_ascii_case("image"));
    if (rel_has(el, "preload") || rel_has(el, "prefetch")) && as_image {
        if let Some(h) = href {
            c.image(h, FoundBy::Preload, None);
        }
        if let Some(set) = el.attr("imagesrcset") {
            for u in srcset::urls(set) {
                c.image(u, FoundBy::Preload, None);
            }
        }
    }
}

/// `<meta http-equiv="refresh" content="5; url=/next">`: the target is a page.
pub(crate) fn refresh(c: &mut Collector, el: &ElementRef<'_>) {
    let is_refresh = el
        .attr("http-equiv")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"));
    if let (true, Some(content)) = (is_refresh, el.attr("content")) {
        if let Some(target) = refresh_target(content) {
            c.link(target);
        }
    }
}

/// The URL of a refresh's `content` (`N; url=X`, `N;URL='X'`, `N, X`, or `N X`).
pub fn refresh_target(content: &str) -> Option<&str> {
    let rest = content.trim_start();
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == ';' || c == ',');
    let rest = match rest.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("url") => {
            let r = rest[3..].trim_start();
            r.strip_prefix('=').map(str::trim_start).unwrap_or(rest)
        }
        _ => rest,
    };
    let rest = rest.trim();
    let unquoted = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or(""),
        _ => rest,
    };
    (!unquoted.is_empty()).then_some(unquoted)
}

/// Elements whose attribute is an image or a page: frames, posters, image inputs,
/// `<object>` / `<embed>` with image types, SVG `<image>`.
pub(crate) fn element(c: &mut Collector, el: &ElementRef<'_>) {
    match el.value().name() {
        "iframe" | "frame" => {
            if let Some(v) = el.attr("src") {
                c.link(v);
            }
        }
        "video" => {
            if let Some(v) = el.attr("poster") {
                c.image(v, FoundBy::VideoPoster, None);
            }
        }
        "input" => {
            let image = el
                .attr("type")
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("image"));
            if let (true, Some(v)) = (image, el.attr("src")) {
                c.image(v, FoundBy::InputImage, el.attr("alt"));
            }
        }
        "object" => embedded(c, el, "data"),
        "embed" => embedded(c, el, "src"),
        "image" if &*el.value().name.ns == "http://www.w3.org/2000/svg" => {
            // `href` (SVG 2) or `xlink:href` (SVG 1.1), whose namespace the parser keeps
            let href = el
                .value()
                .attrs()
                .find(|(k, _)| *k == "href")
                .map(|(_, v)| v);
            if let Some(v) = href {
                c.image(v, FoundBy::SvgImage, None);
            }
        }
        _ => {}
    }
}

/// `<object data>` / `<embed src>`: an image when its `type` is `image/*` or, without
/// a type, when the URL names an image file.
fn embedded(c: &mut Collector, el: &ElementRef<'_>, attr: &str) {
    let Some(raw) = el.attr(attr) else {
        return;
    };
    let Some(url) = normalize(&c.base, raw) else {
        return;
    };
    let image = match el.attr("type").map(str::trim) {
        Some(t) if !t.is_empty() => t.to_ascii_lowercase().starts_with("image/"),
        _ => has_image_extension(&url),
    };
    if image {
        c.image_url(url, FoundBy::Embed, None);
    }
}

/// A `<style>` block: its images (resolved against the page's base) and imports.
pub(crate) fn style_block(c: &mut Collector, el: &ElementRef<'_>) {
    let text: String = el.text().collect();
    let sheet = css::scan(&text);
    for u in &sheet.images {
        c.image(u, FoundBy::StyleBlock, None);
    }
    for i in &sheet.imports {
        if let Some(u) = normalize(&c.base, i) {
            c.stylesheet(u);
        }
    }
}

/// A `<script type="application/ld+json">`: its `image` / `logo` / `thumbnailUrl`
/// values. Other scripts are code, never read.
pub(crate) fn script(c: &mut Collector, el: &ElementRef<'_>) {
    let ld = el.attr("type").is_some_and(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/ld+json")
    });
    if !ld {
        return;
    }
    let text: String = el.text().collect();
    if text.len() > MAX_JSON_BYTES {
        return;
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text.trim()) else {
        return;
    };
    let mut found = Vec::new();
    json_images(&value, false, 0, &mut found);
    for u in found {
        c.image(&u, FoundBy::JsonLd, None);
    }
}

/// Walks JSON-LD: strings under an image property (directly, in arrays, or as the
/// `url` / `contentUrl` / `@id` of an `ImageObject`) are images.
fn json_images(v: &serde_json::Value, in_image: bool, depth: usize, out: &mut Vec<String>) {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        return;
    }
    match v {
        Value::String(s) if in_image => out.push(s.clone()),
        Value::Array(items) => {
            for i in items {
                json_images(i, in_image, depth + 1, out);
            }
        }
        Value::Object(map) => {
            for (k, child) in map {
                let key = k.to_ascii_lowercase();
                let image_key = IMAGE_PROPS.contains(&key.as_str())
                    || (in_image && matches!(key.as_str(), "url" | "contenturl" | "@id"));
                match child {
                    Value::String(_) if !image_key => {}
                    _ => json_images(child, image_key, depth + 1, out),
                }
            }
        }
        _ => {}
    }
}

/// Microdata: an element with `itemprop` naming an image property; its value is the
/// element's URL attribute (`src`, `href`, `data`) or a `<meta content>`.
pub(crate) fn microdata(c: &mut Collector, el: &ElementRef<'_>) {
    let Some(props) = el.attr("itemprop") else {
        return;
    };
    let is_image = props
        .split_ascii_whitespace()
        .any(|p| IMAGE_PROPS.contains(&p.to_ascii_lowercase().as_str()));
    if !is_image {
        return;
    }
    let value = match el.value().name() {
        "meta" => el.attr("content"),
        "img" | "source" | "video" | "embed" | "iframe" | "audio" | "track" | "input" => {
            el.attr("src")
        }
        "a" | "area" | "link" => el.attr("href"),
        "object" => el.attr("data"),
        _ => None,
    };
    if let Some(v) = value {
        c.image(v, FoundBy::Microdata, None);
    }
}
