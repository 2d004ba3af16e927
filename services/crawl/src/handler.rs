//! Dispatch of the crawl stage's three subjects, and the two small handlers:
//! `crawl.requested` (record the job, seed the frontier) and `crawl.stopped`.

use std::sync::Arc;

use chrono::Utc;
use imgcrawl_bus::worker::{Delivery, Outcome};
use imgcrawl_bus::{Bus, BusError};
use imgcrawl_events::{CrawlRequested, CrawlStopped, Event, JobSpec, PageDiscovered};
use imgcrawl_fetch::Fetcher;
use tracing::{info, instrument};
use url::Url;

use crate::frontier::{admit, owner_tag, Kind};
use crate::normalize::canonical;
use crate::Config;

/// Events published per `publish_all` call (bounds in-flight PubAcks).
pub(crate) const PUBLISH_BATCH: usize = 512;

/// The stage's shared state; cheap to clone into every handler task.
#[derive(Clone)]
pub(crate) struct Crawler {
    pub(crate) bus: Bus,
    pub(crate) fetcher: Fetcher,
    pub(crate) config: Arc<Config>,
    /// Stylesheets and manifests already read, by job and URL.
    pub(crate) resources: Arc<crate::resources::ResourceCache>,
}

/// A transient bus failure: redeliver later.
pub(crate) fn retry(what: &str, e: &BusError) -> Outcome {
    Outcome::retry(format!("{what}: {e}"))
}

impl Crawler {
    /// Handles one delivery.
    #[instrument(skip_all, fields(seq = d.stream_sequence, subject = %d.subject, delivered = d.delivered))]
    pub(crate) async fn handle(&self, d: Delivery) -> Outcome {
        match &d.event {
            Event::CrawlRequested(req) => self.requested(req, &d).await,
            Event::CrawlStopped(stop) => self.stopped(stop).await,
            Event::PageDiscovered(page) => self.page(page, &d).await,
            other => Outcome::Poison(format!("the crawl stage does not consume {}", other.kind())),
        }
    }

    /// Publishes events in batches, awaiting every PubAck.
    pub(crate) async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        let publisher = self.bus.publisher();
        for chunk in events.chunks(PUBLISH_BATCH) {
            publisher.publish_all(chunk).await?;
        }
        Ok(())
    }

    /// `crawl.requested`: resolve and record the job, then put its seeds in the frontier.
    /// Seeds skip scope patterns (the user asked for them) and the address guard (a
    /// refused seed fails visibly at fetch time with `blocked_address`).
    async fn requested(&self, req: &CrawlRequested, d: &Delivery) -> Outcome {
        let spec =
            match JobSpec::resolve(req, &self.bus.config.stream, d.stream_sequence, d.published) {
                Ok(s) => s,
                Err(e) => return Outcome::Poison(e.to_string()),
            };
        let record = match self.bus.jobs.put_spec(&spec).await {
            Ok(r) => r,
            Err(e) => return retry("record job", &e),
        };
        if record.stopped {
            info!(job = %spec.job_id, "job was stopped before it started; no seeds published");
            return Outcome::Done;
        }
        let mut seeds: Vec<String> = Vec::new();
        for s in &spec.seeds {
            if let Some(u) = Url::parse(s).ok().and_then(canonical) {
                if !seeds.contains(&u.to_string()) {
                    seeds.push(u.to_string());
                }
            }
        }
        let owner = owner_tag(d);
        let admitted = match admit(
            &self.bus.seen,
            spec.job_id,
            Kind::Page,
            spec.scope.max_pages,
            &seeds,
            &owner,
            Some(0),
        )
        .await
        {
            Ok(a) => a,
            Err(e) => return retry("claim seeds", &e),
        };
        let now = Utc::now();
        let events: Vec<Event> = admitted
            .into_iter()
            .map(|i| {
                Event::PageDiscovered(PageDiscovered {
                    job_id: spec.job_id,
                    url: seeds[i].clone(),
                    depth: 0,
                    referrer: None,
                    occurred_at: now,
                })
            })
            .collect();
        if let Err(e) = self.publish(&events).await {
            return retry("publish seeds", &e);
        }
        info!(job = %spec.job_id, seeds = events.len(), "job accepted");
        Outcome::Done
    }

    /// `crawl.stopped`: flag the job; pages discovered later fail with `stopped`.
    async fn stopped(&self, stop: &CrawlStopped) -> Outcome {
        match self.bus.jobs.stop(stop.job_id).await {
            Ok(_) => {
                info!(job = %stop.job_id, "job stopped");
                Outcome::Done
            }
            Err(e) => retry("stop job", &e),
        }
    }
}
