//! Request metrics for an axum router: one middleware ([`track`]) counting requests by
//! method, route template and status (`imgcrawl_api_requests_total`) and timing them
//! (`imgcrawl_api_request_duration_seconds`). The route is the template the router
//! matched (`/api/images/{id}`), never the concrete path; unknown paths are
//! `unmatched`, unusual methods `other`, so the series stay few.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::labels::{Request as RequestLabels, Route};
use crate::metrics;

/// The method's label.
fn method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware: add with `Router::layer(axum::middleware::from_fn(track))`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = method(req.method()).to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let m = metrics();
    m.api_request_duration
        .get_or_create(&Route {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.api_requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: res.status().as_u16(),
        })
        .inc();
    res
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower_service_shim::call;

    use super::*;

    /// Minimal `oneshot` without tower's util feature.
    mod tower_service_shim {
        use axum::body::Body;
        use axum::http::Request;
        use axum::response::Response;
        use axum::Router;

        pub async fn call(app: Router, req: Request<Body>) -> Response {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move { axum::serve(listener, app).await });
            let url = format!("http://{addr}{}", req.uri());
            let got = reqwest::Client::new()
                .request(req.method().clone(), url)
                .send()
                .await
                .unwrap();
            server.abort();
            let mut res = Response::builder().status(got.status());
            for (k, v) in got.headers() {
                res = res.header(k, v);
            }
            res.body(axum::body::Body::from(got.bytes().await.unwrap()))
                .unwrap()
        }
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_template() {
        let app = Router::new()
            .route("/api/things/{id}", get(|| async { "thing" }))
            .layer(axum::middleware::from_fn(track));
        for path in ["/api/things/1", "/api/things/2", "/nowhere"] {
            let req = axum::http::Request::builder()
                .uri(path)
                .body(Body::empty())
                .unwrap();
            call(app.clone(), req).await;
        }
        let text = metrics::encode();
        let ok =
            r#"imgcrawl_api_requests_total{method="GET",route="/api/things/{id}",status="200"} 2"#;
        assert!(text.contains(ok), "{text}");
        assert!(
            text.contains(
                r#"imgcrawl_api_requests_total{method="GET",route="unmatched",status="404"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains("/api/things/1"), "no concrete paths");
    }
}
