//! End to end through a real nats-server: a loopback site is crawled from a single
//! `crawl.requested`, and the stream must hold every child before its parent's outcome.
//!
//! Runs against a real nats-server from the harness (`imgcrawl_tests::NatsServer`).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_crawl::Config;
use imgcrawl_events::{decode, CrawlRequested, Event, PageFailure};
use imgcrawl_tests::NatsServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn connect(url: &str) -> Bus {
    for _ in 0..50 {
        if let Ok(b) = Bus::connect(BusConfig::with_url(url)).await {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nats did not come up");
}

fn site() -> Router {
    let html = |s: &'static str| ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], s);
    Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nDisallow: /private\n" }))
        .route("/", get(move || async move {
            html(r#"<title>Home</title><a href="/a.html">a</a> <a href="/broken.html">b</a> <a href="/private.html">p</a>
                <a href="/photo">photo</a> <img src="/img/1.png" alt="one"> <a href="/old">old</a>"#)
        }))
        .route("/a.html", get(move || async move { html(r#"<a href="/">home</a><a href="/a.html#x">self</a><img src="/img/1.png"><img src="/img/2.png">"#) }))
        .route("/old", get(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/a.html")]) }))
        .route("/broken.html", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/photo", get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 10]) }))
}

/// Every event in the stream, in order, with its sequence (also read by `extract`).
pub(crate) async fn events(bus: &Bus) -> Vec<(u64, Event)> {
    let mut stream = bus.js.get_stream(&bus.config.stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let h = m
            .headers
            .get("Imgcrawl-Event")
            .map(|v| v.as_str().to_string());
        if let Ok(e) = decode(&m.subject, h.as_deref(), &m.payload) {
            out.push((seq, e));
        }
    }
    out
}

#[tokio::test]
async fn a_site_is_crawled_children_first() {
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, site()).await.ok() });

    let mut config = Config {
        http_retry_delay_ms: 50,
        ..Default::default()
    };
    config.fetch.allow_loopback = true;
    let shutdown = CancellationToken::new();
    let stage = tokio::spawn(imgcrawl_crawl::run(bus.clone(), config, shutdown.clone()));

    let job = Uuid::from_u128(42);
    let req = Event::CrawlRequested(CrawlRequested {
        job_id: Some(job),
        url: Some(format!("http://{addr}/")),
        ..Default::default()
    });
    bus.publisher().publish(&req).await.unwrap();

    let mut all = Vec::new();
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = events(&bus).await;
        let discovered = all
            .iter()
            .filter(|(_, e)| matches!(e, Event::PageDiscovered(_)))
            .count();
        let outcomes = all
            .iter()
            .filter(|(_, e)| matches!(e, Event::PageFetched(_) | Event::PageFailed(_)))
            .count();
        if discovered > 0 && discovered == outcomes {
            break;
        }
    }
    shutdown.cancel();
    stage.await.unwrap().unwrap();

    let base = format!("http://{addr}");
    let mut outcome: HashMap<String, String> = HashMap::new();
    let mut outcome_seq: HashMap<String, u64> = HashMap::new();
    for (seq, e) in &all {
        match e {
            Event::PageFetched(p) => {
                outcome.insert(
                    p.url.trim_start_matches(&base).to_string(),
                    format!("fetched {}", p.status),
                );
                outcome_seq.insert(p.final_url.clone(), *seq);
            }
            Event::PageFailed(p) => {
                let r = serde_json::to_string(&p.reason).unwrap();
                outcome.insert(
                    p.url.trim_start_matches(&base).to_string(),
                    format!("failed {}", r.trim_matches('"')),
                );
            }
            _ => {}
        }
    }
    let want: HashMap<String, String> = [
        ("/", "fetched 200"),
        ("/a.html", "fetched 200"),
        ("/old", "fetched 200"),
        ("/broken.html", "failed http_status"),
        ("/private.html", "failed robots"),
        ("/photo", "failed not_html"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(outcome, want);

    let mut images: Vec<String> = all
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ImageDiscovered(i) => Some(i.url.trim_start_matches(&base).to_string()),
            _ => None,
        })
        .collect();
    images.sort();
    assert_eq!(images, vec!["/img/1.png", "/img/2.png", "/photo"]);

    // Every child is in the stream before its parent's outcome.
    for (seq, e) in &all {
        let parent = match e {
            Event::PageDiscovered(p) => p.referrer.clone(),
            Event::ImageDiscovered(i) if !i.url.ends_with("/photo") => Some(i.page_url.clone()),
            _ => None,
        };
        if let Some(parent) = parent {
            let parent_seq = outcome_seq
                .get(&parent)
                .unwrap_or_else(|| panic!("no outcome for {parent}"));
            assert!(
                seq < parent_seq,
                "child at {seq} after its parent's outcome at {parent_seq}"
            );
        }
    }
    let broken = all.iter().find_map(|(_, e)| match e {
        Event::PageFailed(p) if p.reason == PageFailure::HttpStatus => Some(p.http_status),
        _ => None,
    });
    assert_eq!(broken, Some(Some(503)));
}

/// Waits until the stream holds an outcome for every discovered page (and at least `min` events).
async fn settle(bus: &Bus, min: usize) -> Vec<(u64, Event)> {
    let mut all = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = events(bus).await;
        let discovered = all
            .iter()
            .filter(|(_, e)| matches!(e, Event::PageDiscovered(_)))
            .count();
        let outcomes = all
            .iter()
            .filter(|(_, e)| matches!(e, Event::PageFetched(_) | Event::PageFailed(_)))
            .count();
        if all.len() >= min && discovered == outcomes {
            break;
        }
    }
    all
}

#[tokio::test]
async fn refused_seeds_fail_visibly_and_stopped_jobs_start_nothing() {
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let shutdown = CancellationToken::new();
    // Default config: loopback refused.
    let stage = tokio::spawn(imgcrawl_crawl::run(
        bus.clone(),
        Config::default(),
        shutdown.clone(),
    ));

    let stopped = Uuid::from_u128(7);
    let stop = Event::CrawlStopped(imgcrawl_events::CrawlStopped {
        job_id: stopped,
        reason: None,
        occurred_at: chrono::Utc::now(),
    });
    bus.publisher().publish(&stop).await.unwrap();
    // Stages handle messages concurrently: let the stop land before the request.
    for _ in 0..50 {
        if bus
            .jobs
            .get(stopped)
            .await
            .unwrap()
            .is_some_and(|r| r.stopped)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = |job: u128, url: &str| {
        Event::CrawlRequested(CrawlRequested {
            job_id: Some(Uuid::from_u128(job)),
            url: Some(url.into()),
            ..Default::default()
        })
    };
    bus.publisher()
        .publish(&req(7, "http://127.0.0.1:9/"))
        .await
        .unwrap();
    bus.publisher()
        .publish(&req(8, "http://127.0.0.1:9/"))
        .await
        .unwrap();
    // An invalid request is dead-lettered, not crashed on.
    bus.publisher()
        .send_raw(
            "imgcrawl.crawl.requested",
            Default::default(),
            r#"{"url":"ftp://x/"}"#.into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let all = settle(&bus, 5).await;
    shutdown.cancel();
    stage.await.unwrap().unwrap();

    let pages: Vec<&Event> = all
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e, Event::PageDiscovered(_) | Event::PageFailed(_)))
        .collect();
    assert_eq!(pages.len(), 2, "only job 8 starts: {pages:?}");
    assert!(pages.iter().all(|e| e.job_id() == Some(Uuid::from_u128(8))));
    assert!(matches!(pages[1], Event::PageFailed(p) if p.reason == PageFailure::BlockedAddress));
    assert!(bus.jobs.get(stopped).await.unwrap().unwrap().stopped);

    let mut stream = bus.js.get_stream(&bus.config.stream).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut dead = 0;
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            dead += usize::from(m.subject.as_str() == "imgcrawl.dlq.crawl");
        }
    }
    assert_eq!(dead, 1, "the ftp request is dead-lettered");
}

/// `/x` is reached first along a long fast path (depth 4 = the job's `max_depth`, so
/// its links are not followed) and later along a short slow one (depth 2). A crawl
/// whose first claim is final never finds `/y` and its image; breadth-first does.
fn deep_first_site() -> Router {
    let html = |s: &'static str| ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], s);
    Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nAllow: /\n" }))
        .route(
            "/",
            get(move || async move { html(r#"<a href="/slow">s</a> <a href="/f1">f</a>"#) }),
        )
        .route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                html(r#"<a href="/x">x</a>"#)
            }),
        )
        .route(
            "/f1",
            get(move || async move { html(r#"<a href="/f2">f2</a>"#) }),
        )
        .route(
            "/f2",
            get(move || async move { html(r#"<a href="/f3">f3</a>"#) }),
        )
        .route(
            "/f3",
            get(move || async move { html(r#"<a href="/x">x</a>"#) }),
        )
        .route(
            "/x",
            get(move || async move { html(r#"<a href="/y">y</a>"#) }),
        )
        .route(
            "/y",
            get(move || async move { html(r#"<img src="/img/y.png">"#) }),
        )
}

#[tokio::test]
async fn a_page_found_first_along_a_longer_path_is_crawled_at_its_shortest_depth() {
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, deep_first_site()).await.ok() });
    let mut config = Config::default();
    config.fetch.allow_loopback = true;
    let shutdown = CancellationToken::new();
    let stage = tokio::spawn(imgcrawl_crawl::run(bus.clone(), config, shutdown.clone()));

    let req = Event::CrawlRequested(CrawlRequested {
        job_id: Some(Uuid::now_v7()),
        url: Some(format!("http://{addr}/")),
        scope: Some(imgcrawl_events::Scope {
            max_depth: 4,
            ..Default::default()
        }),
        ..Default::default()
    });
    bus.publisher().publish(&req).await.unwrap();
    // the seed, /slow, /f1..3, /x twice (depth 4, then 2), /y: 8 discoveries and outcomes
    // settles when every discovery has its outcome; /x's second visit comes after /slow
    let mut all = settle(&bus, 17).await;
    if !all
        .iter()
        .any(|(_, e)| matches!(e, Event::ImageDiscovered(_)))
    {
        all = settle(&bus, 17).await;
    }
    shutdown.cancel();
    stage.await.unwrap().unwrap();

    let base = format!("http://{addr}");
    let found: Vec<(String, u32)> = all
        .iter()
        .filter_map(|(_, e)| match e {
            Event::PageDiscovered(p) => {
                Some((p.url.trim_start_matches(&base).to_string(), p.depth))
            }
            _ => None,
        })
        .collect();
    let x: Vec<u32> = found
        .iter()
        .filter(|(u, _)| u == "/x")
        .map(|(_, d)| *d)
        .collect();
    assert_eq!(
        x,
        vec![4, 2],
        "/x first along the fast path, then visited again nearer: {found:?}"
    );
    assert!(found.contains(&("/y".to_string(), 3)), "{found:?}");
    let images: Vec<&str> = all
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ImageDiscovered(i) => Some(i.url.trim_start_matches(&base)),
            _ => None,
        })
        .collect();
    assert_eq!(images, vec!["/img/y.png"]);
    // every visit has its outcome (the job can complete)
    let outcomes = all
        .iter()
        .filter(|(_, e)| matches!(e, Event::PageFetched(_) | Event::PageFailed(_)))
        .count();
    assert_eq!(outcomes, found.len());
}
