//! Behaviour tests of the fetcher against tiny axum servers on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use imgcrawl_events::Politeness;
use url::Url;

use crate::{BodyError, FetchConfig, FetchError, Fetcher, RequestOptions};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    addr
}

fn loopback_config() -> FetchConfig {
    FetchConfig {
        allow_loopback: true,
        ..Default::default()
    }
}

fn fetcher(cfg: FetchConfig) -> Fetcher {
    Fetcher::new(cfg).expect("fetcher")
}

fn url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).expect("test url")
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

const ANY: &(dyn Fn(&Url) -> bool + Send + Sync) = &|_| true;

async fn fetch(f: &Fetcher, u: &Url, obey_robots: bool) -> Result<crate::Fetched, FetchError> {
    let p = Politeness::default();
    f.get(
        u,
        &RequestOptions {
            politeness: &p,
            obey_robots,
            in_scope: ANY,
            accept: "*/*",
        },
    )
    .await
}

fn redirect_site() -> Router {
    Router::new()
        .route("/a", get(|| async { redirect("/b#frag") }))
        .route("/b", get(|| async { "ok" }))
        .route("/loop1", get(|| async { redirect("/loop2") }))
        .route("/loop2", get(|| async { redirect("/loop1") }))
        .route(
            "/chain/{n}",
            get(|Path(n): Path<u32>| async move {
                if n == 0 {
                    "end".into_response()
                } else {
                    redirect(&format!("/chain/{}", n - 1))
                }
            }),
        )
        .route("/out", get(|| async { redirect("/outside/x") }))
        .route("/outside/x", get(|| async { "outside" }))
        .route(
            "/meta",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data") }),
        )
        .route("/ftp", get(|| async { redirect("ftp://example.org/x") }))
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "nope") }),
        )
}

#[tokio::test]
async fn follows_redirects_and_reports_the_final_url() {
    let addr = serve(redirect_site()).await;
    let f = fetcher(loopback_config());
    let got = fetch(&f, &url(addr, "/a"), false).await.unwrap();
    assert_eq!((got.status, got.final_url.path()), (200, "/b"));
    assert_eq!(got.final_url.fragment(), None);
    assert_eq!(got.read_capped(100).await.unwrap().as_ref(), b"ok");
    let missing = fetch(&f, &url(addr, "/missing"), false).await.unwrap();
    assert_eq!(missing.status, 404, "any final status is returned");
}

#[tokio::test]
async fn redirect_loops_and_caps_are_errors() {
    let addr = serve(redirect_site()).await;
    let f = fetcher(FetchConfig {
        max_redirects: 3,
        ..loopback_config()
    });
    assert!(matches!(
        fetch(&f, &url(addr, "/loop1"), false).await,
        Err(FetchError::RedirectLoop(_))
    ));
    assert!(
        fetch(&f, &url(addr, "/chain/3"), false).await.is_ok(),
        "exactly the cap is fine"
    );
    assert!(matches!(
        fetch(&f, &url(addr, "/chain/4"), false).await,
        Err(FetchError::TooManyRedirects(3))
    ));
}

#[tokio::test]
async fn every_redirect_target_is_checked() {
    let addr = serve(redirect_site()).await;
    let f = fetcher(loopback_config());
    let p = Politeness::default();
    let scope = |u: &Url| !u.path().starts_with("/outside");
    let opts = RequestOptions {
        politeness: &p,
        obey_robots: false,
        in_scope: &scope,
        accept: "*/*",
    };
    assert!(matches!(
        f.get(&url(addr, "/out"), &opts).await,
        Err(FetchError::OutOfScope(_))
    ));
    assert!(
        f.get(&url(addr, "/outside/x"), &opts).await.is_ok(),
        "the first url is not scope-checked"
    );
    assert!(matches!(
        f.get(&url(addr, "/meta"), &opts).await,
        Err(FetchError::BlockedAddress(_))
    ));
    assert!(matches!(
        f.get(&url(addr, "/ftp"), &opts).await,
        Err(FetchError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn loopback_is_refused_unless_allowed() {
    let addr = serve(redirect_site()).await;
    let strict = fetcher(FetchConfig::default());
    assert!(matches!(
        fetch(&strict, &url(addr, "/b"), false).await,
        Err(FetchError::BlockedAddress(_))
    ));
    let by_name = Url::parse(&format!("http://localhost:{}/b", addr.port())).unwrap();
    assert!(matches!(
        fetch(&strict, &by_name, false).await,
        Err(FetchError::BlockedAddress(_))
    ));
    assert!(matches!(
        strict.robots_allowed(&url(addr, "/b")).await,
        Err(FetchError::BlockedAddress(_))
    ));
    assert!(matches!(
        fetch(&strict, &Url::parse("ftp://x.test/").unwrap(), false).await,
        Err(FetchError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn timeouts_and_network_errors_are_typed() {
    let slow = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "late"
        }),
    );
    let addr = serve(slow).await;
    let f = fetcher(FetchConfig {
        request_timeout_ms: 200,
        ..loopback_config()
    });
    assert!(matches!(
        fetch(&f, &url(addr, "/slow"), false).await,
        Err(FetchError::Timeout(_))
    ));
    // A port nobody listens on: bind, note the port, close.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(matches!(
        fetch(&f, &url(closed, "/"), false).await,
        Err(FetchError::Network(_))
    ));
}

#[path = "tests_robots.rs"]
mod robots;

#[path = "tests_body.rs"]
mod body;

#[path = "tests_ssrf.rs"]
mod ssrf;

/// Shared state of the counting test servers.
#[derive(Clone, Default)]
struct Counter {
    hits: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

async fn counted(State(c): State<Counter>) -> &'static str {
    c.hits.fetch_add(1, Ordering::SeqCst);
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
    "ok"
}

#[tokio::test]
async fn politeness_spaces_requests_to_one_host() {
    let c = Counter::default();
    let addr = serve(
        Router::new()
            .route("/p", get(counted))
            .with_state(c.clone()),
    )
    .await;
    let f = fetcher(loopback_config());
    let p = Politeness {
        delay_ms: 250,
        ..Default::default()
    };
    let opts = RequestOptions {
        politeness: &p,
        obey_robots: false,
        in_scope: ANY,
        accept: "*/*",
    };
    let t0 = Instant::now();
    for _ in 0..3 {
        f.get(&url(addr, "/p"), &opts)
            .await
            .unwrap()
            .read_capped(10)
            .await
            .unwrap();
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "3 starts need 2 intervals: {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn per_host_concurrency_is_bounded() {
    let c = Counter::default();
    let addr = serve(
        Router::new()
            .route("/p", get(counted))
            .with_state(c.clone()),
    )
    .await;
    let f = fetcher(loopback_config());
    let p = Politeness {
        per_host_concurrency: 2,
        ..Default::default()
    };
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (f, p, u) = (f.clone(), p.clone(), url(addr, "/p"));
            tokio::spawn(async move {
                let opts = RequestOptions {
                    politeness: &p,
                    obey_robots: false,
                    in_scope: ANY,
                    accept: "*/*",
                };
                f.get(&u, &opts)
                    .await
                    .unwrap()
                    .read_capped(10)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.hits.load(Ordering::SeqCst), 6);
    assert_eq!(c.max_in_flight.load(Ordering::SeqCst), 2);
}

#[test]
fn body_error_messages_are_lowercase() {
    assert_eq!(
        BodyError::TooLarge { limit: 5 }.to_string(),
        "body larger than 5 bytes"
    );
    assert_eq!(
        FetchError::TooManyRedirects(5).to_string(),
        "more than 5 redirects"
    );
}
