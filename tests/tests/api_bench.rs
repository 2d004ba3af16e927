//! `just bench-api`: latency of `GET /api/images?limit=100` over a 20,000-image
//! projection, measured with `wrk` on loopback.
//!
//! The projection is made fast: synthetic `crawl.requested`, `image.downloaded` and
//! `image.stored` events are published and the real index stage applies them (no
//! crawl, no bytes). Then `wrk` (one thread, a few connections, `--latency`) loads the
//! first page, a page deep in the keyset, and a filtered page, and the p50/p99 of each
//! are printed. Ignored by default (it wants a release build and `wrk`).

mod api_common;

use std::process::Command;
use std::time::{Duration, Instant};

use api_common::ApiServer;
use chrono::Utc;
use imgcrawl_events::{CrawlRequested, Event, FoundBy, ImageDownloaded, ImageStored};
use imgcrawl_tests::{wait_until, Pipeline, Stage};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const IMAGES: usize = 20_000;
const FORMATS: [(&str, &str, &str); 4] = [
    ("jpeg", "image/jpeg", "jpg"),
    ("png", "image/png", "png"),
    ("webp", "image/webp", "webp"),
    ("gif", "image/gif", "gif"),
];

fn events(job: Uuid, i: usize) -> [Event; 2] {
    let sha = hex::encode(Sha256::digest(format!("bench image {i}").as_bytes()));
    let (format, content_type, ext) = FORMATS[i % FORMATS.len()];
    let url = format!("https://bench.example/img/{i}.{ext}");
    let now = Utc::now();
    let bytes = 2_000 + (i as u64 * 7919) % 60_000;
    [
        Event::ImageDownloaded(ImageDownloaded {
            job_id: job,
            url: url.clone(),
            final_url: url.clone(),
            page_url: format!("https://bench.example/p/{}.html", i / 10),
            alt: None,
            found_by: FoundBy::ImgSrc,
            sha256: sha.clone(),
            bytes,
            format: format.into(),
            width: 64 + (i as u32 * 31) % 900,
            height: 64 + (i as u32 * 17) % 700,
            content_type: content_type.into(),
            occurred_at: now,
        }),
        Event::ImageStored(ImageStored {
            job_id: job,
            url,
            object_key: format!("images/{}/{}/{sha}.{ext}", &sha[0..2], &sha[2..4]),
            sha256: sha,
            bytes,
            content_type: content_type.into(),
            occurred_at: now,
        }),
    ]
}

/// Runs wrk on `url`; returns (p50, p99, requests/s) as printed.
fn wrk(url: &str, seconds: u32) -> (String, String, String) {
    let out = Command::new("wrk")
        .args(["-t1", "-c4", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .expect("wrk is needed: apt-get install wrk (the bench-api recipe does)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("Non-2xx"), "errors under load:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    (field("50%"), field("99%"), field("Requests/sec:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: just bench-api"]
async fn images_page_latency_over_20k_images() {
    let mut p = Pipeline::start_without_stages().await;
    p.configs.index.publish_indexed = false;
    p.start_stage(Stage::Index);
    let job = Uuid::now_v7();
    let req = CrawlRequested {
        job_id: Some(job),
        url: Some("https://bench.example/".into()),
        occurred_at: Some(Utc::now()),
        ..Default::default()
    };
    let publisher = p.bus.publisher();
    publisher
        .publish(&Event::CrawlRequested(req))
        .await
        .unwrap();
    let start = Instant::now();
    for chunk in (0..IMAGES).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<Event> = chunk.iter().flat_map(|i| events(job, *i)).collect();
        publisher.publish_all(&batch).await.unwrap();
    }
    let db = p.db().await;
    let indexed = wait_until(Duration::from_secs(300), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from images where object_key is not null")
            .fetch_one(&db)
            .await
            .is_ok_and(|n| n as usize == IMAGES)
    })
    .await;
    assert!(indexed, "the index applied the synthetic events");
    eprintln!(
        "projection of {IMAGES} images built in {:.1?}",
        start.elapsed()
    );
    sqlx::query("ANALYZE").execute(&db).await.unwrap();

    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let page = api.get("/api/images", "/api/images?limit=100").await.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 100);
    let mut cursor = page["next_cursor"].as_str().unwrap().to_string();
    for _ in 0..99 {
        cursor = api
            .get(
                "/api/images",
                &format!("/api/images?limit=100&cursor={cursor}"),
            )
            .await
            .json()["next_cursor"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let runs = [
        ("first page", "/api/images?limit=100".to_string()),
        (
            "page 101 (keyset)",
            format!("/api/images?limit=100&cursor={cursor}"),
        ),
        (
            "filtered (png, width >= 300, largest)",
            "/api/images?limit=100&format=png&min_width=300&sort=largest".to_string(),
        ),
    ];
    eprintln!("GET /api/images, 100 per page, {IMAGES} images, wrk -t1 -c4 on loopback:");
    for (name, path) in runs {
        let (p50, p99, rps) = wrk(&format!("{}{path}", api.base), 10);
        eprintln!("  {name:<40} p50 {p50:>9}  p99 {p99:>9}  {rps:>9} req/s");
    }
}
