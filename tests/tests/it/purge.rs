//! Takedown end to end: the demo site crawled and backed up, one image purged
//! (`imgcrawl_backup::purge`, what `imgcrawl purge` and `DELETE /api/images/{id}?purge=true`
//! call): its bytes leave the blob store and the bucket, the index shows it deleted,
//! the next backup segments do not hold it, and neither a restore of the backup nor a
//! replay of the restored stream brings it back.

use std::path::Path;
use std::time::Duration;

use imgcrawl_backup::{backup_once, restore, RestoreOptions, Target};
use imgcrawl_bus::blob::BlobStore;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_store::{replay_objects, verify_bucket, ObjectReplayOptions};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, wait_until, NatsServer, Pipeline};
use tokio_util::sync::CancellationToken;

fn holds(dir: &Path, sha: &str) -> bool {
    fn walk(at: &Path, sha: &str) -> bool {
        std::fs::read_dir(at)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, sha)
                } else {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(sha))
                }
            })
    }
    walk(dir, sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_image_is_gone_for_good_from_blobs_bucket_backups_and_restores() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    assert!(p.wait_drained(Duration::from_secs(60)).await);
    let db = p.db().await;
    let sha: String = sqlx::query_scalar(
        "select sha256 from images where deleted_at is null order by id limit 1",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(holds(p.bucket.path(), &sha), "the store stage wrote it");
    let dir = tempfile::tempdir().unwrap();
    let cfg = imgcrawl_backup::Config {
        target: dir.path().display().to_string(),
        ..Default::default()
    };
    backup_once(&p.bus, &cfg).await.unwrap();

    // purge
    let purged = imgcrawl_backup::purge(&p.bus, &sha, Some("takedown request 42".into()))
        .await
        .unwrap();
    assert!(purged.blob_deleted);
    assert!(imgcrawl_backup::is_purged(&p.bus, &sha).await.unwrap());
    let blobs = BlobStore::open(&p.bus).await.unwrap();
    assert_eq!(
        blobs.read(&sha).await.unwrap(),
        None,
        "not in the blob store"
    );
    let gone = wait_until(Duration::from_secs(30), || async {
        let deleted: Option<bool> =
            sqlx::query_scalar("select deleted_at is not null from images where sha256 = $1")
                .bind(&sha)
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
        deleted == Some(true) && !holds(p.bucket.path(), &sha)
    })
    .await;
    assert!(
        gone,
        "the index shows it deleted and the bucket no longer holds it"
    );
    let bad = imgcrawl_backup::purge(&p.bus, "not-a-sha", None).await;
    assert!(bad.is_err(), "a bad sha-256 is refused");

    // the next backup: the purge is in the manifest, the new segments hold no bytes of it
    let before: Vec<String> = Target::open(&cfg).unwrap().list("segments").await.unwrap();
    backup_once(&p.bus, &cfg).await.unwrap();
    let target = Target::open(&cfg).unwrap();
    let m = target.manifest().await.unwrap().unwrap();
    assert!(m.purged.contains(&sha), "{:?}", m.purged);
    let blob_stream = format!("OBJ_{}", p.bus.config.blob_bucket);
    for s in &m.streams[&blob_stream].segments {
        if before.contains(&s.name) {
            continue;
        }
        let bytes = target.get(&s.name).await.unwrap().unwrap();
        for r in imgcrawl_backup::segment::decode(&bytes).unwrap() {
            assert!(
                r.payload.len() < 1024 || !r.subject.contains(".C."),
                "a chunk in a new segment: {}",
                r.subject
            );
        }
    }

    // restore into a new server: the bytes do not come back, nor through a replay
    let fresh = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(fresh.url()))
        .await
        .unwrap();
    let summary = restore(&bus.js, &cfg, &RestoreOptions::default())
        .await
        .unwrap();
    assert!(summary.purged_skipped > 0, "{summary:?}");
    let blobs = BlobStore::open(&bus).await.unwrap();
    assert_eq!(blobs.read(&sha).await.unwrap(), None, "not restored");
    let bucket = tempfile::tempdir().unwrap();
    let store = imgcrawl_store::Config {
        target: bucket.path().display().to_string(),
        ..p.configs.store.clone()
    };
    let replayed = replay_objects(
        &bus,
        &store,
        ObjectReplayOptions::default(),
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(replayed.missing, 0, "{replayed:?}");
    assert!(
        !holds(bucket.path(), &sha),
        "a replay does not bring it back"
    );
    let r = verify_bucket(&bus, &store, None, 4).await.unwrap();
    assert!(r.identical(), "{r:?}");
}
