//! Small process helpers for the local stack: pid files, liveness, detached spawns,
//! dropping root privileges for PostgreSQL.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Is something accepting TCP connections on 127.0.0.1:`port`?
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

/// Waits until `port` accepts connections.
pub async fn wait_port(port: u16, timeout: Duration, what: &str, log: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if port_open(port) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{what} did not start listening on port {port} within {timeout:?}; see {}",
        log.display()
    )
}

/// The pid stored in `file`, if the process is alive.
pub fn live_pid(file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    alive(pid).then_some(pid)
}

/// Is process `pid` alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Sends SIGTERM and waits up to `timeout` for the process to exit; SIGKILL after.
pub async fn terminate(pid: i32, timeout: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let start = Instant::now();
    while alive(pid) && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if alive(pid) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
}

/// Spawns `cmd` detached (own process group, output to `log`), returns its pid.
pub fn spawn_detached(mut cmd: Command, log: &Path) -> Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))?;
    Ok(child.id())
}

/// The uid/gid PostgreSQL runs as: ourselves, or `nobody` when we are root
/// (PostgreSQL refuses to run as root).
pub fn pg_identity() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the effective uid of the process reading it.
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        return None;
    }
    let uid = id_of("-u").unwrap_or(65534);
    let gid = id_of("-g").unwrap_or(65534);
    Some((uid, gid))
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").arg(flag).arg("nobody").output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// A command that runs as the PostgreSQL identity.
pub fn pg_command(program: &Path) -> Command {
    let mut c = Command::new(program);
    if let Some((uid, gid)) = pg_identity() {
        c.uid(uid).gid(gid);
        c.env("HOME", "/tmp");
    }
    c
}

/// Gives `path` (recursively) to the PostgreSQL identity, when it is not us.
pub fn chown_for_pg(path: &Path) -> Result<()> {
    if let Some((uid, gid)) = pg_identity() {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(path)
            .status()?;
        if !status.success() {
            bail!("chown {} failed", path.display());
        }
    }
    Ok(())
}
