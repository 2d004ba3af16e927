//! The local stack's continuous archive: `imgcrawl backup` in the background, into
//! `backup/` under the home (or `IMGCRAWL_BACKUP_TARGET`), started by `up --backup`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use super::proc::{live_pid, spawn_detached, terminate};

/// Is the background archiver alive?
pub fn running(home: &Path) -> bool {
    live_pid(&home.join("backup.pid")).is_some()
}

/// Starts `imgcrawl backup` in the background unless it is running.
pub fn up(home: &Path) -> Result<()> {
    if running(home) {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locate the imgcrawl binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("backup");
    if std::env::var_os("IMGCRAWL_BACKUP_TARGET").is_none() {
        cmd.arg("--to").arg(home.join("backup"));
    }
    let pid = spawn_detached(cmd, &home.join("backup.log"))?;
    std::fs::write(home.join("backup.pid"), pid.to_string())?;
    Ok(())
}

/// Stops the archiver (SIGTERM: it closes its open segments and exits).
pub async fn down(home: &Path) -> Result<()> {
    if let Some(pid) = live_pid(&home.join("backup.pid")) {
        terminate(pid, Duration::from_secs(20)).await;
    }
    let _ = std::fs::remove_file(home.join("backup.pid"));
    Ok(())
}
