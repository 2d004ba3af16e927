//! Errors that stop the download stage (per-message failures are outcomes, not errors).

use imgcrawl_bus::BusError;
use imgcrawl_fetch::FetchError;

/// Why the download stage could not run.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The HTTP client could not be built.
    #[error("build http client: {0}")]
    Fetcher(#[from] FetchError),
    /// The consumer could not be created or the pull loop failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}
