//! The `image.discovered` handler: fetch, validate, filter, hash, store, publish.
//!
//! Every delivery ends in exactly one outcome event for the image URL
//! (`image.downloaded` or `image.rejected`, which share a message id) unless it is
//! retried: transient HTTP failures up to `retry_deliveries`, NATS failures up to the
//! consumer's `max_deliver`. The event is published (PubAck awaited) before the ack.

use std::sync::Arc;

use chrono::Utc;
use imgcrawl_bus::blob::BlobStore;
use imgcrawl_bus::{Bus, Delivery, Outcome};
use imgcrawl_events::{
    Event, ImageDiscovered, ImageDownloaded, ImageRejected, JobSpec, RejectReason,
};
use imgcrawl_fetch::{Fetcher, RequestOptions};
use tracing::{debug, field, instrument, Span};
use url::Url;

use crate::budget::MemoryBudget;
use crate::failure::{self, Failure};
use crate::opt_out;
use crate::validate::{inspect, ImageInfo, Rejection};
use crate::{filters, Config};
use imgcrawl_events::Sha256;

/// The Accept header sent for images.
pub const ACCEPT: &str = "image/avif,image/webp,image/*,*/*;q=0.8";

/// Everything a handler needs; shared by all handlers of the process.
pub(crate) struct Stage {
    pub bus: Bus,
    pub blobs: BlobStore,
    pub fetcher: Fetcher,
    pub config: Config,
    pub memory: MemoryBudget,
    /// Deliveries after which a transient failure becomes a rejection.
    pub retry_deliveries: i64,
    /// Deliveries a URL whose host throttles (429, 503) may take before its rejection.
    pub park_deliveries: i64,
}

/// Why a download stopped short of `image.downloaded`.
enum Stop {
    /// Rejected (now, or after retries when `retry_after` is set), with the HTTP status
    /// when there was a response.
    Reject(Failure, Option<u16>),
    /// NATS or the runtime failed: retry the delivery.
    Transient(String),
}

impl Stop {
    fn now(rejection: Rejection, status: Option<u16>) -> Stop {
        Stop::Reject(
            Failure {
                rejection,
                retry_after: None,
            },
            status,
        )
    }
}

/// Images have no scope: any URL may host them (the address guard still applies).
fn any_url(_: &Url) -> bool {
    true
}

/// Handles one delivery.
#[instrument(skip_all, fields(seq = d.stream_sequence, delivered = d.delivered, job = field::Empty, url = field::Empty))]
pub(crate) async fn handle(stage: Arc<Stage>, d: Delivery) -> Outcome {
    let Event::ImageDiscovered(img) = d.event else {
        return Outcome::Poison(format!(
            "the download stage does not handle {}",
            d.event.kind()
        ));
    };
    Span::current()
        .record("job", field::display(img.job_id))
        .record("url", img.url.as_str());
    let event = match outcome_event(&stage, &img, d.delivered).await {
        Ok(event) => event,
        Err(retry) => return retry,
    };
    match stage.bus.publisher().publish(&event).await {
        Ok(()) => {
            count(&event);
            Outcome::Done
        }
        Err(e) => Outcome::retry(format!("publish {}: {e}", event.kind())),
    }
}

/// Counts a published outcome event.
fn count(event: &Event) {
    let m = imgcrawl_telemetry::metrics();
    match event {
        Event::ImageDownloaded(_) => m.images_downloaded.inc(),
        Event::ImageRejected(r) => {
            let reason = serde_json::to_value(r.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into());
            m.images_rejected
                .get_or_create(&imgcrawl_telemetry::labels::Reason { reason })
                .inc()
        }
        _ => 0,
    };
}

/// The event recording what happened to `img`, or the retry outcome.
async fn outcome_event(
    stage: &Stage,
    img: &ImageDiscovered,
    delivered: i64,
) -> Result<Event, Outcome> {
    let record = match stage.bus.jobs.get(img.job_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(Outcome::retry("job not recorded yet")),
        Err(e) => return Err(Outcome::retry(format!("read job: {e}"))),
    };
    if record.stopped {
        return Ok(rejected(
            img,
            Rejection::new(RejectReason::Stopped, "job stopped"),
            None,
        ));
    }
    let Some(spec) = record.spec.as_ref() else {
        return Err(Outcome::retry("job spec not recorded yet"));
    };
    match download(stage, img, spec).await {
        Ok(event) => Ok(event),
        Err(Stop::Transient(reason)) => Err(Outcome::retry(reason)),
        Err(Stop::Reject(f, status)) => {
            let budget = retry_budget(status, stage.retry_deliveries, stage.park_deliveries);
            match f.retry_after {
                Some(after) if delivered < budget => {
                    debug!(reason = ?f.rejection.reason, detail = %f.rejection.detail, delivered, budget, "transient failure, retrying");
                    Err(Outcome::Retry {
                        after,
                        reason: f.rejection.detail,
                    })
                }
                _ => Ok(rejected(img, f.rejection, status)),
            }
        }
    }
}

/// Deliveries a transient failure may take before the URL is rejected: a host that
/// says "slow down" (429, 503) parks the URL for `park` deliveries, anything else
/// (other 5xx, timeouts, network errors) gets `retry`.
fn retry_budget(status: Option<u16>, retry: i64, park: i64) -> i64 {
    match status {
        Some(429 | 503) => park.max(retry),
        _ => retry,
    }
}

/// Fetches, validates, filters, hashes and stores the image.
async fn download(stage: &Stage, img: &ImageDiscovered, spec: &JobSpec) -> Result<Event, Stop> {
    let url = Url::parse(&img.url).map_err(|e| {
        Stop::now(
            Rejection::new(RejectReason::Network, format!("invalid url: {e}")),
            None,
        )
    })?;
    let opts = RequestOptions {
        politeness: &spec.politeness,
        obey_robots: spec.politeness.obey_robots,
        in_scope: &any_url,
        accept: ACCEPT,
    };
    let fetched = stage
        .fetcher
        .get(&url, &opts)
        .await
        .map_err(|e| Stop::Reject(failure::fetch_error(&e), None))?;
    let status = fetched.status;
    if !(200..300).contains(&status) {
        let retry_after = fetched
            .response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok());
        return Err(Stop::Reject(
            failure::http_status(status, retry_after),
            Some(status),
        ));
    }
    let tags = fetched.response.headers().get_all("x-robots-tag");
    let agent = stage.config.fetch.robots_agent();
    let tags = tags.iter().filter_map(|v| v.to_str().ok());
    if let Some(d) = opt_out::opted_out(tags, agent, &stage.config.opt_out_directives) {
        return Err(Stop::now(
            Rejection::new(RejectReason::OptedOut, format!("x-robots-tag: {d}")),
            Some(status),
        ));
    }
    let cap = spec.images.max_bytes.min(stage.config.max_bytes_ceiling);
    let reserve = fetched
        .response
        .content_length()
        .map_or(cap, |n| n.min(cap));
    let _memory = stage.memory.reserve(reserve).await;
    let final_url = fetched.final_url.to_string();
    let body = fetched
        .read_capped(cap)
        .await
        .map_err(|e| Stop::Reject(failure::body_error(&e), Some(status)))?;
    let (info, sha) = check(body.clone(), stage.config.max_pixels)
        .await?
        .map_err(|r| Stop::now(r, Some(status)))?;
    let bytes = body.len() as u64;
    filters::apply(&spec.images, &info, bytes).map_err(|r| Stop::now(r, Some(status)))?;
    let wrote = stage
        .blobs
        .put_if_absent(&sha, &body, info.content_type)
        .await
        .map_err(|e| Stop::Transient(e.to_string()))?;
    debug!(%sha, bytes, format = %info.format, wrote, "downloaded");
    if !wrote {
        imgcrawl_telemetry::metrics().images_deduplicated.inc();
    }
    Ok(Event::ImageDownloaded(ImageDownloaded {
        job_id: img.job_id,
        url: img.url.clone(),
        final_url,
        page_url: img.page_url.clone(),
        alt: img.alt.clone(),
        found_by: img.found_by,
        sha256: sha,
        bytes,
        format: info.format.name().to_string(),
        width: info.width,
        height: info.height,
        content_type: info.content_type.to_string(),
        occurred_at: Utc::now(),
    }))
}

/// Bodies up to this size are validated and hashed on the async runtime: that takes
/// tens of microseconds, less than handing the work to the blocking pool and back.
const INLINE_CHECK_BYTES: usize = 256 * 1024;

/// Validates and hashes; larger bodies off the async runtime (CRC and SHA-256 over
/// megabytes).
async fn check(
    body: bytes::Bytes,
    max_pixels: u64,
) -> Result<Result<(ImageInfo, String), Rejection>, Stop> {
    let inline = body.len() <= INLINE_CHECK_BYTES;
    let work = move || inspect(&body, max_pixels).map(|info| (info, Sha256::hex(&body)));
    if inline {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Stop::Transient(format!("validation task failed: {e}")))
}

/// The `image.rejected` event for `img`.
fn rejected(img: &ImageDiscovered, r: Rejection, http_status: Option<u16>) -> Event {
    debug!(reason = ?r.reason, detail = %r.detail, "rejected");
    Event::ImageRejected(ImageRejected {
        job_id: img.job_id,
        url: img.url.clone(),
        page_url: img.page_url.clone(),
        reason: r.reason,
        detail: r.detail,
        http_status,
        occurred_at: Utc::now(),
    })
}

#[cfg(test)]
mod tests {
    use super::retry_budget;

    #[test]
    fn throttling_hosts_park_their_urls_longer_than_other_failures() {
        assert_eq!(retry_budget(Some(429), 3, 16), 16);
        assert_eq!(retry_budget(Some(503), 3, 16), 16);
        assert_eq!(retry_budget(Some(500), 3, 16), 3);
        assert_eq!(retry_budget(None, 3, 16), 3, "timeouts and network errors");
        assert_eq!(
            retry_budget(Some(429), 3, 1),
            3,
            "never less than the retries"
        );
    }
}
