//! Pure decisions about a fetched page: which failure a fetch error is, what a status
//! means, and whether a content type is HTML, an image or neither.

use imgcrawl_events::PageFailure;
use imgcrawl_fetch::{BodyError, FetchError};

/// The `page.failed` reason and detail of a fetch error. These are outcomes, not
/// retries: the fetcher already applied its timeouts. A redirect to a URL we cannot
/// fetch (another scheme, an unparsable `Location`) leaves the crawlable scope.
pub fn fetch_failure(e: &FetchError) -> (PageFailure, String) {
    let reason = match e {
        FetchError::Robots(_) => PageFailure::Robots,
        FetchError::BlockedAddress(_) => PageFailure::BlockedAddress,
        FetchError::OutOfScope(_) | FetchError::InvalidUrl(_) => PageFailure::OutOfScope,
        FetchError::RedirectLoop(_) => PageFailure::RedirectLoop,
        FetchError::TooManyRedirects(_) => PageFailure::TooManyRedirects,
        FetchError::Timeout(_) => PageFailure::Timeout,
        FetchError::Network(_) => PageFailure::Network,
    };
    (reason, e.to_string())
}

/// The `page.failed` reason of a body error.
pub fn body_failure(e: &BodyError) -> (PageFailure, String) {
    let reason = match e {
        BodyError::TooLarge { .. } => PageFailure::TooLarge,
        BodyError::Timeout(_) => PageFailure::Timeout,
        BodyError::Network(_) => PageFailure::Network,
    };
    (reason, e.to_string())
}

/// What to do with a final HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusAction {
    /// 2xx: read the body.
    Proceed,
    /// 5xx or 429 with attempts left: fetch again later.
    Retry,
    /// Anything else (or retries spent): `page.failed{http_status}`.
    Fail,
}

/// Decides on `status` for the `delivered`-th delivery, allowing `attempts` in all.
pub fn status_action(status: u16, delivered: i64, attempts: i64) -> StatusAction {
    match status {
        200..=299 => StatusAction::Proceed,
        429 | 500..=599 if delivered < attempts => StatusAction::Retry,
        _ => StatusAction::Fail,
    }
}

/// What a response's content type says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// HTML (or no content type at all: parse it and see).
    Html,
    /// An image: the URL is handed to download as an image.
    Image,
    /// Something else (the MIME essence, for the failure detail).
    Other(String),
}

/// Classifies a `Content-Type` header value by its MIME essence.
pub fn classify_content(content_type: Option<&str>) -> Content {
    let essence = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "" | "text/html" | "application/xhtml+xml" => Content::Html,
        e if e.starts_with("image/") => Content::Image,
        _ => Content::Other(essence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_errors_map_to_reasons() {
        let cases = [
            (FetchError::Robots("x".into()), PageFailure::Robots),
            (
                FetchError::BlockedAddress("x".into()),
                PageFailure::BlockedAddress,
            ),
            (FetchError::OutOfScope("x".into()), PageFailure::OutOfScope),
            (FetchError::InvalidUrl("x".into()), PageFailure::OutOfScope),
            (
                FetchError::RedirectLoop("x".into()),
                PageFailure::RedirectLoop,
            ),
            (
                FetchError::TooManyRedirects(5),
                PageFailure::TooManyRedirects,
            ),
            (FetchError::Timeout("x".into()), PageFailure::Timeout),
            (FetchError::Network("x".into()), PageFailure::Network),
        ];
        for (e, want) in cases {
            assert_eq!(fetch_failure(&e).0, want, "{e}");
        }
        assert_eq!(
            body_failure(&BodyError::TooLarge { limit: 1 }).0,
            PageFailure::TooLarge
        );
        assert_eq!(
            body_failure(&BodyError::Timeout("t".into())).0,
            PageFailure::Timeout
        );
        assert_eq!(
            body_failure(&BodyError::Network("n".into())).0,
            PageFailure::Network
        );
    }

    #[test]
    fn status_table() {
        use StatusAction::*;
        let cases = [
            (200, 1, Proceed),
            (204, 5, Proceed),
            (503, 1, Retry),
            (500, 2, Retry),
            (429, 2, Retry),
            (503, 3, Fail),
            (429, 4, Fail),
            (404, 1, Fail),
            (410, 1, Fail),
            (304, 1, Fail),
            (301, 1, Fail),
            (100, 1, Fail),
        ];
        for (status, delivered, want) in cases {
            assert_eq!(
                status_action(status, delivered, 3),
                want,
                "{status} on delivery {delivered}"
            );
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(
            classify_content(Some("text/html; charset=utf-8")),
            Content::Html
        );
        assert_eq!(classify_content(Some("TEXT/HTML")), Content::Html);
        assert_eq!(
            classify_content(Some("application/xhtml+xml")),
            Content::Html
        );
        assert_eq!(classify_content(None), Content::Html);
        assert_eq!(classify_content(Some("image/jpeg")), Content::Image);
        assert_eq!(classify_content(Some("Image/SVG+XML; q=1")), Content::Image);
        assert_eq!(
            classify_content(Some("application/pdf")),
            Content::Other("application/pdf".into())
        );
        assert_eq!(
            classify_content(Some("text/plain")),
            Content::Other("text/plain".into())
        );
    }
}
