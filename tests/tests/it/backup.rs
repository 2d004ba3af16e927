//! Backups against the real thing: the demo site crawled by the in-process pipeline,
//! archived (`imgcrawl_backup`), the nats store destroyed, the streams restored into
//! the empty server, then PostgreSQL and the bucket rebuilt by replay and compared
//! with the originals (`imgcrawl_index::verify`, `imgcrawl_store::verify_bucket`).

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use imgcrawl_backup::{backup_once, restore, RestoreOptions};
use imgcrawl_bus::identity::STREAM_ID_KEY;
use imgcrawl_events::EventKind;
use imgcrawl_index::verify::{compare_databases, digest};
use imgcrawl_index::{read_checkpoint, replay, ReplayOptions};
use imgcrawl_store::{replay_objects, verify_bucket, ObjectReplayOptions};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, wait_until, Pipeline, Stage};
use tokio_util::sync::CancellationToken;

/// A backup config writing into `dir`.
pub(crate) fn backup_config(dir: &Path) -> imgcrawl_backup::Config {
    imgcrawl_backup::Config {
        target: dir.display().to_string(),
        ..Default::default()
    }
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(at).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The demo site crawled to the end, the index caught up and its outputs published.
async fn crawled() -> Pipeline {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let db = p.db().await;
    let settled = wait_until(Duration::from_secs(30), || async {
        let events = p.events().await;
        let completed = events
            .iter()
            .any(|e| e.subject == EventKind::CrawlCompleted.subject());
        let cp = read_checkpoint(&db, "postgres")
            .await
            .ok()
            .flatten()
            .map_or(0, |c| c.last_seq);
        completed && cp == common::last_applied_seq(&events)
    })
    .await;
    assert!(settled, "the index never caught up with the stream");
    assert!(
        p.wait_drained(Duration::from_secs(60)).await,
        "stages drained"
    );
    p
}

async fn stream_info(p: &Pipeline, name: &str) -> async_nats::jetstream::stream::Info {
    imgcrawl_bus::topology::stream_info(&p.bus.js, name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("stream {name} exists"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_destroy_restore_replay_verify_is_identical_to_the_originals() {
    let mut p = crawled().await;
    for s in Stage::ALL {
        p.stop_stage(s).await.unwrap();
    }
    let events = p.bus.config.stream.clone();
    let blobs = format!("OBJ_{}", p.bus.config.blob_bucket);
    let before = stream_info(&p, &events).await;
    let blobs_before = stream_info(&p, &blobs).await.state.messages;
    let consumers_before: BTreeMap<String, u64> = {
        let s = p.bus.js.get_stream(&events).await.unwrap();
        let mut out = BTreeMap::new();
        let mut list = s.consumers();
        use futures::StreamExt;
        while let Some(c) = list.next().await {
            let c = c.unwrap();
            if c.config.durable_name.is_some() {
                out.insert(c.name.clone(), c.ack_floor.stream_sequence);
            }
        }
        out
    };
    assert!(consumers_before.len() >= 3, "{consumers_before:?}");

    // back up
    let dir = tempfile::tempdir().unwrap();
    let cfg = backup_config(dir.path());
    let done = backup_once(&p.bus, &cfg).await.expect("backup");
    assert!(
        done.segments >= 2 && done.messages >= before.state.messages,
        "{done:?}"
    );
    let again = backup_once(&p.bus, &cfg).await.expect("second pass");
    assert_eq!(again.messages, 0, "nothing new: nothing archived twice");
    let target = imgcrawl_backup::Target::open(&cfg).unwrap();
    let manifest = target.manifest().await.unwrap().unwrap();
    let report = imgcrawl_backup::verify(&target, &manifest, 4)
        .await
        .unwrap();
    assert!(report.ok(), "{:#?}", report.problems);

    // destroy the nats store: kill the server, delete its data, start it empty
    p.nats.kill();
    std::fs::remove_dir_all(p.nats.store_dir()).unwrap();
    p.nats.start_again().await.unwrap();
    assert!(
        imgcrawl_bus::topology::stream_info(&p.bus.js, &events)
            .await
            .unwrap()
            .is_none(),
        "the stream is gone"
    );

    // restore
    let summary = restore(&p.bus.js, &cfg, &RestoreOptions::default())
        .await
        .expect("restore");
    assert!(
        summary.damaged.is_empty() && summary.truncated.is_empty(),
        "{summary:?}"
    );
    let after = stream_info(&p, &events).await;
    assert_eq!(
        (
            after.state.first_sequence,
            after.state.last_sequence,
            after.state.messages
        ),
        (
            before.state.first_sequence,
            before.state.last_sequence,
            before.state.messages
        ),
        "same sequences"
    );
    assert_eq!(
        after.config.metadata.get(STREAM_ID_KEY),
        before.config.metadata.get(STREAM_ID_KEY),
        "same stream id"
    );
    assert_eq!(stream_info(&p, &blobs).await.state.messages, blobs_before);
    let s = p.bus.js.get_stream(&events).await.unwrap();
    for (name, floor) in &consumers_before {
        let info = s.consumer_info(name).await.unwrap();
        assert!(
            info.ack_floor.stream_sequence >= *floor,
            "consumer {name}: ack floor {} below {floor}",
            info.ack_floor.stream_sequence
        );
    }

    // replay PostgreSQL into a fresh database: identical to the original
    let url = p.pg.fresh_db().await;
    let index = imgcrawl_index::Config {
        database_url: url.clone(),
        ..Default::default()
    };
    let replayed = replay(
        p.bus.clone(),
        index,
        ReplayOptions::default(),
        None,
        CancellationToken::new(),
    )
    .await
    .expect("replay");
    assert!(replayed.caught_up && replayed.events > 0, "{replayed:?}");
    let original = p.db().await;
    let rebuilt = imgcrawl_index::connect(&url).await.unwrap();
    let c = compare_databases(&original, &rebuilt, "postgres", false)
        .await
        .unwrap();
    assert!(c.identical(), "{:#?}", c.differences);
    let images = digest(&rebuilt, "postgres", None).await.unwrap();
    assert!(
        images
            .tables
            .iter()
            .any(|t| t.table == "images" && t.rows > 5),
        "{images:?}"
    );

    // replay the bucket into a fresh directory: verified, and the same files as the
    // store stage wrote
    let bucket = tempfile::tempdir().unwrap();
    let store = imgcrawl_store::Config {
        target: bucket.path().display().to_string(),
        ..p.configs.store.clone()
    };
    let objects = replay_objects(
        &p.bus,
        &store,
        ObjectReplayOptions::default(),
        None,
        CancellationToken::new(),
    )
    .await
    .expect("object replay");
    assert_eq!(objects.missing, 0, "{objects:?}");
    let r = verify_bucket(&p.bus, &store, None, 4).await.unwrap();
    assert!(r.identical() && r.expected > 5, "{r:?}");
    let images_of = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        files(dir)
            .into_iter()
            .filter(|(k, _)| k.starts_with("images/"))
            .collect()
    };
    assert_eq!(images_of(bucket.path()), images_of(p.bucket.path()));

    // the original database's index carries on on the restored stream: same stream,
    // meaningful checkpoint, nothing to apply twice
    p.start_stage(Stage::Index);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cp = read_checkpoint(&original, "postgres")
        .await
        .unwrap()
        .unwrap();
    assert!(cp.last_seq <= after.state.last_sequence);
    let c = compare_databases(&original, &rebuilt, "postgres", false)
        .await
        .unwrap();
    assert!(c.identical(), "{:#?}", c.differences);
}

/// One archiver per target: a one-shot pass refuses a target another archiver holds,
/// a continuous archive waits as a standby and takes over when the holder stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_archiver_per_target_and_a_second_one_waits_as_standby() {
    use imgcrawl_backup::lock::ArchiverLease;
    let nats = imgcrawl_tests::NatsServer::start().await;
    let bus = imgcrawl_bus::Bus::connect(imgcrawl_bus::BusConfig::with_url(nats.url()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = imgcrawl_backup::Config {
        target: dir.path().display().to_string(),
        segment_secs: 1,
        ..Default::default()
    };
    // something to archive
    bus.publisher()
        .publish(&imgcrawl_events::Event::ImageDeleted(
            imgcrawl_events::ImageDeleted {
                sha256: "a".repeat(64),
                reason: None,
                occurred_at: chrono::Utc::now(),
            },
        ))
        .await
        .unwrap();
    let describe = imgcrawl_backup::target::Target::open(&cfg)
        .unwrap()
        .describe;
    let none = CancellationToken::new();
    let ttl = Duration::from_secs(cfg.lease_secs);
    let held = ArchiverLease::take(&bus, &describe, ttl, false, &none, CancellationToken::new())
        .await
        .unwrap()
        .expect("the first archiver takes the lease");
    let refused = backup_once(&bus, &cfg).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("another imgcrawl backup is archiving"),
        "{refused}"
    );
    // a continuous archive waits, and starts once the holder lets go
    let stop = CancellationToken::new();
    let standby = tokio::spawn({
        let (bus, cfg, stop) = (bus.clone(), cfg.clone(), stop.clone());
        async move { imgcrawl_backup::run(bus, cfg, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !dir.path().join("manifest.json").exists(),
        "the standby writes nothing while the lease is held"
    );
    held.release().await;
    let started = wait_until(Duration::from_secs(30), || async {
        dir.path().join("manifest.json").exists()
    })
    .await;
    assert!(started, "the standby took over and archived");
    stop.cancel();
    standby.await.unwrap().unwrap();
    // released on stop: a one-shot pass runs again
    backup_once(&bus, &cfg).await.unwrap();
}
