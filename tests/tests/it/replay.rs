//! Replay and verify against the real thing: the demo site crawled by the in-process
//! pipeline, then its PostgreSQL projection and its bucket dropped and rebuilt from
//! the stream, and compared (`imgcrawl_index::verify`, `imgcrawl_store::verify_bucket`).
//! Also: a replay killed half-way resumes from its checkpoint; a database of another
//! stream is refused; the schema-change workflow (new schema, replay, verify the
//! common columns, switch the index over).

use crate::common;

use std::time::Duration;

use imgcrawl_events::{CrawlRequested, Event, EventKind, ImageDeleted, PageDiscovered};
use imgcrawl_index::verify::{against_replay, compare, compare_databases, digest};
use imgcrawl_index::{read_checkpoint, replay, IndexError, ReplayOptions, ReplayProgress};
use imgcrawl_store::{replay_objects, verify_bucket, ObjectReplayOptions, ObjectReplayProgress};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::sitegen::{Expected, SiteServer};
use imgcrawl_tests::{sitegen, wait_until, NatsServer, Pipeline, Postgres, S3Server, Stage};
use object_store::ObjectStore;
use sqlx::{Connection, PgPool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The pipeline after a complete crawl of the demo site, with the index caught up and
/// its outputs published (so the stream is quiet).
async fn crawled() -> (Pipeline, SiteServer, Uuid) {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    settle(&p).await;
    (p, server, job)
}

/// Waits until the index's checkpoint is the last event it applies and its outputs
/// (`crawl.completed` for every job) are in the stream.
async fn settle(p: &Pipeline) {
    let db = p.db().await;
    let settled = wait_until(Duration::from_secs(30), || async {
        let events = p.events().await;
        let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
            .fetch_one(&db)
            .await
            .unwrap_or(-1);
        let completed = events
            .iter()
            .filter(|e| e.subject == EventKind::CrawlCompleted.subject())
            .count();
        let cp = read_checkpoint(&db, "postgres")
            .await
            .ok()
            .flatten()
            .map_or(0, |c| c.last_seq);
        completed as i64 == jobs && cp == common::last_applied_seq(&events)
    })
    .await;
    assert!(settled, "the index never caught up with the stream");
}

fn config(url: &str, batch: usize) -> imgcrawl_index::Config {
    imgcrawl_index::Config {
        database_url: url.to_string(),
        replay_batch_size: batch,
        ..Default::default()
    }
}

/// The index's replay of `bus`'s stream into `url`, `batch` events per transaction.
async fn replay_to(
    bus: &imgcrawl_bus::Bus,
    url: &str,
    batch: usize,
    options: ReplayOptions,
) -> Result<ReplayProgress, IndexError> {
    let shutdown = CancellationToken::new();
    replay(bus.clone(), config(url, batch), options, None, shutdown).await
}

/// The object replay of `bus`'s stream into the bucket `store` describes.
async fn objects_to(
    bus: &imgcrawl_bus::Bus,
    store: &imgcrawl_store::Config,
    options: ObjectReplayOptions,
) -> ObjectReplayProgress {
    let shutdown = CancellationToken::new();
    replay_objects(bus, store, options, None, shutdown)
        .await
        .expect("object replay")
}

async fn pool(url: &str) -> PgPool {
    imgcrawl_index::connect(url).await.expect("connect")
}

async fn last_seq(p: &Pipeline) -> u64 {
    let mut s = p.bus.js.get_stream(&p.bus.config.stream).await.unwrap();
    s.info().await.unwrap().state.last_sequence
}

async fn drop_database(pg: &Postgres, url: &str) {
    let name = url.rsplit('/').next().unwrap();
    let mut c = sqlx::PgConnection::connect(&pg.admin_url()).await.unwrap();
    sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_projection_is_rebuilt_identically_by_a_replay() {
    let (mut p, _server, _job) = crawled().await;
    let live = p.db().await;
    let before = digest(&live, "postgres", None).await.unwrap();
    let images = before.tables.iter().find(|t| t.table == "images").unwrap();
    assert!(
        images.rows > 5 && images.id_range.is_some() && images.latest.is_some(),
        "{images:?}"
    );

    // drop the projection: the index stops, its database is gone
    p.stop_stage(Stage::Index).await.unwrap();
    live.close().await;
    drop_database(&p.pg, &p.db_url).await;
    let end = last_seq(&p).await;

    let url = p.pg.fresh_db().await;
    let (tx, rx) = watch::channel(ReplayProgress::default());
    let done = replay(
        p.bus.clone(),
        config(&url, 100),
        ReplayOptions::default(),
        Some(tx),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        done.caught_up && done.events > 0 && done.bytes > 0,
        "{done:?}"
    );
    assert_eq!((done.start, done.checkpoint), (0, before.checkpoint));
    assert_eq!(
        rx.borrow().clone(),
        done,
        "the last progress report is the summary"
    );
    assert_eq!(last_seq(&p).await, end, "a replay publishes nothing");

    let rebuilt = pool(&url).await;
    let after = digest(&rebuilt, "postgres", None).await.unwrap();
    assert_eq!(after.checkpoint, before.checkpoint);
    assert!(
        compare(&before, &after).is_empty(),
        "{:#?}",
        compare(&before, &after)
    );

    // verify against a fresh replay: identical, and the scratch database is gone
    let (c, _) = against_replay(&p.bus, &config(&url, 1000), None, CancellationToken::new())
        .await
        .unwrap();
    assert!(c.identical(), "{:#?}", c.differences);
    let scratch: i64 = sqlx::query_scalar(
        "select count(*) from pg_database where datname like 'imgcrawl_verify_%'",
    )
    .fetch_one(&rebuilt)
    .await
    .unwrap();
    assert_eq!(scratch, 0, "the scratch database is dropped");

    // one changed value is found, and named
    sqlx::query("update images set width = width + 1 where id = (select min(id) from images)")
        .execute(&rebuilt)
        .await
        .unwrap();
    let (c, _) = against_replay(&p.bus, &config(&url, 1000), None, CancellationToken::new())
        .await
        .unwrap();
    let checks: Vec<(&str, &str)> = c
        .differences
        .iter()
        .map(|d| (d.table.as_str(), d.check))
        .collect();
    assert_eq!(checks, vec![("images", "digest")], "{:#?}", c.differences);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_half_way_resumes_from_its_checkpoint() {
    let (p, _server, _job) = crawled().await;
    let live = p.db().await;
    let url = p.pg.fresh_db().await;
    let (tx, mut rx) = watch::channel(ReplayProgress::default());
    let task = tokio::spawn(replay(
        p.bus.clone(),
        config(&url, 5),
        ReplayOptions::default(),
        Some(tx),
        CancellationToken::new(),
    ));
    let end = common::checkpoint(&live).await;
    loop {
        rx.changed().await.expect("the replay reports progress");
        if rx.borrow().checkpoint >= end / 2 {
            break;
        }
    }
    task.abort();
    let _ = task.await;
    let killed_at = read_checkpoint(&pool(&url).await, "postgres")
        .await
        .unwrap()
        .unwrap()
        .last_seq;
    assert!(
        killed_at > 0 && killed_at < end,
        "killed half-way: {killed_at} of {end}"
    );

    let done = replay_to(&p.bus, &url, 5, ReplayOptions::default())
        .await
        .unwrap();
    assert!(done.caught_up, "{done:?}");
    assert_eq!(
        done.start, killed_at,
        "resumed from the checkpoint, not from the start"
    );
    assert_eq!(done.skipped, 0, "nothing applied twice");
    let c = compare_databases(&live, &pool(&url).await, "postgres", false)
        .await
        .unwrap();
    assert!(c.identical(), "{:#?}", c.differences);

    // caught up: the stream ends with the index's own outputs, which are not applied;
    // another replay knows it has nothing to do and returns at once
    assert!(
        last_seq(&p).await > end,
        "the stream ends with crawl.completed"
    );
    let again = replay_to(&p.bus, &url, 5, ReplayOptions::default());
    let again = tokio::time::timeout(Duration::from_secs(10), again)
        .await
        .expect("returns at once")
        .unwrap();
    assert!(
        again.caught_up && again.events == 0 && again.checkpoint == end,
        "{again:?}"
    );

    // a replay up to a sequence stops there; verify refuses different checkpoints
    let partial = p.pg.fresh_db().await;
    let until = ReplayOptions {
        until: Some(end / 3),
        follow: false,
    };
    let done = replay_to(&p.bus, &partial, 1000, until).await.unwrap();
    assert!(
        done.caught_up && done.checkpoint <= end / 3 && done.checkpoint > 0,
        "{done:?}"
    );
    let e = compare_databases(&live, &pool(&partial).await, "postgres", false)
        .await
        .unwrap_err();
    assert!(matches!(e, IndexError::CheckpointsDiffer { .. }), "{e}");
}

/// A few events of one job on `nats`'s stream.
async fn publish_job(bus: &imgcrawl_bus::Bus, page: &str) {
    let job = Uuid::now_v7();
    let events = [
        Event::CrawlRequested(CrawlRequested {
            job_id: Some(job),
            url: Some(page.into()),
            ..Default::default()
        }),
        Event::PageDiscovered(PageDiscovered {
            job_id: job,
            url: page.into(),
            depth: 0,
            referrer: None,
            occurred_at: chrono::Utc::now(),
        }),
    ];
    bus.publisher().publish_all(&events).await.unwrap();
}

/// PostgreSQL and two servers, each with a stream holding one job (one.test, two.test).
async fn two_streams() -> (
    Postgres,
    NatsServer,
    NatsServer,
    imgcrawl_bus::Bus,
    imgcrawl_bus::Bus,
) {
    let pg = Postgres::start().await;
    let (one, two) = (NatsServer::start().await, NatsServer::start().await);
    let connect =
        |n: &NatsServer| imgcrawl_bus::Bus::connect(imgcrawl_bus::BusConfig::with_url(n.url()));
    let (bus1, bus2) = (connect(&one).await.unwrap(), connect(&two).await.unwrap());
    publish_job(&bus1, "https://one.test/").await;
    publish_job(&bus2, "https://two.test/").await;
    (pg, one, two, bus1, bus2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_stream_is_refused_not_mixed() {
    let (pg, _one, _two, bus1, bus2) = two_streams().await;
    let url = pg.fresh_db().await;
    let done = replay_to(&bus1, &url, 100, ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(done.events, 2);

    let err = replay_to(&bus2, &url, 100, ReplayOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::ForeignStream { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("another stream") && msg.contains("IMGCRAWL (id "),
        "{msg}"
    );
    let live = imgcrawl_index::run(bus2.clone(), config(&url, 100), CancellationToken::new());
    let err = tokio::time::timeout(Duration::from_secs(30), live)
        .await
        .expect("refused at once")
        .unwrap_err();
    assert!(matches!(err, IndexError::ForeignStream { .. }), "{err}");

    let db = pool(&url).await;
    let seeds: Vec<String> = sqlx::query_scalar("select seeds[1] from jobs")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(
        seeds,
        vec!["https://one.test/".to_string()],
        "nothing of the other stream"
    );
    // the stream it belongs to still replays into it (resuming: nothing new)
    let again = replay_to(&bus1, &url, 100, ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!((again.events, again.checkpoint), (0, done.checkpoint));

    // following: new events keep arriving, nothing is published, shutdown ends it
    let stop = CancellationToken::new();
    let follow = ReplayOptions {
        until: None,
        follow: true,
    };
    let task = tokio::spawn(replay(
        bus1.clone(),
        config(&url, 100),
        follow,
        None,
        stop.clone(),
    ));
    publish_job(&bus1, "https://three.test/").await;
    let followed = wait_until(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from jobs")
            .fetch_one(&db)
            .await
            .unwrap()
            == 2
    });
    assert!(followed.await, "a following replay applies new events");
    stop.cancel();
    let done = task.await.unwrap().unwrap();
    assert!(done.caught_up && done.events == 2, "{done:?}");
    let mut s1 = bus1.js.get_stream("IMGCRAWL").await.unwrap();
    assert_eq!(
        s1.info().await.unwrap().state.last_sequence,
        4,
        "two jobs of two events: a replay publishes nothing"
    );
}

fn store_config(p: &Pipeline) -> imgcrawl_store::Config {
    p.configs.store.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_bucket_is_rebuilt_from_the_blob_store_and_verified() {
    let (mut p, server, _job) = crawled().await;
    let expected: Expected = server.site().expected.clone();
    let distinct = expected.distinct_sha256().len() as u64;
    let store = store_config(&p);
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert!(report.identical(), "{:#?}", report.problems);
    assert_eq!((report.expected, report.ok), (distinct, distinct));

    // delete the bucket: every object is missing
    let dir = p.bucket.path().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert_eq!(report.problem_count, distinct);
    assert!(
        report.problems.iter().all(|x| x.kind == "missing"),
        "{:#?}",
        report.problems
    );

    // replay half, then the rest (resumed from the checkpoint object)
    let end = last_seq(&p).await;
    let half = ObjectReplayOptions {
        until: Some(end / 2),
        concurrency: Some(4),
        restart: false,
    };
    let first = objects_to(&p.bus, &store, half).await;
    assert!(first.caught_up && first.position <= end / 2, "{first:?}");
    let rest = objects_to(&p.bus, &store, ObjectReplayOptions::default()).await;
    assert_eq!(rest.start, first.position, "resumed");
    assert_eq!(first.written + rest.written, distinct, "{first:?} {rest:?}");
    assert_eq!(rest.missing, 0);
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert!(report.identical(), "{:#?}", report.problems);
    common::assert_bucket(&dir.join("images"), &expected);

    // without a checkpoint, everything is found already there
    std::fs::remove_dir_all(dir.join("_imgcrawl")).unwrap();
    let again = objects_to(&p.bus, &store, ObjectReplayOptions::default()).await;
    assert_eq!(
        (again.written, again.skipped, again.start),
        (0, again.events, 0),
        "{again:?}"
    );
    assert!(again.events >= distinct);

    // corruption and strays are found
    let victim = common_first_object(&dir.join("images"));
    let len = std::fs::metadata(&victim).unwrap().len() as usize;
    std::fs::write(&victim, vec![0u8; len]).unwrap();
    let stray = dir
        .join("images/00/00")
        .join(format!("{}.png", "0".repeat(64)));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"stray").unwrap();
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    let mut kinds: Vec<&str> = report.problems.iter().map(|x| x.kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec!["content", "unexpected"],
        "{:#?}",
        report.problems
    );
    std::fs::remove_file(&stray).unwrap();
    std::fs::remove_file(&victim).unwrap();

    // a tombstone: the live store stage is down, so the object stays until a replay
    p.stop_stage(Stage::Store).await.unwrap();
    let victim_sha = victim.file_stem().unwrap().to_string_lossy().to_string();
    let sha = expected
        .distinct_sha256()
        .into_iter()
        .find(|s| *s != victim_sha)
        .unwrap()
        .to_string();
    let deletion = ImageDeleted {
        sha256: sha.clone(),
        reason: Some("test".into()),
        occurred_at: chrono::Utc::now(),
    };
    p.bus
        .publisher()
        .publish(&Event::ImageDeleted(deletion))
        .await
        .unwrap();
    std::fs::remove_dir_all(dir.join("_imgcrawl")).unwrap(); // from the start: the victim too
    let done = objects_to(&p.bus, &store, ObjectReplayOptions::default()).await;
    assert_eq!(
        (done.deleted, done.written),
        (1, 1),
        "the tombstoned image goes, the victim comes back"
    );
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert!(report.identical(), "{:#?}", report.problems);
    assert_eq!(report.expected, distinct - 1);
}

/// Some image object under `dir`.
fn common_first_object(dir: &std::path::Path) -> std::path::PathBuf {
    let mut d = dir.to_path_buf();
    loop {
        let next = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .min()
            .unwrap();
        if next.is_file() {
            return next;
        }
        d = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_is_rolled_out_by_replaying_into_a_new_database() {
    let (mut p, server, _job) = crawled().await;
    let old = p.db().await;

    // 1. the new schema: today's migrations plus the change
    let new_url = p.pg.fresh_db().await;
    let new = pool(&new_url).await;
    imgcrawl_index::migrate(&new).await.unwrap();
    sqlx::query(
        "ALTER TABLE images ADD COLUMN megapixels double precision
           GENERATED ALWAYS AS (width::double precision * height / 1000000.0) STORED",
    )
    .execute(&new)
    .await
    .unwrap();

    // 2. replay into it, up to where the live projection is
    let until = ReplayOptions {
        until: Some(common::checkpoint(&old).await),
        follow: false,
    };
    let done = replay_to(&p.bus, &new_url, 1000, until).await.unwrap();
    assert!(done.caught_up, "{done:?}");

    // 3. verify: the schemas differ, the common columns are identical
    let strict = compare_databases(&old, &new, "postgres", false)
        .await
        .unwrap();
    assert!(
        strict
            .differences
            .iter()
            .any(|d| d.table == "images" && d.check == "columns"),
        "{strict:#?}"
    );
    let c = compare_databases(&old, &new, "postgres", true)
        .await
        .unwrap();
    assert!(c.identical(), "{:#?}", c.differences);
    assert_eq!(
        c.notes,
        vec!["column images.megapixels only on the right".to_string()]
    );

    // 4. switch: the index now writes the new database, from its checkpoint on
    p.stop_stage(Stage::Index).await.unwrap();
    p.configs.index.database_url = new_url.clone();
    p.db_url = new_url.clone();
    p.start_stage(Stage::Index);
    let second = p.request(&server.seed_url(), |_| {}).await;
    assert_eq!(
        p.wait_job(second, Duration::from_secs(120)).await,
        "completed"
    );
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&new)
        .await
        .unwrap();
    assert_eq!(jobs, 2);
    let unset: i64 = sqlx::query_scalar("select count(*) from images where megapixels is null")
        .fetch_one(&new)
        .await
        .unwrap();
    assert_eq!(unset, 0);
    let old_jobs: i64 = sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(&old)
        .await
        .unwrap();
    assert_eq!(old_jobs, 1, "the old database is no longer written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_on_a_real_s3_server_is_rebuilt_with_content_types_and_verified() {
    let (p, server, _job) = crawled().await;
    let s3 = S3Server::start().await;
    let store = imgcrawl_store::Config {
        target: format!("s3://{}/replayed", s3.bucket().await),
        s3: s3.s3_config(),
        ..p.configs.store.clone()
    };
    let distinct = server.site().expected.distinct_sha256().len() as u64;
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert_eq!(
        (report.problem_count, report.ok),
        (distinct, 0),
        "an empty bucket misses everything"
    );

    let done = objects_to(&p.bus, &store, ObjectReplayOptions::default()).await;
    assert!(
        done.caught_up && done.written == distinct && done.missing == 0,
        "{done:?}"
    );
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert!(report.content_types_checked);
    assert!(report.identical(), "{:#?}", report.problems);
    assert_eq!(report.ok, distinct);

    // an object with the wrong Content-Type is found; removed and replayed from the
    // start (--restart), it is back as it should be
    let img = &server.site().expected.images[0];
    let ext = imgcrawl_store::extension(img.format.name(), "");
    let key = object_store::path::Path::from(
        imgcrawl_store::object_key("images", &img.sha256, ext).unwrap(),
    );
    let bucket = imgcrawl_store::open_store(&store).unwrap();
    let body = bucket.get(&key).await.unwrap().bytes().await.unwrap();
    let mut attributes = object_store::Attributes::new();
    attributes.insert(
        object_store::Attribute::ContentType,
        "application/octet-stream".into(),
    );
    let opts = object_store::PutOptions {
        attributes,
        ..Default::default()
    };
    bucket.put_opts(&key, body.into(), opts).await.unwrap();
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    let kinds: Vec<&str> = report.problems.iter().map(|x| x.kind).collect();
    assert_eq!(kinds, vec!["content-type"], "{:#?}", report.problems);
    bucket.delete(&key).await.unwrap();
    let again = ObjectReplayOptions {
        restart: true,
        ..Default::default()
    };
    let done = objects_to(&p.bus, &store, again).await;
    assert_eq!((done.start, done.written), (0, 1), "{done:?}");
    let report = verify_bucket(&p.bus, &store, None, 8).await.unwrap();
    assert!(report.identical(), "{:#?}", report.problems);
}

/// An `image.downloaded` for `body` under the name `sha` (which may not be its hash).
fn downloaded_event(job: Uuid, n: usize, sha: &str, bytes: usize) -> Event {
    let url = format!("https://blobs.test/{n}.png");
    Event::ImageDownloaded(imgcrawl_events::ImageDownloaded {
        job_id: job,
        url: url.clone(),
        final_url: url,
        page_url: "https://blobs.test/".into(),
        alt: None,
        found_by: imgcrawl_events::FoundBy::ImgSrc,
        sha256: sha.into(),
        bytes: bytes as u64,
        format: "png".into(),
        width: 1,
        height: 1,
        content_type: "image/png".into(),
        occurred_at: chrono::Utc::now(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_whose_blob_is_gone_or_corrupt_are_counted_and_never_written() {
    use sha2::{Digest, Sha256};
    let p = Pipeline::start_without_stages().await;
    let blobs = imgcrawl_bus::blob::BlobStore::open(&p.bus).await.unwrap();
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let good = bytes::Bytes::from_static(b"the bytes the name says");
    let liar = bytes::Bytes::from_static(b"other bytes under that name");
    let (good_sha, liar_sha) = (sha(&good), sha(b"what the name promises"));
    let ghost_sha = sha(b"never stored");
    blobs
        .put_if_absent(&good_sha, &good, "image/png")
        .await
        .unwrap();
    blobs
        .put_if_absent(&liar_sha, &liar, "image/png")
        .await
        .unwrap();
    let job = Uuid::now_v7();
    let events = [
        downloaded_event(job, 1, &ghost_sha, 10),
        downloaded_event(job, 2, &liar_sha, liar.len()),
        downloaded_event(job, 3, &good_sha, good.len()),
    ];
    p.bus.publisher().publish_all(&events).await.unwrap();

    let store = store_config(&p);
    let done = objects_to(&p.bus, &store, ObjectReplayOptions::default()).await;
    assert_eq!(
        (done.written, done.missing, done.caught_up),
        (1, 2, true),
        "{done:?}"
    );
    let bucket = imgcrawl_store::open_store(&store).unwrap();
    let keys: Vec<String> = futures::StreamExt::collect::<Vec<_>>(bucket.list(None))
        .await
        .into_iter()
        .map(|m| m.unwrap().location.to_string())
        .filter(|k| !k.starts_with("_imgcrawl"))
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].contains(&good_sha), "{keys:?}");
}

/// A database recorded by an earlier release names its stream by creation time only,
/// and that time drifted across nats-server restarts. Such a database is recognised by
/// its first job (the request at the same sequence of the stream) and given the id; a
/// database of another stream is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_an_earlier_release_is_recognised_by_its_first_job() {
    let (pg, _one, _two, bus1, bus2) = two_streams().await;
    let (ours, theirs) = (pg.fresh_db().await, pg.fresh_db().await);
    for url in [&ours, &theirs] {
        replay_to(&bus1, url, 100, ReplayOptions::default())
            .await
            .unwrap();
        // as an earlier release left it: no id, a creation time the stream no longer reports
        sqlx::query(
            "update projection_meta set stream_id = null, stream_created = '2026-01-01T00:00:00Z'",
        )
        .execute(&pool(url).await)
        .await
        .unwrap();
    }
    publish_job(&bus1, "https://one.test/more").await;
    let done = replay_to(&bus1, &ours, 100, ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(done.events, 2, "the new job's events are applied");
    let id: Option<String> = sqlx::query_scalar("select stream_id from projection_meta")
        .fetch_one(&pool(&ours).await)
        .await
        .unwrap();
    let stream = imgcrawl_index::stream_position(&bus1).await.unwrap();
    assert_eq!(
        id.as_deref(),
        Some(stream.identity.id.as_str()),
        "the id is recorded"
    );

    let err = replay_to(&bus2, &theirs, 100, ReplayOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, IndexError::ForeignStream { .. }), "{err}");
    assert!(
        err.to_string().contains("IMGCRAWL created 2026-01-01"),
        "{err}"
    );
}
