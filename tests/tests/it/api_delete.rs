//! Deletion through the API: `DELETE /api/images/{id}` publishes `image.deleted`; the
//! index and the bucket drop the image, and it stays deleted when the same bytes are
//! downloaded again by a new job (index tombstone, store tombstone check) and when the
//! stream is replayed into a fresh database.

use crate::api_common;

use std::collections::BTreeSet;
use std::time::Duration;

use api_common::listing::{ids, live_ids, traverse};
use api_common::{ApiServer, Auth};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, wait_until, Pipeline};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_images_stay_deleted_through_downloads_and_replays() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let seed = server.seed_url();
    let crawl = || async {
        let r = api
            .call(
                "POST",
                "/api/crawl/start",
                "/api/crawl/start",
                Auth::Good,
                Some(json!({"url": seed})),
                &[],
            )
            .await;
        let job: uuid::Uuid = r.json()["job_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
        job
    };
    crawl().await;
    let db = p.db().await;
    let expected = server.site().expected.clone();
    let (sha, _) = expected
        .sources_by_sha256()
        .into_iter()
        .find(|(_, v)| v.len() > 1)
        .unwrap();
    let (id, key): (i64, String) =
        sqlx::query_as("select id, object_key from images where sha256 = $1")
            .bind(sha)
            .fetch_one(&db)
            .await
            .unwrap();
    let object = p.bucket.path().join(&key);
    assert!(object.is_file());
    let before = live_ids(&db).await;

    let path = format!("/api/images/{id}");
    let t = "/api/images/{id}";
    assert_eq!(
        api.call("DELETE", t, &path, Auth::None, None, &[])
            .await
            .status,
        401
    );
    assert_eq!(
        api.call("DELETE", t, &path, Auth::Bad, None, &[])
            .await
            .status,
        403
    );
    let long = format!("{path}?reason={}", "x".repeat(600));
    assert_eq!(
        api.call("DELETE", t, &long, Auth::Good, None, &[])
            .await
            .status,
        422
    );
    let r = api
        .call(
            "DELETE",
            t,
            &format!("{path}?reason=duplicate"),
            Auth::Good,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        (r.json()["sha256"].as_str(), r.json()["state"].as_str()),
        (Some(sha), Some("deleting"))
    );
    let gone = wait_until(Duration::from_secs(30), || async {
        api.get(t, &path).await.status == 404 && !object.exists()
    })
    .await;
    assert!(gone, "the index and the bucket drop the image");
    assert_eq!(
        api.get("/api/images/{id}/content", &format!("{path}/content"))
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/api/images/{id}/thumbnail", &format!("{path}/thumbnail"))
            .await
            .status,
        404
    );
    assert_eq!(
        api.call("DELETE", t, &path, Auth::Good, None, &[])
            .await
            .status,
        404,
        "already deleted"
    );
    let listed: BTreeSet<i64> = ids(&traverse(&api, "", 100).await).into_iter().collect();
    assert_eq!(
        listed,
        before.iter().copied().filter(|i| *i != id).collect()
    );

    // the same bytes downloaded again by a new job: still deleted, not in the bucket
    let again = crawl().await;
    let deleted: bool = sqlx::query_scalar("select deleted from images where sha256 = $1")
        .bind(sha)
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(deleted, "the index keeps the tombstone");
    assert!(
        !object.exists(),
        "the store does not put a deleted image back"
    );
    let in_job = traverse(&api, &format!("&job={again}"), 100).await;
    assert!(in_job.iter().all(|i| i["sha256"] != sha));
    assert_eq!(in_job.len(), before.len() - 1);

    // a replay of the stream into a fresh database keeps it deleted
    let fresh = p.pg.fresh_db().await;
    let cfg = imgcrawl_index::Config {
        database_url: fresh.clone(),
        ..Default::default()
    };
    let done = imgcrawl_index::replay(
        p.bus.clone(),
        cfg,
        imgcrawl_index::ReplayOptions::default(),
        None,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(done.caught_up);
    let replayed = imgcrawl_index::connect(&fresh).await.unwrap();
    let deleted: bool = sqlx::query_scalar("select deleted from images where sha256 = $1")
        .bind(sha)
        .fetch_one(&replayed)
        .await
        .unwrap();
    assert!(deleted, "replay keeps the image deleted");
    assert_eq!(live_ids(&replayed).await, live_ids(&db).await);
    let on_replay = ApiServer::for_pipeline(&p, |c| c.database_url = fresh.clone()).await;
    assert_eq!(on_replay.get(t, &path).await.status, 404);
    assert_eq!(traverse(&on_replay, "", 100).await.len(), before.len() - 1);

    // a takedown: `?purge=true` also removes the bytes from the blob store for good
    let (id2, sha2): (i64, String) = sqlx::query_as(
        "select id, sha256 from images where not deleted and sha256 <> $1 order by id limit 1",
    )
    .bind(sha)
    .fetch_one(&db)
    .await
    .unwrap();
    let blobs = imgcrawl_bus::blob::BlobStore::open(&p.bus).await.unwrap();
    assert!(
        blobs.read(&sha2).await.unwrap().is_some(),
        "in the blob store before"
    );
    let path2 = format!("/api/images/{id2}");
    let r = api
        .call(
            "DELETE",
            t,
            &format!("{path2}?purge=true&reason=takedown"),
            Auth::Good,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    assert!(imgcrawl_backup::is_purged(&p.bus, &sha2).await.unwrap());
    assert_eq!(
        blobs.read(&sha2).await.unwrap(),
        None,
        "purged from the blob store"
    );
    let gone = wait_until(Duration::from_secs(30), || async {
        api.get(t, &path2).await.status == 404
    })
    .await;
    assert!(gone, "the index drops the purged image");
    let bad = api
        .call(
            "DELETE",
            t,
            &format!("{path2}?purge=maybe"),
            Auth::Good,
            None,
            &[],
        )
        .await;
    assert_eq!(
        bad.status,
        400,
        "a bad purge flag: {}",
        String::from_utf8_lossy(&bad.body)
    );
}
