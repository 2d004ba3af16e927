//! The API with its database in trouble or changing, against real servers
//! (nats-server, PostgreSQL, the index):
//!
//! * with the database stopped, reads answer 503 with a JSON error well under 2 s,
//!   `/readyz` says which dependency failed, `/healthz` stays 200, and everything
//!   recovers when the database is back;
//! * the size-sort index (`images_bytes_id`) is created on a fresh database and on one
//!   at the previous schema version that holds rows, and the API's own `largest` and
//!   `smallest` statements use it (EXPLAIN).

use crate::api_common;

use std::time::{Duration, Instant};

use api_common::synthetic::{self, listed, migrated, stored};
use api_common::ApiServer;
use imgcrawl_api::cursor::Cursor;
use imgcrawl_api::db::images::{list_query, ImageFilter};
use imgcrawl_api::model::images::Sort;
use imgcrawl_tests::{wait_until, workspace_root, Pipeline, Postgres, Stage};
use sqlx::PgPool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_reads_fail_fast_and_recover() {
    let mut p = Pipeline::start_without_stages().await;
    p.start_stage(Stage::Index);
    synthetic::publish_images(&p.bus, 5).await;
    let db = p.db().await;
    let applied = wait_until(Duration::from_secs(60), || async { stored(&db).await == 5 }).await;
    assert!(applied, "the index has the images");
    db.close().await;
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    assert_eq!(listed(&api).await.len(), 5);

    p.kill_stage(Stage::Index).await;
    p.pg.stop().await;
    for path in ["/api/images", "/api/images?sort=largest", "/api/images"] {
        let start = Instant::now();
        let r = api.get("/api/images", path).await;
        let took = start.elapsed();
        assert_eq!(
            (r.status, r.code().as_str()),
            (503, "unavailable"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("the index database is unavailable"), "{msg}");
        assert!(r.header("retry-after").is_some());
        assert!(took < Duration::from_millis(1500), "{path} took {took:?}");
        eprintln!("{path} with the database down: 503 in {took:?}");
    }
    let start = Instant::now();
    let r = api.get("/api/images/{id}", "/api/images/1").await;
    assert_eq!(r.status, 503);
    assert!(start.elapsed() < Duration::from_millis(1500));
    let start = Instant::now();
    let ready = api.get("/readyz", "/readyz").await;
    let took = start.elapsed();
    assert_eq!(ready.status, 503);
    let v = ready.json();
    assert_eq!(
        (
            v["status"].as_str(),
            v["nats"]["ok"].as_bool(),
            v["postgres"]["ok"].as_bool(),
            v["primary"].as_str()
        ),
        (Some("not_ready"), Some(true), Some(false), Some("postgres"))
    );
    assert!(v["postgres"]["error"].is_string(), "{v}");
    assert!(took < Duration::from_millis(1500), "/readyz took {took:?}");
    assert_eq!(api.get("/healthz", "/healthz").await.status, 200);

    p.pg.start_again().await.expect("postgres starts again");
    let back = wait_until(Duration::from_secs(15), || async {
        api.get("/api/images", "/api/images").await.status == 200
    })
    .await;
    assert!(back, "reads recover once the database is back");
    assert_eq!(listed(&api).await.len(), 5);
    assert_eq!(api.get("/readyz", "/readyz").await.status, 200);
}

async fn has_size_index(db: &PgPool) -> bool {
    let def: Option<String> = sqlx::query_scalar(
        "select indexdef from pg_indexes where tablename = 'images' and indexname = 'images_bytes_id'",
    )
    .fetch_optional(db)
    .await
    .unwrap();
    def.is_some_and(|d| d.contains("(bytes, id)"))
}

/// The plan of the API's own listing statement.
async fn plan(db: &PgPool, sort: Sort, after: Option<Cursor>) -> String {
    let filter = ImageFilter::default();
    let mut q = list_query("EXPLAIN ", &filter, sort, after, 100);
    let lines: Vec<String> = q.build_query_scalar().fetch_all(db).await.unwrap();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_sorts_use_an_index_on_fresh_and_existing_databases() {
    let pg = Postgres::start().await;
    let fresh = migrated(&pg.fresh_db().await).await;
    assert!(
        has_size_index(&fresh).await,
        "a fresh database gets the index"
    );

    // a database at the previous schema version, holding rows, then upgraded
    let db = imgcrawl_index::connect(&pg.fresh_db().await).await.unwrap();
    let old = tempfile::tempdir().unwrap();
    let dir = workspace_root().join("services/readmodel/migrations");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0004" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(old.path())
        .await
        .unwrap()
        .run(&db)
        .await
        .unwrap();
    assert!(!has_size_index(&db).await);
    sqlx::query(
        "insert into images (sha256, id, url, bytes, width, height, format, content_type,
                             first_seen_at, last_seen_at, object_key, deleted)
         select md5(g::text) || md5(g::text), g, 'https://x.example/' || g, 2000 + (g * 7919) % 60000,
                100, 100, 'png', 'image/png', now(), now(), 'images/' || g, g % 50 = 0
         from generate_series(1, 20000) g",
    )
    .execute(&db)
    .await
    .unwrap();
    imgcrawl_index::migrate(&db).await.expect("upgrade");
    assert!(has_size_index(&db).await, "the upgrade adds the index");
    let version: i64 = sqlx::query_scalar("select max(version) from _sqlx_migrations")
        .fetch_one(&db)
        .await
        .unwrap();
    let latest = imgcrawl_index::MIGRATOR.iter().map(|m| m.version).max();
    assert_eq!(Some(version), latest, "upgraded to the latest migration");
    assert!(version >= 4);
    sqlx::query("analyze images").execute(&db).await.unwrap();

    let cursor = |sort| Cursor {
        sort,
        bytes: 31_000,
        id: 10_000,
    };
    for (sort, after) in [
        (Sort::Largest, None),
        (Sort::Largest, Some(cursor(Sort::Largest))),
        (Sort::Smallest, None),
        (Sort::Smallest, Some(cursor(Sort::Smallest))),
    ] {
        let plan = plan(&db, sort, after).await;
        eprintln!("{sort:?}, cursor {}:\n{plan}\n", after.is_some());
        assert!(plan.contains("images_bytes_id"), "{sort:?}: {plan}");
        assert!(
            !plan.lines().any(|l| l.trim_start().starts_with("Sort")),
            "{sort:?} sorts rows: {plan}"
        );
        if matches!(sort, Sort::Largest) {
            assert!(plan.contains("Index Scan Backward"), "{plan}");
        }
        if after.is_some() {
            assert!(
                plan.contains("Index Cond"),
                "the keyset is an index condition: {plan}"
            );
        }
    }
}
