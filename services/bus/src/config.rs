//! Connection and topology settings shared by every stage.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where NATS is and how the topology is shaped. Every field has a default that fits
/// the local stack; production sets `replicas: 3`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// NATS server URL(s), comma-separated.
    pub nats_url: String,
    /// Client name shown in server monitoring.
    pub client_name: String,
    /// JetStream domain, if the account uses one.
    pub js_domain: Option<String>,
    /// The event stream's name.
    pub stream: String,
    /// Stream (and bucket) replicas: 1 locally, 3 in a cluster.
    pub replicas: usize,
    /// Deduplication window for `Nats-Msg-Id`, seconds. Must cover the longest retry horizon.
    pub duplicate_window_secs: u64,
    /// Blob store bucket (image bytes by SHA-256).
    pub blob_bucket: String,
    /// KV bucket of seen URLs.
    pub seen_bucket: String,
    /// How long a seen-set entry lives, seconds (0 = forever).
    pub seen_max_age_secs: u64,
    /// KV bucket of job specs and run state.
    pub jobs_bucket: String,
    /// Seconds to wait for the first connection.
    pub connect_timeout_secs: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            nats_url: "nats://127.0.0.1:4222".into(),
            client_name: "imgcrawl".into(),
            js_domain: None,
            stream: "IMGCRAWL".into(),
            replicas: 1,
            duplicate_window_secs: 600,
            blob_bucket: "imgcrawl-blobs".into(),
            seen_bucket: "imgcrawl-seen".into(),
            seen_max_age_secs: 0,
            jobs_bucket: "imgcrawl-jobs".into(),
            connect_timeout_secs: 5,
        }
    }
}

impl BusConfig {
    /// The config with a different NATS URL.
    pub fn with_url(url: impl Into<String>) -> Self {
        BusConfig {
            nats_url: url.into(),
            ..Default::default()
        }
    }

    /// The connect timeout as a `Duration`.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }
}
