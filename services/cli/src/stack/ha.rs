//! The local stack's HA: more PostgreSQL nodes (`imgcrawl up --nodes 2`: `pg2` on the
//! next port, and so on) and a background HA watcher (`imgcrawl ha`).
//!
//! The node list is kept in `<home>/ha-nodes` (`pg1=url,pg2=url`), which every
//! command run against the local stack reads: the workers run one index writer per
//! node, readers follow the HA pointer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::proc::{live_pid, port_open, spawn_detached, terminate};
use super::{home, pg_port, postgres, PG_DB};

fn nodes_file(home: &Path) -> PathBuf {
    home.join("ha-nodes")
}

/// The local stack's node list (`pg1=url,...`), if it has more than one node.
pub fn local_ha_nodes() -> Option<String> {
    let s = std::fs::read_to_string(nodes_file(&home())).ok()?;
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

fn node_port(i: usize) -> u16 {
    pg_port().saturating_add(u16::try_from(i - 1).unwrap_or(0))
}

fn node_dir(i: usize) -> String {
    if i == 1 {
        "pg".into()
    } else {
        format!("pg{i}")
    }
}

fn node_url(i: usize) -> String {
    format!("postgres://{PG_DB}@127.0.0.1:{}/{PG_DB}", node_port(i))
}

/// How many nodes the stack has (1 without a node list).
fn configured(home: &Path) -> usize {
    std::fs::read_to_string(nodes_file(home))
        .map(|s| s.split(',').filter(|p| !p.trim().is_empty()).count().max(1))
        .unwrap_or(1)
}

/// Starts nodes 2..=`nodes` (default: as many as before) and records the node list.
/// Node 1 is the stack's usual PostgreSQL. Returns the number of nodes.
pub async fn up(home: &Path, nodes: Option<usize>) -> Result<usize> {
    let n = nodes.unwrap_or_else(|| configured(home)).max(1);
    for i in 2..=n {
        postgres::up_at(home, &node_dir(i), node_port(i)).await?;
    }
    if n >= 2 {
        let list: Vec<String> = (1..=n).map(|i| format!("pg{i}={}", node_url(i))).collect();
        std::fs::write(nodes_file(home), list.join(","))?;
    } else {
        let _ = std::fs::remove_file(nodes_file(home));
    }
    Ok(n)
}

/// Starts the HA watcher (`imgcrawl ha`) in the background unless it is running.
pub async fn watcher_up(home: &Path) -> Result<()> {
    if live_pid(&home.join("ha.pid")).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locate the imgcrawl binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("ha");
    super::metrics_env(&mut cmd, super::ha_metrics_port());
    let pid = spawn_detached(cmd, &home.join("ha.log"))?;
    std::fs::write(home.join("ha.pid"), pid.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if live_pid(&home.join("ha.pid")).is_none() {
        anyhow::bail!(
            "the ha watcher exited at start; see {}",
            home.join("ha.log").display()
        );
    }
    Ok(())
}

/// Stops the watcher and nodes 2 and up.
pub async fn down(home: &Path) -> Result<()> {
    if let Some(pid) = live_pid(&home.join("ha.pid")) {
        terminate(pid, Duration::from_secs(10)).await;
    }
    let _ = std::fs::remove_file(home.join("ha.pid"));
    for i in 2..=configured(home) {
        postgres::down_at(home, &node_dir(i)).await?;
    }
    Ok(())
}

/// Status lines for nodes 2 and up and the watcher (none without HA).
pub fn describe() -> Vec<(String, bool, String)> {
    let home = home();
    let n = configured(&home);
    if n < 2 {
        return Vec::new();
    }
    let mut out: Vec<(String, bool, String)> = (2..=n)
        .map(|i| {
            let data = home.join(node_dir(i)).join("data");
            let where_ = format!("{} (data {})", node_url(i), data.display());
            (format!("pg{i}"), port_open(node_port(i)), where_)
        })
        .collect();
    let watcher = live_pid(&home.join("ha.pid")).is_some();
    out.push((
        "ha".into(),
        watcher,
        format!("log {}", home.join("ha.log").display()),
    ));
    out
}
