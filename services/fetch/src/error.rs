//! Errors of fetching a URL and of reading a response body.

/// Why a fetch produced no usable response. Every variant is an outcome the caller
/// records (a page or image failure), not a bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Not an absolute http(s) URL with a host.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
    /// Disallowed by robots.txt.
    #[error("disallowed by robots.txt: {0}")]
    Robots(String),
    /// The host is, or resolves to, a refused address (private, loopback, link-local...).
    #[error("blocked address: {0}")]
    BlockedAddress(String),
    /// A redirect left the caller's scope.
    #[error("redirect out of scope: {0}")]
    OutOfScope(String),
    /// A redirect led back to a URL already in the chain.
    #[error("redirect loop: {0}")]
    RedirectLoop(String),
    /// More redirects than allowed; carries the limit.
    #[error("more than {0} redirects")]
    TooManyRedirects(u32),
    /// No response in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// Connection, DNS, TLS or protocol error.
    #[error("network: {0}")]
    Network(String),
}

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// More than `limit` bytes (announced or streamed).
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap that was exceeded.
        limit: u64,
    },
    /// The body did not arrive in time.
    #[error("timeout reading body: {0}")]
    Timeout(String),
    /// The connection failed while reading.
    #[error("network error reading body: {0}")]
    Network(String),
}

/// Maps a reqwest error to a [`FetchError`], keeping blocked-address refusals from the
/// resolver recognisable.
pub(crate) fn from_reqwest(e: &reqwest::Error) -> FetchError {
    let detail = error_chain(e);
    if detail.contains(crate::guard::BLOCKED_MARKER) {
        FetchError::BlockedAddress(detail)
    } else if e.is_timeout() {
        FetchError::Timeout(detail)
    } else {
        FetchError::Network(detail)
    }
}

/// Maps a reqwest error that happened while reading a body.
pub(crate) fn body_from_reqwest(e: &reqwest::Error) -> BodyError {
    if e.is_timeout() {
        BodyError::Timeout(error_chain(e))
    } else {
        BodyError::Network(error_chain(e))
    }
}

/// The error and its sources, joined with `: ` (reqwest's top-level message is vague).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}
