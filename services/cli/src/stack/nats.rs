//! The local stack's nats-server: one server, or a JetStream cluster of three or more
//! on loopback (`imgcrawl up --nats-nodes 3`), started detached, stopped by pid.
//!
//! One server keeps the first releases' layout (`nats/`, `nats.pid`, `nats.log`, port
//! 14222). A cluster's node `i` listens on 14222 + i - 1 (monitoring 18222 + i - 1,
//! routes 16222 + i - 1), keeps its store in `nats-cluster/n<i>/` and its config in
//! `nats-cluster/n<i>.conf`. The node count is chosen at the first `up` of a home and
//! kept in `nats-nodes`; `--nats-sync always` (kept in `nats-sync`) makes every node
//! fsync each write.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::nats_bin::binary;
use super::proc::{live_pid, port_open, spawn_detached, terminate, wait_port};
use super::{nats_monitor_port, nats_port, port_from_env};

/// First route port of a local cluster: `IMGCRAWL_NATS_CLUSTER_PORT`, default 16222.
fn cluster_port() -> u16 {
    port_from_env("IMGCRAWL_NATS_CLUSTER_PORT", 16222)
}

fn offset(port: u16, i: usize) -> u16 {
    port.saturating_add(u16::try_from(i - 1).unwrap_or(0))
}

/// The nats-server nodes this home runs (1 unless started with `--nats-nodes`).
pub fn configured_nodes(home: &Path) -> usize {
    std::fs::read_to_string(home.join("nats-nodes"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

/// Whether this home's nodes fsync every write (`--nats-sync always`).
pub fn sync_always(home: &Path) -> bool {
    std::fs::read_to_string(home.join("nats-sync")).is_ok_and(|s| s.trim() == "always")
}

/// The client URLs of this home's nodes, comma-separated.
pub fn urls(home: &Path) -> String {
    (1..=configured_nodes(home))
        .map(|i| format!("nats://127.0.0.1:{}", offset(nats_port(), i)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Each node's name, client port and pid file.
pub fn nodes(home: &Path) -> Vec<(String, u16, PathBuf)> {
    match configured_nodes(home) {
        1 => vec![("nats".into(), nats_port(), home.join("nats.pid"))],
        n => (1..=n)
            .map(|i| {
                let pid = home.join(format!("nats-cluster/n{i}.pid"));
                (format!("nats-n{i}"), offset(nats_port(), i), pid)
            })
            .collect(),
    }
}

/// Settles the node count (and fsync setting) of this home: what was asked, or what
/// the home was started with. A home keeps its count: JetStream cannot turn a single
/// server's store into a cluster's.
fn settle(home: &Path, asked: Option<usize>, sync: Option<bool>) -> Result<usize> {
    let existing = std::fs::read_to_string(home.join("nats-nodes")).ok();
    let had = existing
        .as_deref()
        .and_then(|s| s.trim().parse::<usize>().ok());
    let started_single = had.is_none() && home.join("nats").is_dir();
    let n = asked.or(had).unwrap_or(1);
    if n == 0 || n == 2 {
        bail!("--nats-nodes {n}: use 1, or 3 or more (a cluster of two loses its quorum with either node)");
    }
    if let Some(h) = had.or(started_single.then_some(1)) {
        if h != n {
            bail!(
                "this stack ({}) was started with {h} nats-server node(s); the count cannot change: use another IMGCRAWL_HOME for {n}",
                home.display()
            );
        }
    }
    std::fs::write(home.join("nats-nodes"), n.to_string())?;
    if let Some(always) = sync {
        std::fs::write(
            home.join("nats-sync"),
            if always { "always" } else { "default" },
        )?;
    }
    Ok(n)
}

/// Starts whatever node is not running; returns the node count.
pub async fn up(home: &Path, asked: Option<usize>, sync: Option<bool>) -> Result<usize> {
    let n = settle(home, asked, sync)?;
    if n == 1 {
        single(home).await?;
        return Ok(1);
    }
    let dir = home.join("nats-cluster");
    std::fs::create_dir_all(&dir)?;
    let bin = binary()?;
    for i in 1..=n {
        let port = offset(nats_port(), i);
        let pid_file = dir.join(format!("n{i}.pid"));
        if live_pid(&pid_file).is_some() && port_open(port) {
            continue;
        }
        if port_open(port) {
            bail!("port {port} is taken by another process; stop it or set IMGCRAWL_NATS_PORT");
        }
        let conf = dir.join(format!("n{i}.conf"));
        std::fs::write(&conf, node_config(home, n, i, &pid_file))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(&conf);
        spawn_detached(cmd, &dir.join(format!("n{i}.log")))?;
    }
    for i in 1..=n {
        let log = dir.join(format!("n{i}.log"));
        wait_port(
            offset(nats_port(), i),
            Duration::from_secs(20),
            "nats-server",
            &log,
        )
        .await?;
    }
    Ok(n)
}

/// The config file of node `i` of `n`.
fn node_config(home: &Path, n: usize, i: usize, pid_file: &Path) -> String {
    let routes: Vec<String> = (1..=n)
        .map(|j| format!("\"nats-route://127.0.0.1:{}\"", offset(cluster_port(), j)))
        .collect();
    let store = home.join(format!("nats-cluster/n{i}"));
    let sync = if sync_always(home) {
        ", sync_interval: always"
    } else {
        ""
    };
    format!(
        "server_name: n{i}\nlisten: \"127.0.0.1:{port}\"\nhttp: \"127.0.0.1:{http}\"\npid_file: \"{pid}\"\n\
         jetstream {{ store_dir: \"{store}\"{sync} }}\n\
         cluster {{ name: imgcrawl-local, listen: \"127.0.0.1:{cport}\", routes: [{routes}] }}\n",
        port = offset(nats_port(), i),
        http = offset(nats_monitor_port(), i),
        pid = pid_file.display(),
        store = store.display(),
        cport = offset(cluster_port(), i),
        routes = routes.join(", "),
    )
}

/// Starts the single server unless it is running.
async fn single(home: &Path) -> Result<()> {
    let pid_file = home.join("nats.pid");
    let log = home.join("nats.log");
    if live_pid(&pid_file).is_some() && port_open(nats_port()) {
        return Ok(());
    }
    if port_open(nats_port()) {
        bail!("port {} is taken by another process; stop it or set NATS_URL to use that server instead of the local stack", nats_port());
    }
    let store = home.join("nats");
    std::fs::create_dir_all(&store)?;
    let mut cmd = Command::new(binary()?);
    cmd.args(["-js", "-a", "127.0.0.1", "-n", "imgcrawl-local"])
        .args([
            "-p",
            &nats_port().to_string(),
            "-m",
            &nats_monitor_port().to_string(),
        ])
        .arg("-sd")
        .arg(&store)
        .arg("-P")
        .arg(&pid_file);
    if sync_always(home) {
        cmd.args(["--sync_interval", "always"]);
    }
    spawn_detached(cmd, &log)?;
    wait_port(nats_port(), Duration::from_secs(20), "nats-server", &log).await
}

/// Stops every node that runs.
pub async fn down(home: &Path) -> Result<()> {
    for (_, _, pid_file) in nodes(home) {
        if let Some(pid) = live_pid(&pid_file) {
            terminate(pid, Duration::from_secs(10)).await;
        }
    }
    Ok(())
}

/// Creates the topology with `replicas` (a cluster's R3) before any worker connects
/// (a start never changes existing topology, so the first creation decides).
pub async fn create_topology(home: &Path, replicas: usize) -> Result<()> {
    let config = imgcrawl_bus::BusConfig {
        replicas,
        client_name: "imgcrawl-up".into(),
        ..imgcrawl_bus::BusConfig::with_url(urls(home))
    };
    // a fresh cluster needs its peers known to place R3 (seconds; more under load);
    // each attempt rides out elections for 30 s, and three minutes is the limit
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let err = loop {
        match imgcrawl_bus::Bus::connect(config.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if std::time::Instant::now() > deadline => break e,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    Err(anyhow::Error::from(err)).context("create the cluster's topology")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_home_keeps_its_node_count() {
        let home = tempfile::tempdir().unwrap();
        assert!(
            settle(home.path(), Some(2), None).is_err(),
            "no two-node clusters"
        );
        assert_eq!(settle(home.path(), Some(3), Some(true)).unwrap(), 3);
        assert!(sync_always(home.path()));
        assert_eq!(settle(home.path(), None, None).unwrap(), 3, "remembered");
        let err = settle(home.path(), Some(1), None).unwrap_err().to_string();
        assert!(err.contains("cannot change"), "{err}");
        let single = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(single.path().join("nats")).unwrap();
        assert!(
            settle(single.path(), Some(3), None).is_err(),
            "a single server's store stays single"
        );
    }

    #[test]
    fn node_configs_route_to_every_node() {
        let home = tempfile::tempdir().unwrap();
        let c = node_config(home.path(), 3, 2, Path::new("/p"));
        assert!(c.contains("server_name: n2"), "{c}");
        assert_eq!(c.matches("nats-route://127.0.0.1:").count(), 3, "{c}");
        assert!(!c.contains("sync_interval"), "{c}");
    }
}
