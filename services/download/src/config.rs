//! Settings of the download stage.

use imgcrawl_fetch::FetchConfig;
use serde::{Deserialize, Serialize};

/// How the download stage fetches, validates and bounds image downloads. The job's
/// image filters (`min_width`, `max_bytes`, `formats`, ...) come from the job spec; these
/// are the operator's limits on top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP settings (timeouts, redirects, address guard, robots cache).
    pub fetch: FetchConfig,
    /// Messages handled at once by this process.
    pub concurrency: usize,
    /// Bytes of image bodies held in memory at once, across all handlers. Each download
    /// reserves its cap (the response's Content-Length when smaller) before reading.
    pub memory_budget_bytes: u64,
    /// Ceiling on a job's `images.max_bytes`: larger bodies are rejected `too_large`
    /// whatever the job asks for.
    pub max_bytes_ceiling: u64,
    /// Largest accepted width x height; more is a decompression bomb (`too_large`).
    pub max_pixels: u64,
    /// Deliveries of one image URL that may end in a transient failure (HTTP 5xx or
    /// 429, timeout, network error) before it is rejected with that reason.
    pub retry_deliveries: u32,
    /// Deliveries of one image URL whose host answers "slow down" (HTTP 429 or 503)
    /// before it is rejected: the URL is parked, its retries spaced by the host's
    /// back-off and the worker's exponential delay (up to two minutes apart), so a host
    /// that throttles for a while (about 20 minutes with the default) is finished
    /// later instead of rejected after `retry_deliveries`.
    pub park_deliveries: u32,
    /// Seconds the server waits for an ack before redelivering: how long the image of
    /// a process that died stays stuck. Long work (politeness waits, big downloads)
    /// keeps its message with in-progress acks every third of this.
    pub ack_wait_secs: u64,
    /// `X-Robots-Tag` directives on an image response that reject it `opted_out`
    /// (empty: honour none).
    pub opt_out_directives: Vec<String>,
}

impl Config {
    /// The worker loop's options: `concurrency` handlers at once, the bus's defaults
    /// otherwise.
    pub fn worker_options(&self) -> imgcrawl_bus::worker::WorkerOptions {
        imgcrawl_bus::worker::WorkerOptions {
            concurrency: self.concurrency.max(1),
            ..Default::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            fetch: FetchConfig::default(),
            concurrency: 32,
            memory_budget_bytes: 32 * 20 * 1024 * 1024,
            max_bytes_ceiling: 64 * 1024 * 1024,
            max_pixels: 100_000_000,
            retry_deliveries: 3,
            park_deliveries: 16,
            ack_wait_secs: 30,
            opt_out_directives: ["noimageindex", "noai", "noimageai"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields_and_typos_are_refused() {
        let c: Config =
            serde_json::from_str(r#"{"concurrency": 4, "fetch": {"allow_loopback": true}}"#)
                .expect("config");
        assert_eq!(c.concurrency, 4);
        assert!(c.fetch.allow_loopback);
        assert_eq!(c.max_pixels, 100_000_000);
        assert_eq!(c.fetch.max_redirects, FetchConfig::default().max_redirects);
        assert!(serde_json::from_str::<Config>(r#"{"max_pixel": 1}"#).is_err());
    }
}
