//! Connecting to NATS: one server or a cluster (comma-separated URLs), with
//! credentials, NKey, user/password or token authentication and TLS (a private CA,
//! mutual TLS), from a [`BusConfig`].
//!
//! Retry behaviour: the first connection makes up to `connect_attempts` passes over
//! the server list (each server `connect_timeout_secs` at most, a short back-off
//! between passes) and gives up at once on an authentication or TLS refusal, which
//! retrying cannot fix; the error says what to check. Once connected, a lost connection is retried forever, over
//! every configured server and every server the cluster announces, with a back-off
//! capped at 4 s, so a rolling restart of the cluster never stops a stage.
//!
//! Secrets stay out of logs and messages: URLs are shown with their user info
//! replaced (`imgcrawl_events::redact_list`), and files are named by path, never by content.

use std::path::Path;
use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, Event, ServerAddr};

use crate::{BusConfig, BusError};

/// The server list of a comma-separated URL string.
pub fn server_addrs(urls: &str) -> Result<Vec<ServerAddr>, BusError> {
    let addrs = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>().map_err(|e| {
                BusError::Config(format!("nats url {}: {e}", imgcrawl_events::redact(u)))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err(BusError::Config("no nats url".into()));
    }
    Ok(addrs)
}

/// Connects a client as [`BusConfig`] says (see the module doc for the retry rules).
pub async fn client(cfg: &BusConfig) -> Result<async_nats::Client, BusError> {
    cfg.validate()?;
    let servers = server_addrs(&cfg.nats_url)?;
    let attempts = cfg.connect_attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let err = match options(cfg).await?.connect(servers.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(e) => e,
        };
        let detail = err.to_string();
        let hint = hint(err.kind(), &detail);
        if hint != UNREACHABLE || attempt >= attempts {
            return Err(BusError::Connect {
                url: imgcrawl_events::redact_list(&cfg.nats_url),
                detail,
                hint,
            });
        }
        tracing::debug!(attempt, error = %err, "no nats server answered; trying again");
        tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
    }
}

/// The hint of a connection error when no server answered.
pub const UNREACHABLE: &str = "is the stack running? try `imgcrawl up`";

/// What to check after a failed connection; only an unreachable server is retried
/// (a refused login or certificate stays refused).
fn hint(kind: ConnectErrorKind, detail: &str) -> &'static str {
    let tls_words = [
        "tls",
        "certificate",
        "corrupt message",
        "handshake",
        "alert",
    ];
    match kind {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            "check the credentials: IMGCRAWL_NATS_USER/_PASSWORD, _TOKEN, _NKEY, _CREDS or [bus]"
        }
        ConnectErrorKind::Tls => TLS_HINT,
        _ if tls_words
            .iter()
            .any(|w| detail.to_ascii_lowercase().contains(w)) =>
        {
            TLS_HINT
        }
        _ => UNREACHABLE,
    }
}

const TLS_HINT: &str = "check the tls settings: IMGCRAWL_NATS_TLS_CA, _TLS_CERT, _TLS_KEY or [bus]";

/// The client options: name, timeouts, reconnects, authentication and TLS.
async fn options(cfg: &BusConfig) -> Result<ConnectOptions, BusError> {
    let mut o = ConnectOptions::new()
        .name(cfg.client_name.clone())
        .connection_timeout(cfg.connect_timeout())
        .max_reconnects(None)
        .event_callback(|event| async move { log_event(event) });
    if let Some(path) = &cfg.creds_file {
        readable("creds file", path)?;
        o = o.credentials_file(path).await.map_err(|e| {
            BusError::Config(format!("creds file {}: {}", path.display(), io_reason(&e)))
        })?;
    }
    if let Some(path) = &cfg.nkey_seed_file {
        readable("nkey seed file", path)?;
        let seed = std::fs::read_to_string(path).map_err(|e| {
            BusError::Config(format!("nkey seed file {}: {}", path.display(), e.kind()))
        })?;
        o = o.nkey(seed.trim().to_string());
    }
    if let (Some(user), Some(password)) = (&cfg.user, &cfg.password) {
        o = o.user_and_password(user.clone(), password.expose().to_string());
    }
    if let Some(token) = &cfg.token {
        o = o.token(token.expose().to_string());
    }
    let mut tls = cfg.tls_required;
    if let Some(ca) = &cfg.tls_ca_file {
        readable("tls ca file", ca)?;
        o = o.add_root_certificates(ca.clone());
        tls = true;
    }
    if let (Some(cert), Some(key)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        readable("tls certificate file", cert)?;
        readable("tls key file", key)?;
        o = o.add_client_certificate(cert.clone(), key.clone());
        tls = true;
    }
    Ok(o.require_tls(tls))
}

/// A clear error now rather than a vague one at connect time.
fn readable(what: &str, path: &Path) -> Result<(), BusError> {
    std::fs::metadata(path)
        .map(drop)
        .map_err(|e| BusError::Config(format!("{what} {}: {}", path.display(), e.kind())))
}

/// An io error's reason without file contents: the kind, plus the message for the
/// parse failures async-nats words itself (they name the file, not its content).
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::InvalidData => "not a valid credentials file".into(),
        kind => kind.to_string(),
    }
}

/// Connection events in the log (none carries a secret).
fn log_event(event: Event) {
    match event {
        Event::Connected => tracing::info!("nats connected"),
        Event::Disconnected => tracing::warn!("nats disconnected; reconnecting"),
        Event::LameDuckMode => tracing::warn!("nats server entering lame duck mode"),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "nats slow consumer"),
        Event::ServerError(e) => tracing::warn!(error = %e, "nats server error"),
        Event::ClientError(e) => tracing::warn!(error = %e, "nats client error"),
        Event::Draining | Event::Closed => tracing::debug!(%event, "nats connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_separated_list_is_several_servers() {
        let addrs = server_addrs("nats://a:1, nats://b:2,,").unwrap();
        assert_eq!(addrs.len(), 2);
        assert_eq!(addrs[1].port(), 2);
        let e = server_addrs("nats://u:secret@a:1,nats://b:notaport")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
        assert!(server_addrs(" ").is_err());
    }
}
