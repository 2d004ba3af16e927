//! The API's contract, on a real nats-server (no database needed for most of it):
//! auth (401/403) on every mutating endpoint, validation errors with their codes,
//! body limits, JSON errors for unknown routes and methods, the per-client rate limit,
//! and the served API matching its OpenAPI document, route for route.

use crate::api_common;

use std::collections::BTreeSet;
use std::time::Duration;

use api_common::{config, expect, ApiServer, Auth};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::{free_port, NatsServer};
use serde_json::{json, Value};

/// A server on a real nats-server and a database that is not there.
async fn server_without_database(
    tweak: impl FnOnce(&mut imgcrawl_api::Config),
) -> (NatsServer, ApiServer) {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = imgcrawl_store::Config {
        target: "memory://".into(),
        ..Default::default()
    };
    let db = format!("postgres://nobody@127.0.0.1:{}/none", free_port());
    let mut c = config(&db, &store, cache.path());
    tweak(&mut c);
    (nats, ApiServer::start(bus, c, cache).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_authenticated_and_validated() {
    let (_nats, api) = server_without_database(|_| {}).await;
    let seed = "http://127.0.0.1:9/";

    // auth: none is 401 with a challenge, a wrong token 403
    let r = api.start_crawl(Auth::None, json!({"url": seed})).await;
    expect(&r, 401, "unauthorized");
    assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    expect(
        &api.start_crawl(Auth::Bad, json!({"url": seed})).await,
        403,
        "forbidden",
    );

    // validation
    let cases = [
        (json!({}), "missing_url"),
        (json!({"url": "ftp://example.org/"}), "invalid_url"),
        (json!({"url": "http://10.0.0.1/"}), "blocked_address"),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "blocked_address",
        ),
        (
            json!({"url": seed, "scope": {"max_dpth": 2}}),
            "invalid_body",
        ),
        (
            json!({"url": seed, "images": {"formats": ["png", "pdf"]}}),
            "invalid_filter",
        ),
        (json!({"urls": "http://example.org/"}), "invalid_body"),
    ];
    for (body, code) in cases {
        let r = api.start_crawl(Auth::Good, body.clone()).await;
        expect(&r, 422, code);
        assert!(
            !r.json()["error"]["message"].as_str().unwrap().is_empty(),
            "{body}"
        );
    }
    let r = api
        .raw(
            "POST",
            "/api/crawl/start",
            "/api/crawl/start",
            "application/json",
            b"{\"url\":".to_vec(),
        )
        .await;
    expect(&r, 400, "malformed_json");
    let r = api
        .raw(
            "POST",
            "/api/crawl/start",
            "/api/crawl/start",
            "text/plain",
            b"http://example.org/".to_vec(),
        )
        .await;
    expect(&r, 415, "unsupported_media_type");
    let big = format!(
        "{{\"url\":\"{seed}\",\"label\":\"{}\"}}",
        "x".repeat(200 * 1024)
    );
    let r = api
        .raw(
            "POST",
            "/api/crawl/start",
            "/api/crawl/start",
            "application/json",
            big.into_bytes(),
        )
        .await;
    expect(&r, 413, "body_too_large");

    // the other mutating endpoints want the token too
    let stop = json!({"job_id": uuid::Uuid::now_v7()});
    for (method, template, path, body) in [
        (
            "POST",
            "/api/crawl/stop",
            "/api/crawl/stop",
            Some(stop.clone()),
        ),
        ("DELETE", "/api/images/{id}", "/api/images/1", None),
        ("POST", "/api/ha/failover", "/api/ha/failover", None),
    ] {
        expect(
            &api.call(method, template, path, Auth::None, body.clone(), &[])
                .await,
            401,
            "unauthorized",
        );
        expect(
            &api.call(method, template, path, Auth::Bad, body, &[]).await,
            403,
            "forbidden",
        );
    }
    let r = api
        .call(
            "POST",
            "/api/crawl/stop",
            "/api/crawl/stop",
            Auth::Good,
            Some(json!({"job": "x"})),
            &[],
        )
        .await;
    expect(&r, 422, "invalid_body");

    let failover = |auth, body: Option<Value>| {
        let api = &api;
        async move {
            api.call(
                "POST",
                "/api/ha/failover",
                "/api/ha/failover",
                auth,
                body,
                &[],
            )
            .await
        }
    };
    expect(&failover(Auth::None, None).await, 401, "unauthorized");
    expect(&failover(Auth::Bad, None).await, 403, "forbidden");
    expect(&failover(Auth::Good, None).await, 409, "no_standby");
    expect(
        &failover(Auth::Good, Some(json!({"target": "postgres"}))).await,
        409,
        "already_primary",
    );
    expect(
        &failover(Auth::Good, Some(json!({"target": "elsewhere"}))).await,
        404,
        "not_found",
    );
    expect(
        &failover(Auth::Good, Some(json!({"targte": "x"}))).await,
        422,
        "invalid_body",
    );
    // unknown routes and methods answer JSON too
    let r = api
        .call("GET", "", "/api/nope", Auth::None, None, &[])
        .await;
    expect(&r, 404, "no_route");
    let r = api
        .call("PUT", "", "/api/images", Auth::Good, None, &[])
        .await;
    expect(&r, 405, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_api_matches_its_openapi_document() {
    let (_nats, api) = server_without_database(|_| {}).await;
    let doc = &api.doc;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_ascii_uppercase(), path.clone()))
        })
        .collect();
    let routed: BTreeSet<(String, String)> = imgcrawl_api::ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        routed, documented,
        "every route is documented and every documented operation is routed"
    );
    for (method, path, auth) in imgcrawl_api::ROUTES {
        let op = &doc["paths"][*path][method.to_ascii_lowercase()];
        assert_eq!(
            op["security"].is_array(),
            *auth,
            "{method} {path}: the document says whether it needs the token"
        );
        // the route is really served: whatever it answers, it is not the router's fallback
        let concrete = path
            .replace("{id}", "1")
            .replace("{job}", &uuid::Uuid::nil().to_string());
        let body = (*method == "POST").then(|| json!({}));
        let r = api
            .call(method, path, &concrete, Auth::Good, body, &[])
            .await;
        assert!(
            !matches!(r.code().as_str(), "no_route" | "method_not_allowed"),
            "{method} {path} is not routed"
        );
    }
    // without the database: readiness says why, reads are 503 without internals
    let ready = api.get("/readyz", "/readyz").await;
    assert_eq!(ready.status, 503);
    let v = ready.json();
    assert_eq!(
        (
            v["status"].as_str(),
            v["nats"]["ok"].as_bool(),
            v["postgres"]["ok"].as_bool()
        ),
        (Some("not_ready"), Some(true), Some(false))
    );
    let r = api.get("/api/images", "/api/images").await;
    assert_eq!((r.status, r.code().as_str()), (503, "unavailable"));
    assert!(r.header("retry-after").is_some());
    let gallery = api.get("/", "/").await;
    assert_eq!(
        gallery.status, 200,
        "the gallery renders even without the index"
    );
    let html = String::from_utf8_lossy(&gallery.body);
    assert!(html.contains("the index is unavailable"), "{html}");
    assert!(gallery
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'sha256-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_their_rate_get_429_with_retry_after() {
    let (_nats, api) = server_without_database(|c| {
        c.rate_limit.per_second = 1.0;
        c.rate_limit.burst = 3;
    })
    .await;
    // the document fetched at start took one token
    for _ in 0..2 {
        assert_eq!(
            api.get("/api/openapi.json", "/api/openapi.json")
                .await
                .status,
            200
        );
    }
    let r = api.get("/api/openapi.json", "/api/openapi.json").await;
    assert_eq!((r.status, r.code().as_str()), (429, "rate_limited"));
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let r = api.get("/api/images", "/api/images").await;
    assert_eq!(r.status, 429, "every client route is limited");
    // probes are never limited
    for _ in 0..10 {
        assert_eq!(api.get("/healthz", "/healthz").await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        api.get("/api/openapi.json", "/api/openapi.json")
            .await
            .status,
        200,
        "tokens come back"
    );
}
