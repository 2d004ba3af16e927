//! `just bench-api`: latency of `GET /api/images?limit=100` over a 20,000-image
//! projection, measured with `wrk` on loopback.
//!
//! The projection is made fast: synthetic `crawl.requested`, `image.downloaded` and
//! `image.stored` events (`api_common::synthetic`) are published and the real index stage applies them (no
//! crawl, no bytes). Then `wrk` (one thread, a few connections, `--latency`) loads the
//! first page, a page deep in the keyset, and a filtered page, and the p50/p99 of each
//! are printed. Ignored by default (it wants a release build and `wrk`).

use crate::api_common;

use std::process::Command;
use std::time::{Duration, Instant};

use api_common::ApiServer;
use imgcrawl_tests::{wait_until, Pipeline, Stage};

const IMAGES: usize = 20_000;
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
    let start = Instant::now();
    api_common::synthetic::publish_images(&p.bus, IMAGES).await;
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
