//! The local stack's pipeline workers: `imgcrawl run` in the background.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::proc::{live_pid, spawn_detached, terminate};

/// Are the background workers alive?
pub fn running(home: &Path) -> bool {
    live_pid(&home.join("run.pid")).is_some()
}

/// How long `up` watches a new worker process for a failure at start.
const START_WATCH: Duration = Duration::from_secs(15);

/// The log line that says the index has checked its database and is projecting: the
/// last start-up step that can refuse to go on.
const READY_LINE: &str = "projection started";

/// The module that logs [`READY_LINE`].
const READY_TARGET: &str = "imgcrawl_index::stage";

/// Starts `imgcrawl run` in the background unless it is running. Watches it until
/// its index is projecting (or [`START_WATCH`] passes): a worker that exits in that
/// time fails `up` with the worker's own error, on one line.
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
    // `up` watches for READY_LINE whatever log level the user chose.
    let filter =
        std::env::var("RUST_LOG").unwrap_or_else(|_| "info,async_nats=warn,sqlx=warn".into());
    cmd.env("RUST_LOG", format!("{filter},{READY_TARGET}=info"));
    super::metrics_env(&mut cmd, super::metrics_port());
    let log = home.join("run.log");
    let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
    let pid = spawn_detached(cmd, &log)?;
    std::fs::write(home.join("run.pid"), pid.to_string())?;
    let start = Instant::now();
    while start.elapsed() < START_WATCH {
        let written = log_since(&log, offset);
        if !running(home) {
            bail!(
                "the workers could not start: {} (full log: {})",
                start_failure(&written),
                log.display()
            );
        }
        if written.contains(READY_LINE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// What the worker's log says since `offset` (lossy: the log is ours, but a crash
/// may cut a line).
fn log_since(log: &Path, offset: u64) -> String {
    let bytes = std::fs::read(log).unwrap_or_default();
    let from = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

/// The worker's own reason for exiting: its last `error: ` line (what `imgcrawl`
/// prints when a command fails), else its last log line.
fn start_failure(written: &str) -> String {
    let lines: Vec<&str> = written
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .or(lines.last().copied())
        .unwrap_or("it exited without a word")
        .to_string()
}

/// Stops the background workers (SIGTERM: they drain and exit).
pub async fn down(home: &Path) -> Result<()> {
    if let Some(pid) = live_pid(&home.join("run.pid")) {
        terminate(pid, Duration::from_secs(20)).await;
    }
    let _ = std::fs::remove_file(home.join("run.pid"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::start_failure;

    #[test]
    fn the_reason_is_the_last_error_line_else_the_last_line() {
        let log = "2026 INFO stage started\nerror: stage Index failed: refusing to project\n\n";
        assert_eq!(
            start_failure(log),
            "stage Index failed: refusing to project"
        );
        assert_eq!(
            start_failure("a\nthread 'main' panicked at x\n"),
            "thread 'main' panicked at x"
        );
        assert_eq!(start_failure(""), "it exited without a word");
    }
}
