//! Job specification: what a crawl request asks for, with every default filled in.
//!
//! A request may be as small as `{"url": "https://example.org/"}`; [`JobSpec::resolve`]
//! turns the wire form into a complete spec in one place, so the crawl stage, the
//! download stage and the index all agree on the defaults.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::types::CrawlRequested;
use crate::{job_id_from_sequence, DecodeError};

/// Which URLs belong to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scope {
    /// Hosts whose pages are crawled. Empty means the seeds' hosts.
    pub hosts: Vec<String>,
    /// Also crawl subdomains of the allowed hosts.
    pub subdomains: bool,
    /// Link depth from a seed (seed = 0) up to which pages are fetched.
    pub max_depth: u32,
    /// Most pages fetched for the job.
    pub max_pages: u64,
    /// Most image URLs sent to download for the job.
    pub max_images: u64,
    /// If non-empty, a page URL's path (and query) must match one of these patterns
    /// (`*` matches any run of characters, a trailing `$` anchors the end).
    pub include: Vec<String>,
    /// A page URL whose path (and query) matches one of these patterns is skipped.
    pub exclude: Vec<String>,
    /// Images may come from any host (CDNs); `false` keeps images to the page hosts too.
    pub images_any_host: bool,
    /// Host patterns whose pages are also rendered in headless Chromium by the render
    /// role (`*` every host, `*.example.org` its subdomains, else an exact host).
    /// Empty (the default): no page is rendered.
    pub render: Vec<String>,
}

impl Default for Scope {
    fn default() -> Self {
        Scope {
            hosts: Vec::new(),
            subdomains: false,
            max_depth: 5,
            max_pages: 10_000,
            max_images: 100_000,
            include: Vec::new(),
            exclude: Vec::new(),
            images_any_host: true,
            render: Vec::new(),
        }
    }
}

/// How gently to treat the crawled hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Politeness {
    /// Obey robots.txt for pages and images.
    pub obey_robots: bool,
    /// Minimum milliseconds between two requests to one host (robots.txt
    /// `Crawl-delay` raises it, up to `max_crawl_delay_ms`).
    pub delay_ms: u64,
    /// Upper bound applied to a robots.txt `Crawl-delay`.
    pub max_crawl_delay_ms: u64,
    /// Most requests in flight to one host from one stage process.
    pub per_host_concurrency: u32,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            obey_robots: true,
            delay_ms: 0,
            max_crawl_delay_ms: 10_000,
            per_host_concurrency: 16,
        }
    }
}

/// Which downloaded images are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFilters {
    /// Smallest accepted width in pixels.
    pub min_width: u32,
    /// Smallest accepted height in pixels.
    pub min_height: u32,
    /// Smallest accepted size in bytes.
    pub min_bytes: u64,
    /// Largest accepted size in bytes (the body is cut off and rejected past it).
    pub max_bytes: u64,
    /// Accepted formats (`jpeg`, `png`, `gif`, `webp`, `svg`, `avif`, ...); empty = all.
    pub formats: Vec<String>,
}

impl Default for ImageFilters {
    fn default() -> Self {
        ImageFilters {
            min_width: 0,
            min_height: 0,
            min_bytes: 0,
            max_bytes: 20 * 1024 * 1024,
            formats: Vec::new(),
        }
    }
}

/// A crawl job with every default resolved; what stages act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job id.
    pub job_id: Uuid,
    /// Normalised seed URLs (at least one).
    pub seeds: Vec<String>,
    /// Hosts in scope (lowercase), resolved from the seeds when the request gave none.
    pub hosts: Vec<String>,
    /// Scope rules.
    pub scope: Scope,
    /// Politeness rules.
    pub politeness: Politeness,
    /// Image filters.
    pub images: ImageFilters,
    /// When the request was made (its `occurred_at`, or the stream's timestamp).
    pub requested_at: DateTime<Utc>,
    /// Free-form label from the request.
    #[serde(default)]
    pub label: Option<String>,
}

impl JobSpec {
    /// Resolves a request into a spec. `stream` and `sequence` derive the job id when the
    /// request has none; `published` stands in for a missing `occurred_at`.
    pub fn resolve(
        req: &CrawlRequested,
        stream: &str,
        sequence: u64,
        published: DateTime<Utc>,
    ) -> Result<JobSpec, DecodeError> {
        let mut raw: Vec<&str> = req.urls.iter().map(String::as_str).collect();
        if let Some(u) = &req.url {
            raw.insert(0, u);
        }
        if raw.is_empty() {
            return Err(DecodeError::Invalid(
                "crawl request has no `url` or `urls`".into(),
            ));
        }
        let mut seeds = Vec::new();
        for s in raw {
            let u =
                Url::parse(s).map_err(|e| DecodeError::Invalid(format!("seed url {s:?}: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(DecodeError::Invalid(format!(
                    "seed url {s:?}: only http(s) urls with a host"
                )));
            }
            let mut u = u;
            u.set_fragment(None);
            if !seeds.contains(&u.to_string()) {
                seeds.push(u.to_string());
            }
        }
        let scope = req.scope.clone().unwrap_or_default();
        let hosts = if scope.hosts.is_empty() {
            let mut h: Vec<String> = Vec::new();
            for s in &seeds {
                let host = Url::parse(s)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                    .unwrap_or_default();
                if !h.contains(&host) {
                    h.push(host);
                }
            }
            h
        } else {
            scope
                .hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect()
        };
        Ok(JobSpec {
            job_id: req
                .job_id
                .unwrap_or_else(|| job_id_from_sequence(stream, sequence)),
            seeds,
            hosts,
            scope,
            politeness: req.politeness.clone().unwrap_or_default(),
            images: req.images.clone().unwrap_or_default(),
            requested_at: req.occurred_at.unwrap_or(published),
            label: req.label.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> CrawlRequested {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn bare_url_gets_every_default() {
        let now = Utc::now();
        let spec =
            JobSpec::resolve(&req(r#"{"url":"https://Example.org/a#x"}"#), "S", 9, now).unwrap();
        assert_eq!(spec.seeds, vec!["https://example.org/a".to_string()]);
        assert_eq!(spec.hosts, vec!["example.org".to_string()]);
        assert_eq!(spec.job_id, job_id_from_sequence("S", 9));
        assert_eq!(spec.requested_at, now);
        assert_eq!(spec.scope, Scope::default());
    }

    #[test]
    fn bad_seeds_are_refused_with_a_reason() {
        let now = Utc::now();
        for bad in [r#"{}"#, r#"{"url":"not a url"}"#, r#"{"url":"ftp://x/"}"#] {
            let err = JobSpec::resolve(&req(bad), "S", 1, now).unwrap_err();
            assert!(matches!(err, DecodeError::Invalid(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_scope_fields_are_refused() {
        assert!(serde_json::from_str::<CrawlRequested>(
            r#"{"url":"http://a/","scope":{"max_dpth":1}}"#
        )
        .is_err());
    }
}
