//! The fuzz targets: every parser of untrusted input, each a function of raw bytes
//! that must neither panic nor break its invariants.
//!
//! The coverage-guided harness (`fuzz/harness`, libFuzzer, `just fuzz`) calls
//! [`run`] with generated inputs; `tests/replay.rs` calls it with every committed input
//! of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, so what fuzzing found
//! is replayed by every CI run. See docs/security.md for what ran and what it found.

use imgcrawl_crawl::extract::{extract, Limits};
use imgcrawl_crawl::normalize::{canonical, normalize};
use imgcrawl_crawl::{srcset, style};
use imgcrawl_download::sniff::sniff;
use imgcrawl_download::validate::{check_structure, inspect};
use imgcrawl_events::{decode, EventKind, Format};
use imgcrawl_fetch::RobotsRules;
use url::Url;

/// Every target's name, as `just fuzz` and the corpus directories spell them.
pub const TARGETS: [&str; 10] = [
    "sniff",
    "inspect",
    "structure",
    "svg",
    "srcset",
    "css",
    "extract",
    "robots",
    "normalize",
    "event",
];

/// Pixels allowed by `inspect` (the download stage's default).
const MAX_PIXELS: u64 = 64_000_000;

/// Runs target `name` on `data`; `false` for an unknown name. Panics on a finding.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "sniff" => sniff_target(data),
        "inspect" => inspect_target(data),
        "structure" => structure_target(data),
        "svg" => {
            let _ = check_structure(Format::Svg, data);
        }
        "srcset" => srcset_target(data),
        "css" => {
            let _ = style::background_urls(&String::from_utf8_lossy(data));
        }
        "extract" => extract_target(data),
        "robots" => robots_target(data),
        "normalize" => normalize_target(data),
        "event" => event_target(data),
        _ => return false,
    }
    true
}

/// The format sniffed agrees with what `inspect` reports.
fn sniff_target(data: &[u8]) {
    let sniffed = sniff(data);
    if let Ok(info) = inspect(data, MAX_PIXELS) {
        assert_eq!(Some(info.format), sniffed, "inspect and sniff disagree");
    }
}

/// An accepted image has sane dimensions.
fn inspect_target(data: &[u8]) {
    if let Ok(info) = inspect(data, MAX_PIXELS) {
        assert!(info.width <= imgcrawl_download::validate::MAX_SIDE);
        assert!(info.height <= imgcrawl_download::validate::MAX_SIDE);
        assert!(u64::from(info.width) * u64::from(info.height) <= MAX_PIXELS);
    }
}

/// The first byte picks the walker, the rest is the file: every walker is driven
/// whatever the magic bytes say.
fn structure_target(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let format = Format::ALL[usize::from(pick) % Format::ALL.len()];
    let _ = check_structure(format, rest);
}

/// Every candidate URL is a substring of the input.
fn srcset_target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for u in srcset::urls(&text) {
        assert!(text.contains(u), "srcset invented {u:?}");
    }
}

fn extract_target(data: &[u8]) {
    let html = String::from_utf8_lossy(data);
    let Ok(page) = Url::parse("https://example.org/dir/page.html") else {
        return;
    };
    let limits = Limits {
        max_links: 1000,
        max_images: 1000,
    };
    let found = extract(&html, &page, limits);
    for img in &found.images {
        assert!(matches!(img.url.scheme(), "http" | "https"));
    }
}

/// The first line is the path asked about, the rest is the robots.txt.
fn robots_target(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (path, body) = data.split_at(split);
    let rules = RobotsRules::parse("imgcrawl", body);
    let path = String::from_utf8_lossy(path);
    if let Ok(url) = Url::parse("https://example.org/").and_then(|b| b.join(&path)) {
        let _ = rules.allowed(&url);
    }
    let _ = rules.crawl_delay();
}

/// Normalising is idempotent: a normal URL normalises to itself.
fn normalize_target(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let Ok(base) = Url::parse("https://Example.org:443/a/b/?q#f") else {
        return;
    };
    if let Some(once) = normalize(&base, &raw) {
        let twice = canonical(once.clone());
        assert_eq!(
            twice.as_ref(),
            Some(&once),
            "normalising {raw:?} twice changed it"
        );
        assert!(once.fragment().is_none());
    }
}

/// The first byte picks the subject, the rest is the body.
fn event_target(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kind = EventKind::ALL[usize::from(pick) % EventKind::ALL.len()];
    let _ = decode(&kind.subject(), None, body);
    let _ = decode(&kind.subject(), Some(&kind.header_value()), body);
}
