//! `GET /api/images` (filtered keyset pages), `GET /api/images/{id}` (metadata,
//! sources, pages) and `DELETE /api/images/{id}` (publishes `image.deleted`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use imgcrawl_events::{Event, ImageDeleted};

use crate::cursor::Cursor;
use crate::db::images::{self as db, ImageRow, MAX_SOURCES};
use crate::error::{ErrorBody, HttpError, HttpResult};
use crate::extract::{PathParams, QueryParams};
use crate::filters::filter;
use crate::model::images::{
    DeleteQuery, ImageDeleting, ImageDetail, ImageLinks, ImagePage, ImageQuery, ImageSummary,
};
use crate::routes::publish_failed;
use crate::state::AppState;

fn bad_filter(field: &str, msg: impl Into<String>) -> HttpError {
    HttpError::bad_request("bad_filter", msg).field(field)
}

/// The listing form of a row.
pub fn summary(r: &ImageRow) -> ImageSummary {
    ImageSummary {
        id: r.id,
        sha256: r.sha256.clone(),
        url: r.url.clone(),
        filename: r.filename.clone(),
        bytes: r.bytes,
        width: r.width,
        height: r.height,
        format: r.format.clone(),
        content_type: r.content_type.clone(),
        first_seen_at: r.first_seen_at,
        last_seen_at: r.last_seen_at,
        links: ImageLinks {
            detail: format!("/api/images/{}", r.id),
            content: format!("/api/images/{}/content", r.id),
            thumbnail: format!("/api/images/{}/thumbnail", r.id),
        },
    }
}

/// Lists images by filter, one keyset page at a time.
#[utoipa::path(get, path = "/api/images", tag = "images", params(ImageQuery),
    responses(
        (status = 200, description = "A page of images", body = ImagePage),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index unavailable", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ImageQuery>,
) -> HttpResult<Json<ImagePage>> {
    let f = filter(&q)?;
    let sort = q.sort.unwrap_or_default();
    let limit = state
        .config
        .page_size(q.limit)
        .map_err(|m| bad_filter("limit", m))?;
    let after = q
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, sort))
        .transpose()
        .map_err(|m| HttpError::bad_request("bad_cursor", m).field("cursor"))?;
    let (rows, more) = db::list(&state.db(), &f, sort, after, limit)
        .await
        .map_err(|e| crate::error::db("list images", e))?;
    let next_cursor = match rows.last() {
        Some(last) if more => Some(
            Cursor {
                sort,
                bytes: last.bytes,
                id: last.id,
            }
            .encode(),
        ),
        _ => None,
    };
    Ok(Json(ImagePage {
        items: rows.iter().map(summary).collect(),
        next_cursor,
        limit,
        sort,
    }))
}

/// A live image by id, or 404.
pub async fn live_image(state: &AppState, id: i64) -> HttpResult<ImageRow> {
    match db::get(&state.db(), id)
        .await
        .map_err(|e| crate::error::db("read image", e))?
    {
        Some(r) if r.deleted => Err(HttpError::not_found(format!("image {id} is deleted"))),
        Some(r) => Ok(r),
        None => Err(HttpError::not_found(format!("no image {id}"))),
    }
}

/// One image with its sources (URLs per job) and the pages they were found on.
#[utoipa::path(get, path = "/api/images/{id}", tag = "images",
    params(("id" = i64, Path, description = "The image id")),
    responses(
        (status = 200, description = "The image", body = ImageDetail),
        (status = 400, description = "Not an image id", body = ErrorBody),
        (status = 404, description = "No such image, or deleted", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index unavailable", body = ErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> HttpResult<Json<ImageDetail>> {
    let row = live_image(&state, id).await?;
    let mut sources = db::sources(&state.db(), &row.sha256)
        .await
        .map_err(|e| crate::error::db("read image sources", e))?;
    let sources_truncated = sources.len() as i64 > MAX_SOURCES;
    sources.truncate(MAX_SOURCES as usize);
    let pages = db::pages(&state.db(), &row.sha256)
        .await
        .map_err(|e| crate::error::db("read image pages", e))?;
    Ok(Json(ImageDetail {
        image: summary(&row),
        object_key: row.object_key.clone(),
        sources,
        sources_truncated,
        pages,
    }))
}

/// Deletes an image: publishes `image.deleted`; the index and the bucket drop it, and
/// it stays deleted through replays and later downloads of the same bytes.
#[utoipa::path(delete, path = "/api/images/{id}", tag = "images",
    params(("id" = i64, Path, description = "The image id"), DeleteQuery),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The deletion is in the stream", body = ImageDeleting),
        (status = 400, description = "Not an image id, or a bad query", body = ErrorBody),
        (status = 401, description = "No bearer token", body = ErrorBody),
        (status = 403, description = "Unknown bearer token (`forbidden`) or a read token (`insufficient_scope`): an admin token is needed", body = ErrorBody),
        (status = 404, description = "No such image, or already deleted", body = ErrorBody),
        (status = 422, description = "Reason too long", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 503, description = "Index or NATS unavailable", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    QueryParams(q): QueryParams<DeleteQuery>,
) -> HttpResult<(StatusCode, Json<ImageDeleting>)> {
    crate::validate::reason(q.reason.as_deref())?;
    let row = live_image(&state, id).await?;
    if q.purge == Some(true) {
        imgcrawl_backup::purge(&state.bus, &row.sha256, q.reason)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "purge failed");
                HttpError::unavailable(
                    "nats is unavailable; the purge did not complete, try again shortly",
                )
            })?;
    } else {
        let event = Event::ImageDeleted(ImageDeleted {
            sha256: row.sha256.clone(),
            reason: q.reason,
            occurred_at: Utc::now(),
        });
        state
            .bus
            .publisher()
            .publish(&event)
            .await
            .map_err(publish_failed)?;
    }
    state.thumbs.forget(&row.sha256).await;
    tracing::info!(id, sha = %row.sha256, "image deletion requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(ImageDeleting {
            id,
            sha256: row.sha256,
            state: "deleting".into(),
        }),
    ))
}
