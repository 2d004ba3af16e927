//! `GET /api/images/{id}/content` (the bytes from the bucket: Content-Type, ETag =
//! SHA-256, ranges, conditional requests) and `GET /api/images/{id}/thumbnail`.

use crate::object::read_either;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::db::images::ImageRow;
use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::PathParams;
use crate::media::content_type;
use crate::range::{none_match, plan, Plan};
use crate::routes::images::live_image;
use crate::state::AppState;

/// Cache lifetime of image bytes and thumbnails (content never changes under an ETag,
/// but a deletion should take effect within a day).
pub const CACHE_CONTROL: &str = "public, max-age=86400";

/// A Content-Security-Policy that keeps an SVG opened directly from running anything.
pub const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; sandbox";

/// Headers every image response carries.
pub fn image_headers(h: &mut HeaderMap, etag: &str, content_type: HeaderValue) {
    let svg = content_type.as_bytes().starts_with(b"image/svg");
    h.insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if svg {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(SVG_CSP),
        );
    }
}

fn not_modified(etag: &str) -> Response {
    let mut res = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    res
}

fn object_key(row: &ImageRow) -> HttpResult<String> {
    row.object_key.clone().ok_or_else(|| {
        HttpError::new(
            StatusCode::NOT_FOUND,
            "content_missing",
            "the image is not in the bucket yet",
        )
    })
}

/// The image's bytes.
#[utoipa::path(get, path = "/api/images/{id}/content", tag = "images",
    params(
        ("id" = i64, Path, description = "The image id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
        ("If-None-Match" = Option<String>, Header, description = "ETag(s) the client has"),
        ("If-Range" = Option<String>, Header, description = "Send the range only if the ETag still matches"),
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "image/*", body = crate::model::Binary,
            headers(("ETag" = String, description = "The SHA-256 in quotes"), ("Accept-Ranges" = String))),
        (status = 206, description = "The requested range", content_type = "image/*", body = crate::model::Binary,
            headers(("Content-Range" = String, description = "bytes first-last/length"))),
        (status = 304, description = "Not modified (If-None-Match matched)"),
        (status = 400, description = "Not an image id", body = ErrorBody),
        (status = 404, description = "No such image, deleted, or not in the bucket", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody,
            headers(("Content-Range" = String, description = "bytes */length"))),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or bucket unavailable", body = ErrorBody),
    ))]
pub async fn content(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let row = live_image(&state, id).await?;
    let etag = format!("\"{}\"", row.sha256);
    if none_match(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let key = object_key(&row)?;
    let (store, prefix) = (state.store.as_ref(), state.config.store.prefix.as_str());
    let len = u64::try_from(row.bytes).unwrap_or(0);
    let (status, body, length, range) = match plan(&headers, &etag, len) {
        Plan::Unsatisfiable => {
            let mut res = HttpError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the image has {len} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
        Plan::Full => {
            let (at, got) = read_either(prefix, &key, |p| async move { store.get(&p).await }).await;
            let got = got.map_err(|e| crate::error::bucket(&at, e))?;
            let size = got.meta.size;
            (
                StatusCode::OK,
                Body::from_stream(got.into_stream()),
                size,
                None,
            )
        }
        Plan::Partial(r) => {
            let range = r.clone();
            let (at, bytes) = read_either(prefix, &key, |p| {
                let range = range.clone();
                async move { store.get_range(&p, range).await }
            })
            .await;
            let bytes = bytes.map_err(|e| crate::error::bucket(&at, e))?;
            let n = bytes.len() as u64;
            (
                StatusCode::PARTIAL_CONTENT,
                Body::from(bytes),
                n,
                Some(format!("bytes {}-{}/{len}", r.start, r.end - 1)),
            )
        }
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    image_headers(h, &etag, content_type(&row.content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Some(v) = range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(res)
}

/// A small rendition for grids: JPEG at most 256 px (configurable) on its longest side,
/// SVG as is, a placeholder for what cannot be decoded. Cached on disk.
#[utoipa::path(get, path = "/api/images/{id}/thumbnail", tag = "images",
    params(
        ("id" = i64, Path, description = "The image id"),
        ("If-None-Match" = Option<String>, Header, description = "ETag the client has"),
    ),
    responses(
        (status = 200, description = "The thumbnail", content_type = "image/*", body = crate::model::Binary,
            headers(("ETag" = String, description = "SHA-256 and size"))),
        (status = 304, description = "Not modified"),
        (status = 400, description = "Not an image id", body = ErrorBody),
        (status = 404, description = "No such image, deleted, or not in the bucket", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or bucket unavailable", body = ErrorBody),
    ))]
pub async fn thumbnail(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let row = live_image(&state, id).await?;
    let etag = format!("\"{}-t{}\"", row.sha256, state.config.thumbnails.size);
    if none_match(&headers, &etag) {
        return Ok(not_modified(&etag));
    }
    let key = object_key(&row)?;
    let prefix = state.config.store.prefix.as_str();
    let thumb = state
        .thumbs
        .get(state.store.as_ref(), prefix, &row, &key)
        .await?;
    let mut res = (StatusCode::OK, Body::from(thumb.body)).into_response();
    image_headers(res.headers_mut(), &etag, thumb.content_type);
    Ok(res)
}
