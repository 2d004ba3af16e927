//! A real S3-compatible server per test: `s3s-fs` (an S3 server over a directory, from
//! the `s3s` project) on a free loopback port, with its data in a temp dir, SigV4
//! authentication on, killed on drop. Not a mock: requests go over HTTP and are signed
//! and checked like on MinIO or AWS.
//!
//! The binary is `IMGCRAWL_S3_SERVER`, else `<workspace>/.tools/bin/s3s-fs`, else
//! `infra/scripts/install-s3.sh` installs it there (compiling it the first time).

pub mod sigv4;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{log_tail, output, workspace_root, Proc};
use crate::{free_port, HarnessError};
use sigv4::{Signer, Unsigned};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running S3 server; killed (and its data removed) on drop.
pub struct S3Server {
    dir: TempDir,
    port: u16,
    proc: Option<Proc>,
    buckets: AtomicUsize,
    http: reqwest::Client,
}

/// A raw HTTP response from the server.
#[derive(Debug, Clone)]
pub struct S3Response {
    /// Status code.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: bytes::Bytes,
}

impl S3Response {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl S3Server {
    /// Access key id the server accepts.
    pub const ACCESS_KEY: &'static str = "imgcrawl-test";
    /// Secret access key the server accepts.
    pub const SECRET_KEY: &'static str = "imgcrawl-test-secret";
    /// Region clients sign for (the server accepts any).
    pub const REGION: &'static str = "us-east-1";

    /// Starts a server; panics with the reason (and log) if it cannot.
    pub async fn start() -> S3Server {
        match S3Server::try_start().await {
            Ok(s) => s,
            Err(e) => panic!("start s3 server: {e}"),
        }
    }

    /// Starts a server on a free port (retrying on another port if one was taken).
    pub async fn try_start() -> Result<S3Server, HarnessError> {
        let bin = s3_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-s3-")
            .tempdir()
            .map_err(HarnessError::io("s3 temp dir"))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(HarnessError::io("s3 data dir"))?;
        let http =
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| HarnessError::Binary {
                    what: "http client".into(),
                    detail: e.to_string(),
                })?;
        let mut server = S3Server {
            dir,
            port: 0,
            proc: None,
            buckets: AtomicUsize::new(0),
            http,
        };
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["--host", "127.0.0.1", "--port", &server.port.to_string()])
                .args([
                    "--access-key",
                    Self::ACCESS_KEY,
                    "--secret-key",
                    Self::SECRET_KEY,
                ])
                .arg(&data)
                .env("RUST_LOG", "warn,s3s_fs=info");
            server.proc = Some(Proc::spawn(&mut cmd, &server.log_path())?);
            match server.wait_ready().await {
                Ok(()) => return Ok(server),
                Err(detail) => {
                    server.proc = None;
                    let detail = format!("{detail}\n{}", log_tail(&server.log_path(), 4000));
                    last = Some(HarnessError::NotReady {
                        what: format!("s3s-fs on port {}", server.port),
                        detail,
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| HarnessError::NotReady {
            what: "s3s-fs".into(),
            detail: "no attempt".into(),
        }))
    }

    /// Waits until a signed ListBuckets succeeds (or the process exits).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.proc.as_mut().and_then(Proc::exited) {
                return Err(format!("s3s-fs exited: {status}"));
            }
            let err = match self.request("GET", "/", &[], Vec::new()).await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(format!("no answer after {READY_TIMEOUT:?}: {err}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The endpoint URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The access key id.
    pub fn access_key(&self) -> &'static str {
        Self::ACCESS_KEY
    }

    /// The secret access key.
    pub fn secret_key(&self) -> &'static str {
        Self::SECRET_KEY
    }

    /// The directory the server keeps its buckets in (one sub-directory per bucket).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("s3.log")
    }

    /// Creates a new, empty bucket (`bucket-1`, `bucket-2`, ...) and returns its name.
    pub async fn bucket(&self) -> String {
        let name = format!("bucket-{}", self.buckets.fetch_add(1, Ordering::SeqCst) + 1);
        if let Err(e) = self.create_bucket(&name).await {
            panic!(
                "create bucket {name}: {e}\n{}",
                log_tail(&self.log_path(), 4000)
            );
        }
        name
    }

    /// Creates bucket `name` with a signed `CreateBucket` request.
    pub async fn create_bucket(&self, name: &str) -> Result<(), HarnessError> {
        let r = self
            .request("PUT", &format!("/{name}"), &[], Vec::new())
            .await?;
        if r.status != 200 {
            return Err(HarnessError::Command {
                what: format!("s3 create bucket {name}"),
                detail: format!("status {}: {}", r.status, String::from_utf8_lossy(&r.body)),
            });
        }
        Ok(())
    }

    /// The store stage's S3 settings for this server (path-style, plain http).
    pub fn s3_config(&self) -> imgcrawl_store::S3Config {
        imgcrawl_store::S3Config {
            endpoint: Some(self.endpoint()),
            region: Some(Self::REGION.into()),
            access_key_id: Some(Self::ACCESS_KEY.into()),
            secret_access_key: Some(Self::SECRET_KEY.into()),
            allow_http: Some(true),
            virtual_hosted_style: Some(false),
        }
    }

    /// The same settings as the standard environment variables, for child processes.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_REGION", Self::REGION.into()),
            ("AWS_ACCESS_KEY_ID", Self::ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", Self::SECRET_KEY.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".into()),
        ]
    }

    /// A SigV4-signed request (`path` and `query` unencoded, e.g. `/bucket/a b.jpg`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<S3Response, HarnessError> {
        let what = format!("s3 {method} {path}");
        let fail = |detail: String| HarnessError::Command {
            what: what.clone(),
            detail,
        };
        let host = format!("127.0.0.1:{}", self.port);
        let signer = Signer {
            access_key: Self::ACCESS_KEY,
            secret_key: Self::SECRET_KEY,
            region: Self::REGION,
        };
        let signed = signer.sign(
            &Unsigned {
                method,
                host: &host,
                path,
                query,
                body: &body,
            },
            chrono::Utc::now(),
        );
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| fail(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("http://{host}{}", signed.path_and_query))
            .body(body);
        for (name, value) in signed.headers {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        Ok(S3Response {
            status,
            headers,
            body,
        })
    }

    /// A signed `HEAD` of an object: its headers exactly as the server sends them.
    pub async fn head(&self, bucket: &str, key: &str) -> S3Response {
        match self
            .request("HEAD", &format!("/{bucket}/{key}"), &[], Vec::new())
            .await
        {
            Ok(r) => r,
            Err(e) => panic!("head {bucket}/{key}: {e}"),
        }
    }
}

/// The s3s-fs binary to use, found (or installed) once per process.
pub fn s3_binary() -> Result<PathBuf, HarnessError> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(find_s3)
        .clone()
        .map_err(|detail| HarnessError::Binary {
            what: "s3s-fs".into(),
            detail,
        })
}

fn runs(bin: &Path) -> Result<(), String> {
    output(Command::new(bin).arg("--version"))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn find_s3() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("IMGCRAWL_S3_SERVER") {
        let bin = PathBuf::from(p);
        return runs(&bin)
            .map(|()| bin.clone())
            .map_err(|e| format!("IMGCRAWL_S3_SERVER={}: {e}", bin.display()));
    }
    let bin = workspace_root().join(".tools/bin/s3s-fs");
    if runs(&bin).is_ok() {
        return Ok(bin);
    }
    let script = workspace_root().join("infra/scripts/install-s3.sh");
    let out = output(Command::new("bash").arg(&script))
        .map_err(|e| format!("{} failed: {e}", script.display()))?;
    let bin = PathBuf::from(out.trim());
    runs(&bin)
        .map(|()| bin.clone())
        .map_err(|e| format!("installed {}: {e}", bin.display()))
}
