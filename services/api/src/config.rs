//! The API's configuration: where it listens, where the index and the bucket are, the
//! bearer token, and the limits (rate, body size, page size, thumbnails).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use imgcrawl_bus::ha::Node;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Environment variable holding the bearer token of mutating endpoints.
pub const TOKEN_ENV: &str = "IMGCRAWL_API_TOKEN";

/// Configuration of the API server. Every field has a default that fits the local
/// stack; only the token has to be provided (`token` or `token_file`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:8000`; port 0 picks a free port).
    pub listen: SocketAddr,
    /// PostgreSQL URL of the index (reads only) when there are no HA `nodes`.
    pub database_url: String,
    /// HA: the PostgreSQL nodes (name, URL, priority), as the index writers and the HA
    /// watcher have them. With nodes, reads go to the node the HA pointer names (the
    /// first node before any election), followed live; without, to `database_url`.
    pub nodes: Vec<Node>,
    /// Name of the index node's `projection_checkpoint` row (see the index stage).
    pub checkpoint_name: String,
    /// Most PostgreSQL connections held by the API (on the primary).
    pub db_max_connections: u32,
    /// Milliseconds a request waits for a database connection before it is answered
    /// with 503 (the database is down or saturated).
    pub db_acquire_timeout_ms: u64,
    /// Milliseconds `/readyz` and `/api/ha-status` wait for each dependency (a
    /// PostgreSQL node's `SELECT 1`, a NATS round trip).
    pub check_timeout_ms: u64,
    /// The bearer token required by mutating endpoints. Never logged.
    pub token: Option<String>,
    /// A file holding the token (first line, surrounding whitespace removed); used when
    /// `token` is unset.
    pub token_file: Option<PathBuf>,
    /// Per-client rate limit.
    pub rate_limit: RateLimit,
    /// Largest accepted request body in bytes (larger: 413).
    pub body_limit_bytes: usize,
    /// Default page size of `GET /api/images` and `GET /api/crawl/status`.
    pub default_page_size: u32,
    /// Largest page size a client may ask for.
    pub max_page_size: u32,
    /// Most seed URLs in one crawl request.
    pub max_seeds: usize,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Milliseconds `POST /api/ha/failover` waits for the HA watcher holding the lease
    /// to answer before it says 503 `no_watcher` (kept half a second under the request
    /// timeout).
    pub failover_wait_ms: u64,
    /// The bucket images are read from (the store stage's bucket settings, same names:
    /// `target`, `s3`, `prefix`).
    pub store: imgcrawl_bucket::Config,
    /// Thumbnails.
    pub thumbnails: Thumbnails,
    /// Allow crawl requests for loopback addresses (local demos and tests), as the
    /// crawler's `allow_loopback` does.
    pub allow_loopback: bool,
    /// Allow crawl requests for private-network addresses, as the crawler's
    /// `allow_private` does.
    pub allow_private: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "postgres://imgcrawl@127.0.0.1:54329/imgcrawl".into(),
            nodes: Vec::new(),
            checkpoint_name: "postgres".into(),
            db_max_connections: 8,
            db_acquire_timeout_ms: 500,
            check_timeout_ms: 1000,
            token: None,
            token_file: None,
            rate_limit: RateLimit::default(),
            body_limit_bytes: 64 * 1024,
            default_page_size: 50,
            max_page_size: 500,
            max_seeds: 100,
            request_timeout_secs: 30,
            failover_wait_ms: 15_000,
            store: imgcrawl_bucket::Config::default(),
            thumbnails: Thumbnails::default(),
            allow_loopback: false,
            allow_private: false,
        }
    }
}

/// A token bucket per client address: `per_second` tokens are added every second, up
/// to `burst`; a request takes one, or is answered 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per client (0 turns the limit off).
    pub per_second: f64,
    /// Requests a client may make at once after being idle (a gallery page loads one
    /// thumbnail per image, so keep it above the page size).
    pub burst: u32,
    /// Clients remembered at most; the longest idle are forgotten first.
    pub max_clients: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 100.0,
            burst: 400,
            max_clients: 10_000,
        }
    }
}

/// Small server-side renditions for the gallery grid, cached on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thumbnails {
    /// Cache directory (created if missing).
    pub cache_dir: PathBuf,
    /// Longest side of a thumbnail in pixels.
    pub size: u32,
    /// JPEG quality (1-100).
    pub quality: u8,
    /// Images larger than this many bytes are not decoded (a placeholder is served).
    pub max_source_bytes: u64,
    /// Images with more pixels than this are not decoded (a placeholder is served).
    pub max_source_pixels: u64,
    /// Thumbnails rendered at once (decoding is CPU-bound).
    pub concurrency: usize,
}

impl Default for Thumbnails {
    fn default() -> Self {
        Thumbnails {
            cache_dir: PathBuf::from(".imgcrawl/thumbnails"),
            size: 256,
            quality: 80,
            max_source_bytes: 32 << 20,
            max_source_pixels: 64_000_000,
            concurrency: 2,
        }
    }
}

impl Config {
    /// The token: `token`, else the first line of `token_file`, else an error.
    pub fn resolve_token(&self) -> Result<String, ApiError> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => t.trim().to_string(),
            (None, Some(path)) => read_token_file(path)?,
            (None, None) => return Err(ApiError::NoToken),
        };
        if token.len() < 16 {
            return Err(ApiError::Config(
                "the api token must be at least 16 characters".into(),
            ));
        }
        Ok(token)
    }

    /// How long a request waits for a database connection (at least 50 ms).
    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms.max(50))
    }

    /// How long a health check waits for each dependency (at least 50 ms).
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms.max(50))
    }

    /// The request timeout as a `Duration` (at least one second).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// How long a failover request waits for the HA watcher: `failover_wait_ms`, at
    /// least 100 ms, and half a second under the request timeout.
    pub fn failover_wait(&self) -> Duration {
        let cap = self
            .request_timeout()
            .saturating_sub(Duration::from_millis(500));
        Duration::from_millis(self.failover_wait_ms.max(100)).min(cap)
    }

    /// The page size for a requested `limit`: the default when absent; a limit outside
    /// `1..=max_page_size` is refused with the allowed range.
    pub fn page_size(&self, limit: Option<u32>) -> Result<u32, String> {
        let max = self.max_page_size.max(1);
        match limit {
            None => Ok(self.default_page_size.clamp(1, max)),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(format!("limit {n} is outside 1..={max}")),
        }
    }
}

fn read_token_file(path: &Path) -> Result<String, ApiError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ApiError::Config(format!("read token file {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default_and_typos_are_refused() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c, Config::default());
        assert!(serde_json::from_str::<Config>(r#"{"listn":"0.0.0.0:1"}"#).is_err());
        assert!(serde_json::from_str::<Config>(r#"{"rate_limit":{"brst":1}}"#).is_err());
        assert_eq!(c.db_acquire_timeout(), Duration::from_millis(500));
        assert_eq!(c.failover_wait(), Duration::from_secs(15));
        let short = Config {
            failover_wait_ms: 60_000,
            request_timeout_secs: 10,
            ..Config::default()
        };
        assert_eq!(short.failover_wait(), Duration::from_millis(9_500));
        let ha: Config = serde_json::from_str(
            r#"{"nodes":[{"name":"pg1","url":"postgres://a/x"},{"name":"pg2","url":"postgres://b/x","priority":2}],"db_acquire_timeout_ms":0}"#,
        )
        .unwrap();
        assert_eq!(ha.nodes.len(), 2);
        assert_eq!(ha.nodes[0].priority, 1);
        assert_eq!(ha.db_acquire_timeout(), Duration::from_millis(50));
    }

    #[test]
    fn tokens_come_from_the_setting_or_the_file_and_must_be_long() {
        let mut c = Config::default();
        assert!(matches!(c.resolve_token(), Err(ApiError::NoToken)));
        c.token = Some("short".into());
        assert!(matches!(c.resolve_token(), Err(ApiError::Config(_))));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  0123456789abcdef0123\nignored\n").unwrap();
        c.token = None;
        c.token_file = Some(file);
        assert_eq!(c.resolve_token().unwrap(), "0123456789abcdef0123");
    }

    #[test]
    fn page_sizes_outside_the_range_are_refused() {
        let c = Config::default();
        assert_eq!(c.page_size(None), Ok(50));
        assert_eq!(c.page_size(Some(500)), Ok(500));
        assert!(c.page_size(Some(0)).is_err());
        assert!(c.page_size(Some(501)).unwrap_err().contains("1..=500"));
    }
}
