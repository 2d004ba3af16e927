//! The route table and the middleware around it.
//!
//! [`ROUTES`] and the router are built from one list (the `routes!` macro), so the
//! table the OpenAPI test compares with the document is exactly what is served.
//!
//! Around every route, outermost first (`tower-http` where it has the piece): request
//! tracing, security headers, the request timeout (503 with the JSON error), the
//! per-client rate limit (`imgcrawl_web::limit`, clients told apart through trusted
//! proxies), the body size limit; on mutating routes, an admin token; on the others,
//! a read token unless reads are public (`public_reads`; the probes never need one).
//! Unknown paths and methods answer with JSON errors (`no_route`,
//! `method_not_allowed`).

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use imgcrawl_web::auth::{require, Guard, Scope};
use imgcrawl_web::limit::rate_limit;

use crate::error::HttpError;
use crate::routes::{content, crawl, failover, ha, health, images};
use crate::state::AppState;
use crate::{gallery, openapi};

/// Paths that never need a token: the probes.
const OPEN: [&str; 2] = ["/healthz", "/readyz"];

/// The scope a route needs: admin for mutations; read for the rest unless reads are
/// public; nothing for the probes.
fn needed(admin: bool, path: &str, public_reads: bool) -> Option<Scope> {
    if admin {
        Some(Scope::Admin)
    } else if public_reads || OPEN.contains(&path) {
        None
    } else {
        Some(Scope::Read)
    }
}

fn method<H, T>(
    filter: MethodFilter,
    handler: H,
    needed: Option<Scope>,
    state: &AppState,
) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let mr = on(filter, handler);
    match needed {
        Some(needed) => {
            let guard = Guard {
                tokens: state.tokens.clone(),
                needed,
            };
            mr.route_layer(middleware::from_fn_with_state(guard, require))
        }
        None => mr,
    }
}

macro_rules! routes {
    ($( ($m:ident, $path:literal, $handler:path, $auth:literal) ),* $(,)?) => {
        /// Every route: method, path, and whether it needs an admin token.
        pub const ROUTES: &[(&str, &str, bool)] = &[ $( (stringify!($m), $path, $auth) ),* ];

        fn table(state: &AppState) -> Router<AppState> {
            let public = state.config.public_reads;
            Router::new() $( .route($path, method(MethodFilter::$m, $handler, needed($auth, $path, public), state)) )*
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

/// Gives the timeout layer's bare 503 (no Content-Type: every answer of ours has one)
/// the API's JSON error and a `Retry-After`.
async fn timeout_answer(res: Response) -> Response {
    if res.status() != StatusCode::SERVICE_UNAVAILABLE
        || res.headers().contains_key(header::CONTENT_TYPE)
    {
        return res;
    }
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "timeout",
        "the request took too long",
    )
    .retry(1)
    .into_response()
}

/// A header set on every response, replacing any the handler set.
fn always(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let request_timeout = state.config.request_timeout();
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
        .layer(middleware::from_fn_with_state(
            state.limiter.clone(),
            rate_limit,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(middleware::map_response(timeout_answer))
        // no sniffing, no framing, no referrer
        .layer(always(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(always(header::X_FRAME_OPTIONS, "DENY"))
        .layer(always(header::REFERRER_POLICY, "no-referrer"))
        // a debug span per request; 5xx causes are already logged where they happen
        .layer(TraceLayer::new_for_http().on_failure(()))
        // request counts and latency by route template (imgcrawl-telemetry)
        .layer(middleware::from_fn(imgcrawl_telemetry::http::track))
        .with_state(state)
}
