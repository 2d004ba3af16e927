//! The crawl stage's settings.

use std::time::Duration;

use imgcrawl_bus::worker::WorkerOptions;
use imgcrawl_fetch::FetchConfig;
use serde::{Deserialize, Serialize};

/// Settings of the crawl stage. Every field has a default; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP settings: user agent, timeouts, redirects, address guard, robots.txt cache.
    pub fetch: FetchConfig,
    /// Messages handled at once by this process.
    pub concurrency: usize,
    /// Largest HTML body read, in bytes; bigger pages fail with `too_large`.
    pub max_page_bytes: u64,
    /// Deliveries of a page answered with 5xx or 429 before it fails with `http_status`.
    pub http_attempts: i64,
    /// Base delay before re-fetching such a page, milliseconds (doubled per delivery).
    pub http_retry_delay_ms: u64,
    /// Most distinct links taken from one page.
    pub max_links_per_page: usize,
    /// Most distinct image URLs taken from one page.
    pub max_images_per_page: usize,
    /// Most stylesheets fetched for one page (`<link rel="stylesheet">`, `@import`s).
    pub max_stylesheets_per_page: usize,
    /// How deep `@import`s are followed (a page's own stylesheet = 0).
    pub max_import_depth: u32,
    /// Largest stylesheet or manifest read, in bytes (bigger ones are skipped).
    pub max_resource_bytes: u64,
    /// Stylesheets and manifests remembered per process (by job and URL), so a
    /// site-wide stylesheet is fetched once per crawl.
    pub resource_cache_entries: usize,
    /// Milliseconds the render role may spend on a page of a job that renders
    /// (`scope.render`); the request gives up 5 s after that.
    pub render_budget_ms: u64,
    /// Seconds the server waits for an ack before redelivering: how long the page of a
    /// process that died stays stuck. Long work (politeness waits, slow hosts) keeps
    /// its message with in-progress acks every third of this.
    pub ack_wait_secs: u64,
    /// Deliveries before a message is dead-lettered.
    pub max_deliver: i64,
    /// Upper bound of the retry backoff, seconds.
    pub max_backoff_secs: u64,
    /// Seconds to let in-flight messages finish on shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fetch: FetchConfig::default(),
            concurrency: 32,
            max_page_bytes: 5 * 1024 * 1024,
            http_attempts: 3,
            http_retry_delay_ms: 2_000,
            max_links_per_page: 5_000,
            max_images_per_page: 5_000,
            max_stylesheets_per_page: 32,
            max_import_depth: 3,
            max_resource_bytes: 2 * 1024 * 1024,
            resource_cache_entries: 4_096,
            render_budget_ms: 20_000,
            ack_wait_secs: 30,
            max_deliver: 8,
            max_backoff_secs: 120,
            shutdown_grace_secs: 10,
        }
    }
}

impl Config {
    /// The worker loop's options.
    pub fn worker_options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.max(1),
            max_backoff: Duration::from_secs(self.max_backoff_secs.max(1)),
            grace: Duration::from_secs(self.shutdown_grace_secs),
            ..Default::default()
        }
    }

    /// The base delay of a retry after a 5xx / 429 answer.
    pub fn http_retry_delay(&self) -> Duration {
        Duration::from_millis(self.http_retry_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_configs() {
        let c: Config =
            serde_json::from_str(r#"{"concurrency": 4, "fetch": {"allow_loopback": true}}"#)
                .unwrap();
        assert_eq!(c.concurrency, 4);
        assert!(c.fetch.allow_loopback);
        assert_eq!(c.max_page_bytes, 5 * 1024 * 1024);
        assert!(serde_json::from_str::<Config>(r#"{"concurency": 4}"#).is_err());
        assert_eq!(Config::default().worker_options().concurrency, 32);
    }
}
