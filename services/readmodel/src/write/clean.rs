//! Turning event values into values PostgreSQL always accepts.
//!
//! The projection must never stall on input: a NUL character in a page title, a
//! `u64` larger than `bigint`, a timestamp outside PostgreSQL's range or a URL too long
//! for a B-tree key would fail the whole transaction forever. Every value bound to a
//! statement goes through these functions, which are deterministic, so a replay cleans
//! the same way.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// Longest URL (in bytes) used as a key; events keyed by a longer URL are ignored and
/// reported as invalid. B-tree keys are limited to about 2.7 kB.
pub const MAX_URL_BYTES: usize = 2048;

/// `s` without NUL characters (PostgreSQL text cannot hold them).
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "")
}

/// [`text`] for optional strings.
pub(crate) fn opt_text(s: Option<&str>) -> Option<String> {
    s.map(text)
}

/// `n` as a `bigint`, saturating.
pub(crate) fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `n` as an `integer`, saturating.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// `t` clamped to years 1..=9999, inside PostgreSQL's `timestamptz` range.
pub(crate) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    let min = NaiveDate::from_ymd_opt(1, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let max = NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|d| d.and_utc());
    match (min, max) {
        (Some(lo), Some(hi)) => t.clamp(lo, hi),
        _ => t,
    }
}

/// The snake_case wire name of a serde enum (e.g. `PageFailure::HttpStatus` -> `http_status`).
pub(crate) fn name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `v` with NUL characters removed from every string and key (jsonb rejects `\u0000`).
pub(crate) fn json(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(text(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(json).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (text(&k), json(v))).collect())
        }
        other => other,
    }
}

/// Whether `url` can be used as a key.
pub(crate) fn key_ok(url: &str) -> bool {
    url.len() <= MAX_URL_BYTES
}

/// The file name of an image URL: its last path segment, percent-decoded when that
/// gives UTF-8. `None` for URLs ending in `/` or without a path.
pub fn filename(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back()?;
    if last.is_empty() {
        return None;
    }
    Some(text(
        &percent_decode(last).unwrap_or_else(|| last.to_string()),
    ))
}

/// Decodes `%XX` escapes; `None` if the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgcrawl_events::{PageFailure, RejectReason};

    #[test]
    fn filenames_are_the_decoded_last_segment() {
        assert_eq!(
            filename("https://a.test/x/cat%20pic.jpg?w=1#f").as_deref(),
            Some("cat pic.jpg")
        );
        assert_eq!(
            filename("https://a.test/x/caf%C3%A9.png").as_deref(),
            Some("café.png")
        );
        assert_eq!(
            filename("https://a.test/x/bad%FF.png").as_deref(),
            Some("bad%FF.png")
        );
        assert_eq!(filename("https://a.test/x/100%").as_deref(), Some("100%"));
        assert_eq!(filename("https://a.test/x/a%2"), Some("a%2".to_string()));
        assert_eq!(filename("https://a.test/dir/"), None);
        assert_eq!(filename("https://a.test"), None);
        assert_eq!(filename("not a url"), None);
    }

    #[test]
    fn values_are_made_storable() {
        assert_eq!(text("a\0b"), "ab");
        assert_eq!(big(u64::MAX), i64::MAX);
        assert_eq!(big(7), 7);
        assert_eq!(int(u32::MAX), i32::MAX);
        let far = DateTime::<Utc>::MIN_UTC;
        assert_eq!(ts(far).format("%Y").to_string(), "0001");
        let now = Utc::now();
        assert_eq!(ts(now), now);
        assert_eq!(name(&PageFailure::HttpStatus), "http_status");
        assert_eq!(name(&RejectReason::TooSmall), "too_small");
        let j = json(serde_json::json!({"a\u{0}": ["x\u{0}y", 1, {"k": "\u{0}"}]}));
        assert_eq!(j, serde_json::json!({"a": ["xy", 1, {"k": ""}]}));
        assert!(key_ok("http://a/") && !key_ok(&"x".repeat(MAX_URL_BYTES + 1)));
    }
}
