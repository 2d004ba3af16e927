//! The topology against a real nats-server: the stream's id survives restarts (the
//! creation time does not), a stream made by an earlier release gets an id once, and a
//! starting process never weakens or rewrites what an operator made.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use imgcrawl_bus::identity::{StreamIdentity, STREAM_CREATED_KEY, STREAM_ID_KEY};
use imgcrawl_bus::{topology, Bus, BusConfig};
use imgcrawl_tests::NatsServer;

async fn info(nats: &NatsServer) -> stream::Info {
    let js = jetstream::new(nats.client().await);
    topology::stream_info(&js, "IMGCRAWL")
        .await
        .unwrap()
        .expect("stream exists")
}

/// nats-server (2.10 at least) rewrites a stream's creation time when the stream is
/// updated and the server restarts: the reason the id replaced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_id_survives_restarts_and_worker_starts() {
    let mut nats = NatsServer::start().await;
    let cfg = BusConfig::with_url(nats.url());
    drop(Bus::connect(cfg.clone()).await.unwrap());
    let first = info(&nats).await;
    let id = StreamIdentity::of(&first).expect("created with an id");
    assert_eq!(id.legacy_created, None, "a new stream needs no legacy time");
    for round in 0..3 {
        nats.restart().await;
        drop(Bus::connect(cfg.clone()).await.unwrap());
        let now = info(&nats).await;
        assert_eq!(
            StreamIdentity::of(&now).as_ref(),
            Some(&id),
            "round {round}: the id never changes"
        );
        assert_eq!(
            now.config, first.config,
            "round {round}: the config is untouched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_an_earlier_release_gets_one_id_and_keeps_its_settings() {
    let mut nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    // as an earlier release (or an operator by hand) made it: no id, its own settings
    let mut made = topology::stream_config(&BusConfig::default());
    made.duplicate_window = Duration::from_secs(1200);
    made.max_bytes = 1 << 30;
    made.metadata.insert("owner".into(), "ops".into());
    js.create_stream(made).await.unwrap();
    let before = info(&nats).await;

    let cfg = BusConfig::with_url(nats.url());
    let (a, b) = tokio::join!(Bus::connect(cfg.clone()), Bus::connect(cfg.clone()));
    drop((a.unwrap(), b.unwrap()));
    let adopted = info(&nats).await;
    let id = StreamIdentity::of(&adopted).expect("adopted an id");
    assert!(id.legacy_created.is_some());
    let meta = &adopted.config.metadata;
    assert_eq!(meta["owner"], "ops", "other metadata kept");
    assert!(meta.contains_key(STREAM_CREATED_KEY) && meta.contains_key(STREAM_ID_KEY));
    let mut unchanged = adopted.config.clone();
    unchanged.metadata = before.config.metadata.clone();
    assert_eq!(unchanged, before.config, "nothing but the metadata changed");
    assert!(
        id.matches_legacy("IMGCRAWL", imgcrawl_bus::worker::to_chrono(before.created)),
        "projections recorded with the old creation time are recognised"
    );

    nats.restart().await;
    drop(Bus::connect(cfg).await.unwrap());
    assert_eq!(
        StreamIdentity::of(&info(&nats).await),
        Some(id),
        "adopted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_never_rewrites_existing_buckets() {
    let nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    // the jobs bucket as an operator made it, with more history than ours
    js.create_key_value(kv::Config {
        bucket: "imgcrawl-jobs".into(),
        history: 10,
        description: "operator's".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    drop(Bus::connect(BusConfig::with_url(nats.url())).await.unwrap());
    let mut s = js.get_stream("KV_imgcrawl-jobs").await.unwrap();
    let got = s.info().await.unwrap().config.clone();
    assert_eq!(got.max_messages_per_subject, 10, "history kept");
    assert_eq!(got.description.as_deref(), Some("operator's"));
    // and what was missing was created
    assert!(js.get_key_value("imgcrawl-seen").await.is_ok());
    assert!(js.get_object_store("imgcrawl-blobs").await.is_ok());
}

/// A stream made by hand with settings that differ from the configuration: a start
/// leaves it alone, an inspection lists the differences and changes nothing, an
/// apply makes the safe changes, the weakening ones only when allowed, and never the
/// storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_leaves_a_hand_made_stream_alone_and_apply_changes_it() {
    use imgcrawl_bus::config::Storage;
    use imgcrawl_bus::topology_admin::{apply, inspect};
    use imgcrawl_bus::topology_diff::{Field, Verdict};

    let nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    let mut made = topology::stream_config(&BusConfig::default());
    made.duplicate_window = Duration::from_secs(1200);
    js.create_stream(made).await.unwrap();
    // the first start adopts an id (its one write to an existing stream)
    drop(Bus::connect(BusConfig::with_url(nats.url())).await.unwrap());
    let before = info(&nats).await.config;

    let cfg = BusConfig {
        duplicate_window_secs: 1800,
        max_age_secs: 7 * 86_400,
        storage: Storage::Memory,
        ..BusConfig::with_url(nats.url())
    };
    drop(Bus::connect(cfg.clone()).await.unwrap());
    assert_eq!(info(&nats).await.config, before, "a start changes nothing");

    let reports = inspect(&js, &cfg).await.unwrap();
    assert_eq!(reports.len(), 9);
    let stream = &reports[0];
    let verdicts: Vec<_> = stream
        .changes
        .iter()
        .map(|c| (c.field, c.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            (
                Field::Storage,
                Verdict::CannotChange(imgcrawl_bus::topology_diff::STORAGE_FIXED)
            ),
            (Field::DuplicateWindow, Verdict::Apply),
            (Field::MaxAge, Verdict::Weakens),
        ]
    );
    for r in &reports[1..] {
        let fields: Vec<_> = r.changes.iter().map(|c| c.field).collect();
        // tombstones, ha and hosts are made by the stages that use them, not by every start
        let want: &[Field] = match r.current {
            Some(_) => &[Field::Storage],
            None => &[],
        };
        assert_eq!(fields, want, "{}: only storage differs", r.target.name);
    }
    assert_eq!(
        info(&nats).await.config,
        before,
        "inspecting changes nothing"
    );

    let done = apply(&js, &cfg, false).await.unwrap();
    let now = info(&nats).await.config;
    assert_eq!(now.duplicate_window, Duration::from_secs(1800), "applied");
    assert_eq!(now.max_age, Duration::ZERO, "weakening needs leave");
    assert_eq!(done[0].applied.len(), 1);
    assert_eq!(done[0].skipped.len(), 2);
    assert_eq!(now.metadata, before.metadata, "the id is kept");

    apply(&js, &cfg, true).await.unwrap();
    let now = info(&nats).await.config;
    assert_eq!(now.max_age, Duration::from_secs(7 * 86_400));
    assert_eq!(
        now.storage,
        stream::StorageType::File,
        "storage never changes"
    );
    // a start still changes nothing
    drop(Bus::connect(cfg.clone()).await.unwrap());
    assert_eq!(info(&nats).await.config, now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_what_is_missing_with_the_configured_storage() {
    use imgcrawl_bus::config::Storage;
    let nats = NatsServer::start().await;
    let js = jetstream::new(nats.client().await);
    let cfg = BusConfig {
        storage: Storage::Memory,
        max_bytes: 1 << 30,
        ..BusConfig::with_url(nats.url())
    };
    let done = imgcrawl_bus::topology_admin::apply(&js, &cfg, false)
        .await
        .unwrap();
    assert!(done.iter().all(|a| a.created), "all nine were missing");
    for r in imgcrawl_bus::topology_admin::inspect(&js, &cfg)
        .await
        .unwrap()
    {
        let info = r.current.expect("created");
        assert_eq!(
            info.config.storage,
            stream::StorageType::Memory,
            "{}",
            r.target.name
        );
        assert!(r.changes.is_empty(), "{}: {:?}", r.target.name, r.changes);
    }
    assert!(
        StreamIdentity::of(&info(&nats).await).is_some(),
        "with an id"
    );
}
