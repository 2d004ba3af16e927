//! The Content-Type the API serves image bytes with (originals and thumbnails alike):
//! the recorded one only when it is a plain `image/...` value.

use axum::http::HeaderValue;

/// The Content-Type to serve: the recorded one if it is a plain `image/...` value.
pub fn content_type(recorded: &str) -> HeaderValue {
    let ok = recorded.starts_with("image/")
        && recorded.len() <= 100
        && recorded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+-.".contains(&b));
    if ok {
        HeaderValue::from_str(recorded)
            .unwrap_or(HeaderValue::from_static("application/octet-stream"))
    } else {
        HeaderValue::from_static("application/octet-stream")
    }
}
