//! What imgcrawl's HTTP servers (the API and the HA watcher's API) share, so that both
//! answer the same way and are guarded the same way:
//!
//! * [`error`]: the JSON error shape (`{"error": {"code", "message", "field"}}`);
//! * [`extract`]: extractors whose rejections are that error;
//! * [`auth`]: bearer tokens with scopes (`read`, `admin`), constant-time compare;
//! * [`proxy`]: who the client is, believing `X-Forwarded-For` only from trusted proxies;
//! * [`limit`]: the per-client rate limit (governor, bounded memory);
//! * [`tls`] and [`serve`]: HTTPS with rustls, graceful shutdown;
//! * [`ha`]: the HA mutations (failover, the wait bound of sync) both servers serve.
//!
//! See docs/security.md for the threat model and every setting.

pub mod auth;
pub mod error;
pub mod extract;
pub mod ha;
pub mod limit;
pub mod proxy;
pub mod serve;
pub mod tls;

pub use auth::{Guard, Scope, Token, TokenSource, Tokens};
pub use axum_server::tls_rustls::RustlsConfig;
pub use error::{ErrorBody, HttpError, HttpResult};
pub use limit::{Limiter, RateLimit};
pub use proxy::TrustedProxies;
pub use serve::serve;
pub use tls::TlsConfig;

/// Why a server's security settings could not be used, or serving failed.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A token is missing, too short, duplicated or unreadable (never its secret).
    #[error("token: {0}")]
    Token(String),
    /// A setting is unusable (a trusted proxy that is not an address or range).
    #[error("config: {0}")]
    Config(String),
    /// The certificate or key could not be read or used.
    #[error("tls: {0}")]
    Tls(String),
    /// The server failed while running.
    #[error("serve: {0}")]
    Serve(String),
}

/// The tokens of a server: `admin` (the legacy single token, if any, named `admin`)
/// and every source in `sources`.
pub fn load_tokens(admin: Option<&str>, sources: &[TokenSource]) -> Result<Tokens, WebError> {
    let mut tokens = Vec::with_capacity(sources.len() + 1);
    if let Some(secret) = admin {
        tokens.push(Token::new("admin", Scope::Admin, secret.trim())?);
    }
    for s in sources {
        tokens.push(s.load()?);
    }
    Tokens::new(tokens)
}
