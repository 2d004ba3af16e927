//! The bearer token of mutating endpoints, compared in constant time.
//!
//! Requests without `Authorization: Bearer <token>` get 401 (with
//! `WWW-Authenticate: Bearer`), requests with another token get 403. Both sides are
//! hashed with SHA-256 first, so the comparison takes the same time whatever the
//! presented token's length and contents.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::HttpError;
use crate::state::AppState;

/// The configured secret, kept only as its SHA-256.
#[derive(Clone)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// What a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The right token.
    Allowed,
    /// No bearer token at all (or an unreadable header): 401.
    Missing,
    /// A bearer token, but not ours: 403.
    Wrong,
}

impl Token {
    /// Keeps the digest of `secret`.
    pub fn new(secret: &str) -> Self {
        Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Whether `presented` is the secret, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.ct_eq(&self.digest).into()
    }

    /// Judges an `Authorization` header value.
    pub fn judge(&self, authorization: Option<&[u8]>) -> Verdict {
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
            return Verdict::Missing;
        };
        let value = value.trim();
        let Some((scheme, token)) = value.split_once(' ') else {
            return Verdict::Missing;
        };
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Verdict::Missing;
        }
        if self.matches(token.trim()) {
            Verdict::Allowed
        } else {
            Verdict::Wrong
        }
    }
}

/// Middleware on mutating routes: lets the request through only with the right token.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match state.token.judge(header) {
        Verdict::Allowed => next.run(req).await,
        Verdict::Missing => HttpError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs `Authorization: Bearer <token>`",
        )
        .into_response(),
        Verdict::Wrong => {
            tracing::warn!(path = %req.uri().path(), "request with a wrong api token");
            HttpError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the bearer token is not valid",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_is_allowed() {
        let t = Token::new("0123456789abcdef");
        assert_eq!(t.judge(Some(b"Bearer 0123456789abcdef")), Verdict::Allowed);
        assert_eq!(
            t.judge(Some(b"bearer  0123456789abcdef ")),
            Verdict::Allowed
        );
        assert_eq!(t.judge(Some(b"Bearer 0123456789abcdeF")), Verdict::Wrong);
        assert_eq!(t.judge(Some(b"Bearer x")), Verdict::Wrong);
        assert_eq!(t.judge(None), Verdict::Missing);
        assert_eq!(t.judge(Some(b"Basic dXNlcjpwYXNz")), Verdict::Missing);
        assert_eq!(t.judge(Some(b"Bearer ")), Verdict::Missing);
        assert_eq!(t.judge(Some(b"0123456789abcdef")), Verdict::Missing);
        assert_eq!(t.judge(Some(&[0xff, 0xfe])), Verdict::Missing);
        assert_eq!(format!("{t:?}"), "Token(***)");
    }
}
