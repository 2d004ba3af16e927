//! The local stack's PostgreSQL: initdb under the home on first use, started with
//! `pg_ctl` on a loopback port, the `imgcrawl` database created if missing.
//! As root, PostgreSQL runs as `nobody` (it refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use imgcrawl_readmodel::admin;
use sqlx::Connection;

use super::proc::{chown_for_pg, pg_command, port_open, wait_port};
use super::{pg_port, PG_DB};

/// The directory holding PostgreSQL's binaries: `IMGCRAWL_PG_BIN`, `pg_config
/// --bindir`, or the newest `/usr/lib/postgresql/*/bin`.
pub fn bindir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IMGCRAWL_PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(p) = candidates.pop() {
        return Ok(p);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").is_file() {
            return Ok(p);
        }
    }
    bail!("no PostgreSQL server binaries found (install postgresql, or set IMGCRAWL_PG_BIN)")
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Initialises (first time), starts and prepares PostgreSQL.
pub async fn up(home: &Path) -> Result<()> {
    up_at(home, "pg", pg_port()).await
}

/// [`up`] for a server under `home/<dir>` on `port` (HA nodes: `pg2`, ...).
pub async fn up_at(home: &Path, dir: &str, port: u16) -> Result<()> {
    let root = home.join(dir);
    let data = root.join("data");
    let log = root.join("postgres.log");
    if !port_open(port) {
        let bin = bindir()?;
        std::fs::create_dir_all(&root)?;
        if !data.join("PG_VERSION").is_file() {
            chown_for_pg(&root)?;
            let mut c = pg_command(&bin.join("initdb"));
            c.arg("-D")
                .arg(&data)
                .args(["-U", PG_DB, "-A", "trust", "-E", "UTF8", "--no-sync"]);
            run(c, "initdb")?;
        }
        chown_for_pg(&root)?;
        let mut c = pg_command(&bin.join("pg_ctl"));
        c.arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-s")
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
                port,
                root.display()
            ));
        run(c, "pg_ctl start")?;
        wait_port(port, Duration::from_secs(30), "postgresql", &log).await?;
    }
    ensure_database(port).await
}

async fn ensure_database(port: u16) -> Result<()> {
    let admin = format!("postgres://{PG_DB}@127.0.0.1:{port}/postgres");
    let mut last = None;
    for _ in 0..50 {
        match sqlx::PgConnection::connect(&admin).await {
            Ok(mut conn) => {
                if !admin::database_exists(&mut conn, PG_DB).await? {
                    admin::create_database(&mut conn, PG_DB).await?;
                }
                return Ok(());
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "cannot connect to the local postgresql: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    )
}

/// Stops PostgreSQL if running.
pub async fn down(home: &Path) -> Result<()> {
    down_at(home, "pg").await
}

/// [`down`] for the server under `home/<dir>`.
pub async fn down_at(home: &Path, dir: &str) -> Result<()> {
    let data = home.join(dir).join("data");
    if data.join("postmaster.pid").is_file() {
        let mut c = pg_command(&bindir()?.join("pg_ctl"));
        c.arg("stop")
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-s"]);
        run(c, "pg_ctl stop")?;
    }
    Ok(())
}
