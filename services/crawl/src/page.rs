//! `page.discovered`: fetch the page, extract, grow the frontier, record the outcome.
//!
//! Ordering is the contract with the index, which detects a job's end by counting:
//! every child (`page.discovered`, `image.discovered`) is published and acked BEFORE
//! the parent's outcome (`page.fetched` / `page.failed`), and the delivery is acked
//! only after that.
//!
//! A response whose content type is an image (a link to `/photo?id=3`, say) is not a
//! page: its URL is sent to download as an image found by `link` (page URL = the
//! referrer), then the page fails with `not_html` and a detail saying so (see
//! `children.rs`). Other non-HTML types fail with `not_html` too.

use chrono::Utc;
use imgcrawl_bus::worker::{Delivery, Outcome};
use imgcrawl_events::{Event, JobSpec, PageDiscovered, PageFailed, PageFailure, PageFetched};
use imgcrawl_fetch::{Fetched, RequestOptions};
use tracing::{debug, info};
use url::Url;

use crate::extract::{extract, Limits};
use crate::frontier::owner_tag;
use crate::handler::{retry, Crawler};
use crate::outcome::{
    body_failure, classify_content, fetch_failure, status_action, Content, StatusAction,
};
use crate::scope::JobScope;

/// The Accept header of page requests.
const ACCEPT_HTML: &str = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5";

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Crawler {
    /// Handles one `page.discovered`.
    pub(crate) async fn page(&self, ev: &PageDiscovered, d: &Delivery) -> Outcome {
        let record = match self.bus.jobs.get(ev.job_id).await {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::retry(format!("job {} is not known yet", ev.job_id)),
            Err(e) => return retry("read job", &e),
        };
        if record.stopped {
            return self
                .fail(ev, PageFailure::Stopped, "the job was stopped".into(), None)
                .await;
        }
        let Some(spec) = record.spec.as_ref() else {
            return Outcome::retry(format!("job {} has no spec yet", ev.job_id));
        };
        let url = match Url::parse(&ev.url) {
            Ok(u) => u,
            Err(e) => return Outcome::Poison(format!("page url {:?}: {e}", ev.url)),
        };
        let scope = JobScope::new(spec);
        let in_scope = |u: &Url| scope.host_allowed(u);
        let opts = RequestOptions {
            politeness: &spec.politeness,
            obey_robots: spec.politeness.obey_robots,
            in_scope: &in_scope,
            accept: ACCEPT_HTML,
        };
        let fetched = match self.fetcher.get(&url, &opts).await {
            Ok(f) => f,
            Err(e) => {
                let (reason, detail) = fetch_failure(&e);
                return self.fail(ev, reason, detail, None).await;
            }
        };
        let status = fetched.status;
        match status_action(status, d.delivered, self.config.http_attempts) {
            StatusAction::Proceed => {}
            StatusAction::Retry => {
                drop(fetched);
                return Outcome::Retry {
                    after: self.config.http_retry_delay(),
                    reason: format!("http {status} from {url}"),
                };
            }
            StatusAction::Fail => {
                drop(fetched);
                return self
                    .fail(
                        ev,
                        PageFailure::HttpStatus,
                        format!("http {status} after {} attempt(s)", d.delivered),
                        Some(status),
                    )
                    .await;
            }
        }
        match classify_content(fetched.content_type.as_deref()) {
            Content::Html => self.parse_page(ev, d, spec, &scope, fetched).await,
            Content::Image => {
                drop(fetched);
                self.image_page(ev, d, spec, &scope, &url, status).await
            }
            Content::Other(ct) => {
                drop(fetched);
                self.fail(
                    ev,
                    PageFailure::NotHtml,
                    format!("content type {ct}"),
                    Some(status),
                )
                .await
            }
        }
    }

    /// Reads and parses an HTML page, publishes its children, then `page.fetched`.
    async fn parse_page(
        &self,
        ev: &PageDiscovered,
        d: &Delivery,
        spec: &JobSpec,
        scope: &JobScope,
        fetched: Fetched,
    ) -> Outcome {
        let (status, final_url) = (fetched.status, fetched.final_url.clone());
        let body = match fetched.read_capped(self.config.max_page_bytes).await {
            Ok(b) => b,
            Err(e) => {
                let (reason, detail) = body_failure(&e);
                return self.fail(ev, reason, detail, Some(status)).await;
            }
        };
        let limits = Limits {
            max_links: self.config.max_links_per_page,
            max_images: self.config.max_images_per_page,
        };
        // Undeclared or legacy charsets are read as UTF-8, lossily: URLs are ASCII.
        let mut found = extract(&String::from_utf8_lossy(&body), &final_url, limits);
        let bytes = body.len() as u64;
        drop(body);
        self.add_resources(spec, scope, &mut found).await;
        let render = if crate::render::wants_render(spec, &final_url) {
            Some(self.add_rendered(spec, &final_url, &mut found).await)
        } else {
            None
        };
        let owner = owner_tag(d);
        if final_url.as_str() != ev.url {
            // The redirect target is this page too: later links to it are duplicates.
            if let Err(e) = self
                .bus
                .seen
                .claim(
                    &imgcrawl_bus::seen::SeenSet::key(spec.job_id, "page", final_url.as_str()),
                    &owner,
                    Some(ev.depth),
                )
                .await
            {
                return retry("claim final url", &e);
            }
        }
        // A stop that arrived during the fetch: record the page, start nothing new.
        let stopped = matches!(self.bus.jobs.get(ev.job_id).await, Ok(Some(r)) if r.stopped);
        let children = if stopped {
            Ok(Vec::new())
        } else {
            self.children(ev, spec, scope, &final_url, &found, &owner)
                .await
        };
        let children = match children {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        if let Err(e) = self.publish(&children).await {
            return retry("publish children", &e);
        }
        let pages = count(
            children
                .iter()
                .filter(|e| matches!(e, Event::PageDiscovered(_)))
                .count(),
        );
        let images = count(children.len()) - pages;
        let fetched = Event::PageFetched(PageFetched {
            job_id: ev.job_id,
            url: ev.url.clone(),
            final_url: final_url.to_string(),
            depth: ev.depth,
            status,
            bytes,
            title: found.title,
            links_found: found.links_found,
            pages_discovered: pages,
            images_found: found.images_found,
            images_discovered: images,
            render,
            occurred_at: Utc::now(),
        });
        if let Err(e) = self.publish(std::slice::from_ref(&fetched)).await {
            return retry("publish page.fetched", &e);
        }
        imgcrawl_telemetry::metrics().pages_fetched.inc();
        info!(job = %ev.job_id, url = %ev.url, depth = ev.depth, pages, images, "page fetched");
        Outcome::Done
    }

    /// Publishes `page.failed` and acks.
    pub(crate) async fn fail(
        &self,
        ev: &PageDiscovered,
        reason: PageFailure,
        detail: String,
        http_status: Option<u16>,
    ) -> Outcome {
        debug!(job = %ev.job_id, url = %ev.url, ?reason, %detail, "page failed");
        let e = Event::PageFailed(PageFailed {
            job_id: ev.job_id,
            url: ev.url.clone(),
            depth: ev.depth,
            reason,
            detail,
            http_status,
            occurred_at: Utc::now(),
        });
        match self.publish(std::slice::from_ref(&e)).await {
            Ok(()) => {
                imgcrawl_telemetry::metrics().pages_failed.inc();
                Outcome::Done
            }
            Err(err) => retry("publish page.failed", &err),
        }
    }
}
