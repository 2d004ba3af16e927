//! Conditional and range requests on image bytes (RFC 9110): `If-None-Match` against
//! the ETag (the SHA-256), `Range: bytes=...` (one range; several, or a malformed
//! header, are ignored and the whole image is sent), `If-Range`.

use std::ops::Range;

use axum::http::{header, HeaderMap};

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The whole image (200).
    Full,
    /// Bytes `start..end` (206).
    Partial(Range<u64>),
    /// The range starts past the end (416).
    Unsatisfiable,
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, `*` matches).
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The plan for a request with `headers` on an image of `len` bytes whose strong
/// ETag is `etag`.
pub fn plan(headers: &HeaderMap, etag: &str, len: u64) -> Plan {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Plan::Full;
    };
    if let Some(cond) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        if cond.trim() != etag {
            return Plan::Full;
        }
    }
    parse(range, len)
}

/// Interprets a `Range` header value for `len` bytes.
pub fn parse(value: &str, len: u64) -> Plan {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (num(first), num(last)) {
        (Some(a), Some(b)) if a <= b => {
            if a >= len {
                Plan::Unsatisfiable
            } else {
                Plan::Partial(a..b.min(len - 1) + 1)
            }
        }
        (Some(a), None) if last.is_empty() => {
            if a >= len {
                Plan::Unsatisfiable
            } else {
                Plan::Partial(a..len)
            }
        }
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                Plan::Unsatisfiable
            } else {
                Plan::Partial(len.saturating_sub(n)..len)
            }
        }
        _ => Plan::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse("bytes=0-9", 100), Plan::Partial(0..10));
        assert_eq!(parse("bytes=90-200", 100), Plan::Partial(90..100));
        assert_eq!(parse("bytes=95-", 100), Plan::Partial(95..100));
        assert_eq!(parse("bytes=-10", 100), Plan::Partial(90..100));
        assert_eq!(parse("bytes=-500", 100), Plan::Partial(0..100));
        assert_eq!(parse("bytes=100-", 100), Plan::Unsatisfiable);
        assert_eq!(parse("bytes=100-120", 100), Plan::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Plan::Unsatisfiable);
        assert_eq!(parse("bytes=0-0", 0), Plan::Unsatisfiable);
        // ignored: other units, several ranges, garbage, inverted
        for v in [
            "items=0-1",
            "bytes=0-1,5-6",
            "bytes=x-y",
            "bytes=5-1",
            "bytes=",
            "bytes=--1",
            "bytes=+1-2",
        ] {
            assert_eq!(parse(v, 100), Plan::Full, "{v}");
        }
    }

    #[test]
    fn conditional_headers_use_the_etag() {
        let etag = "\"abc\"";
        let mut h = HeaderMap::new();
        assert!(!none_match(&h, etag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(none_match(&h, etag));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&h, etag));
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        assert_eq!(plan(&h, etag, 10), Plan::Partial(0..2));
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"other\""));
        assert_eq!(plan(&h, etag, 10), Plan::Full);
        h.insert(header::IF_RANGE, HeaderValue::from_static("\"abc\""));
        assert_eq!(plan(&h, etag, 10), Plan::Partial(0..2));
    }
}
