//! The benchmark's private servers: a `nats-server -js` and a PostgreSQL, each on a
//! free loopback port with its data in a temp dir, stopped and removed on drop.
//!
//! The same approach as the test harness (`tests/src/nats.rs`, `tests/src/postgres.rs`),
//! kept small and separate so the benchmark builds without the stage crates the
//! harness links. As root, PostgreSQL runs as `IMGCRAWL_TEST_USER` (default `nobody`).

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use imgcrawl_readmodel::admin;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn spawn(cmd: &mut Command, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawn {cmd:?}"))
}

/// Stops `child` with `signal` (by name, e.g. `INT`), then kills it after 10 s.
fn stop(child: &mut Child, signal: &str) {
    let pid = child.id().to_string();
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A running nats-server with JetStream.
pub struct Nats {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Nats {
    /// Starts `bin` on a free port; waits until JetStream answers.
    pub async fn start(bin: &Path) -> Result<Nats> {
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-bench-nats-")
            .tempdir()?;
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path().join("store"));
        let child = spawn(&mut cmd, &dir.path().join("nats.log"))?;
        let nats = Nats {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = async_nats::connect(nats.url()).await {
                if async_nats::jetstream::new(c).query_account().await.is_ok() {
                    return Ok(nats);
                }
            }
            if Instant::now() > deadline {
                bail!("nats-server did not start on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        stop(&mut self.child, "TERM");
    }
}

/// The nats-server binary: `IMGCRAWL_NATS_SERVER`, else the project's
/// `.tools/bin/nats-server` (`infra/scripts/install-nats.sh`), else `PATH`'s.
pub fn nats_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGCRAWL_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = root.join(".tools/bin/nats-server");
    if local.is_file() {
        local
    } else {
        PathBuf::from("nats-server")
    }
}

/// A running PostgreSQL with superuser `imgcrawl` (trust auth).
pub struct Postgres {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Postgres {
    /// `initdb` into a temp dir, then the server with `settings` (`-c name=value`).
    pub async fn start(settings: &[(&str, &str)]) -> Result<Postgres> {
        let bin = pg_bindir()?;
        let ident = unprivileged()?;
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-bench-pg-")
            .tempdir()?;
        let data = dir.path().join("data");
        if let Some((uid, gid)) = ident {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let command = |program: &str| {
            let mut c = Command::new(bin.join(program));
            if let Some((uid, gid)) = ident {
                c.uid(uid).gid(gid);
            }
            c.env_remove("PGDATA")
                .env("LC_ALL", "C")
                .current_dir(dir.path());
            c
        };
        let init = command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "imgcrawl",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .context("initdb")?;
        if !init.status.success() {
            bail!("initdb: {}", String::from_utf8_lossy(&init.stderr));
        }
        let port = free_port()?;
        let mut cmd = command("postgres");
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path());
        for (k, v) in settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        let child = spawn(&mut cmd, &dir.path().join("postgres.log"))?;
        let pg = Postgres {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while PgConnection::connect(&pg.url("postgres")).await.is_err() {
            if Instant::now() > deadline {
                bail!("postgres did not start on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pg)
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://imgcrawl@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits, `_`) and returns its URL.
    pub async fn create_db(&self, name: &str) -> Result<String> {
        let mut c = admin::connect_server(&self.url("postgres")).await?;
        let created = admin::create_database(&mut c, name).await?;
        c.close().await?;
        if !created {
            bail!("database {name} exists already");
        }
        Ok(self.url(name))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child, "INT");
    }
}

/// `IMGCRAWL_PG_BIN`, else `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_bindir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("IMGCRAWL_PG_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p)| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .context("no PostgreSQL server binaries found (set IMGCRAWL_PG_BIN)")
}

/// As root: the uid and gid of `IMGCRAWL_TEST_USER` (default `nobody`).
fn unprivileged() -> Result<Option<(u32, u32)>> {
    let id = |args: &[&str]| -> Result<u32> {
        let out = Command::new("id").args(args).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    let user = std::env::var("IMGCRAWL_TEST_USER").unwrap_or_else(|_| "nobody".into());
    Ok(Some((id(&["-u", &user])?, id(&["-g", &user])?)))
}
