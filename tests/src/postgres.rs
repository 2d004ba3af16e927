//! A real PostgreSQL server per test: a copy of the `initdb` template in a temp dir, on
//! a free loopback port, durability switched off for speed; killed on drop. Databases
//! are cheap (`fresh_db`), and the server can be killed, stopped, started again, paused
//! and resumed for failover tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use crate::pg_setup::{chown_tree, copy_tree, pg_bin, template, PgBin};
use crate::process::{log_tail, unprivileged, Identity, Proc};
use crate::{free_port, HarnessError};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings every test server runs with (the caller's come after and win).
///
/// `fsync` and `full_page_writes` are off: nothing here survives a power loss, but a
/// killed process loses nothing, because the kernel's page cache keeps what was written.
/// `synchronous_commit` stays on on purpose: with it off, a commit returns before its
/// WAL leaves PostgreSQL's shared memory, so `kill()` would lose acknowledged commits
/// and crash tests would report data loss that production (which keeps it on) never has.
/// With `fsync` off it costs a `write(2)` per commit, not a flush.
const BASE_SETTINGS: [(&str, &str); 4] = [
    ("listen_addresses", "127.0.0.1"),
    ("fsync", "off"),
    ("full_page_writes", "off"),
    ("shared_buffers", "32MB"),
];

/// A running PostgreSQL server with superuser `imgcrawl` (trust auth); killed on drop.
pub struct Postgres {
    dir: TempDir,
    port: u16,
    bin: PgBin,
    ident: Option<Identity>,
    settings: Vec<(String, String)>,
    proc: Option<Proc>,
}

impl Postgres {
    /// Starts a server; panics with the reason (and log) if it cannot.
    pub async fn start() -> Postgres {
        match Postgres::start_with(&[]).await {
            Ok(pg) => pg,
            Err(e) => panic!("start postgres: {e}"),
        }
    }

    /// Starts a server with extra `-c name=value` settings (e.g. `wal_level`).
    pub async fn start_with(settings: &[(&str, &str)]) -> Result<Postgres, HarnessError> {
        let bin = pg_bin()?;
        let ident = unprivileged()?;
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-pg-")
            .tempdir()
            .map_err(HarnessError::io("postgres temp dir"))?;
        let (b, data) = (bin.clone(), dir.path().join("data"));
        let prepared = tokio::task::spawn_blocking(move || -> Result<(), HarnessError> {
            copy_tree(&template(&b, ident)?, &data)?;
            match ident {
                Some(id) => chown_tree(data.parent().unwrap_or(&data), id),
                None => Ok(()),
            }
        });
        prepared.await.map_err(|e| HarnessError::NotReady {
            what: "postgres data dir".into(),
            detail: e.to_string(),
        })??;
        let settings = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut pg = Postgres {
            dir,
            port: 0,
            bin,
            ident,
            settings,
            proc: None,
        };
        let mut last = None;
        for _ in 0..3 {
            pg.port = free_port();
            match pg.start_again().await {
                Ok(()) => return Ok(pg),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            what: "postgres".into(),
            detail: "no attempt".into(),
        }))
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `db`, e.g. `postgres://imgcrawl@127.0.0.1:5433/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://imgcrawl@127.0.0.1:{}/{db}", self.port)
    }

    /// URL of the `postgres` maintenance database (superuser `imgcrawl`).
    pub fn admin_url(&self) -> String {
        self.url("postgres")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server log (every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The binaries in use.
    pub fn bin(&self) -> &PgBin {
        &self.bin
    }

    /// A command for PostgreSQL program `program` (e.g. `pg_basebackup`) run as the user
    /// that owns the data directory.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = self.bin.command(program, self.ident);
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Creates database `name` (letters, digits, `_`) and returns its URL.
    pub async fn create_db(&self, name: &str) -> String {
        match self.try_create_db(name).await {
            Ok(url) => url,
            Err(e) => panic!("create database {name}: {e}"),
        }
    }

    /// Creates database `name` and returns its URL, or why not.
    pub async fn try_create_db(&self, name: &str) -> Result<String, HarnessError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(HarnessError::Database(format!(
                "refusing database name {name:?}"
            )));
        }
        let db = |e: sqlx::Error| HarnessError::Database(e.to_string());
        let mut conn = PgConnection::connect(&self.admin_url()).await.map_err(db)?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .map_err(db)?;
        let _ = conn.close().await;
        Ok(self.url(name))
    }

    /// Creates a database with a new unique name and returns its URL.
    pub async fn fresh_db(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_db(&format!("test_{}_{n}", std::process::id()))
            .await
    }

    /// SIGKILLs the server and all its backends (a crash). The data directory stays.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Stops the server cleanly (fast shutdown: SIGINT, then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(libc::SIGINT, Duration::from_secs(10)).await;
        }
    }

    /// Starts the server (again) on the same port and data; waits until it accepts
    /// queries. A server that exits at once (a killed predecessor's backends still
    /// holding shared memory) is tried again a few times.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.spawn_and_wait().await {
                Err(Some(detail)) if attempt < 5 => {
                    tracing::debug!(port = self.port, %detail, "postgres exited at start, trying again");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(detail) => {
                    let detail = format!(
                        "{}\n{}",
                        detail.unwrap_or_default(),
                        log_tail(&self.log_path(), 4000)
                    );
                    self.kill();
                    return Err(HarnessError::NotReady {
                        what: format!("postgres on port {}", self.port),
                        detail,
                    });
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Spawns the postmaster and waits for it; `Err(Some)` if it exited, `Err(None)` on a
    /// timeout or spawn failure.
    async fn spawn_and_wait(&mut self) -> Result<(), Option<String>> {
        self.kill();
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path());
        let extra = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in BASE_SETTINGS.iter().copied().chain(extra) {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        self.proc = Some(Proc::spawn(&mut cmd, &self.log_path()).map_err(|e| Some(e.to_string()))?);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), Option<String>> {
        let url = self.admin_url();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.proc.as_mut().and_then(Proc::exited) {
                return Err(Some(format!("postgres exited: {status}")));
            }
            match PgConnection::connect(&url).await {
                Ok(c) => {
                    let _ = c.close().await;
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => {
                    tracing::warn!(error = %e, "postgres never accepted a connection");
                    return Err(None);
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Freezes the server and its backends (SIGSTOP): connections hang, nothing fails fast.
    pub fn pause(&self) {
        if let Some(p) = &self.proc {
            p.signal_tree(libc::SIGSTOP);
        }
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        if let Some(p) = &self.proc {
            p.signal_tree(libc::SIGCONT);
        }
    }

    /// The postmaster's process id, while it runs (to `kill -9` the postmaster alone,
    /// as a failover benchmark does: its backends notice and exit by themselves).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Whether the postmaster is running (it may be paused).
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// The socket directory (for `psql -h`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }
}
