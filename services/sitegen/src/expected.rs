//! Ground truth: what a correct crawl of a generated site must produce.
//!
//! A site's `truth` lists everything reachable from the seed with no depth limit, each
//! item with the link depth at which a breadth-first crawl first meets it;
//! [`Expected::for_job`] turns it into the expectation for a job's depth limit and image
//! filters. Paths are URL paths (percent-encoded); an image whose `alt_host` is set is
//! served under the alternate origin. `must_not_fetch` paths must never be requested,
//! under either host.

use std::collections::{BTreeMap, BTreeSet};

use imgcrawl_events::{ImageFilters, PageFailure, RejectReason, Scope};

use crate::images::Format;

/// An image URL a correct crawler must download and index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedImage {
    /// The URL path as found on the page (after normalisation).
    pub url_path: String,
    /// The path after redirects (equal to `url_path` when there are none).
    pub final_path: String,
    /// Served under the alternate origin (a CDN-like second host).
    pub alt_host: bool,
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// Format (`format.name()` is the pipeline's format string).
    pub format: Format,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// Lowest depth of a page that references it.
    pub depth: u32,
}

/// An image URL a correct crawler must reject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedRejection {
    /// The URL path as found on the page.
    pub url_path: String,
    /// Why.
    pub reason: RejectReason,
    /// The HTTP status, set only for [`RejectReason::HttpStatus`].
    pub http_status: Option<u16>,
    /// Size of the body served for it, when a body is inspected (not an image,
    /// broken image): a job's byte cap applies before the bytes can be judged.
    pub body_bytes: Option<u64>,
    /// Lowest depth of a page that references it.
    pub depth: u32,
}

/// A page a correct crawler must fetch and parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPage {
    /// The path as discovered.
    pub path: String,
    /// The path after redirects.
    pub final_path: String,
    /// Every path requested for it, in order (redirect hops, then the final path).
    pub hops: Vec<String>,
    /// Link depth from the seed (seed = 0).
    pub depth: u32,
}

/// A page a correct crawler must report as failed (or skipped), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPageFailure {
    /// The path as discovered.
    pub path: String,
    /// Why.
    pub reason: PageFailure,
    /// The HTTP status, when the failure had a final response (`HttpStatus`, `NotHtml`).
    pub http_status: Option<u16>,
    /// Link depth from the seed.
    pub depth: u32,
    /// Paths requested for it (empty when it must not be fetched at all).
    pub hops: Vec<String>,
}

/// The ground truth for one crawl configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Image URLs downloaded and indexed; several may share one `sha256`.
    pub images: Vec<ExpectedImage>,
    /// Image URLs rejected.
    pub rejected: Vec<ExpectedRejection>,
    /// Pages fetched.
    pub pages_fetched: Vec<ExpectedPage>,
    /// Pages failed or skipped (robots, HTTP errors, not HTML, redirect loops, ...).
    pub pages_failed: Vec<ExpectedPageFailure>,
    /// Paths never requested (robots-disallowed, out of scope, beyond the depth limit).
    pub must_not_fetch: Vec<String>,
}

impl Expected {
    /// The expectation for a job with `scope.max_depth` and `filters`, from a site's
    /// depth-unlimited truth. Filters apply in the order a downloader meets them: the
    /// byte cap, then the accepted formats, then minimum dimensions and size.
    /// (`max_pages`, `max_images`, include/exclude patterns are not modelled.)
    pub fn for_job(&self, scope: &Scope, filters: &ImageFilters) -> Expected {
        let max = scope.max_depth;
        let mut out = Expected::default();
        let mut never: BTreeSet<String> = self.must_not_fetch.iter().cloned().collect();
        for p in &self.pages_fetched {
            if p.depth <= max {
                out.pages_fetched.push(p.clone());
            } else {
                never.extend(p.hops.iter().cloned());
            }
        }
        for p in &self.pages_failed {
            if p.depth <= max {
                out.pages_failed.push(p.clone());
            } else {
                never.extend(p.hops.iter().cloned());
            }
        }
        for i in &self.images {
            if i.depth > max {
                never.insert(i.url_path.clone());
                never.insert(i.final_path.clone());
            } else if let Some(reason) = filter_reason(i, filters) {
                out.rejected.push(ExpectedRejection {
                    url_path: i.url_path.clone(),
                    reason,
                    http_status: None,
                    body_bytes: Some(i.bytes),
                    depth: i.depth,
                });
            } else {
                out.images.push(i.clone());
            }
        }
        for r in &self.rejected {
            if r.depth <= max {
                let mut r = r.clone();
                // The download stops reading at the byte cap, before it can tell
                // a broken or fake image from a good one.
                if r.body_bytes.is_some_and(|b| b > filters.max_bytes) {
                    r.reason = RejectReason::TooLarge;
                }
                out.rejected.push(r);
            } else if r.reason != RejectReason::Robots {
                never.insert(r.url_path.clone());
            }
        }
        out.must_not_fetch = never.into_iter().collect();
        out
    }

    /// The distinct SHA-256s of the expected images (one image, possibly many URLs).
    pub fn distinct_sha256(&self) -> BTreeSet<&str> {
        self.images.iter().map(|i| i.sha256.as_str()).collect()
    }

    /// Expected image URLs grouped by SHA-256.
    pub fn sources_by_sha256(&self) -> BTreeMap<&str, Vec<&ExpectedImage>> {
        let mut m: BTreeMap<&str, Vec<&ExpectedImage>> = BTreeMap::new();
        for i in &self.images {
            m.entry(i.sha256.as_str()).or_default().push(i);
        }
        m
    }

    /// Paths of the pages fetched, as discovered.
    pub fn fetched_paths(&self) -> Vec<&str> {
        self.pages_fetched.iter().map(|p| p.path.as_str()).collect()
    }

    /// The expected image at `url_path`, if any.
    pub fn image(&self, url_path: &str) -> Option<&ExpectedImage> {
        self.images.iter().find(|i| i.url_path == url_path)
    }

    /// The expected rejection reason for `url_path`, if any.
    pub fn rejection(&self, url_path: &str) -> Option<RejectReason> {
        self.rejected
            .iter()
            .find(|r| r.url_path == url_path)
            .map(|r| r.reason)
    }

    /// Sum of the sizes of the distinct images.
    pub fn distinct_bytes(&self) -> u64 {
        let mut seen = BTreeSet::new();
        self.images
            .iter()
            .filter(|i| seen.insert(i.sha256.as_str()))
            .map(|i| i.bytes)
            .sum()
    }
}

/// Why `filters` reject image `i`, if they do.
fn filter_reason(i: &ExpectedImage, f: &ImageFilters) -> Option<RejectReason> {
    if i.bytes > f.max_bytes {
        return Some(RejectReason::TooLarge);
    }
    if !f.formats.is_empty()
        && !f
            .formats
            .iter()
            .any(|n| n.eq_ignore_ascii_case(i.format.name()))
    {
        return Some(RejectReason::FormatNotAccepted);
    }
    if i.width < f.min_width || i.height < f.min_height || i.bytes < f.min_bytes {
        return Some(RejectReason::TooSmall);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(path: &str, depth: u32, w: u32, fmt: Format) -> ExpectedImage {
        ExpectedImage {
            url_path: path.into(),
            final_path: path.into(),
            alt_host: false,
            sha256: format!("sha-{path}"),
            format: fmt,
            width: w,
            height: w,
            bytes: 1000,
            depth,
        }
    }

    fn page(path: &str, depth: u32) -> ExpectedPage {
        ExpectedPage {
            path: path.into(),
            final_path: path.into(),
            hops: vec![path.into()],
            depth,
        }
    }

    #[test]
    fn depth_limit_moves_deep_pages_and_images_to_must_not_fetch() {
        let truth = Expected {
            images: vec![
                img("/a.png", 0, 50, Format::Png),
                img("/deep.png", 3, 50, Format::Png),
            ],
            pages_fetched: vec![page("/", 0), page("/d3", 3)],
            ..Default::default()
        };
        let e = truth.for_job(
            &Scope {
                max_depth: 2,
                ..Default::default()
            },
            &ImageFilters::default(),
        );
        assert_eq!(e.fetched_paths(), vec!["/"]);
        assert_eq!(e.images.len(), 1);
        assert_eq!(
            e.must_not_fetch,
            vec!["/d3".to_string(), "/deep.png".to_string()]
        );
        let all = truth.for_job(
            &Scope {
                max_depth: 3,
                ..Default::default()
            },
            &ImageFilters::default(),
        );
        assert_eq!(all, truth);
    }

    #[test]
    fn filters_reject_in_downloader_order() {
        let truth = Expected {
            images: vec![
                img("/small.png", 0, 8, Format::Png),
                img("/big.jpg", 0, 500, Format::Jpeg),
            ],
            ..Default::default()
        };
        let f = ImageFilters {
            min_width: 16,
            formats: vec!["png".into()],
            ..Default::default()
        };
        let e = truth.for_job(&Scope::default(), &f);
        assert!(e.images.is_empty());
        assert_eq!(e.rejection("/small.png"), Some(RejectReason::TooSmall));
        assert_eq!(
            e.rejection("/big.jpg"),
            Some(RejectReason::FormatNotAccepted)
        );
        let e = truth.for_job(
            &Scope::default(),
            &ImageFilters {
                max_bytes: 999,
                ..Default::default()
            },
        );
        assert_eq!(e.rejection("/big.jpg"), Some(RejectReason::TooLarge));
    }
}
