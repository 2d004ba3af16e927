//! Bearer tokens with scopes, compared in constant time, and the middleware that asks
//! for them.
//!
//! A token has a name (for logs: the secret itself is never logged or printed) and a
//! [`Scope`]: `read` (the read endpoints, when reads are not public) or `admin`
//! (everything, including every mutation: crawl control, deletion, failover, sync).
//! Several tokens may be valid at once, which is how a token is rotated: add the new
//! one, move the clients, remove the old one (docs/security.md).
//!
//! Requests without `Authorization: Bearer <token>` get 401 (with `WWW-Authenticate:
//! Bearer`), requests with an unknown token 403 `forbidden`, a read token on an admin
//! endpoint 403 `insufficient_scope`. Every configured digest is compared with the
//! presented token's SHA-256 with `subtle`, all of them every time, so the time taken
//! does not depend on which token (if any) matched or on the presented token's length.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::HttpError;
use crate::WebError;

/// The shortest accepted token.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The read endpoints.
    Read,
    /// Everything: reads and every mutation.
    Admin,
}

impl Scope {
    /// Whether a token of this scope may use an endpoint that needs `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Admin => "admin",
        })
    }
}

/// Where one token's secret comes from: exactly one of `file` and `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSource {
    /// Name shown in logs instead of the secret (e.g. `ops-2026-12`).
    pub name: String,
    /// What the token may do.
    pub scope: Scope,
    /// A file holding the token (first line, surrounding whitespace removed).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An environment variable holding the token.
    #[serde(default)]
    pub env: Option<String>,
}

impl TokenSource {
    /// Reads the secret and keeps its digest.
    pub fn load(&self) -> Result<Token, WebError> {
        let secret = match (&self.file, &self.env) {
            (Some(path), None) => read_token_file(path)?,
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                WebError::Token(format!(
                    "token {:?}: environment variable {var} is not set",
                    self.name
                ))
            })?,
            _ => {
                return Err(WebError::Token(format!(
                    "token {:?}: give exactly one of `file` and `env`",
                    self.name
                )))
            }
        };
        Token::new(&self.name, self.scope, secret.trim())
    }
}

/// The first line of a token file, trimmed.
pub fn read_token_file(path: &std::path::Path) -> Result<String, WebError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WebError::Token(format!("read token file {}: {e}", path.display())))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_string())
}

/// One valid token, kept only as the SHA-256 of its secret.
#[derive(Clone)]
pub struct Token {
    name: String,
    scope: Scope,
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}, {:?}, ***)", self.name, self.scope)
    }
}

impl Token {
    /// A token named `name` with `scope`; refused when shorter than [`MIN_TOKEN_LEN`].
    pub fn new(name: &str, scope: Scope, secret: &str) -> Result<Token, WebError> {
        if secret.chars().count() < MIN_TOKEN_LEN {
            return Err(WebError::Token(format!(
                "token {name:?} must be at least {MIN_TOKEN_LEN} characters"
            )));
        }
        Ok(Token {
            name: name.to_string(),
            scope,
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What a request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A known token with enough scope; its name.
    Allowed(String),
    /// No bearer token at all (or an unreadable header): 401.
    Missing,
    /// A bearer token that is not one of ours: 403 `forbidden`.
    Unknown,
    /// One of ours, without the scope needed; its name: 403 `insufficient_scope`.
    Insufficient(String),
}

/// Every valid token.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// The tokens; two with the same name or the same secret are refused.
    pub fn new(tokens: Vec<Token>) -> Result<Tokens, WebError> {
        for (i, a) in tokens.iter().enumerate() {
            for b in &tokens[..i] {
                if a.name == b.name {
                    return Err(WebError::Token(format!("two tokens named {:?}", a.name)));
                }
                if bool::from(a.digest.ct_eq(&b.digest)) {
                    return Err(WebError::Token(format!(
                        "tokens {:?} and {:?} have the same secret",
                        b.name, a.name
                    )));
                }
            }
        }
        Ok(Tokens { tokens })
    }

    /// Whether at least one token has `scope` (or more).
    pub fn has(&self, scope: Scope) -> bool {
        self.tokens.iter().any(|t| t.scope.grants(scope))
    }

    /// The names and scopes, for the start-up log (never the secrets).
    pub fn describe(&self) -> Vec<(String, Scope)> {
        self.tokens
            .iter()
            .map(|t| (t.name.clone(), t.scope))
            .collect()
    }

    /// The token whose secret is `presented`, comparing with every token.
    fn find(&self, presented: &str) -> Option<&Token> {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            let hit: Choice = d.ct_eq(&t.digest);
            if bool::from(hit) {
                found = Some(t);
            }
        }
        found
    }

    /// Judges an `Authorization` header value for an endpoint that needs `needed`.
    pub fn judge(&self, authorization: Option<&[u8]>, needed: Scope) -> Verdict {
        let Some(token) = bearer(authorization) else {
            return Verdict::Missing;
        };
        match self.find(token) {
            Some(t) if t.scope.grants(needed) => Verdict::Allowed(t.name.clone()),
            Some(t) => Verdict::Insufficient(t.name.clone()),
            None => Verdict::Unknown,
        }
    }
}

/// The token of `Authorization: Bearer <token>`, if that is what the header says.
fn bearer(authorization: Option<&[u8]>) -> Option<&str> {
    let value = std::str::from_utf8(authorization?).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What a guarded route needs: the tokens and the scope.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The valid tokens.
    pub tokens: Arc<Tokens>,
    /// The scope the route needs.
    pub needed: Scope,
}

/// Middleware (`axum::middleware::from_fn_with_state(guard, require)`): lets the
/// request through only with a token that has the guard's scope.
pub async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match guard.tokens.judge(header, guard.needed) {
        Verdict::Allowed(_) => next.run(req).await,
        Verdict::Missing => HttpError::unauthorized(match guard.needed {
            Scope::Admin => {
                "this endpoint needs `Authorization: Bearer <token>` with an admin token"
            }
            Scope::Read => "this endpoint needs `Authorization: Bearer <token>`",
        })
        .into_response(),
        Verdict::Unknown => {
            tracing::warn!(path = %req.uri().path(), "request with an unknown bearer token");
            HttpError::forbidden("forbidden", "the bearer token is not valid").into_response()
        }
        Verdict::Insufficient(name) => {
            tracing::warn!(path = %req.uri().path(), token = %name, "token without the scope needed");
            HttpError::forbidden(
                "insufficient_scope",
                format!(
                    "this endpoint needs a token with the {} scope",
                    guard.needed
                ),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
