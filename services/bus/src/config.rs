//! Connection and topology settings shared by every stage: the `[bus]` section of the
//! config file, with environment variables on top ([`crate::config_env`]).
//!
//! Secrets (password, token) are [`Secret`]s: their `Debug` and `Serialize` never show
//! the value, and no error message contains one.

use serde::{Deserialize, Serialize};

use crate::partitions::PartitionBy;
use std::path::PathBuf;
use std::time::Duration;

/// Where NATS is, how to authenticate, and how the topology is shaped. Every field has
/// a default that fits the local stack; production sets `replicas = 3`.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// NATS server URL(s), comma-separated; the client tries them all and reconnects to
    /// any of them (and to servers the cluster announces).
    pub nats_url: String,
    /// Client name shown in server monitoring.
    pub client_name: String,
    /// JetStream domain, if the account uses one.
    pub js_domain: Option<String>,
    /// The event stream's name.
    pub stream: String,
    /// Replicas of what this process creates (stream, buckets, object store): 1
    /// locally, 3 in a cluster. Existing topology is only changed by
    /// `imgcrawl topology apply`.
    pub replicas: usize,
    /// Storage of what this process creates: `file` (default) or `memory`.
    pub storage: Storage,
    /// Deduplication window for `Nats-Msg-Id`, seconds. Must cover the longest retry horizon.
    pub duplicate_window_secs: u64,
    /// The stream's maximum event age, seconds (0 = forever: the stream is the source
    /// of truth, a limit drops the oldest events).
    pub max_age_secs: u64,
    /// The stream's maximum size, bytes (0 = unlimited; a limit drops the oldest events).
    pub max_bytes: u64,
    /// Blob store bucket (image bytes by SHA-256).
    pub blob_bucket: String,
    /// KV bucket of seen URLs.
    pub seen_bucket: String,
    /// How long a seen-set entry lives, seconds (0 = forever).
    pub seen_max_age_secs: u64,
    /// KV bucket of job specs and run state.
    pub jobs_bucket: String,
    /// Partitions of the frontier and the download queue, for a stream this process
    /// creates (an existing stream's own count wins; see [`crate::partitions`]). At
    /// least the most replicas a fetching stage will run.
    pub partitions: u16,
    /// What decides a URL's partition, for a stream this process creates: `host`
    /// (default) or `domain`.
    pub partition_by: PartitionBy,
    /// A partition lease's time to live, milliseconds: how long the partitions of a
    /// replica that died wait before another replica takes them.
    pub partition_lease_ttl_ms: u64,
    /// Seconds to wait for one connection attempt to one server.
    pub connect_timeout_secs: u64,
    /// Passes over the server list before the first connection is given up (a lost
    /// connection later is retried forever).
    pub connect_attempts: u32,
    /// A NATS credentials file (user JWT and NKey seed, `.creds`).
    pub creds_file: Option<PathBuf>,
    /// A file holding an NKey user seed (`SU…`).
    pub nkey_seed_file: Option<PathBuf>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`); prefer the environment variable to the file.
    pub password: Option<Secret>,
    /// Authentication token.
    pub token: Option<Secret>,
    /// PEM file of the CA(s) that signed the servers' certificates.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (mutual TLS).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Refuse a connection that is not TLS (implied by `tls://` URLs and by a CA or
    /// client certificate).
    pub tls_required: bool,
}

/// Where JetStream keeps a stream: on disk (survives restarts) or in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// On disk.
    #[default]
    File,
    /// In memory: lost when the server stops; for tests and throwaway stacks.
    Memory,
}

impl Storage {
    /// JetStream's storage type.
    pub fn to_nats(self) -> async_nats::jetstream::stream::StorageType {
        match self {
            Storage::File => async_nats::jetstream::stream::StorageType::File,
            Storage::Memory => async_nats::jetstream::stream::StorageType::Memory,
        }
    }
}

impl std::str::FromStr for Storage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "file" => Ok(Storage::File),
            "memory" => Ok(Storage::Memory),
            other => Err(format!("unknown storage {other:?} (file or memory)")),
        }
    }
}

/// A secret string: never shown by `Debug`, `Display` or `Serialize`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusConfig")
            .field("nats_url", &imgcrawl_events::redact_list(&self.nats_url))
            .field("client_name", &self.client_name)
            .field("js_domain", &self.js_domain)
            .field("stream", &self.stream)
            .field("replicas", &self.replicas)
            .field("storage", &self.storage)
            .field("duplicate_window_secs", &self.duplicate_window_secs)
            .field("max_age_secs", &self.max_age_secs)
            .field("max_bytes", &self.max_bytes)
            .field("blob_bucket", &self.blob_bucket)
            .field("seen_bucket", &self.seen_bucket)
            .field("seen_max_age_secs", &self.seen_max_age_secs)
            .field("jobs_bucket", &self.jobs_bucket)
            .field("partitions", &self.partitions)
            .field("partition_by", &self.partition_by)
            .field("partition_lease_ttl_ms", &self.partition_lease_ttl_ms)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("connect_attempts", &self.connect_attempts)
            .field("creds_file", &self.creds_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("tls_required", &self.tls_required)
            .finish()
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            nats_url: "nats://127.0.0.1:4222".into(),
            client_name: "imgcrawl".into(),
            js_domain: None,
            stream: "IMGCRAWL".into(),
            replicas: 1,
            storage: Storage::File,
            duplicate_window_secs: 600,
            max_age_secs: 0,
            max_bytes: 0,
            blob_bucket: "imgcrawl-blobs".into(),
            seen_bucket: "imgcrawl-seen".into(),
            seen_max_age_secs: 0,
            jobs_bucket: "imgcrawl-jobs".into(),
            partitions: 16,
            partition_by: PartitionBy::Host,
            partition_lease_ttl_ms: 6_000,
            connect_timeout_secs: 5,
            connect_attempts: 3,
            creds_file: None,
            nkey_seed_file: None,
            user: None,
            password: None,
            token: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_required: false,
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

    /// Checks the settings that must go together; the message names fields, never
    /// their secret values.
    pub fn validate(&self) -> Result<(), crate::BusError> {
        let bad = |detail: &str| Err(crate::BusError::Config(detail.into()));
        if !(1..=5).contains(&self.replicas) {
            return bad("replicas must be between 1 and 5");
        }
        if self.password.is_some() && self.user.is_none() {
            return bad("a password needs a user");
        }
        if self.user.is_some() && self.password.is_none() {
            return bad("a user needs a password");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad("a tls client certificate and its key go together");
        }
        let methods = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some(),
            self.token.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return bad("choose one of creds file, nkey seed file, user and password, token");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_or_serialized_form() {
        let cfg = BusConfig {
            nats_url: "nats://alice:hunter2@127.0.0.1:4222,nats://127.0.0.1:4223".into(),
            user: Some("alice".into()),
            password: Some(Secret::new("hunter2")),
            ..Default::default()
        };
        let t = BusConfig {
            token: Some(Secret::new("s3cr3t-token")),
            ..Default::default()
        };
        for shown in [
            format!("{cfg:?}"),
            format!("{cfg:#?}"),
            format!("{t:?}"),
            serde_json::to_string(&cfg).unwrap().replace("hunter2@", ""),
            serde_json::to_string(&t).unwrap(),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert!(format!("{cfg:?}").contains("127.0.0.1:4223"));
    }

    #[test]
    fn the_bus_section_parses_with_defaults() {
        let cfg: BusConfig = serde_json::from_value(serde_json::json!({
            "replicas": 3, "storage": "memory", "token": "t"
        }))
        .unwrap();
        assert_eq!(cfg.replicas, 3);
        assert_eq!(cfg.storage, Storage::Memory);
        assert_eq!(cfg.token.as_ref().map(Secret::expose), Some("t"));
        assert_eq!(cfg.duplicate_window_secs, 600);
        assert!(serde_json::from_value::<BusConfig>(serde_json::json!({"replica": 3})).is_err());
    }

    #[test]
    fn settings_that_go_together_are_checked() {
        let ok = BusConfig::default();
        assert!(ok.validate().is_ok());
        let no_pw = BusConfig {
            user: Some("u".into()),
            ..Default::default()
        };
        assert!(no_pw.validate().is_err());
        let two = BusConfig {
            token: Some(Secret::new("t")),
            creds_file: Some("x.creds".into()),
            ..Default::default()
        };
        let e = two.validate().unwrap_err().to_string();
        assert!(e.contains("choose one"), "{e}");
        let r0 = BusConfig {
            replicas: 0,
            ..Default::default()
        };
        assert!(r0.validate().is_err());
    }
}
