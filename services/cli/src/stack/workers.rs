//! The local stack's pipeline workers: `imgcrawl run` in the background.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::proc::{live_pid, spawn_detached, terminate};

/// Are the background workers alive?
pub fn running(home: &Path) -> bool {
    live_pid(&home.join("run.pid")).is_some()
}

/// Starts `imgcrawl run` in the background unless it is running.
pub async fn up(home: &Path, allow_loopback: bool) -> Result<()> {
    if running(home) {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locate the imgcrawl binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run");
    if allow_loopback {
        cmd.arg("--allow-loopback");
    }
    let pid = spawn_detached(cmd, &home.join("run.log"))?;
    std::fs::write(home.join("run.pid"), pid.to_string())?;
    // Give it a moment to fail fast (bad config, no database) so `up` can say so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !running(home) {
        anyhow::bail!(
            "the workers exited at start; see {}",
            home.join("run.log").display()
        );
    }
    Ok(())
}

/// Stops the background workers (SIGTERM: they drain and exit).
pub async fn down(home: &Path) -> Result<()> {
    if let Some(pid) = live_pid(&home.join("run.pid")) {
        terminate(pid, Duration::from_secs(20)).await;
    }
    let _ = std::fs::remove_file(home.join("run.pid"));
    Ok(())
}
