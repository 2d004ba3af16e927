//! Extraction end to end: the crawl stage on a real nats-server crawls a loopback site
//! whose images hide everywhere but `<img>` (stylesheets and their `@import`s, `<style>`
//! blocks, frames, refreshes, preloads, posters, inputs, objects, SVG, JSON-LD,
//! microdata, manifests) and a page that must yield nothing; every image must come out
//! with the right `found_by`, resolved against the right base, and the stylesheets must
//! be fetched under robots.txt, once per crawl, to a bounded `@import` depth.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::{CrawlRequested, Event, FoundBy};
use imgcrawl_tests::NatsServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The fixture site: path → (content type, body).
pub(crate) fn pages() -> HashMap<&'static str, (&'static str, &'static str)> {
    let html = "text/html; charset=utf-8";
    let css = "text/css";
    HashMap::from([
        (
            "/robots.txt",
            (
                "text/plain",
                "User-agent: *\nDisallow: /static/css/private.css\n",
            ),
        ),
        (
            "/pages/index.html",
            (html, include_str!("../../fixtures/extract/index.html")),
        ),
        (
            "/pages/frame.html",
            (html, include_str!("../../fixtures/extract/frame.html")),
        ),
        (
            "/pages/refreshed.html",
            (html, include_str!("../../fixtures/extract/refreshed.html")),
        ),
        (
            "/pages/second.html",
            (html, include_str!("../../fixtures/extract/second.html")),
        ),
        (
            "/pages/nothing.html",
            (
                html,
                include_str!("../../../services/crawl/fixtures/negatives.html"),
            ),
        ),
        (
            "/pages/lazy.html",
            (html, include_str!("../../fixtures/extract/lazy.html")),
        ),
        (
            "/static/css/site.css",
            (css, include_str!("../../fixtures/extract/site.css")),
        ),
        (
            "/static/css/private.css",
            (css, include_str!("../../fixtures/extract/private.css")),
        ),
        (
            "/static/css/deep/imported.css",
            (css, include_str!("../../fixtures/extract/imported.css")),
        ),
        (
            "/static/css/deep/two.css",
            (css, include_str!("../../fixtures/extract/two.css")),
        ),
        (
            "/static/css/deep/three.css",
            (css, include_str!("../../fixtures/extract/three.css")),
        ),
        (
            "/static/css/deep/four.css",
            (css, include_str!("../../fixtures/extract/four.css")),
        ),
        (
            "/app.webmanifest",
            (
                "application/manifest+json",
                include_str!("../../fixtures/extract/app.webmanifest"),
            ),
        ),
    ])
}

/// Requests per path, counted by the fixture server.
pub(crate) type Hits = Arc<Mutex<HashMap<String, usize>>>;

/// Serves [`pages`] on a loopback port; images are tiny PNG-typed bodies.
pub(crate) async fn serve() -> (std::net::SocketAddr, Hits) {
    let hits: Hits = Arc::default();
    async fn one(State(hits): State<Hits>, uri: Uri) -> axum::response::Response {
        let path = uri.path().to_string();
        *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
        match pages().get(path.as_str()) {
            Some((ct, body)) => ([(header::CONTENT_TYPE, *ct)], *body).into_response(),
            None if path.ends_with(".png") => {
                ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 8]).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        }
    }
    let app = Router::new().fallback(one).with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (addr, hits)
}

pub(crate) async fn connect(url: &str) -> Bus {
    for _ in 0..50 {
        if let Ok(b) = Bus::connect(BusConfig::with_url(url)).await {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nats did not come up");
}

/// Waits until every page of `job` discovered so far has an outcome.
pub(crate) async fn settle(bus: &Bus, job: Uuid) -> Vec<Event> {
    let mut all = Vec::new();
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        all = crate::crawl_stage::events(bus)
            .await
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        let of_job = |e: &&Event| match e {
            Event::PageDiscovered(p) => p.job_id == job,
            Event::PageFetched(p) => p.job_id == job,
            Event::PageFailed(p) => p.job_id == job,
            _ => false,
        };
        let discovered = all
            .iter()
            .filter(of_job)
            .filter(|e| matches!(e, Event::PageDiscovered(_)))
            .count();
        let outcomes = all.iter().filter(of_job).count() - discovered;
        if discovered > 0 && discovered == outcomes {
            break;
        }
    }
    all
}

/// (image path, found_by) of the images of `job` found on `page` (a path).
pub(crate) fn found_on(
    all: &[Event],
    job: Uuid,
    base: &str,
    page: &str,
) -> BTreeSet<(String, String)> {
    all.iter()
        .filter_map(|e| match e {
            Event::ImageDiscovered(i)
                if i.job_id == job && i.page_url == format!("{base}{page}") =>
            {
                let by = serde_json::to_value(i.found_by).unwrap();
                Some((
                    i.url.trim_start_matches(base).to_string(),
                    by.as_str().unwrap().to_string(),
                ))
            }
            _ => None,
        })
        .collect()
}

pub(crate) fn set(v: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn every_source_is_found_on_a_live_site() {
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let (addr, hits) = serve().await;
    let mut config = imgcrawl_crawl::Config::default();
    config.fetch.allow_loopback = true;
    let shutdown = CancellationToken::new();
    let stage = tokio::spawn(imgcrawl_crawl::run(bus.clone(), config, shutdown.clone()));

    let job = Uuid::from_u128(18);
    let base = format!("http://{addr}");
    let req = Event::CrawlRequested(CrawlRequested {
        job_id: Some(job),
        url: Some(format!("{base}/pages/index.html")),
        ..Default::default()
    });
    bus.publisher().publish(&req).await.unwrap();
    let all = settle(&bus, job).await;
    shutdown.cancel();
    stage.await.unwrap().unwrap();

    let index = found_on(&all, job, &base, "/pages/index.html");
    let want = set(&[
        ("/img/plain.png", "img_src"),
        ("/img/preload.png", "preload"),
        ("/img/preload-2x.png", "preload"),
        ("/img/style-block.png", "style_block"),
        ("/img/set-1x.png", "style_block"),
        ("/img/set-2x.png", "style_block"),
        ("/img/ld.png", "json_ld"),
        ("/img/ld-logo.png", "json_ld"),
        ("/img/poster.png", "video_poster"),
        ("/img/input.png", "input_image"),
        ("/img/object.svg", "embed"),
        ("/img/embed.png", "embed"),
        ("/img/svg-href.png", "svg_image"),
        ("/img/svg-xlink.png", "svg_image"),
        ("/img/microdata.png", "microdata"),
        // stylesheet URLs resolve against the stylesheet, not the page
        ("/static/css/img/hero.png", "stylesheet"),
        ("/img/content.png", "stylesheet"),
        ("/static/css/img/bullet.png", "stylesheet"),
        ("/static/css/img/mask.png", "stylesheet"),
        ("/static/css/img/css-set-1x.png", "stylesheet"),
        ("/static/css/img/css-set-2x.png", "stylesheet"),
        // @import to depth 3: imported.css (1), two.css (2), three.css (3); not four.css
        ("/static/css/img/imported.png", "stylesheet"),
        ("/static/css/deep/img/two.png", "stylesheet"),
        ("/static/css/deep/img/three.png", "stylesheet"),
        // the manifest's icons resolve against the manifest
        ("/icons/192.png", "manifest"),
        ("/icons/512.png", "manifest"),
    ]);
    assert_eq!(
        index,
        want,
        "found on the index: {:#?}",
        index.symmetric_difference(&want).collect::<Vec<_>>()
    );
    // frames and refresh targets are pages of the job
    assert_eq!(
        found_on(&all, job, &base, "/pages/frame.html"),
        set(&[("/img/in-frame.png", "img_src")])
    );
    assert_eq!(
        found_on(&all, job, &base, "/pages/refreshed.html"),
        set(&[("/img/after-refresh.png", "img_src")])
    );
    assert_eq!(
        found_on(&all, job, &base, "/pages/second.html"),
        set(&[("/img/second.png", "img_src")])
    );
    // the page of comments, scripts and strings yields nothing
    assert_eq!(found_on(&all, job, &base, "/pages/nothing.html"), set(&[]));
    let nothing = all.iter().find_map(|e| match e {
        Event::PageFetched(p) if p.url.ends_with("/pages/nothing.html") => Some(p.clone()),
        _ => None,
    });
    let nothing = nothing.expect("nothing.html was fetched");
    assert_eq!((nothing.images_found, nothing.links_found), (0, 0));
    assert_eq!(nothing.render, None, "the job does not render");

    let hits = hits.lock().unwrap().clone();
    assert_eq!(
        hits.get("/static/css/site.css"),
        Some(&1),
        "fetched once per crawl: {hits:?}"
    );
    assert_eq!(
        hits.get("/static/css/private.css"),
        None,
        "robots.txt disallows it"
    );
    assert_eq!(
        hits.get("/static/css/deep/four.css"),
        None,
        "past the @import depth"
    );
    let any = all
        .iter()
        .any(|e| matches!(e, Event::ImageDiscovered(i) if i.found_by == FoundBy::Link));
    assert!(!any, "no image was found as a plain link");
}
