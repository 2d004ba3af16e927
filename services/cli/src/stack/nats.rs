//! The local stack's nats-server: found or installed (>= 2.10), started detached with
//! JetStream on loopback, stopped by pid.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::proc::{live_pid, port_open, spawn_detached, terminate, wait_port};
use super::{nats_monitor_port, nats_port};

/// Finds a nats-server >= 2.10: `IMGCRAWL_NATS_SERVER`, `./.tools/bin/nats-server`, or
/// the one `infra/scripts/install-nats.sh` installs.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IMGCRAWL_NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let local = PathBuf::from(".tools/bin/nats-server");
    if local.is_file() {
        return Ok(std::fs::canonicalize(local)?);
    }
    let script = Path::new("infra/scripts/install-nats.sh");
    if script.is_file() {
        eprintln!("installing nats-server >= 2.10 into .tools/ ...");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .context("run install-nats.sh")?;
        if !out.status.success() {
            bail!(
                "install-nats.sh failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let path = String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        return Ok(PathBuf::from(path));
    }
    bail!("no nats-server >= 2.10 found: set IMGCRAWL_NATS_SERVER, or run `imgcrawl up` from the project root so infra/scripts/install-nats.sh can install one")
}

/// Starts nats-server unless it is already running.
pub async fn up(home: &Path) -> Result<()> {
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
    spawn_detached(cmd, &log)?;
    wait_port(nats_port(), Duration::from_secs(20), "nats-server", &log).await
}

/// Stops nats-server if running.
pub async fn down(home: &Path) -> Result<()> {
    if let Some(pid) = live_pid(&home.join("nats.pid")) {
        terminate(pid, Duration::from_secs(10)).await;
    }
    Ok(())
}
