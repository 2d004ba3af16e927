//! Checking the filters of `GET /api/images`: formats by name, a host name, ordered
//! ranges, sizes that fit the columns, `since` before `until`. Every refusal is a 400
//! `bad_filter` naming the parameter.

use crate::db::images::ImageFilter;
use crate::error::{HttpError, HttpResult};
use crate::model::images::ImageQuery;
use crate::validate::{format_name, FORMATS};

fn bad_filter(field: &str, msg: impl Into<String>) -> HttpError {
    HttpError::bad_request("bad_filter", msg).field(field)
}

fn to_i32(field: &str, v: Option<u32>) -> HttpResult<Option<i32>> {
    v.map(|v| i32::try_from(v).map_err(|_| bad_filter(field, format!("{field} is too large"))))
        .transpose()
}

fn to_i64(field: &str, v: Option<u64>) -> HttpResult<Option<i64>> {
    v.map(|v| i64::try_from(v).map_err(|_| bad_filter(field, format!("{field} is too large"))))
        .transpose()
}

fn ordered<T: PartialOrd>(
    field: &str,
    r: (Option<T>, Option<T>),
) -> HttpResult<(Option<T>, Option<T>)> {
    match (&r.0, &r.1) {
        (Some(a), Some(b)) if a > b => Err(bad_filter(
            field,
            format!("min_{field} is above max_{field}"),
        )),
        _ => Ok(r),
    }
}

fn host_filter(host: &str) -> HttpResult<String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if ok {
        Ok(h)
    } else {
        Err(bad_filter("host", format!("{host:?} is not a host name")))
    }
}

/// Checks the query's filters.
pub fn filter(q: &ImageQuery) -> HttpResult<ImageFilter> {
    let mut formats = Vec::new();
    for name in q
        .format
        .iter()
        .flat_map(|f| f.split(','))
        .filter(|f| !f.trim().is_empty())
    {
        let canon = format_name(name).ok_or_else(|| {
            bad_filter(
                "format",
                format!("unknown format {name:?} (known: {})", FORMATS.join(", ")),
            )
        })?;
        formats.push(canon.to_string());
    }
    if let (Some(s), Some(u)) = (q.since, q.until) {
        if s >= u {
            return Err(bad_filter("since", "since must be before until"));
        }
    }
    Ok(ImageFilter {
        job: q.job,
        host: q.host.as_deref().map(host_filter).transpose()?,
        formats,
        width: ordered(
            "width",
            (
                to_i32("min_width", q.min_width)?,
                to_i32("max_width", q.max_width)?,
            ),
        )?,
        height: ordered(
            "height",
            (
                to_i32("min_height", q.min_height)?,
                to_i32("max_height", q.max_height)?,
            ),
        )?,
        bytes: ordered(
            "bytes",
            (
                to_i64("min_bytes", q.min_bytes)?,
                to_i64("max_bytes", q.max_bytes)?,
            ),
        )?,
        since: q.since,
        until: q.until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn q(s: &str) -> ImageQuery {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn filters_are_checked_and_normalised() {
        let f = filter(&q(
            r#"{"format":"JPG, png","host":"CDN.Example.org.","min_width":10,"max_width":20}"#,
        ))
        .unwrap();
        assert_eq!(f.formats, vec!["jpeg", "png"]);
        assert_eq!(f.host.as_deref(), Some("cdn.example.org"));
        assert_eq!(f.width, (Some(10), Some(20)));
        let cases = [
            (r#"{"format":"pdf"}"#, "format"),
            (r#"{"host":"a b"}"#, "host"),
            (r#"{"min_width":30,"max_width":20}"#, "width"),
            (r#"{"min_bytes":18446744073709551615}"#, "min_bytes"),
            (
                r#"{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}"#,
                "since",
            ),
        ];
        for (json, field) in cases {
            let e = filter(&q(json)).unwrap_err();
            assert_eq!(
                (e.status, e.code, e.field.as_deref()),
                (StatusCode::BAD_REQUEST, "bad_filter", Some(field)),
                "{json}"
            );
        }
    }
}
