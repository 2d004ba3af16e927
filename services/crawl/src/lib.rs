//! The crawl stage: consumes `crawl.requested`, `crawl.stopped` and the frontier
//! (`page.discovered`); fetches pages politely, extracts links and images, and publishes
//! new `page.discovered` / `image.discovered` events followed by each page's outcome
//! (`page.fetched` or `page.failed`).
//!
//! * [`config`]: the stage's settings.
//! * `handler`: dispatch, `crawl.requested` (record the job, seed the frontier) and
//!   `crawl.stopped`; `page`: one page, from fetch to outcome; `children`: what a page
//!   adds to the frontier.
//! * [`frontier`]: seen-set claims and job budgets.
//! * [`extract`], [`sources`], [`srcset`], [`style`], [`css`]: what a page links to and
//!   which images it shows; `resources`: its stylesheets and manifests, fetched;
//!   `render`: the render role's view of it (jobs that ask for rendering).
//! * [`normalize`]: one spelling per URL. [`scope`]: which URLs belong to a job.
//! * [`outcome`]: pure decisions on statuses, content types and errors.

mod children;
pub mod config;
pub mod css;
pub mod error;
pub mod extract;
pub mod frontier;
mod handler;
pub mod normalize;
pub mod outcome;
mod page;
mod render;
mod resources;
pub mod scope;
pub mod sources;
pub mod srcset;
pub mod style;

use std::sync::Arc;
use std::time::Duration;

use imgcrawl_bus::topology::ConsumerSpec;
use imgcrawl_bus::worker::{run_work, Delivery, Work};
use imgcrawl_bus::Bus;
use imgcrawl_events::EventKind;
use imgcrawl_fetch::Fetcher;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::Config;
pub use error::CrawlError;

/// The durable consumer name of this stage.
pub const CONSUMER: &str = "crawl";

/// The crawl stage's durable consumer pulled by every replica, with its ack wait and
/// deliveries: job control (`crawl.requested`, `crawl.stopped`) and frontier entries
/// published without a partition (by hand, or by a release before partitions).
pub fn consumer_spec(config: &Config) -> ConsumerSpec {
    let subjects = [
        EventKind::CrawlRequested,
        EventKind::CrawlStopped,
        EventKind::PageDiscovered,
    ]
    .map(EventKind::subject);
    let mut spec = ConsumerSpec::new(CONSUMER, subjects);
    spec.ack_wait = Duration::from_secs(config.ack_wait_secs.max(1));
    spec.max_deliver = config.max_deliver.max(1);
    spec
}

/// What the crawl stage consumes: [`consumer_spec`], and the frontier
/// (`page.discovered`) split by host, one consumer per partition (`crawl-p<n>`), each
/// pulled by one replica at a time.
pub fn work(config: &Config) -> Work {
    let shared = consumer_spec(config);
    let mut frontier = shared.clone();
    frontier.filter_subjects = vec![EventKind::PageDiscovered.subject()];
    Work {
        stage: CONSUMER.into(),
        shared: Some(shared),
        partitioned: Some(frontier),
    }
}

/// Runs the crawl stage until `shutdown` fires; in-flight pages finish (up to the
/// grace period) or are redelivered.
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), CrawlError> {
    if config.fetch.host_leases {
        config
            .fetch
            .enable_leases(imgcrawl_bus::hosts::open(&bus).await?);
    }
    let fetcher = Fetcher::new(config.fetch.clone())?;
    let work = work(&config);
    let opts = config.worker_options();
    let crawler = handler::Crawler {
        bus: bus.clone(),
        fetcher,
        resources: Arc::new(resources::ResourceCache::new(config.resource_cache_entries)),
        config: Arc::new(config),
    };
    info!(
        consumer = CONSUMER,
        concurrency = opts.concurrency,
        "crawl stage starting"
    );
    let handle = move |d: Delivery| {
        let crawler = crawler.clone();
        async move { crawler.handle(d).await }
    };
    run_work(&bus, work, opts, handle, shutdown).await?;
    info!(consumer = CONSUMER, "crawl stage stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_is_shared_and_the_frontier_partitioned() {
        let w = work(&Config::default());
        let s = w.shared.clone().unwrap();
        assert_eq!(s.durable, "crawl");
        assert_eq!(
            s.filter_subjects,
            vec![
                "imgcrawl.crawl.requested",
                "imgcrawl.crawl.stopped",
                "imgcrawl.page.discovered"
            ],
            "frontier entries without a partition are still taken"
        );
        let p = w.partitioned.clone().unwrap().partition(3);
        assert_eq!(p.durable, "crawl-p3");
        assert_eq!(p.stage, "crawl");
        assert_eq!(p.filter_subjects, vec!["imgcrawl.page.discovered.p3"]);
        assert_eq!(w.consumers(2), vec!["crawl", "crawl-p0", "crawl-p1"]);
        assert_eq!(
            s.ack_wait,
            Duration::from_secs(30),
            "short: in-progress acks cover long work"
        );
        assert_eq!(s.max_deliver, 8);
    }
}
