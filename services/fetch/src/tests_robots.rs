//! robots.txt through the fetcher: rules, status handling, caching, crawl-delay.

use super::*;

const ROBOTS: &str =
    "User-agent: *\nDisallow: /private\nAllow: /private/ok\nDisallow: /*.pdf$\nCrawl-delay: 1\n";

fn site(robots_status: StatusCode, body: &'static str, hits: Counter) -> Router {
    Router::new()
        .route(
            "/robots.txt",
            get(move |State(c): State<Counter>| async move {
                c.hits.fetch_add(1, Ordering::SeqCst);
                (robots_status, body)
            }),
        )
        .route("/{*rest}", get(|| async { "page" }))
        .route("/to-private", get(|| async { redirect("/private/x") }))
        .with_state(hits)
}

#[tokio::test]
async fn rules_are_applied_to_pages_and_redirect_targets() {
    let hits = Counter::default();
    let addr = serve(site(StatusCode::OK, ROBOTS, hits.clone())).await;
    let f = fetcher(loopback_config());
    assert!(matches!(
        fetch(&f, &url(addr, "/private/x"), true).await,
        Err(FetchError::Robots(_))
    ));
    assert!(
        fetch(&f, &url(addr, "/private/ok/1"), true).await.is_ok(),
        "longer allow wins"
    );
    assert!(matches!(
        fetch(&f, &url(addr, "/to-private"), true).await,
        Err(FetchError::Robots(_))
    ));
    assert!(
        fetch(&f, &url(addr, "/private/x"), false).await.is_ok(),
        "robots off"
    );
    assert!(!f.robots_allowed(&url(addr, "/doc.pdf")).await.unwrap());
    assert!(
        f.robots_allowed(&url(addr, "/doc.pdf?x=1")).await.unwrap(),
        "$ anchors the end"
    );
    assert!(f.robots_allowed(&url(addr, "/public")).await.unwrap());
    assert_eq!(
        hits.hits.load(Ordering::SeqCst),
        1,
        "robots.txt is cached per origin"
    );
}

#[tokio::test]
async fn missing_robots_allows_and_failing_robots_disallows() {
    for (status, allowed) in [
        (StatusCode::NOT_FOUND, true),
        (StatusCode::FORBIDDEN, true),
        (StatusCode::GONE, true),
        (StatusCode::TOO_MANY_REQUESTS, false),
        (StatusCode::INTERNAL_SERVER_ERROR, false),
        (StatusCode::SERVICE_UNAVAILABLE, false),
    ] {
        let addr = serve(site(
            status,
            "User-agent: *\nDisallow: /\n",
            Counter::default(),
        ))
        .await;
        let f = fetcher(loopback_config());
        assert_eq!(
            f.robots_allowed(&url(addr, "/x")).await.unwrap(),
            allowed,
            "robots.txt status {status}"
        );
        let page = fetch(&f, &url(addr, "/x"), true).await;
        assert_eq!(
            page.is_ok(),
            allowed,
            "page under robots.txt status {status}"
        );
    }
}

#[tokio::test]
async fn unreachable_robots_disallows() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let f = fetcher(loopback_config());
    assert!(!f.robots_allowed(&url(closed, "/x")).await.unwrap());
}

#[tokio::test]
async fn crawl_delay_is_capped_by_the_job() {
    let addr = serve(site(StatusCode::OK, ROBOTS, Counter::default())).await;
    let f = fetcher(loopback_config());
    let p = Politeness {
        max_crawl_delay_ms: 300,
        ..Default::default()
    };
    let opts = RequestOptions {
        politeness: &p,
        obey_robots: true,
        in_scope: ANY,
        accept: "*/*",
    };
    let t0 = Instant::now();
    for _ in 0..3 {
        f.get(&url(addr, "/a"), &opts).await.unwrap();
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(600),
        "crawl-delay applied: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1900),
        "crawl-delay of 1 s capped at 300 ms: {took:?}"
    );
}
