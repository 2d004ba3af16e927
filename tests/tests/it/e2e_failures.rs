//! End to end under failure: malformed events are dead-lettered while the pipeline
//! goes on; a request published by hand with nothing but a URL completes; duplicated
//! and redelivered events change nothing; stages killed mid-crawl and restarted leave
//! a complete index without duplicates.

use crate::common;

use std::time::Duration;

use async_nats::HeaderMap;
use imgcrawl_events::{job_id_from_sequence, EventKind};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, wait_until, Pipeline, Stage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_dead_lettered_and_the_pipeline_continues() {
    let p = Pipeline::start().await;
    let js = &p.bus.js;
    let pub_raw = |subject: &'static str,
                   headers: Option<(&'static str, &'static str)>,
                   body: &'static str| async move {
        let mut h = HeaderMap::new();
        if let Some((k, v)) = headers {
            h.insert(k, v);
        }
        js.publish_with_headers(subject, h, body.into())
            .await
            .unwrap()
            .await
            .unwrap()
            .sequence
    };
    let bad_json = pub_raw("imgcrawl.crawl.requested", None, "{not json").await;
    let bad_version = pub_raw(
        "imgcrawl.image.discovered",
        Some(("Imgcrawl-Event", "image.discovered.v9")),
        r#"{"job_id":"00000000-0000-0000-0000-000000000001","url":"http://a.test/x.png","page_url":"http://a.test/","found_by":"img_src","occurred_at":"2026-01-01T00:00:00Z"}"#,
    )
    .await;
    let bad_url = pub_raw(
        "imgcrawl.page.discovered",
        None,
        r#"{"job_id":"00000000-0000-0000-0000-000000000001","url":"javascript:alert(1)","depth":0,"occurred_at":"2026-01-01T00:00:00Z"}"#,
    )
    .await;
    let unknown_field = pub_raw(
        "imgcrawl.crawl.requested",
        None,
        r#"{"url":"http://a.test/","scope":{"max_dpth":1}}"#,
    )
    .await;

    // the pipeline keeps going: a real crawl completes after the poison
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(90)).await, "completed");

    // every poison message is a dead letter with a reason, per consuming stage
    let expect = [
        (bad_json, "crawl", "malformed"),
        (bad_json, "index-postgres", "malformed"),
        (bad_version, "download", "unsupported event header"),
        (bad_version, "index-postgres", "unsupported event header"),
        (bad_url, "crawl", "not an http(s) url"),
        (bad_url, "index-postgres", "not an http(s) url"),
        (unknown_field, "crawl", "unknown field"),
        (unknown_field, "index-postgres", "unknown field"),
    ];
    let ok = wait_until(Duration::from_secs(20), || async {
        let dead = dead_letters(&p).await;
        expect.iter().all(|(seq, stage, _)| {
            dead.iter()
                .any(|d| d["stream_sequence"] == *seq && d["stage"] == *stage)
        })
    })
    .await;
    let dead = dead_letters(&p).await;
    assert!(ok, "dead letters: {dead:#?}");
    for (seq, stage, reason) in expect {
        let d = dead
            .iter()
            .find(|d| d["stream_sequence"] == seq && d["stage"] == stage)
            .unwrap();
        assert!(
            d["reason"].as_str().unwrap().contains(reason),
            "{stage} seq {seq}: {}",
            d["reason"]
        );
        assert!(!d["payload"].as_str().unwrap().is_empty());
    }
    // and nothing else was dead-lettered
    assert_eq!(dead.len(), expect.len(), "{dead:#?}");
    p.shutdown().await;
}

async fn dead_letters(p: &Pipeline) -> Vec<serde_json::Value> {
    p.events()
        .await
        .into_iter()
        .filter(|e| e.subject.starts_with("imgcrawl.dlq."))
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_published_url_is_a_complete_crawl() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    // exactly what `nats pub imgcrawl.crawl.requested '{"url":"..."}'` sends: no headers
    let body = format!(r#"{{"url":"{}"}}"#, server.seed_url());
    let ack = p
        .bus
        .js
        .publish("imgcrawl.crawl.requested", body.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let job = job_id_from_sequence("IMGCRAWL", ack.sequence);
    assert_eq!(p.wait_job(job, Duration::from_secs(90)).await, "completed");
    let db = p.db().await;
    common::assert_images(&db, job, &server, &server.site().expected).await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_redelivered_events_change_nothing() {
    let mut p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(90)).await, "completed");
    let db = p.db().await;
    let before = common::fingerprint(&db).await;

    // 1. duplicates beyond the dedup window: every applied event again, new msg ids
    let events = p.events().await;
    let mut copies = 0;
    for e in &events {
        let Some(kind) = EventKind::from_subject(&e.subject) else {
            continue;
        };
        if kind.is_index_output() {
            continue;
        }
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("copy-{}", e.seq).as_str());
        h.insert("Imgcrawl-Event", kind.header_value().as_str());
        p.bus
            .js
            .publish_with_headers(e.subject.clone(), h, e.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
        copies += 1;
    }
    assert!(copies > 50);
    // only the index consumes them usefully; wait until it has applied every copy
    let last = p
        .bus
        .js
        .get_stream("IMGCRAWL")
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .last_sequence;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            common::checkpoint(&db).await >= last - 5
        })
        .await
    );
    // let the other stages settle (they see duplicate work and must not create rows)
    assert!(
        p.wait_drained(Duration::from_secs(30)).await,
        "the stages did not drain the duplicates"
    );
    let settled = p.events().await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            common::checkpoint(&db).await >= common::last_applied_seq(&settled)
        })
        .await
    );
    assert_eq!(
        common::fingerprint(&db).await,
        before,
        "duplicates changed the projection"
    );

    // 2. redelivery of already-applied events: rewind the checkpoint and restart
    p.stop_stage(Stage::Index).await.unwrap();
    let cp = common::checkpoint(&db).await;
    sqlx::query("update projection_checkpoint set last_seq = $1 where name = 'postgres'")
        .bind((cp / 2) as i64)
        .execute(&db)
        .await
        .unwrap();
    p.start_stage(Stage::Index);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            common::checkpoint(&db).await >= cp
        })
        .await
    );
    assert_eq!(
        common::fingerprint(&db).await,
        before,
        "re-applied events changed the projection"
    );
    assert_eq!(common::checkpoint(&db).await, cp);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_killed_mid_crawl_and_restarted_leave_a_complete_index() {
    let mut p = Pipeline::start().await;
    let site = sitegen::synthetic(80, 4, 8, 400, 7).unwrap();
    let server = serve(site).await;
    let expected = server.site().expected.clone();
    assert!(
        expected.images.len() >= 250,
        "a crawl long enough to interrupt"
    );
    // a polite 10 ms between requests to the host keeps the crawl going for seconds
    let job = p
        .request(&server.seed_url(), |r| {
            r.politeness = Some(imgcrawl_events::Politeness {
                delay_ms: 10,
                ..Default::default()
            })
        })
        .await;
    let db = p.db().await;
    let stored = |db: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from image_sources where job_id = $1 and status = 'stored'",
        )
        .bind(job)
        .fetch_one(&db)
        .await
        .unwrap_or(0)
    };

    // kill every stage at some point mid-crawl, one after the other
    for (stage, at) in [
        (Stage::Download, 30),
        (Stage::Index, 80),
        (Stage::Crawl, 120),
        (Stage::Store, 160),
    ] {
        assert!(
            wait_until(Duration::from_secs(60), || {
                let db = db.clone();
                async move { stored(db).await >= at }
            })
            .await,
            "progress before killing {stage:?}"
        );
        let status: String = sqlx::query_scalar("select status from jobs where job_id = $1")
            .bind(job)
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(status, "running", "{stage:?} is killed mid-crawl");
        p.kill_stage(stage).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.start_stage(stage);
    }
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    common::assert_images(&db, job, &server, &expected).await;
    common::assert_bucket(p.bucket.path(), &expected);
    let events = p.events().await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            common::checkpoint(&db).await == common::last_applied_seq(&events)
        })
        .await,
        "checkpoint {} = last applied sequence {}",
        common::checkpoint(&db).await,
        common::last_applied_seq(&events)
    );
    p.shutdown().await;
}
