//! Backups on a synthetic history (events with a deleted message in the middle, blobs,
//! several segments): restored at the same sequences; each kind of damage named by
//! `verify` and refused by `restore` before it writes anything, or restored up to the
//! last good sequence when asked; retention's dry run and pruning with a snapshot;
//! the continuous archive closing segments on time and resuming after a crash.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use imgcrawl_backup::{backup_once, restore, BackupError, Config, RestoreOptions, Target};
use imgcrawl_bus::blob::BlobStore;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::{wait_until, NatsServer};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

const EVENTS: u64 = 300;
const DELETED: u64 = 123;

async fn bus(nats: &NatsServer) -> Bus {
    Bus::connect(BusConfig::with_url(nats.url())).await.unwrap()
}

fn config(dir: &Path) -> Config {
    Config {
        target: dir.display().to_string(),
        segment_max_bytes: 8_000,
        ..Default::default()
    }
}

/// Publishes `n` events (after `from`) on the stream.
async fn publish(bus: &Bus, from: u64, n: u64) {
    for i in from..from + n {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", format!("backup-test-{i}").as_str());
        bus.js
            .publish_with_headers(
                "imgcrawl.test.backup",
                h,
                Bytes::from(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(60))),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// A server with EVENTS events (one deleted) and three blobs, archived into `dir`.
async fn history(dir: &Path) -> (NatsServer, Bus, Vec<String>) {
    let nats = NatsServer::start().await;
    let b = bus(&nats).await;
    publish(&b, 0, EVENTS).await;
    let s = b.js.get_stream(&b.config.stream).await.unwrap();
    assert!(s.delete_message(DELETED).await.unwrap());
    let blobs = BlobStore::open(&b).await.unwrap();
    let mut shas = Vec::new();
    for i in 0..3u8 {
        let body = Bytes::from(vec![i; 200_000 + usize::from(i)]);
        let sha = hex::encode(Sha256::digest(&body));
        blobs.put_if_absent(&sha, &body, "image/png").await.unwrap();
        shas.push(sha);
    }
    let done = backup_once(&b, &config(dir)).await.unwrap();
    assert!(done.segments >= 4, "{done:?}");
    (nats, b, shas)
}

/// (seq, subject, payload) of every message of `stream` up to `last`.
async fn messages(bus: &Bus, stream: &str, last: u64) -> Vec<(u64, String, Bytes)> {
    let s = bus.js.get_stream(stream).await.unwrap();
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = s.get_raw_message(seq).await {
            out.push((seq, m.subject.to_string(), m.payload));
        }
    }
    out
}

async fn last_seq(bus: &Bus) -> u64 {
    imgcrawl_bus::topology::stream_info(&bus.js, &bus.config.stream)
        .await
        .unwrap()
        .map_or(0, |i| i.state.last_sequence)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_keeps_sequences_gaps_and_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, original, shas) = history(dir.path()).await;
    let fresh = NatsServer::start().await;
    let restored = bus(&fresh).await; // a process that started first: empty topology
    let summary = restore(
        &restored.js,
        &config(dir.path()),
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert!(summary.truncated.is_empty(), "{summary:?}");
    let stream = original.config.stream.clone();
    let want = messages(&original, &stream, EVENTS).await;
    let got = messages(&restored, &stream, EVENTS).await;
    assert_eq!(want.len() as u64, EVENTS - 1);
    assert!(
        !got.iter().any(|(seq, _, _)| *seq == DELETED),
        "the deleted sequence stays deleted"
    );
    assert_eq!(got, want);
    assert_eq!(last_seq(&restored).await, EVENTS);
    let blobs = BlobStore::open(&restored).await.unwrap();
    for sha in &shas {
        let body = blobs.read(sha).await.unwrap().expect("blob restored");
        assert_eq!(&hex::encode(Sha256::digest(&body)), sha);
    }
    // a second restore into the same server is refused: it is not empty
    let again = restore(
        &restored.js,
        &config(dir.path()),
        &RestoreOptions::default(),
    )
    .await;
    assert!(matches!(again, Err(BackupError::NotEmpty(_))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_damage_is_named_by_verify_and_refused_by_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, original, _) = history(dir.path()).await;
    let target = Target::open(&config(dir.path())).unwrap();
    let manifest = target.manifest().await.unwrap().unwrap();
    let report = imgcrawl_backup::verify(&target, &manifest, 4)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    let segments = &manifest.streams[&original.config.stream].segments;
    assert!(segments.len() >= 3);
    let victim = segments[1].clone();
    for kind in ["truncated", "corrupted", "missing"] {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), copy.path());
        let file = copy.path().join(&victim.name);
        match kind {
            "truncated" => {
                let b = std::fs::read(&file).unwrap();
                std::fs::write(&file, &b[..b.len() / 2]).unwrap();
            }
            "corrupted" => {
                let mut b = std::fs::read(&file).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x5a;
                std::fs::write(&file, &b).unwrap();
            }
            _ => std::fs::remove_file(&file).unwrap(),
        }
        let cfg = config(copy.path());
        let t = Target::open(&cfg).unwrap();
        let report = imgcrawl_backup::verify(&t, &manifest, 4).await.unwrap();
        assert_eq!(report.problems.len(), 1, "{kind}: {:?}", report.problems);
        assert_eq!(
            (report.problems[0].segment.as_str(), report.problems[0].kind),
            (victim.name.as_str(), kind)
        );

        let fresh = NatsServer::start().await;
        let b = bus(&fresh).await;
        let refused = restore(&b.js, &cfg, &RestoreOptions::default()).await;
        match refused {
            Err(BackupError::Damaged(msg)) => {
                assert!(msg.contains(&victim.name) && msg.contains(kind), "{msg}")
            }
            other => panic!("{kind}: restore should refuse, got {other:?}"),
        }
        assert_eq!(last_seq(&b).await, 0, "{kind}: nothing was written");

        let options = RestoreOptions {
            up_to_last_good: true,
            ..Default::default()
        };
        let partial = restore(&b.js, &cfg, &options).await.unwrap();
        assert_eq!(
            partial.truncated,
            vec![(original.config.stream.clone(), segments[0].last_seq)],
            "{kind}: {partial:?}"
        );
        assert_eq!(last_seq(&b).await, segments[0].last_seq, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_only_what_a_snapshot_covers_and_the_restore_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, original, _) = history(dir.path()).await;
    let cfg = Config {
        keep_days: 30,
        ..config(dir.path())
    };
    let target = Target::open(&cfg).unwrap();
    let mut m = target.manifest().await.unwrap().unwrap();
    // every segment is 40 days old
    let old = Utc::now() - chrono::Duration::days(40);
    for a in m.streams.values_mut() {
        for s in &mut a.segments {
            s.closed_at = old;
        }
    }
    let plan = imgcrawl_backup::retention_plan(&m, &cfg, Utc::now());
    assert!(
        plan.segments.is_empty(),
        "no snapshot: nothing may go {plan:?}"
    );

    // a snapshot, then more events archived after it
    let streams: Vec<String> = m.streams.keys().cloned().collect();
    let snap = imgcrawl_backup::take_snapshot(&original, &target, &streams, &cfg)
        .await
        .unwrap();
    m.snapshots.push(snap);
    target.write_manifest(&m).await.unwrap();
    publish(&original, EVENTS, 20).await;
    backup_once(&original, &cfg).await.unwrap();
    let mut m = target.manifest().await.unwrap().unwrap();
    let plan = imgcrawl_backup::retention_plan(&m, &cfg, Utc::now());
    let events_segments = m.streams[&original.config.stream].segments.len();
    let removed_events = plan
        .segments
        .iter()
        .filter(|r| r.name.contains(&format!("/{}/", original.config.stream)))
        .count();
    assert_eq!(
        removed_events,
        events_segments - 1,
        "all old ones, not the new one: {plan:?}"
    );
    assert!(plan.removed_bytes > 0 && plan.kept_bytes > 0);
    // the dry run changed nothing
    assert_eq!(target.manifest().await.unwrap().unwrap(), m);

    imgcrawl_backup::prune(&target, &mut m, &plan)
        .await
        .unwrap();
    let report = imgcrawl_backup::verify(&target, &m, 4).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    for r in &plan.segments {
        assert!(!dir.path().join(&r.name).exists(), "{} removed", r.name);
    }
    let fresh = NatsServer::start().await;
    let b = bus(&fresh).await;
    restore(&b.js, &cfg, &RestoreOptions::default())
        .await
        .unwrap();
    let stream = original.config.stream.clone();
    assert_eq!(
        messages(&b, &stream, EVENTS + 20).await,
        messages(&original, &stream, EVENTS + 20).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_continuous_archive_closes_segments_on_time_and_resumes_after_a_crash() {
    let nats = NatsServer::start().await;
    let b = bus(&nats).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_secs: 1,
        // the crashed archiver's lease blocks the restarted one this long
        lease_secs: 2,
        ..config(dir.path())
    };
    let target = Target::open(&cfg).unwrap();
    let archived = |want: u64| {
        let target = target.clone();
        let stream = b.config.stream.clone();
        async move {
            let m = target.manifest().await.ok().flatten();
            m.and_then(|m| m.streams.get(&stream).map(|a| a.next_seq() - 1)) == Some(want)
        }
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(imgcrawl_backup::run(
        b.clone(),
        cfg.clone(),
        shutdown.clone(),
    ));
    publish(&b, 0, 10).await;
    // a few messages, far below the size limit: closed by time
    assert!(wait_until(Duration::from_secs(20), || archived(10)).await);
    publish(&b, 10, 50).await;
    assert!(wait_until(Duration::from_secs(20), || archived(60)).await);
    task.abort(); // a crash: no clean close
    let _ = task.await;
    publish(&b, 60, 40).await;
    let task = tokio::spawn(imgcrawl_backup::run(
        b.clone(),
        cfg.clone(),
        shutdown.clone(),
    ));
    assert!(wait_until(Duration::from_secs(20), || archived(100)).await);
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let m = target.manifest().await.unwrap().unwrap();
    assert!(m.continuity().is_empty(), "{:?}", m.continuity());
    let a = &m.streams[&b.config.stream];
    assert_eq!(
        a.segments.iter().map(|s| s.count).sum::<u64>(),
        100,
        "each message once"
    );
    assert!(a.segments.len() >= 3);
}
