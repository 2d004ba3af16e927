//! A real `nats-server` with JetStream per test, on a free loopback port with its store in
//! a temp dir; killed on drop. It can be killed and started again on the same port and
//! store (crash tests), paused and resumed. [`NatsServer::start_with_config`] adds
//! configuration text (TLS, an `authorization` block, cluster routes) to the server's
//! config file.
//!
//! The binary is `IMGCRAWL_NATS_SERVER`, else `<workspace>/.tools/bin/nats-server`, else
//! `nats-server` on `PATH`; it must be 2.10 or newer (2.9 silently ignores consumer
//! fields the pipeline relies on).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{log_tail, output, workspace_root, Proc};
use crate::{free_port, HarnessError};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running nats-server with JetStream; killed (and its store removed) on drop.
pub struct NatsServer {
    dir: TempDir,
    port: u16,
    bin: PathBuf,
    proc: Option<Proc>,
    /// Extra config-file text; `None`: plain command-line flags.
    config: Option<String>,
}

impl NatsServer {
    /// Starts a server; panics with the reason (and log) if it cannot.
    pub async fn start() -> NatsServer {
        match NatsServer::try_start().await {
            Ok(s) => s,
            Err(e) => panic!("start nats-server: {e}"),
        }
    }

    /// Starts a server on a free port (retrying on another port if one was taken).
    pub async fn try_start() -> Result<NatsServer, HarnessError> {
        NatsServer::try_start_inner(None).await
    }

    /// Starts a server whose config file is its port, loopback host and JetStream
    /// store plus `text` (e.g. a `tls { … }` or `authorization { … }` block); panics
    /// with the reason (and log) if it cannot. It is ready when it greets a TCP client
    /// (a plain client may not be able to connect to it).
    pub async fn start_with_config(text: &str) -> NatsServer {
        match NatsServer::try_start_inner(Some(text.to_string())).await {
            Ok(s) => s,
            Err(e) => panic!("start nats-server with a config: {e}"),
        }
    }

    async fn try_start_inner(config: Option<String>) -> Result<NatsServer, HarnessError> {
        let bin = nats_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-nats-")
            .tempdir()
            .map_err(HarnessError::io("nats temp dir"))?;
        let mut server = NatsServer {
            dir,
            port: 0,
            bin,
            proc: None,
            config,
        };
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port();
            match server.start_again().await {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            what: "nats-server".into(),
            detail: "no attempt".into(),
        }))
    }

    /// The client URL, e.g. `nats://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The server's log (stdout and stderr of every run).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Whether the process is running (it may be paused).
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// SIGKILLs the server (a crash: no clean shutdown). The store stays.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Stops the server cleanly (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(libc::SIGTERM, Duration::from_secs(10)).await;
        }
    }

    /// Starts the server again on the same port and store; waits until JetStream answers.
    pub async fn start_again(&mut self) -> Result<(), HarnessError> {
        self.kill();
        let store = self.store_dir();
        let mut cmd = Command::new(&self.bin);
        match &self.config {
            None => {
                cmd.args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-sd",
                ])
                .arg(&store);
            }
            Some(text) => {
                let path = self.dir.path().join("nats.conf");
                let conf = format!(
                    "host: 127.0.0.1\nport: {}\njetstream {{ store_dir: {:?} }}\n{text}\n",
                    self.port, store
                );
                std::fs::write(&path, conf).map_err(HarnessError::io("write nats.conf"))?;
                cmd.arg("-c").arg(&path);
            }
        }
        let proc = Proc::spawn(&mut cmd, &self.log_path())?;
        self.proc = Some(proc);
        if let Err(e) = self.wait_ready().await {
            let detail = format!("{e}\n{}", log_tail(&self.log_path(), 4000));
            self.kill();
            return Err(HarnessError::NotReady {
                what: format!("nats-server on port {}", self.port),
                detail,
            });
        }
        Ok(())
    }

    /// Waits until the server answers a JetStream account-info request (or exits).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.proc.as_mut().and_then(Proc::exited) {
                return Err(format!("nats-server exited: {status}"));
            }
            if self.config.is_some() {
                match greeting(self.port).await {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > deadline => {
                        return Err(format!("no greeting after {READY_TIMEOUT:?}: {e}"))
                    }
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let err = match async_nats::connect(self.url()).await {
                Ok(client) => match async_nats::jetstream::new(client).query_account().await {
                    Ok(_) => return Ok(()),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!("no jetstream after {READY_TIMEOUT:?}: {err}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server and starts it again on the same port and store (crash recovery).
    pub async fn restart(&mut self) {
        if let Err(e) = self.start_again().await {
            panic!("restart nats-server: {e}");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        if let Some(p) = &self.proc {
            p.signal_tree(libc::SIGSTOP);
            // kill(2) returns before a process running on another core has stopped;
            // wait until the kernel reports every thread stopped, so nothing is
            // answered after pause() returns.
            wait_stopped(p.pid());
        }
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        if let Some(p) = &self.proc {
            p.signal_tree(libc::SIGCONT);
        }
    }

    /// A client connected to this server.
    pub async fn client(&self) -> async_nats::Client {
        async_nats::connect(self.url())
            .await
            .expect("connect to the test nats-server")
    }
}

/// Whether the server on `port` sends its `INFO` greeting to a new TCP connection.
async fn greeting(port: u16) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut buf))
        .await
        .map_err(|_| "no greeting".to_string())?
        .map_err(|e| e.to_string())?;
    match &buf {
        b"INFO" => Ok(()),
        other => Err(format!("unexpected greeting {other:?}")),
    }
}

/// Waits (up to 2 s) until every thread of `pid` is in the stopped state.
fn wait_stopped(pid: u32) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let stopped = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .map(|s| {
                            s.rsplit(')')
                                .next()
                                .is_some_and(|r| r.trim_start().starts_with('T'))
                        })
                        .unwrap_or(true)
                })
            })
            .unwrap_or(true);
        if stopped {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The nats-server binary to use, checked once per process.
pub fn nats_binary() -> Result<PathBuf, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_nats)
        .clone()
        .map_err(|detail| HarnessError::Binary {
            what: "nats-server".into(),
            detail,
        })
}

fn find_nats() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("IMGCRAWL_NATS_SERVER") {
        Some(p) => vec![PathBuf::from(p)],
        None => vec![
            workspace_root().join(".tools/bin/nats-server"),
            PathBuf::from("nats-server"),
        ],
    };
    let mut tried = Vec::new();
    for bin in candidates {
        match version(&bin) {
            Ok((major, minor)) if (major, minor) >= (2, 10) => return Ok(bin),
            Ok((major, minor)) => {
                tried.push(format!("{}: version {major}.{minor} < 2.10", bin.display()))
            }
            Err(e) => tried.push(format!("{}: {e}", bin.display())),
        }
    }
    Err(format!(
        "no nats-server >= 2.10 found (set IMGCRAWL_NATS_SERVER); tried {}",
        tried.join("; ")
    ))
}

/// `(major, minor)` from `nats-server --version` (`nats-server: v2.10.27`).
fn version(bin: &Path) -> Result<(u32, u32), String> {
    let out = output(Command::new(bin).arg("--version")).map_err(|e| e.to_string())?;
    parse_version(&out).ok_or_else(|| format!("unrecognised version output {out:?}"))
}

fn parse_version(out: &str) -> Option<(u32, u32)> {
    let v = out.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("nats-server: v2.10.27\n"), Some((2, 10)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9)));
        assert_eq!(parse_version("garbage"), None);
    }
}
