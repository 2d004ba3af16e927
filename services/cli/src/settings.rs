//! Where the pipeline's infrastructure is: flags and environment over the config
//! file's `[bus]` section over the local stack's defaults.

use imgcrawl_events::redact;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use imgcrawl_bus::config::Storage;
use imgcrawl_bus::BusConfig;
use serde::Deserialize;

use crate::stack;

/// Connection settings shared by every command (`Default`: nothing given, every value
/// from the local stack's defaults).
#[derive(Debug, Clone, Default, Args)]
pub struct Settings {
    /// NATS server URL (default: the local stack's).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// PostgreSQL URL of the index (default: the local stack's).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Bucket for the object projection: a directory, `file:///path` or
    /// `s3://bucket/prefix` (S3 credentials and endpoint from the AWS_* variables).
    #[arg(long, env = "IMGCRAWL_BUCKET", global = true)]
    pub bucket: Option<String>,
    /// HA: the PostgreSQL nodes, `name=url,name=url` (election priority by position;
    /// default: the local stack's after `imgcrawl up --nodes 2`). With nodes, readers
    /// follow the HA pointer to the primary and the index runs one writer per node.
    #[arg(long, env = "IMGCRAWL_HA_NODES", global = true)]
    pub ha_nodes: Option<String>,
    /// Replicas of the stream and buckets a start creates (default 1; existing ones
    /// change only with `imgcrawl topology apply`).
    #[arg(long, env = "IMGCRAWL_NATS_REPLICAS", global = true)]
    pub nats_replicas: Option<usize>,
    /// Storage of the stream and buckets a start creates: file (default) or memory.
    #[arg(long, env = "IMGCRAWL_NATS_STORAGE", global = true)]
    pub nats_storage: Option<Storage>,
}

/// The part of the config file these settings read.
#[derive(Default, Deserialize)]
struct BusFile {
    #[serde(default)]
    bus: BusConfig,
}

/// Whether the file's `[bus]` section names a URL (else the local stack's is used).
#[derive(Default, Deserialize)]
struct UrlProbe {
    bus: Option<UrlOnly>,
}

#[derive(Default, Deserialize)]
struct UrlOnly {
    nats_url: Option<String>,
}

impl Settings {
    /// The NATS URL to use.
    pub fn nats_url(&self) -> String {
        self.nats_url
            .clone()
            .unwrap_or_else(stack::default_nats_url)
    }

    /// The database URL to use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(stack::default_database_url)
    }

    /// The bucket to use.
    pub fn bucket(&self) -> anyhow::Result<String> {
        match &self.bucket {
            Some(b) => Ok(b.clone()),
            None => stack::default_bucket(),
        }
    }

    /// Is this the local stack (nothing pointed elsewhere)?
    pub fn is_local(&self) -> bool {
        self.nats_url.is_none() && self.database_url.is_none()
    }

    /// Bus settings: the `[bus]` section of the file `IMGCRAWL_CONFIG` names, the
    /// `IMGCRAWL_NATS_*` environment and the flags on top.
    pub fn bus(&self, client_name: &str) -> anyhow::Result<BusConfig> {
        let file = std::env::var_os("IMGCRAWL_CONFIG").map(PathBuf::from);
        self.bus_with(file.as_deref(), client_name)
    }

    /// Bus settings with the `[bus]` section of `file` (a `--config` flag) at the bottom;
    /// relative paths in it are relative to the file.
    pub fn bus_with(&self, file: Option<&Path>, client_name: &str) -> anyhow::Result<BusConfig> {
        let (mut cfg, url_in_file) = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
                let cfg = toml::from_str::<BusFile>(&text)
                    .with_context(|| format!("parse [bus] in {}", p.display()))?
                    .bus;
                let probe: UrlProbe = toml::from_str(&text).unwrap_or_default();
                let mut cfg = cfg;
                relative_to(&mut cfg, p.parent().unwrap_or(Path::new(".")));
                (cfg, probe.bus.is_some_and(|b| b.nats_url.is_some()))
            }
            None => (BusConfig::default(), false),
        };
        if self.nats_url.is_some() || !url_in_file {
            cfg.nats_url = self.nats_url();
        }
        cfg.apply_process_env()?;
        if let Some(r) = self.nats_replicas {
            cfg.replicas = r;
        }
        if let Some(s) = self.nats_storage {
            cfg.storage = s;
        }
        cfg.client_name = client_name.into();
        cfg.validate()?;
        Ok(cfg)
    }

    /// Connects to NATS (creating the topology), with an error that says what to do.
    pub async fn connect_bus(&self, client_name: &str) -> anyhow::Result<imgcrawl_bus::Bus> {
        Ok(imgcrawl_bus::Bus::connect(self.bus(client_name)?).await?)
    }

    /// [`Settings::connect_bus`] with the `[bus]` section of `file` (a `--config` flag).
    pub async fn connect_bus_with(
        &self,
        file: Option<&Path>,
        client_name: &str,
    ) -> anyhow::Result<imgcrawl_bus::Bus> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("IMGCRAWL_CONFIG").map(PathBuf::from));
        let cfg = self.bus_with(file.as_deref(), client_name)?;
        Ok(imgcrawl_bus::Bus::connect(cfg).await?)
    }

    /// The HA nodes: `--ha-nodes`/`IMGCRAWL_HA_NODES`, else the local stack's (none
    /// unless it was started with `--nodes 2` or more).
    pub fn ha_nodes(&self) -> anyhow::Result<Vec<imgcrawl_bus::ha::Node>> {
        let spec = match &self.ha_nodes {
            Some(s) => s.clone(),
            None if self.is_local() => stack::local_ha_nodes().unwrap_or_default(),
            None => String::new(),
        };
        imgcrawl_bus::ha::parse_nodes(&spec).map_err(|e| anyhow::anyhow!("ha nodes: {e}"))
    }

    /// The database readers use: without HA nodes `database_url()`; with them the
    /// node the HA pointer names (the first node before any election).
    pub async fn reader_database_url(&self) -> anyhow::Result<String> {
        let nodes = self.ha_nodes()?;
        let Some(first) = nodes.first() else {
            return Ok(self.database_url());
        };
        let bus = self.connect_bus("imgcrawl-reader").await?;
        let pointer = imgcrawl_bus::ha::current_primary(&bus, imgcrawl_bus::ha::POSTGRES).await?;
        Ok(imgcrawl_bus::ha::primary_url(&nodes, pointer.as_ref())
            .unwrap_or(&first.url)
            .to_string())
    }

    /// Connects to the index database (the HA primary when nodes are configured).
    pub async fn connect_db(&self) -> anyhow::Result<sqlx::PgPool> {
        let url = self.reader_database_url().await?;
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to postgresql at {}: {e} (is the stack running? try `imgcrawl up`)", redact(&url)))
    }
}

/// Makes the file paths of a `[bus]` section relative to the file's directory.
fn relative_to(cfg: &mut BusConfig, dir: &Path) {
    for p in [
        &mut cfg.creds_file,
        &mut cfg.nkey_seed_file,
        &mut cfg.tls_ca_file,
        &mut cfg.tls_cert_file,
        &mut cfg.tls_key_file,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = dir.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bus_section_is_under_flags_and_its_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imgcrawl.toml");
        std::fs::write(
            &file,
            "[crawl]\n[bus]\nreplicas = 3\nmax_age_secs = 60\ntls_ca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let cfg = Settings::default().bus_with(Some(&file), "t").unwrap();
        assert_eq!((cfg.replicas, cfg.max_age_secs), (3, 60));
        assert_eq!(cfg.tls_ca_file, Some(dir.path().join("ca.pem")));
        assert_eq!(
            cfg.nats_url,
            stack::default_nats_url(),
            "no url in the file"
        );
        assert_eq!(cfg.client_name, "t");

        let flags = Settings {
            nats_replicas: Some(1),
            nats_storage: Some(Storage::Memory),
            ..Settings::default()
        };
        let cfg = flags.bus_with(Some(&file), "t").unwrap();
        assert_eq!((cfg.replicas, cfg.storage), (1, Storage::Memory));

        std::fs::write(&file, "[bus]\nnats_url = \"nats://a:1,nats://b:2\"\n").unwrap();
        let cfg = Settings::default().bus_with(Some(&file), "t").unwrap();
        assert_eq!(cfg.nats_url, "nats://a:1,nats://b:2", "the file's url");
        let over = Settings {
            nats_url: Some("nats://c:3".into()),
            ..Settings::default()
        };
        assert_eq!(
            over.bus_with(Some(&file), "t").unwrap().nats_url,
            "nats://c:3"
        );

        std::fs::write(&file, "[bus]\nreplica = 3\n").unwrap();
        let e = format!(
            "{:#}",
            Settings::default().bus_with(Some(&file), "t").unwrap_err()
        );
        assert!(e.contains("replica"), "{e}");
    }
}
