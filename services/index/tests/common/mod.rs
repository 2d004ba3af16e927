//! Test helpers: a throw-away PostgreSQL server (here), a throw-away nats-server
//! ([`nats`]) and a synthetic event stream with known answers ([`stream`]).
//!
//! [`PgServer::start`] runs `initdb` in a temporary directory and starts `postgres` on
//! a free loopback port with its socket in that directory; dropping it kills the
//! server and removes the directory. Binaries come from `IMGCRAWL_PG_BIN`, else
//! `pg_config --bindir`, else the newest `/usr/lib/postgresql/<version>/bin`. As root
//! (PostgreSQL refuses to run as root) the server runs as the `postgres` user, or
//! `nobody`. The test harness crate will get a shared version of this helper.

#![allow(dead_code)]

pub mod nats;
pub mod stream;

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

/// A running PostgreSQL server, killed on drop.
pub struct PgServer {
    child: Child,
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    /// The TCP port it listens on (127.0.0.1).
    pub port: u16,
}

fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGCRAWL_PG_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .expect("no postgresql binaries: set IMGCRAWL_PG_BIN")
}

/// The uid/gid to run the server as when we are root.
fn unprivileged() -> Option<(u32, u32)> {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let find = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    };
    Some(
        find("postgres")
            .or_else(|| find("nobody"))
            .unwrap_or((65534, 65534)),
    )
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin.join(name));
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl PgServer {
    /// Initialises and starts a server; waits until it accepts connections.
    pub async fn start() -> PgServer {
        let bin = pg_bin();
        let user = unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-pg")
            .tempdir()
            .expect("tempdir");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown temp dir");
        }
        let data = dir.path().join("data");
        let out = command(&bin, "initdb", user)
            .args([
                "-A",
                "trust",
                "-U",
                "imgcrawl",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = spawn(&bin, user, dir.path(), port);
        let mut server = PgServer {
            child,
            dir,
            bin,
            user,
            port,
        };
        server.wait_ready().await;
        server
    }

    /// Stops the server (immediate shutdown), as if the database went down.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same port and data.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.bin, self.user, self.dir.path(), self.port);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if PgConnection::connect(&self.url("postgres")).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://imgcrawl@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh, empty database and returns its URL.
    pub async fn create_db(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::SeqCst));
        let mut c = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .await
            .expect("create database");
        self.url(&name)
    }

    /// A fresh database with the schema migrated.
    pub async fn fresh_pool(&self) -> PgPool {
        let pool = imgcrawl_index::connect(&self.create_db().await)
            .await
            .expect("connect");
        imgcrawl_index::migrate(&pool).await.expect("migrate");
        pool
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its
        // backends down with it. SIGKILL only if that does not work.
        self.stop();
    }
}

/// Starts `postgres` on the cluster in `dir/data`, logging to `dir/postgres.log`.
fn spawn(bin: &Path, user: Option<(u32, u32)>, dir: &Path, port: u16) -> Child {
    let log_path = dir.join("postgres.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("log file");
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&log_path, Some(uid), Some(gid)).expect("chown log");
    }
    command(bin, "postgres", user)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "max_connections=50"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn postgres")
}
