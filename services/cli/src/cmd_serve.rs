//! `imgcrawl serve [--port N]`: the HTTP API and the web gallery, until SIGINT/SIGTERM.
//!
//! The admin token of mutating endpoints comes from `IMGCRAWL_API_TOKEN`, else from
//! `--token-file`, else from `<home>/api-token`, which is created with a random token
//! the first time (mode 0600) so a local user can `cat` it. `--read-token-file` adds a
//! read-only token; `--private-reads` makes reads need one; `--tls-cert`/`--tls-key`
//! serve HTTPS; `--trusted-proxy` names the reverse proxies whose `X-Forwarded-For` is
//! believed (docs/security.md).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::stack;

/// Arguments of `imgcrawl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, env = "IMGCRAWL_API_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Address to bind (`0.0.0.0` exposes the API beyond this machine).
    #[arg(long, env = "IMGCRAWL_API_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// File holding the bearer token (used when IMGCRAWL_API_TOKEN is unset; default
    /// `<home>/api-token`, created with a random token if missing).
    #[arg(long, env = "IMGCRAWL_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Accept crawl requests for loopback addresses (as `imgcrawl run --allow-loopback`).
    #[arg(long, env = "IMGCRAWL_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,
    /// Accept crawl requests for private-network addresses.
    #[arg(long, env = "IMGCRAWL_ALLOW_PRIVATE")]
    pub allow_private: bool,
    /// Requests per second per client (0 turns the limit off).
    #[arg(long, default_value_t = 100.0)]
    pub rate_limit: f64,
    /// Requests a client may make at once.
    #[arg(long, default_value_t = 400)]
    pub burst: u32,
    /// Thumbnail cache directory (default `<home>/thumbnails`).
    #[arg(long)]
    pub thumbnail_dir: Option<PathBuf>,
    /// A file holding a read-only token (for dashboards and scripts).
    #[arg(long, env = "IMGCRAWL_API_READ_TOKEN_FILE")]
    pub read_token_file: Option<PathBuf>,
    /// Reads (and the gallery) need a read or admin token.
    #[arg(long, env = "IMGCRAWL_API_PRIVATE_READS")]
    pub private_reads: bool,
    /// PEM certificate chain: serve HTTPS (with `--tls-key`).
    #[arg(long, env = "IMGCRAWL_API_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "IMGCRAWL_API_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy (address or CIDR range) whose `X-Forwarded-For` names the
    /// client; repeat or comma-separate. Without one, the header is ignored.
    #[arg(long, env = "IMGCRAWL_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxy: Vec<String>,
}

/// Reads the token file, creating it with a random token if it does not exist.
fn token_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    std::fs::write(path, format!("{token}\n"))
        .with_context(|| format!("write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    eprintln!("created an api token in {}", path.display());
    Ok(())
}

/// The API configuration these settings and arguments describe (with HA nodes, the
/// server reads from the node the HA pointer names and follows the pointer).
async fn config(settings: &Settings, args: &ServeArgs) -> Result<imgcrawl_api::Config> {
    let mut c = imgcrawl_api::Config {
        listen: SocketAddr::new(args.bind, args.port),
        database_url: settings.database_url(),
        nodes: settings.ha_nodes()?,
        allow_loopback: args.allow_loopback,
        allow_private: args.allow_private,
        ..Default::default()
    };
    c.store.target = settings.bucket()?;
    c.public_reads = !args.private_reads;
    c.trusted_proxies = args.trusted_proxy.clone();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.tls = Some(imgcrawl_api::TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        });
    }
    if let Some(path) = &args.read_token_file {
        c.tokens.push(imgcrawl_api::TokenSource {
            name: "read".into(),
            scope: imgcrawl_api::Scope::Read,
            file: Some(path.clone()),
            env: None,
        });
    }
    c.rate_limit.per_second = args.rate_limit.max(0.0);
    c.rate_limit.burst = args.burst.max(1);
    c.thumbnails.cache_dir = match &args.thumbnail_dir {
        Some(d) => d.clone(),
        None => stack::home_abs()?.join("thumbnails"),
    };
    match std::env::var(imgcrawl_api::TOKEN_ENV) {
        Ok(t) if !t.trim().is_empty() => c.token = Some(t),
        _ => {
            let path = match &args.token_file {
                Some(p) => p.clone(),
                None => stack::home_abs()?.join("api-token"),
            };
            if args.token_file.is_none() {
                token_file(&path)?;
            }
            eprintln!(
                "api token: {} (or set {})",
                path.display(),
                imgcrawl_api::TOKEN_ENV
            );
            c.token_file = Some(path);
        }
    }
    Ok(c)
}

/// Runs `imgcrawl serve`.
pub async fn serve(
    settings: &Settings,
    args: ServeArgs,
    telemetry: &imgcrawl_telemetry::Config,
) -> Result<()> {
    let config = config(settings, &args).await?;
    let bus = settings.connect_bus("imgcrawl-api").await?;
    let shutdown = CancellationToken::new();
    crate::telemetry::serve(telemetry, &bus, &shutdown).await?;
    let server = imgcrawl_api::Server::bind(bus, config).await?;
    let addr = server.local_addr()?;
    let scheme = if server.is_https() { "https" } else { "http" };
    eprintln!(
        "imgcrawl api and gallery on {scheme}://{addr}/ (openapi: {scheme}://{addr}/api/openapi.json)"
    );
    crate::signals::cancel_on_signal(shutdown.clone());
    server.serve(shutdown).await?;
    Ok(())
}
