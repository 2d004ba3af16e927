//! Errors that stop the crawl stage (everything per-message is an `Outcome` instead).

use imgcrawl_bus::BusError;
use imgcrawl_fetch::FetchError;

/// Why the crawl stage could not run.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The HTTP client could not be built.
    #[error("build fetcher: {0}")]
    Fetcher(#[from] FetchError),
    /// The consumer could not be created or the pull loop failed.
    #[error("run worker: {0}")]
    Worker(#[from] BusError),
}
