//! A throw-away nats-server with JetStream for integration tests, killed on drop.
//!
//! The binary comes from `IMGCRAWL_NATS_SERVER`, else the project's tools directory
//! (`.tools/bin/nats-server`, installed by `infra/scripts/install-nats.sh`), else
//! `nats-server` on the `PATH`. It must be 2.10 or newer.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its client port on 127.0.0.1.
    pub port: u16,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGCRAWL_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/nats-server");
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

impl NatsServer {
    /// Starts a server with JetStream on a free port; waits until it accepts connections.
    pub fn start() -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-nats")
            .tempdir()
            .expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "spawn nats-server (run infra/scripts/install-nats.sh or set IMGCRAWL_NATS_SERVER)",
            );
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer {
            child,
            _dir: dir,
            port,
        }
    }

    /// Its client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
