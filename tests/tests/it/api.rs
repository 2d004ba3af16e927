//! The HTTP API against the real stack (nats-server, PostgreSQL, the pipeline, a
//! served fixture site): crawls started, watched and stopped through the API, job
//! status and its errors, HA and health endpoints. Every answer is checked against the
//! OpenAPI document (see `api_common`). Auth, validation, rate limiting and the
//! document itself: `api_contract.rs`; images: `api_images.rs`, `api_paging.rs`,
//! `api_delete.rs`; the gallery in a browser: `api_gallery.rs`.

use crate::api_common;

use std::time::Duration;

use api_common::{expect, ApiServer, Auth};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, wait_for, wait_until, Pipeline};
use serde_json::{json, Value};
use sqlx::Row;

/// Polls the job's status through the API until it is `completed` or `stopped`.
async fn wait_finished(api: &ApiServer, job: &str, timeout: Duration) -> Value {
    let path = format!("/api/crawl/status/{job}");
    wait_for(timeout, || async {
        let r = api.get("/api/crawl/status/{job}", &path).await;
        let v = r.json();
        matches!(v["job"]["state"].as_str(), Some("completed" | "stopped")).then_some(v)
    })
    .await
    .unwrap_or_else(|| panic!("job {job} did not finish within {timeout:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawls_are_started_watched_and_stopped_through_the_api() {
    let p = Pipeline::start().await;
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let server = serve(sitegen::demo()).await;
    let seed = server.seed_url();

    // a crawl, started and watched through the API
    let r = api
        .start_crawl(Auth::Good, json!({"url": seed, "label": "demo"}))
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let started = r.json();
    let job = started["job_id"].as_str().unwrap().to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&job).unwrap().get_version_num(),
        7,
        "job ids are uuidv7"
    );
    assert_eq!(started["state"], "requested");
    let r = api
        .get(
            "/api/crawl/status/{job}",
            &format!("/api/crawl/status/{job}"),
        )
        .await;
    assert_eq!(r.status, 200, "a job just requested is known at once");
    let report = wait_finished(&api, &job, Duration::from_secs(120)).await;
    let j = &report["job"];
    let expected = server.site().expected.clone();
    assert_eq!(j["state"], "completed");
    assert_eq!(j["label"], "demo");
    assert_eq!(
        j["images"]["stored"].as_u64().unwrap() as usize,
        expected.images.len()
    );
    assert_eq!(
        j["images"]["rejected"].as_u64().unwrap() as usize,
        expected.rejected.len()
    );
    assert_eq!(
        j["images"]["distinct"].as_u64().unwrap() as usize,
        expected.distinct_sha256().len()
    );
    assert_eq!(
        j["pages"]["fetched"].as_u64().unwrap() as usize,
        expected.pages_fetched.len()
    );
    assert_eq!(
        (
            j["pages"]["pending"].as_u64(),
            j["images"]["pending"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert!(j["rate"]["images_per_sec"].as_f64().unwrap() > 0.0);
    let db = p.db().await;
    let row = sqlx::query("select bytes_downloaded from jobs where job_id = $1::uuid")
        .bind(&job)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        j["bytes_downloaded"].as_i64(),
        Some(row.get::<i64, _>("bytes_downloaded"))
    );

    // the list, its filters and their validation
    let r = api.get("/api/crawl/status", "/api/crawl/status").await;
    assert_eq!(r.status, 200);
    assert!(r.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["job_id"] == job.as_str()));
    let r = api
        .get("/api/crawl/status", "/api/crawl/status?state=running")
        .await;
    assert!(r.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["state"] == "running"));
    expect(
        &api.get("/api/crawl/status", "/api/crawl/status?limit=0")
            .await,
        400,
        "bad_query",
    );
    expect(
        &api.get("/api/crawl/status", "/api/crawl/status?stat=running")
            .await,
        400,
        "bad_query",
    );
    expect(
        &api.get("/api/crawl/status/{job}", "/api/crawl/status/not-a-uuid")
            .await,
        400,
        "bad_path",
    );
    let unknown = uuid::Uuid::now_v7();
    expect(
        &api.get(
            "/api/crawl/status/{job}",
            &format!("/api/crawl/status/{unknown}"),
        )
        .await,
        404,
        "not_found",
    );

    // stopping: auth, unknown and finished jobs, then a real stop
    let stop = |auth, job: String| {
        let api = &api;
        async move {
            api.call(
                "POST",
                "/api/crawl/stop",
                "/api/crawl/stop",
                auth,
                Some(json!({"job_id": job})),
                &[],
            )
            .await
        }
    };
    expect(
        &stop(Auth::Good, unknown.to_string()).await,
        404,
        "not_found",
    );
    expect(&stop(Auth::Good, job.clone()).await, 409, "job_finished");
    let slow = api
        .start_crawl(
            Auth::Good,
            json!({"url": seed, "politeness": {"delay_ms": 3000}}),
        )
        .await
        .json();
    let slow_job = slow["job_id"].as_str().unwrap().to_string();
    let r = stop(Auth::Good, slow_job.clone()).await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["state"], "stopping");
    let stopped = wait_finished(&api, &slow_job, Duration::from_secs(60)).await;
    assert_eq!(stopped["job"]["state"], "stopped");

    // HA and health
    let r = api.get("/api/ha-status", "/api/ha-status").await;
    let ha = r.json();
    assert_eq!(
        (ha["mode"].as_str(), ha["primary"].as_str()),
        (Some("single"), Some("postgres"))
    );
    assert_eq!(ha["nodes"][0]["healthy"], true);
    assert!(
        !ha["nodes"][0]["endpoint"].as_str().unwrap().contains('@'),
        "no credentials"
    );
    let in_sync = wait_until(Duration::from_secs(30), || async {
        api.get("/api/ha/sync-status", "/api/ha/sync-status")
            .await
            .json()["in_sync"]
            == true
    })
    .await;
    assert!(in_sync, "the single node catches up with the stream");
    let ha = api.get("/api/ha-status", "/api/ha-status").await.json();
    assert_eq!(ha["nodes"][0]["lag_events"], 0);
    assert_eq!(
        ha["nodes"][0]["checkpoint"].as_u64().unwrap() as i64,
        common_checkpoint(&db).await
    );
    assert_eq!(api.get("/healthz", "/healthz").await.json()["status"], "ok");
    let ready = api.get("/readyz", "/readyz").await;
    assert_eq!(
        (ready.status, ready.json()["status"].as_str()),
        (200, Some("ready"))
    );
}

async fn common_checkpoint(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select last_seq from projection_checkpoint where name = 'postgres'")
        .fetch_one(db)
        .await
        .unwrap()
}
