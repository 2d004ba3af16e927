//! The embedded local stack: a private nats-server with JetStream, a private
//! PostgreSQL, a local directory as the bucket, and a background `imgcrawl run`.
//!
//! Everything lives under one project-local home (`IMGCRAWL_HOME`, default
//! `./.imgcrawl`), listens on loopback ports chosen not to collide with system
//! services, and survives `down`/`up`. Every step is idempotent: `up` on a running
//! stack only checks it.

mod backup;
mod ha;
mod nats;
mod nats_bin;
mod postgres;
mod proc;
mod prometheus;
mod workers;

use std::path::PathBuf;

use anyhow::Result;

pub use ha::local_ha_nodes;
pub use proc::port_open;

/// NATS port of the local stack: `IMGCRAWL_NATS_PORT`, default 14222 (not 4222, so a
/// system nats-server can coexist).
pub fn nats_port() -> u16 {
    port_from_env("IMGCRAWL_NATS_PORT", 14222)
}

/// NATS monitoring port of the local stack: `IMGCRAWL_NATS_MONITOR_PORT`, default 18222.
pub fn nats_monitor_port() -> u16 {
    port_from_env("IMGCRAWL_NATS_MONITOR_PORT", 18222)
}

/// PostgreSQL port of the local stack: `IMGCRAWL_PG_PORT`, default 54329 (not 5432).
pub fn pg_port() -> u16 {
    port_from_env("IMGCRAWL_PG_PORT", 54329)
}

/// Metrics port of the local stack's workers: `IMGCRAWL_METRICS_PORT`, default 19464
/// (`/metrics`, `/healthz`, `/readyz` on loopback).
pub fn metrics_port() -> u16 {
    port_from_env("IMGCRAWL_METRICS_PORT", 19464)
}

/// Metrics port of the local stack's HA watcher: `IMGCRAWL_HA_METRICS_PORT`, default
/// 19465.
pub fn ha_metrics_port() -> u16 {
    port_from_env("IMGCRAWL_HA_METRICS_PORT", 19465)
}

/// Points a stack process's metrics listener at loopback `port` (each process of
/// the stack has its own port, whatever `IMGCRAWL_METRICS_LISTEN` says).
fn metrics_env(cmd: &mut std::process::Command, port: u16) {
    cmd.env("IMGCRAWL_METRICS_LISTEN", format!("127.0.0.1:{port}"));
}

pub(crate) fn port_from_env(var: &str, default: u16) -> u16 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
/// Database name and user of the local stack.
pub const PG_DB: &str = "imgcrawl";

/// Default `NATS_URL` (the local stack's: every node of its cluster, if it has one).
pub fn default_nats_url() -> String {
    nats::urls(&home())
}

/// Default `DATABASE_URL` (the local stack's).
pub fn default_database_url() -> String {
    format!("postgres://{PG_DB}@127.0.0.1:{}/{PG_DB}", pg_port())
}

/// The stack's home directory.
pub fn home() -> PathBuf {
    std::env::var_os("IMGCRAWL_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".imgcrawl"))
}

/// Absolute form of the home directory (created if missing).
pub fn home_abs() -> Result<PathBuf> {
    let h = home();
    std::fs::create_dir_all(&h)?;
    Ok(std::fs::canonicalize(h)?)
}

/// The default bucket: a local directory under the home.
pub fn default_bucket() -> Result<String> {
    Ok(format!("file://{}", home_abs()?.join("bucket").display()))
}

/// Options for `imgcrawl up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Also start the pipeline workers in the background.
    pub workers: bool,
    /// Let the workers fetch loopback addresses (the local demo needs it).
    pub allow_loopback: bool,
    /// PostgreSQL nodes (HA with 2 or more; default: as many as before).
    pub nodes: Option<usize>,
    /// nats-server nodes (a JetStream cluster with 3 or more; default: as before).
    pub nats_nodes: Option<usize>,
    /// Every nats node fsyncs each write (`sync_interval: always`); default: as before.
    pub nats_sync_always: Option<bool>,
    /// Also start Prometheus (Debian's `prometheus`) scraping the stack.
    pub prometheus: bool,
    /// Also start the continuous archive (`imgcrawl backup`, docs/backup.md).
    pub backup: bool,
}

/// Starts whatever part of the stack is not running.
pub async fn up(opts: &UpOptions) -> Result<()> {
    let home = home_abs()?;
    std::fs::create_dir_all(home.join("bucket"))?;
    let nats_nodes = nats::up(&home, opts.nats_nodes, opts.nats_sync_always).await?;
    if nats_nodes > 1 {
        nats::create_topology(&home, nats_nodes.min(3)).await?;
    }
    postgres::up(&home).await?;
    let nodes = ha::up(&home, opts.nodes).await?;
    if opts.workers {
        workers::up(&home, opts.allow_loopback).await?;
        if nodes >= 2 {
            ha::watcher_up(&home).await?;
        }
    }
    if opts.prometheus {
        prometheus::up(&home).await?;
    }
    if opts.backup {
        backup::up(&home)?;
    }
    Ok(())
}

/// Stops the stack (workers first, so they drain cleanly).
pub async fn down() -> Result<()> {
    let home = home_abs()?;
    backup::down(&home).await?;
    workers::down(&home).await?;
    prometheus::down(&home).await;
    ha::down(&home).await?;
    postgres::down(&home).await?;
    nats::down(&home).await?;
    Ok(())
}

/// One line per component: name, running or not, and where.
pub fn describe() -> Vec<(String, bool, String)> {
    let home = home();
    let mut out: Vec<(String, bool, String)> = nats::nodes(&home)
        .into_iter()
        .map(|(name, port, _)| {
            let store = match name.as_str() {
                "nats" => home.join("nats"),
                n => home
                    .join("nats-cluster")
                    .join(n.trim_start_matches("nats-")),
            };
            let sync = if nats::sync_always(&home) {
                ", fsync always"
            } else {
                ""
            };
            let where_ = format!("nats://127.0.0.1:{port} (store {}{sync})", store.display());
            (name, port_open(port), where_)
        })
        .collect();
    out.extend([
        (
            "postgres".into(),
            port_open(pg_port()),
            format!(
                "{} (data {})",
                default_database_url(),
                home.join("pg/data").display()
            ),
        ),
        (
            "workers".into(),
            workers::running(&home),
            format!("log {}", home.join("run.log").display()),
        ),
        (
            "backup".into(),
            backup::running(&home),
            format!("log {}", home.join("backup.log").display()),
        ),
        (
            "bucket".into(),
            home.join("bucket").is_dir(),
            home.join("bucket").display().to_string(),
        ),
    ]);
    out.extend(ha::describe());
    out.extend(prometheus::describe(&home));
    out
}
