//! Rendered pages: a gallery whose images a script inserts only after the reader
//! scrolls. The static crawl misses them; with `scope.render` and the render role
//! running (headless Chromium, Debian's package from `bootstrap.sh`) they are found as
//! `rendered_dom`, and an image the script requests without inserting it as
//! `rendered_request`. Without a render process the page falls back to the static
//! parse and `page.fetched.render` says why.

use std::time::Duration;

use imgcrawl_events::{CrawlRequested, Event, PageFetched, Scope};
use imgcrawl_tests::NatsServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::extract::{connect, found_on, serve, set, settle};

fn request(job: Uuid, url: String, render: bool) -> Event {
    Event::CrawlRequested(CrawlRequested {
        job_id: Some(job),
        url: Some(url),
        scope: Some(Scope {
            max_depth: 0,
            render: if render { vec!["*".into()] } else { Vec::new() },
            ..Scope::default()
        }),
        ..Default::default()
    })
}

fn fetched(all: &[Event], job: Uuid) -> PageFetched {
    all.iter()
        .find_map(|e| match e {
            Event::PageFetched(p) if p.job_id == job => Some(p.clone()),
            _ => None,
        })
        .expect("the page was fetched")
}

#[tokio::test]
async fn scroll_lazy_images_are_found_only_by_the_rendered_crawl() {
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let (addr, hits) = serve().await;
    let base = format!("http://{addr}");
    let page = format!("{base}/pages/lazy.html");
    let mut config = imgcrawl_crawl::Config {
        render_budget_ms: 15_000,
        ..Default::default()
    };
    config.fetch.allow_loopback = true;
    let shutdown = CancellationToken::new();
    let crawl = tokio::spawn(imgcrawl_crawl::run(bus.clone(), config, shutdown.clone()));

    // static crawl: only the image in the HTML
    let plain = Uuid::from_u128(1);
    bus.publisher()
        .publish(&request(plain, page.clone(), false))
        .await
        .unwrap();
    let all = settle(&bus, plain).await;
    assert_eq!(
        found_on(&all, plain, &base, "/pages/lazy.html"),
        set(&[("/img/static.png", "img_src")])
    );
    assert_eq!(fetched(&all, plain).render, None);

    // rendering asked for, but no render process: the static parse stands, with why
    let orphan = Uuid::from_u128(2);
    bus.publisher()
        .publish(&request(orphan, page.clone(), true))
        .await
        .unwrap();
    let all = settle(&bus, orphan).await;
    assert_eq!(
        found_on(&all, orphan, &base, "/pages/lazy.html"),
        set(&[("/img/static.png", "img_src")])
    );
    assert_eq!(
        fetched(&all, orphan).render.as_deref(),
        Some("failed: no render process is running")
    );

    // a render role whose address guard refuses loopback: the page is not rendered
    let guarded_stop = CancellationToken::new();
    let guarded = tokio::spawn(imgcrawl_render::run(
        bus.clone(),
        imgcrawl_render::Config::default(),
        guarded_stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = Uuid::from_u128(4);
    bus.publisher()
        .publish(&request(refused, page.clone(), true))
        .await
        .unwrap();
    let all = settle(&bus, refused).await;
    assert_eq!(
        found_on(&all, refused, &base, "/pages/lazy.html"),
        set(&[("/img/static.png", "img_src")])
    );
    assert_eq!(
        fetched(&all, refused).render.as_deref(),
        Some("failed: devtools: net::ERR_ADDRESS_UNREACHABLE"),
        "the guard fails the document request"
    );
    guarded_stop.cancel();
    guarded.await.unwrap().unwrap();

    // the render role: the scroll-inserted images and the script's request are found
    let render_stop = CancellationToken::new();
    let render = tokio::spawn(imgcrawl_render::run(
        bus.clone(),
        imgcrawl_render::Config {
            allow_loopback: true,
            ..Default::default()
        },
        render_stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rendered = Uuid::from_u128(3);
    bus.publisher()
        .publish(&request(rendered, page.clone(), true))
        .await
        .unwrap();
    let all = settle(&bus, rendered).await;
    let p = fetched(&all, rendered);
    assert_eq!(p.render.as_deref(), Some("rendered"), "{p:?}");
    assert_eq!(
        found_on(&all, rendered, &base, "/pages/lazy.html"),
        set(&[
            ("/img/static.png", "img_src"),
            ("/img/lazy-1.png", "rendered_dom"),
            ("/img/lazy-2.png", "rendered_dom"),
            ("/img/lazy-3.png", "rendered_dom"),
            ("/img/preloaded-by-script.png", "rendered_request"),
        ])
    );
    let hits = hits.lock().unwrap().clone();
    assert_eq!(
        hits.get("/img/lazy-1.png"),
        None,
        "the browser's image requests are recorded and blocked, not downloaded: {hits:?}"
    );

    render_stop.cancel();
    shutdown.cancel();
    render.await.unwrap().unwrap();
    crawl.await.unwrap().unwrap();
}

/// CPU seconds of this process (user + system) and of its reaped children.
fn cpu() -> (f64, f64) {
    let secs = |who| {
        // SAFETY: getrusage only writes the struct it is given
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    (secs(libc::RUSAGE_SELF), secs(libc::RUSAGE_CHILDREN))
}

/// Crawls `seed` as job `job` (rendering when `render`), waiting until every page has
/// an outcome; returns (pages, seconds).
async fn timed_crawl(bus: &imgcrawl_bus::Bus, job: Uuid, seed: &str, render: bool) -> (u64, f64) {
    use futures::StreamExt;
    let mut sub = bus.client.subscribe("imgcrawl.page.>").await.unwrap();
    let started = std::time::Instant::now();
    let mut r = request(job, seed.to_string(), render);
    if let Event::CrawlRequested(c) = &mut r {
        c.scope.as_mut().unwrap().max_depth = 100;
    }
    bus.publisher().publish(&r).await.unwrap();
    let (mut discovered, mut outcomes, mut rendered) = (0u64, 0u64, 0u64);
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(120), sub.next()).await {
        let kind = imgcrawl_events::EventKind::from_subject(m.subject.as_str());
        match kind
            .map(|k| k.subject())
            .as_deref()
            .unwrap_or(m.subject.as_str())
        {
            "imgcrawl.page.discovered" => discovered += 1,
            "imgcrawl.page.failed" => outcomes += 1,
            "imgcrawl.page.fetched" => {
                outcomes += 1;
                const MARK: &[u8] = b"\"render\":\"rendered\"";
                rendered += u64::from(m.payload.windows(MARK.len()).any(|w| w == MARK));
            }
            _ => {}
        }
        if discovered > 0 && discovered == outcomes {
            break;
        }
    }
    assert_eq!(discovered, outcomes, "the crawl did not drain");
    if render {
        assert_eq!(rendered, outcomes, "every page rendered");
    }
    (outcomes, started.elapsed().as_secs_f64())
}

/// `just bench-render`: pages/s and CPU per page of the static and the rendered crawl
/// of the benchmark site's shape (`IMGCRAWL_BENCH_RENDER_PAGES` pages, default 100;
/// crawl stage only, no downloads). CPU: this process (crawl stage, site server, NATS
/// client) plus, for the rendered crawl, Chromium and its renderers (reaped when the
/// render role stops); the nats-server is not counted in either.
#[tokio::test]
#[ignore = "benchmark: just bench-render"]
async fn bench_render_against_static() {
    let pages: usize = std::env::var("IMGCRAWL_BENCH_RENDER_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let spec = imgcrawl_sitegen::SyntheticSpec {
        pages,
        distinct_images: pages * 10,
        ..imgcrawl_sitegen::SyntheticSpec::benchmark()
    };
    let site = std::sync::Arc::new(imgcrawl_sitegen::synthetic_with(&spec).unwrap());
    let server = imgcrawl_sitegen::serve(site, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let nats = NatsServer::start().await;
    let bus = connect(&nats.url()).await;
    let mut config = imgcrawl_crawl::Config::default();
    config.fetch.allow_loopback = true;
    let shutdown = CancellationToken::new();
    let crawl = tokio::spawn(imgcrawl_crawl::run(bus.clone(), config, shutdown.clone()));

    let c0 = cpu();
    let (n_static, t_static) =
        timed_crawl(&bus, Uuid::from_u128(10), &server.seed_url(), false).await;
    let c1 = cpu();
    let render_config = imgcrawl_render::Config {
        allow_loopback: true,
        ..Default::default()
    };
    let tabs = render_config.tabs;
    let stop = CancellationToken::new();
    let render = tokio::spawn(imgcrawl_render::run(
        bus.clone(),
        render_config,
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (n_render, t_render) =
        timed_crawl(&bus, Uuid::from_u128(11), &server.seed_url(), true).await;
    stop.cancel();
    render.await.unwrap().unwrap();
    let c2 = cpu();
    shutdown.cancel();
    crawl.await.unwrap().unwrap();

    let static_cpu = (c1.0 - c0.0) + (c1.1 - c0.1);
    let render_cpu = (c2.0 - c1.0) + (c2.1 - c1.1);
    println!("bench-render: {pages}-page synthetic site (benchmark shape: 5 links, 10 images a page), crawl stage only, render tabs {tabs}");
    println!("| crawl | pages | seconds | pages/s | CPU s/page |");
    println!("|---|---|---|---|---|");
    for (name, n, t, c) in [
        ("static", n_static, t_static, static_cpu),
        ("rendered", n_render, t_render, render_cpu),
    ] {
        println!(
            "| {name} | {n} | {t:.2} | {:.1} | {:.4} |",
            n as f64 / t,
            c / n as f64
        );
    }
    println!(
        "rendered/static: {:.1}x the time, {:.1}x the CPU per page",
        t_render / t_static,
        (render_cpu / n_render as f64) / (static_cpu / n_static as f64)
    );
}
