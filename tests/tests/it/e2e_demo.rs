//! End to end on the demo site: every extraction case, robots.txt, scope, redirects
//! and loops, every default rejection reason, duplicate bytes at two URLs, and every
//! event the pipeline emitted validated against `schemas/events/`.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use imgcrawl_events::{EventKind, HEADER_EVENT, HEADER_MSG_ID, HEADER_TRACEPARENT};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, workspace_root, Pipeline};
use sqlx::Row;

fn schema_for(subject: &str) -> serde_json::Value {
    let name = if subject.starts_with("imgcrawl.dlq.") {
        "dlq".to_string()
    } else {
        EventKind::from_subject(subject)
            .unwrap_or_else(|| panic!("unknown subject {subject}"))
            .name()
            .to_string()
    };
    let path = workspace_root().join(format!("schemas/events/{name}.v1.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_site_is_indexed_exactly_as_its_ground_truth_says() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(90)).await, "completed");
    let db = p.db().await;
    let expected = server.site().expected.clone();

    // images: every expected URL with its sha256, format, size; duplicates merged
    common::assert_images(&db, job, &server, &expected).await;

    // rejections: exactly the expected URLs with the expected reasons
    let got = common::rejections(&db, job).await;
    let want = common::expected_rejections(&server, &expected);
    assert_eq!(got, want, "rejections");
    let reasons: BTreeSet<&str> = want.iter().map(|(_, r)| r.as_str()).collect();
    for r in ["http_status", "not_an_image", "decode_failed", "robots"] {
        assert!(reasons.contains(r), "the demo covers rejection reason {r}");
    }

    // pages: fetched and failed exactly as expected (robots, scope, redirects, loops)
    let pages: Vec<(String, String, Option<String>)> =
        sqlx::query("select url, status, failure from pages where job_id = $1")
            .bind(job)
            .fetch_all(&db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("url"), r.get("status"), r.get("failure")))
            .collect();
    let fetched: BTreeSet<String> = pages
        .iter()
        .filter(|p| p.1 == "fetched")
        .map(|p| p.0.clone())
        .collect();
    let want_fetched: BTreeSet<String> = expected
        .pages_fetched
        .iter()
        .map(|p| server.url(&p.path))
        .collect();
    assert_eq!(fetched, want_fetched, "fetched pages");
    let failed: BTreeSet<(String, String)> = pages
        .iter()
        .filter(|p| p.1 == "failed")
        .map(|p| (p.0.clone(), p.2.clone().unwrap_or_default()))
        .collect();
    let want_failed: BTreeSet<(String, String)> = expected
        .pages_failed
        .iter()
        .map(|f| {
            (
                server.url(&f.path),
                serde_json::to_value(f.reason)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(failed, want_failed, "failed pages");
    let failure_reasons: BTreeSet<&str> = want_failed.iter().map(|(_, r)| r.as_str()).collect();
    for r in ["robots", "redirect_loop", "not_html"] {
        assert!(
            failure_reasons.contains(r),
            "the demo covers page failure {r}"
        );
    }

    // nothing disallowed or out of scope was requested, under either host
    for path in &expected.must_not_fetch {
        assert_eq!(server.hits(path), 0, "{path} must never be requested");
    }

    // the bucket: each distinct image once, content-addressed
    common::assert_bucket(p.bucket.path(), &expected);

    // the job's counters agree with the rows
    let r = sqlx::query("select * from jobs where job_id = $1")
        .bind(job)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        r.get::<i64, _>("images_stored") as usize,
        expected.images.len()
    );
    assert_eq!(
        r.get::<i64, _>("images_rejected") as usize,
        expected.rejected.len()
    );
    assert_eq!(
        r.get::<i64, _>("pages_fetched") as usize,
        expected.pages_fetched.len()
    );
    assert_eq!(
        r.get::<i64, _>("pages_failed") as usize,
        expected.pages_failed.len()
    );

    // every event: headers, schema, and the completion/indexed outputs
    let events = wait_for_outputs(&p, expected.images.len()).await;
    let traceparent = regex_lite::Regex::new("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$").unwrap();
    let mut kinds = BTreeSet::new();
    for e in &events {
        let schema = schema_for(&e.subject);
        let body: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|er| er.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "seq {} {} violates its schema: {errors:?}\n{body}",
            e.seq,
            e.subject
        );
        let kind = EventKind::from_subject(&e.subject).unwrap();
        kinds.insert(kind);
        assert_eq!(
            e.header(HEADER_EVENT),
            Some(kind.header_value().as_str()),
            "seq {}",
            e.seq
        );
        assert!(
            e.header(HEADER_MSG_ID).is_some_and(|m| !m.is_empty()),
            "seq {} has a msg id",
            e.seq
        );
        assert!(
            traceparent.is_match(e.header(HEADER_TRACEPARENT).unwrap_or("")),
            "seq {} traceparent",
            e.seq
        );
        if kind != EventKind::ImageDeleted {
            let tp = e.header(HEADER_TRACEPARENT).unwrap();
            assert!(
                tp.contains(&job.simple().to_string()),
                "one trace per job: {tp}"
            );
        }
    }
    for k in [
        EventKind::CrawlRequested,
        EventKind::PageDiscovered,
        EventKind::PageFetched,
        EventKind::PageFailed,
        EventKind::ImageDiscovered,
        EventKind::ImageDownloaded,
        EventKind::ImageRejected,
        EventKind::ImageStored,
        EventKind::ImagesIndexed,
        EventKind::CrawlCompleted,
    ] {
        assert!(kinds.contains(&k), "the run emitted {k}");
    }
    let completed = events
        .iter()
        .filter(|e| e.subject == EventKind::CrawlCompleted.subject())
        .count();
    assert_eq!(completed, 1, "one crawl.completed");
    assert_eq!(
        common::checkpoint(&db).await,
        common::last_applied_seq(&events),
        "checkpoint = last applied sequence"
    );
    p.shutdown().await;
}

/// Waits until the index has published its outputs (every stored source in an
/// images.indexed announcement, crawl.completed), then returns every event.
async fn wait_for_outputs(p: &Pipeline, stored: usize) -> Vec<imgcrawl_tests::pipeline::RawEvent> {
    for _ in 0..100 {
        let events = p.events().await;
        let indexed: usize = events
            .iter()
            .filter(|e| e.subject == EventKind::ImagesIndexed.subject())
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
                v["images"].as_array().map_or(0, Vec::len)
            })
            .sum();
        let done = events
            .iter()
            .any(|e| e.subject == EventKind::CrawlCompleted.subject());
        if indexed >= stored && done {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("index outputs never appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_produce_too_small_too_large_and_format_rejections() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let filters = imgcrawl_events::ImageFilters {
        min_width: 100,
        min_height: 60,
        max_bytes: 6_000,
        formats: vec!["jpeg".into(), "png".into(), "gif".into(), "webp".into()],
        ..Default::default()
    };
    let f = filters.clone();
    let job = p
        .request(&server.seed_url(), move |r| r.images = Some(f))
        .await;
    assert_eq!(p.wait_job(job, Duration::from_secs(90)).await, "completed");
    let db = p.db().await;
    let expected = server
        .site()
        .truth
        .for_job(&imgcrawl_events::Scope::default(), &filters);
    common::assert_images(&db, job, &server, &expected).await;
    let got = common::rejections(&db, job).await;
    let want = common::expected_rejections(&server, &expected);
    assert_eq!(got, want);
    let reasons: BTreeSet<&str> = got.iter().map(|(_, r)| r.as_str()).collect();
    for r in ["too_small", "too_large", "format_not_accepted"] {
        assert!(reasons.contains(r), "filters produced {r}: {reasons:?}");
    }
    p.shutdown().await;
}
