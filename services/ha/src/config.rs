//! The HA watcher's configuration: the nodes, the seed's health-check defaults, the
//! consistency checks, the lease and the HTTP API (address, tokens, TLS).

use std::path::PathBuf;
use std::time::Duration;

use imgcrawl_bus::ha::Node;
use imgcrawl_web::{Scope, TlsConfig, TokenSource, Tokens};
use serde::{Deserialize, Serialize};

use crate::HaError;

/// Environment variable holding an admin token of the HA API (named `env-admin`).
pub const TOKEN_ENV: &str = "IMGCRAWL_HA_TOKEN";

/// An object store the watcher health-checks and reports (a directory or an `s3://`
/// target, as the store stage takes it). Reported only: the store stage writes to
/// its one configured target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectStoreNode {
    /// Name shown in the status.
    pub name: String,
    /// `file:///path` (or a plain path); other schemes are listed without a check.
    pub target: String,
    /// Priority, as for PostgreSQL nodes.
    #[serde(default = "one")]
    pub priority: u32,
}

fn one() -> u32 {
    1
}

/// Configuration of the HA watcher (`[ha]` in the config file). Every duration has
/// the seed system's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The PostgreSQL nodes: name, URL, priority (lowest number wins an election).
    pub nodes: Vec<Node>,
    /// Object stores to health-check and report (optional).
    pub object_stores: Vec<ObjectStoreNode>,
    /// Milliseconds between health checks of each node (seed: 5 s).
    pub check_interval_ms: u64,
    /// Consecutive failed checks after which a node is down (seed: 3).
    pub failures_before_down: u32,
    /// A check slower than this many milliseconds marks the node down at once (seed: 30 s).
    pub check_timeout_ms: u64,
    /// Seconds of lag (from the node's checkpoint to the stream's end) above which a
    /// node is lagging: not elected while a node that is not lagging is healthy, and a
    /// lagging primary is replaced by one that is not (seed: 60 s).
    pub lag_threshold_secs: u64,
    /// Replace the primary automatically when it is down or lagging. Off: only manual
    /// failovers (the status still reports everything).
    pub auto_failover: bool,
    /// Seconds between periodic consistency checks (seed: 300 s; 0 = never).
    pub consistency_interval_secs: u64,
    /// Compare a node that is alone at its checkpoint with a reference replay of the
    /// stream (an extra database, `imgcrawl_ha_reference`, on a node's server, advanced
    /// incrementally). Off: only nodes at the same checkpoint are compared.
    pub consistency_reference: bool,
    /// A consistency check that takes longer than this many seconds is abandoned and
    /// reported as failed (a node stalled in the middle).
    pub consistency_timeout_secs: u64,
    /// Milliseconds a watcher's lease lasts without renewal; another watcher takes
    /// over after that (default 3 check intervals).
    pub lease_ms: Option<u64>,
    /// Address of the HA HTTP API (`GET /api/status` ...); empty = no API. Keep it on
    /// loopback or a private network (docs/security.md).
    pub listen: String,
    /// A file holding the HA API's admin token (first line), named `admin`.
    pub token_file: Option<PathBuf>,
    /// More tokens (name, scope `read` or `admin`, `file` or `env`); `IMGCRAWL_HA_TOKEN`
    /// is one more admin token when set. Without an admin token, `POST /api/failover`
    /// and `POST /api/sync` answer 401/403: nothing can be changed over HTTP.
    pub tokens: Vec<TokenSource>,
    /// Whether `GET /api/status` and `GET /api/sync-status` are open to anyone
    /// (default); when false they need a read or admin token. `GET /api/health` is
    /// always open.
    pub public_reads: bool,
    /// Serve the HA API over HTTPS with this certificate and key.
    pub tls: Option<TlsConfig>,
    /// This watcher's name in the lease (default: random per process).
    pub watcher_id: Option<String>,
    /// The index checkpoint row the nodes are projected under (`[index]
    /// checkpoint_name`).
    pub checkpoint_name: String,
    /// Milliseconds `POST /api/failover` waits for the lease holder to act.
    pub request_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodes: Vec::new(),
            object_stores: Vec::new(),
            check_interval_ms: 5_000,
            failures_before_down: 3,
            check_timeout_ms: 30_000,
            lag_threshold_secs: 60,
            auto_failover: true,
            consistency_interval_secs: 300,
            consistency_reference: true,
            consistency_timeout_secs: 900,
            lease_ms: None,
            listen: "127.0.0.1:18001".into(),
            token_file: None,
            tokens: Vec::new(),
            public_reads: true,
            tls: None,
            watcher_id: None,
            checkpoint_name: "postgres".into(),
            request_timeout_ms: 10_000,
        }
    }
}

impl Config {
    /// The check interval (at least 50 ms).
    pub fn check_interval(&self) -> Duration {
        Duration::from_millis(self.check_interval_ms.max(50))
    }

    /// The check timeout (at least 100 ms).
    pub fn check_timeout(&self) -> Duration {
        Duration::from_millis(self.check_timeout_ms.max(100))
    }

    /// The lease duration: configured, else three check intervals.
    pub fn lease(&self) -> Duration {
        match self.lease_ms {
            Some(ms) => Duration::from_millis(ms.max(100)),
            None => self.check_interval() * 3,
        }
    }

    /// The lag threshold.
    pub fn lag_threshold(&self) -> Duration {
        Duration::from_secs(self.lag_threshold_secs)
    }

    /// The periodic consistency interval (`None`: never).
    pub fn consistency_interval(&self) -> Option<Duration> {
        (self.consistency_interval_secs > 0)
            .then(|| Duration::from_secs(self.consistency_interval_secs))
    }

    /// The consistency check timeout (at least a second).
    pub fn consistency_timeout(&self) -> Duration {
        Duration::from_secs(self.consistency_timeout_secs.max(1))
    }

    /// How long an API request waits for the lease holder.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(100))
    }

    /// The HA API's tokens: `token_file`, `tokens`, and `IMGCRAWL_HA_TOKEN` when set.
    /// Without any admin token the API still serves reads and refuses every mutation.
    pub fn tokens(&self) -> Result<Tokens, HaError> {
        let admin = match &self.token_file {
            Some(p) => Some(imgcrawl_web::auth::read_token_file(p).map_err(config)?),
            None => None,
        };
        let mut sources = self.tokens.clone();
        if std::env::var_os(TOKEN_ENV).is_some() {
            sources.push(TokenSource {
                name: "env-admin".into(),
                scope: Scope::Admin,
                file: None,
                env: Some(TOKEN_ENV.into()),
            });
        }
        let tokens = imgcrawl_web::load_tokens(admin.as_deref(), &sources).map_err(config)?;
        if !tokens.has(Scope::Admin) {
            tracing::warn!(
                "ha api: no admin token configured; failover and sync over http are refused"
            );
        }
        for (name, scope) in tokens.describe() {
            tracing::info!(token = %name, %scope, "ha api token loaded");
        }
        Ok(tokens)
    }

    /// Failed checks before down, at least 1.
    pub fn failures_before_down(&self) -> u32 {
        self.failures_before_down.max(1)
    }
}

fn config(e: imgcrawl_web::WebError) -> HaError {
    HaError::Config(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_seeds_and_typos_are_refused() {
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.check_interval(), Duration::from_secs(5));
        assert_eq!(c.check_timeout(), Duration::from_secs(30));
        assert_eq!(c.failures_before_down(), 3);
        assert_eq!(c.lag_threshold(), Duration::from_secs(60));
        assert_eq!(c.consistency_interval(), Some(Duration::from_secs(300)));
        assert_eq!(c.lease(), Duration::from_secs(15));
        assert!(serde_json::from_str::<Config>(r#"{"check_intervall_ms":5}"#).is_err());
        let nodes: Config = serde_json::from_str(
            r#"{"nodes":[{"name":"pg1","url":"postgres://a/x"},{"name":"pg2","url":"postgres://b/x","priority":2}]}"#,
        )
        .unwrap();
        assert_eq!(nodes.nodes[0].priority, 1);
        assert_eq!(nodes.nodes[1].priority, 2);
    }

    #[test]
    fn api_tokens_come_from_files_and_none_means_no_mutations() {
        let none = Config::default();
        if std::env::var_os(TOKEN_ENV).is_none() {
            assert!(!none.tokens().unwrap().has(Scope::Admin));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin");
        std::fs::write(&file, "ha-admin-0123456789\n").unwrap();
        let with = Config {
            token_file: Some(file),
            ..Config::default()
        };
        assert!(with.tokens().unwrap().has(Scope::Admin));
        let short = dir.path().join("short");
        std::fs::write(&short, "short\n").unwrap();
        let bad = Config {
            token_file: Some(short),
            ..Config::default()
        };
        let e = bad.tokens().unwrap_err().to_string();
        assert!(e.contains("16 characters"), "{e}");
        let parsed: Config = serde_json::from_str(
            r#"{"tokens":[{"name":"g","scope":"read","env":"X"}],"public_reads":false,"tls":{"cert":"c.pem","key":"k.pem"}}"#,
        )
        .unwrap();
        assert!(!parsed.public_reads && parsed.tls.is_some());
    }
}
