//! Validating a crawl request before it is published: seed URLs (http(s), a host, no
//! credentials, not a refused address: the same guard as the crawler), scope,
//! politeness, filters. Every refusal is a 422 naming the field. Also the reason a
//! stop, a deletion or a failover may carry.

use std::time::Duration;

use chrono::{DateTime, Utc};
use imgcrawl_events::{CrawlRequested, Format, ImageFilters, JobSpec, Politeness, Scope};
use imgcrawl_fetch::guard::AddressGuard;
use imgcrawl_fetch::FetchError;
use url::Url;
use uuid::Uuid;

use crate::error::HttpError;
use crate::model::crawl::{ImageFiltersRequest, PolitenessRequest, ScopeRequest, StartCrawl};
use crate::Config;

/// Longest accepted URL.
const MAX_URL: usize = 2048;
/// Longest label.
const MAX_LABEL: usize = 200;
/// Most include/exclude patterns, and their longest.
const MAX_PATTERNS: usize = 100;
const MAX_PATTERN: usize = 500;
/// How long resolving a seed's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest reason a stop, a deletion or a failover may carry (characters), and the
/// check (422, field `reason`): the HA API's, shared.
pub use imgcrawl_web::ha::{check_reason as reason, MAX_REASON};

/// Formats the pipeline detects, by their event names.
pub const FORMATS: [&str; 10] = Format::NAMES;

/// The event name of a format as people write it (`JPG`, `image/png`, `.tif`,
/// `pjpeg`...): the aliases the download stage knows, see [`Format::from_name`].
pub fn format_name(name: &str) -> Option<&'static str> {
    Format::from_name(name).map(Format::name)
}

fn bad(code: &'static str, field: impl Into<String>, msg: impl Into<String>) -> HttpError {
    HttpError::unprocessable(code, msg).field(field)
}

/// Parses one seed: an absolute http(s) URL with a host and no credentials.
fn parse_seed(field: &str, raw: &str) -> Result<Url, HttpError> {
    if raw.len() > MAX_URL {
        return Err(bad(
            "invalid_url",
            field,
            format!("urls are at most {MAX_URL} bytes"),
        ));
    }
    let url = Url::parse(raw.trim())
        .map_err(|e| bad("invalid_url", field, format!("{raw:?} is not a url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad(
            "invalid_url",
            field,
            format!("{raw:?}: only http(s) urls with a host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "invalid_url",
            field,
            "urls with credentials are refused",
        ));
    }
    Ok(url)
}

/// Refuses a seed whose host is, or resolves to, an address the crawler would refuse.
async fn check_address(field: &str, url: &Url, guard: AddressGuard) -> Result<(), HttpError> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, guard.check_url(url)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(FetchError::BlockedAddress(detail))) => Err(bad(
            "blocked_address",
            field,
            format!("refused: private, loopback or link-local target ({detail})"),
        )),
        Ok(Err(FetchError::InvalidUrl(detail))) => Err(bad("invalid_url", field, detail)),
        Ok(Err(e)) => Err(bad("unresolvable_host", field, e.to_string())),
        Err(_) => Err(bad(
            "unresolvable_host",
            field,
            "resolving the host timed out",
        )),
    }
}

fn check_hosts(hosts: &[String]) -> Result<(), HttpError> {
    for (i, h) in hosts.iter().enumerate() {
        let h = h.trim();
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !ok {
            return Err(bad(
                "invalid_scope",
                format!("scope.hosts[{i}]"),
                format!("{h:?} is not a host name"),
            ));
        }
    }
    Ok(())
}

fn check_patterns(field: &str, patterns: &[String]) -> Result<(), HttpError> {
    if patterns.len() > MAX_PATTERNS || patterns.iter().any(|p| p.len() > MAX_PATTERN) {
        return Err(bad(
            "invalid_scope",
            field,
            format!("at most {MAX_PATTERNS} patterns of at most {MAX_PATTERN} bytes"),
        ));
    }
    Ok(())
}

fn scope(r: Option<ScopeRequest>) -> Result<Scope, HttpError> {
    let mut s = Scope::default();
    let Some(r) = r else { return Ok(s) };
    if let Some(h) = r.hosts {
        check_hosts(&h)?;
        s.hosts = h;
    }
    s.subdomains = r.subdomains.unwrap_or(s.subdomains);
    s.max_depth = r.max_depth.unwrap_or(s.max_depth);
    s.max_pages = r.max_pages.unwrap_or(s.max_pages);
    s.max_images = r.max_images.unwrap_or(s.max_images);
    s.images_any_host = r.images_any_host.unwrap_or(s.images_any_host);
    if s.max_depth > 1000 {
        return Err(bad(
            "invalid_scope",
            "scope.max_depth",
            "max_depth is at most 1000",
        ));
    }
    if s.max_pages == 0 {
        return Err(bad(
            "invalid_scope",
            "scope.max_pages",
            "max_pages must be at least 1",
        ));
    }
    if let Some(p) = r.include {
        check_patterns("scope.include", &p)?;
        s.include = p;
    }
    if let Some(p) = r.exclude {
        check_patterns("scope.exclude", &p)?;
        s.exclude = p;
    }
    Ok(s)
}

fn politeness(r: Option<PolitenessRequest>) -> Result<Politeness, HttpError> {
    let mut p = Politeness::default();
    let Some(r) = r else { return Ok(p) };
    p.obey_robots = r.obey_robots.unwrap_or(p.obey_robots);
    p.delay_ms = r.delay_ms.unwrap_or(p.delay_ms);
    p.max_crawl_delay_ms = r.max_crawl_delay_ms.unwrap_or(p.max_crawl_delay_ms);
    p.per_host_concurrency = r.per_host_concurrency.unwrap_or(p.per_host_concurrency);
    if !(1..=256).contains(&p.per_host_concurrency) {
        return Err(bad(
            "invalid_politeness",
            "politeness.per_host_concurrency",
            "must be 1..=256",
        ));
    }
    if p.delay_ms > 600_000 || p.max_crawl_delay_ms > 600_000 {
        return Err(bad(
            "invalid_politeness",
            "politeness.delay_ms",
            "delays are at most 600000 ms",
        ));
    }
    Ok(p)
}

fn filters(r: Option<ImageFiltersRequest>) -> Result<ImageFilters, HttpError> {
    let mut f = ImageFilters::default();
    let Some(r) = r else { return Ok(f) };
    f.min_width = r.min_width.unwrap_or(f.min_width);
    f.min_height = r.min_height.unwrap_or(f.min_height);
    f.min_bytes = r.min_bytes.unwrap_or(f.min_bytes);
    f.max_bytes = r.max_bytes.unwrap_or(f.max_bytes);
    if f.max_bytes == 0 || f.min_bytes > f.max_bytes {
        return Err(bad(
            "invalid_filter",
            "images.max_bytes",
            "need 0 < max_bytes and min_bytes <= max_bytes",
        ));
    }
    for (i, name) in r.formats.unwrap_or_default().iter().enumerate() {
        let Some(canon) = format_name(name) else {
            return Err(bad(
                "invalid_filter",
                format!("images.formats[{i}]"),
                format!("unknown format {name:?} (known: {})", FORMATS.join(", ")),
            ));
        };
        if !f.formats.iter().any(|x| x == canon) {
            f.formats.push(canon.to_string());
        }
    }
    Ok(f)
}

/// Checks a start request and turns it into the event to publish (with `job_id` and
/// `now`), returning the normalised seeds too.
pub async fn crawl_request(
    body: StartCrawl,
    config: &Config,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(CrawlRequested, Vec<String>), HttpError> {
    let mut raw: Vec<(String, String)> = Vec::new();
    if let Some(u) = &body.url {
        raw.push(("url".into(), u.clone()));
    }
    raw.extend(
        body.urls
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("urls[{i}]"), u.clone())),
    );
    if raw.is_empty() {
        return Err(bad("missing_url", "url", "give a seed in `url` or `urls`"));
    }
    if raw.len() > config.max_seeds {
        return Err(bad(
            "too_many_urls",
            "urls",
            format!("at most {} seed urls", config.max_seeds),
        ));
    }
    let guard = AddressGuard {
        allow_loopback: config.allow_loopback,
        allow_private: config.allow_private,
    };
    let mut urls = Vec::with_capacity(raw.len());
    for (field, u) in &raw {
        let url = parse_seed(field, u)?;
        check_address(field, &url, guard).await?;
        urls.push(url.to_string());
    }
    if body
        .label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL)
    {
        return Err(bad(
            "invalid_label",
            "label",
            format!("labels are at most {MAX_LABEL} characters"),
        ));
    }
    let req = CrawlRequested {
        job_id: Some(job_id),
        url: None,
        urls,
        scope: Some(scope(body.scope)?),
        politeness: Some(politeness(body.politeness)?),
        images: Some(filters(body.images)?),
        label: body.label,
        occurred_at: Some(now),
    };
    // The pipeline's own resolution: what the crawler will do with it.
    let spec = JobSpec::resolve(&req, "api", 0, now)
        .map_err(|e| bad("invalid_request", "url", e.to_string()))?;
    Ok((req, spec.seeds))
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
