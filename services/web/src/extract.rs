//! Extractors whose rejections are our JSON errors: a body that is too large is 413,
//! not JSON is 415, malformed JSON is 400, JSON of the wrong shape (unknown field,
//! wrong type) is 422; a bad query string or path parameter is 400.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// A JSON request body.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// A query string.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

/// Path parameters.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

fn json_error(rej: JsonRejection) -> HttpError {
    match rej {
        JsonRejection::JsonDataError(e) => HttpError::unprocessable("invalid_body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => {
            HttpError::bad_request("malformed_json", e.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the server accepts",
        ),
        other => HttpError::bad_request("bad_body", other.body_text()),
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(rej) => Err(json_error(rej)),
        }
    }
}

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(QueryParams(q.0)),
            Err(rej) => Err(HttpError::bad_request("bad_query", rej.body_text())),
        }
    }
}

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(PathParams(p.0)),
            Err(rej) => Err(HttpError::bad_request("bad_path", rej.body_text())),
        }
    }
}

/// A raw body (for endpoints whose body is optional).
#[derive(Debug, Clone)]
pub struct RawBody(pub axum::body::Bytes);

impl<S> FromRequest<S> for RawBody
where
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(rej) if rej.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the server accepts",
            )),
            Err(rej) => Err(HttpError::bad_request("bad_body", rej.body_text())),
        }
    }
}
