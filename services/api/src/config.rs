//! The API's configuration: where it listens (and with which certificate), where the
//! index and the bucket are, the bearer tokens, the trusted proxies, and the limits
//! (rate, body size, page size, thumbnails).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use imgcrawl_bus::ha::Node;
use imgcrawl_web::{RateLimit, Scope, TlsConfig, TokenSource, Tokens};
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
    /// An admin token (named `admin`). Never logged; prefer `token_file` or `tokens`.
    pub token: Option<String>,
    /// A file holding the admin token (first line, surrounding whitespace removed);
    /// used when `token` is unset.
    pub token_file: Option<PathBuf>,
    /// More tokens, each with a name, a scope (`read` or `admin`) and a `file` or `env`
    /// holding it. Several may be valid at once (rotation: docs/security.md).
    pub tokens: Vec<TokenSource>,
    /// Whether the read endpoints (and the gallery) are open to anyone (default); when
    /// false they need a `read` or `admin` token. The probes are always open.
    pub public_reads: bool,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the
    /// client; from anyone else the header is ignored.
    pub trusted_proxies: Vec<String>,
    /// Serve HTTPS with this certificate and key (default: plain HTTP).
    pub tls: Option<TlsConfig>,
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
            tokens: Vec::new(),
            public_reads: true,
            trusted_proxies: Vec::new(),
            tls: None,
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
    /// The admin token of `token`, else the first line of `token_file`, if either is set.
    pub fn resolve_token(&self) -> Result<Option<String>, ApiError> {
        Ok(match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(path)) => Some(imgcrawl_web::auth::read_token_file(path)?),
            (None, None) => None,
        })
    }

    /// Every valid token; an error when none is an admin token (every mutation needs
    /// one) or one cannot be read or is shorter than 16 characters.
    pub fn tokens(&self) -> Result<Tokens, ApiError> {
        let tokens = imgcrawl_web::load_tokens(self.resolve_token()?.as_deref(), &self.tokens)?;
        if !tokens.has(Scope::Admin) {
            return Err(ApiError::NoToken);
        }
        for (name, scope) in tokens.describe() {
            tracing::info!(token = %name, %scope, "api token loaded");
        }
        Ok(tokens)
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
    fn tokens_come_from_the_setting_or_files_and_one_must_be_admin() {
        let mut c = Config::default();
        assert!(matches!(c.tokens(), Err(ApiError::NoToken)));
        c.token = Some("short".into());
        assert!(matches!(c.tokens(), Err(ApiError::Web(_))));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  0123456789abcdef0123\nignored\n").unwrap();
        c.token = None;
        c.token_file = Some(file.clone());
        assert_eq!(
            c.resolve_token().unwrap().as_deref(),
            Some("0123456789abcdef0123")
        );
        assert!(c.tokens().unwrap().has(Scope::Admin));
        // a read token alone is not enough: mutations would be unreachable
        let read = dir.path().join("read");
        std::fs::write(&read, "read-token-0123456789\n").unwrap();
        let only_read = Config {
            tokens: vec![TokenSource {
                name: "dashboards".into(),
                scope: Scope::Read,
                file: Some(read),
                env: None,
            }],
            ..Config::default()
        };
        assert!(matches!(only_read.tokens(), Err(ApiError::NoToken)));
        let both = Config {
            token_file: Some(file),
            ..only_read
        };
        assert_eq!(both.tokens().unwrap().describe().len(), 2);
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
