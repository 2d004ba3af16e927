//! Pages of jobs that render (`scope.render` host patterns): after the static parse,
//! the crawl stage asks the render role (`imgcrawl-render`, over core NATS request /
//! reply, see [`imgcrawl_events::RenderRequest`]) for the page's final DOM and the
//! images it requested, and adds what the static parse missed as `rendered_dom` and
//! `rendered_request`. A render that fails, times out or finds no render process
//! leaves the static parse standing; `page.fetched.render` records which happened.

use std::time::Duration;

use imgcrawl_events::{FoundBy, JobSpec, RenderReply, RenderRequest, RENDER_SUBJECT};
use tracing::{debug, info};
use url::Url;

use crate::extract::{extract, Extracted, Limits};
use crate::handler::Crawler;
use crate::normalize::normalize;

/// How long past the budget the crawl stage waits for an answer.
const REPLY_MARGIN: Duration = Duration::from_secs(5);

/// Does a host pattern match `host`? `*` every host, `*.example.org` its subdomains
/// (and itself), else the exact host (case-insensitive).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        _ if p == "*" => true,
        Some(domain) => h == domain || h.ends_with(&format!(".{domain}")),
        None => h == p,
    }
}

/// Does the job render this page?
pub(crate) fn wants_render(spec: &JobSpec, page: &Url) -> bool {
    let host = page.host_str().unwrap_or("");
    spec.scope.render.iter().any(|p| host_matches(p, host))
}

impl Crawler {
    /// Renders the page through the render role and adds what it found to `found`;
    /// returns the `page.fetched.render` note.
    pub(crate) async fn add_rendered(
        &self,
        spec: &JobSpec,
        page: &Url,
        found: &mut Extracted,
    ) -> String {
        match self.render_page(spec, page).await {
            Ok(RenderReply::Rendered {
                html,
                requested_images,
                truncated,
                elapsed_ms,
                ..
            }) => {
                let limits = Limits {
                    max_links: self.config.max_links_per_page,
                    max_images: self.config.max_images_per_page,
                };
                let before = found.images.len();
                let rendered = extract(&html, page, limits);
                for i in rendered.images {
                    found.add_image(i.url, FoundBy::RenderedDom, limits.max_images);
                }
                for l in rendered.links {
                    found.add_link(l, limits.max_links);
                }
                for raw in &requested_images {
                    if let Some(u) = normalize(page, raw) {
                        found.add_image(u, FoundBy::RenderedRequest, limits.max_images);
                    }
                }
                info!(job = %spec.job_id, url = %page, elapsed_ms, truncated,
                      added = found.images.len() - before, "page rendered");
                "rendered".to_string()
            }
            Ok(RenderReply::Failed { reason }) | Err(reason) => {
                debug!(job = %spec.job_id, url = %page, %reason, "render failed; the static parse stands");
                format!("failed: {reason}")
            }
        }
    }

    async fn render_page(&self, spec: &JobSpec, page: &Url) -> Result<RenderReply, String> {
        let req = RenderRequest {
            job_id: spec.job_id,
            url: page.to_string(),
            budget_ms: self.config.render_budget_ms,
        };
        let body = serde_json::to_vec(&req).map_err(|e| format!("encode request: {e}"))?;
        let wait = Duration::from_millis(self.config.render_budget_ms) + REPLY_MARGIN;
        let request = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(wait));
        let reply = self
            .bus
            .client
            .send_request(RENDER_SUBJECT, request)
            .await
            .map_err(|e| match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    "no render process is running".to_string()
                }
                async_nats::RequestErrorKind::TimedOut => {
                    format!("no answer within {} s", wait.as_secs())
                }
                _ => format!("request: {e}"),
            })?;
        serde_json::from_slice(&reply.payload).map_err(|e| format!("bad reply: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(host_matches("*", "a.example.org"));
        assert!(host_matches("*.example.org", "a.example.org"));
        assert!(host_matches("*.example.org", "example.org"));
        assert!(host_matches("*.Example.org", "b.a.EXAMPLE.org"));
        assert!(!host_matches("*.example.org", "badexample.org"));
        assert!(host_matches("example.org", "EXAMPLE.org"));
        assert!(!host_matches("example.org", "a.example.org"));
        assert!(!host_matches("", "example.org"));
    }
}
