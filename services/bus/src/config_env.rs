//! The `IMGCRAWL_NATS_*` environment variables, applied over a [`BusConfig`] (the
//! config file's `[bus]` section or the defaults). `NATS_URL` is read by the command
//! line (`--nats-url`).
//!
//! An invalid value is an error naming the variable; the values of secret variables
//! are never part of a message.

use std::path::PathBuf;

use crate::config::{Secret, Storage};
use crate::{BusConfig, BusError};

/// Replicas of what is created: `IMGCRAWL_NATS_REPLICAS`.
pub const REPLICAS: &str = "IMGCRAWL_NATS_REPLICAS";
/// `file` or `memory`: `IMGCRAWL_NATS_STORAGE`.
pub const STORAGE: &str = "IMGCRAWL_NATS_STORAGE";
/// The stream's dedup window, seconds.
pub const DUPLICATE_WINDOW: &str = "IMGCRAWL_NATS_DUPLICATE_WINDOW_SECS";
/// The stream's maximum age, seconds (0 = forever).
pub const MAX_AGE: &str = "IMGCRAWL_NATS_MAX_AGE_SECS";
/// The stream's maximum size, bytes (0 = unlimited).
pub const MAX_BYTES: &str = "IMGCRAWL_NATS_MAX_BYTES";
/// A credentials file.
pub const CREDS: &str = "IMGCRAWL_NATS_CREDS";
/// An NKey seed file.
pub const NKEY: &str = "IMGCRAWL_NATS_NKEY";
/// User name.
pub const USER: &str = "IMGCRAWL_NATS_USER";
/// Password (secret).
pub const PASSWORD: &str = "IMGCRAWL_NATS_PASSWORD";
/// Token (secret).
pub const TOKEN: &str = "IMGCRAWL_NATS_TOKEN";
/// CA file for the servers' certificates.
pub const TLS_CA: &str = "IMGCRAWL_NATS_TLS_CA";
/// Client certificate file.
pub const TLS_CERT: &str = "IMGCRAWL_NATS_TLS_CERT";
/// Client key file.
pub const TLS_KEY: &str = "IMGCRAWL_NATS_TLS_KEY";
/// `true` to refuse plain connections.
pub const TLS_REQUIRED: &str = "IMGCRAWL_NATS_TLS_REQUIRED";
/// Partitions of a stream this process creates: `IMGCRAWL_NATS_PARTITIONS`.
pub const PARTITIONS: &str = "IMGCRAWL_NATS_PARTITIONS";
/// `host` or `domain`: `IMGCRAWL_NATS_PARTITION_BY`.
pub const PARTITION_BY: &str = "IMGCRAWL_NATS_PARTITION_BY";

impl BusConfig {
    /// Applies the `IMGCRAWL_NATS_*` variables of the process environment.
    pub fn apply_process_env(&mut self) -> Result<(), BusError> {
        self.apply_env(|k| std::env::var(k).ok())
    }

    /// Applies the `IMGCRAWL_NATS_*` variables `get` returns (empty counts as unset).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), BusError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get(REPLICAS) {
            self.replicas = number(REPLICAS, &v)?;
        }
        if let Some(v) = get(STORAGE) {
            self.storage = v
                .parse::<Storage>()
                .map_err(|e| BusError::Config(format!("{STORAGE}: {e}")))?;
        }
        if let Some(v) = get(DUPLICATE_WINDOW) {
            self.duplicate_window_secs = number(DUPLICATE_WINDOW, &v)?;
        }
        if let Some(v) = get(MAX_AGE) {
            self.max_age_secs = number(MAX_AGE, &v)?;
        }
        if let Some(v) = get(MAX_BYTES) {
            self.max_bytes = number(MAX_BYTES, &v)?;
        }
        if let Some(v) = get(PARTITIONS) {
            self.partitions = number(PARTITIONS, &v)?;
            if !(1..=crate::partitions::MAX_PARTITIONS).contains(&self.partitions) {
                return Err(BusError::Config(format!(
                    "{PARTITIONS}: {v:?} is not between 1 and {}",
                    crate::partitions::MAX_PARTITIONS
                )));
            }
        }
        if let Some(v) = get(PARTITION_BY) {
            self.partition_by = v
                .parse()
                .map_err(|e| BusError::Config(format!("{PARTITION_BY}: {e}")))?;
        }
        for (key, field) in [
            (CREDS, &mut self.creds_file),
            (NKEY, &mut self.nkey_seed_file),
            (TLS_CA, &mut self.tls_ca_file),
            (TLS_CERT, &mut self.tls_cert_file),
            (TLS_KEY, &mut self.tls_key_file),
        ] {
            if let Some(v) = get(key) {
                *field = Some(PathBuf::from(v));
            }
        }
        if let Some(v) = get(USER) {
            self.user = Some(v);
        }
        if let Some(v) = get(PASSWORD) {
            self.password = Some(Secret::new(v));
        }
        if let Some(v) = get(TOKEN) {
            self.token = Some(Secret::new(v));
        }
        if let Some(v) = get(TLS_REQUIRED) {
            self.tls_required = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(BusError::Config(format!(
                        "{TLS_REQUIRED}: not a boolean: {v:?}"
                    )))
                }
            };
        }
        Ok(())
    }
}

fn number<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, BusError>
where
    T::Err: std::fmt::Display,
{
    v.trim()
        .parse()
        .map_err(|e| BusError::Config(format!("{key}: {e}: {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn variables_override_the_file() {
        let mut cfg = BusConfig {
            replicas: 3,
            user: Some("file-user".into()),
            ..Default::default()
        };
        cfg.apply_env(env(&[
            (STORAGE, "memory"),
            (MAX_AGE, "3600"),
            (USER, "env-user"),
            (PASSWORD, "pw"),
            (TLS_CA, "/etc/ca.pem"),
            (TLS_REQUIRED, "yes"),
            (REPLICAS, ""),
            (PARTITIONS, "32"),
            (PARTITION_BY, "domain"),
        ]))
        .unwrap();
        assert_eq!(cfg.partitions, 32);
        assert_eq!(cfg.partition_by, crate::partitions::PartitionBy::Domain);
        assert_eq!(cfg.replicas, 3, "empty is unset");
        assert_eq!(cfg.storage, Storage::Memory);
        assert_eq!(cfg.max_age_secs, 3600);
        assert_eq!(cfg.user.as_deref(), Some("env-user"));
        assert_eq!(cfg.password.as_ref().map(Secret::expose), Some("pw"));
        assert_eq!(cfg.tls_ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(cfg.tls_required);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let mut cfg = BusConfig::default();
        let e = cfg.apply_env(env(&[(REPLICAS, "three")])).unwrap_err();
        assert!(e.to_string().contains(REPLICAS), "{e}");
        let e = cfg.apply_env(env(&[(STORAGE, "disk")])).unwrap_err();
        assert!(e.to_string().contains("file or memory"), "{e}");
        let e = cfg.apply_env(env(&[(PARTITIONS, "0")])).unwrap_err();
        assert!(e.to_string().contains("between 1 and 1024"), "{e}");
        let e = cfg.apply_env(env(&[(PARTITION_BY, "ip")])).unwrap_err();
        assert!(e.to_string().contains(PARTITION_BY), "{e}");
    }
}
