//! The route table and the middleware around it.
//!
//! [`ROUTES`] and the router are built from one list (the `routes!` macro), so the
//! table the OpenAPI test compares with the document is exactly what is served.
//!
//! Around every route, outermost first: security headers, the request timeout, the
//! per-client rate limit, the body size limit; on mutating routes, the bearer token.
//! Unknown paths and methods answer with JSON errors (`no_route`,
//! `method_not_allowed`).

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::auth::require_token;
use crate::error::HttpError;
use crate::limit::rate_limit;
use crate::routes::{content, crawl, failover, ha, health, images};
use crate::state::AppState;
use crate::{gallery, openapi};

fn method<H, T>(
    filter: MethodFilter,
    handler: H,
    auth: bool,
    state: &AppState,
) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let mr = on(filter, handler);
    if auth {
        mr.route_layer(middleware::from_fn_with_state(state.clone(), require_token))
    } else {
        mr
    }
}

macro_rules! routes {
    ($( ($m:ident, $path:literal, $handler:path, $auth:literal) ),* $(,)?) => {
        /// Every route: method, path, and whether it needs the bearer token.
        pub const ROUTES: &[(&str, &str, bool)] = &[ $( (stringify!($m), $path, $auth) ),* ];

        fn table(state: &AppState) -> Router<AppState> {
            Router::new() $( .route($path, method(MethodFilter::$m, $handler, $auth, state)) )*
        }
    };
}

routes! {
    (GET, "/", gallery::page, false),
    (GET, "/healthz", health::healthz, false),
    (GET, "/readyz", health::readyz, false),
    (GET, "/api/openapi.json", openapi::openapi_json, false),
    (POST, "/api/crawl/start", crawl::start, true),
    (GET, "/api/crawl/status", crawl::list, false),
    (GET, "/api/crawl/status/{job}", crawl::status, false),
    (POST, "/api/crawl/stop", crawl::stop, true),
    (GET, "/api/images", images::list, false),
    (GET, "/api/images/{id}", images::get, false),
    (DELETE, "/api/images/{id}", images::delete, true),
    (GET, "/api/images/{id}/content", content::content, false),
    (GET, "/api/images/{id}/thumbnail", content::thumbnail, false),
    (GET, "/api/ha-status", ha::status, false),
    (GET, "/api/ha/sync-status", ha::sync_status, false),
    (POST, "/api/ha/failover", failover::failover, true),
}

/// Answers 503 when a request takes longer than the configured timeout.
async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit: Duration = state.config.request_timeout();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long",
        )
        .retry(1)
        .into_response(),
    }
}

/// Headers on every response: no sniffing, no framing, no referrer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    table(&state)
        .fallback(|| async {
            HttpError::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "no such endpoint (see /api/openapi.json)",
            )
        })
        .method_not_allowed_fallback(|| async {
            HttpError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), timeout))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}
