//! `just bench-failover`: the write gap of a failover under a crawl that writes
//! continuously, with the seed's default checks (every 5 s, down after 3 failures)
//! and with 1 s checks.
//!
//! Per scenario: a real nats-server, two PostgreSQL servers (each node fed by its own
//! index writer), one HA watcher, the crawl, download and store stages, and a paced
//! synthetic site. Once the primary has indexed a few hundred images, its postmaster
//! alone is killed with SIGKILL (its backends notice and exit). Measured:
//!
//! * **detection**: from the kill to the pointer naming the standby;
//! * **write gap**: from the last commit on the old primary to the first commit on the
//!   new one, as CloudNativePG's e2e test measures it. A commit as primary is announced
//!   right after it by `images.indexed`, so the gap is read from the stream's timestamps
//!   of those announcements (the last before the switch, the first after);
//! * **lost / duplicated rows**: every `image.stored` of the job must be a stored row
//!   on the new primary, no image source may be announced twice, no image or source
//!   row may be duplicated, and the new primary must equal a fresh replay of the
//!   stream (the index's `verify` library).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::OrderedConfig;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use imgcrawl_bus::ha::{current_primary, POSTGRES};
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_events::{CrawlStopped, Event, EventKind};
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::sitegen::{synthetic_with, SyntheticSpec};
use imgcrawl_tests::{pg_nodes, wait_for, wait_until, Pipeline, Postgres, Stage};
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Outcome {
    label: &'static str,
    detection: Duration,
    gap: Duration,
    indexed_per_sec: f64,
    lost: usize,
    duplicated: usize,
    identical: bool,
    images: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: just bench-failover"]
async fn bench_failover() {
    let mut rows = Vec::new();
    for (label, interval_ms) in [
        ("seed defaults (5 s checks, 3 failures)", 5000),
        ("1 s checks, 3 failures", 1000),
    ] {
        let o = scenario(label, interval_ms).await;
        println!(
            "{label}: detection {:.2} s, write gap {:.2} s, lost {}, duplicated {}, identical to a replay: {}",
            o.detection.as_secs_f64(),
            o.gap.as_secs_f64(),
            o.lost,
            o.duplicated,
            o.identical
        );
        rows.push(o);
    }
    println!();
    println!("| checks | detection (kill -> pointer) | write gap (last commit old -> first commit new) | sources announced/s before | lost rows | duplicated rows | new primary = replay | images |");
    println!("|---|---|---|---|---|---|---|---|");
    for o in &rows {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.0} | {} | {} | {} | {} |",
            o.label,
            o.detection.as_secs_f64(),
            o.gap.as_secs_f64(),
            o.indexed_per_sec,
            o.lost,
            o.duplicated,
            if o.identical {
                "identical"
            } else {
                "DIFFERENT"
            },
            o.images
        );
    }
    for o in &rows {
        assert_eq!(
            (o.lost, o.duplicated, o.identical),
            (0, 0, true),
            "{}",
            o.label
        );
    }
}

async fn scenario(label: &'static str, interval_ms: u64) -> Outcome {
    let mut p = Pipeline::start_without_stages().await;
    for s in [Stage::Crawl, Stage::Download, Stage::Store] {
        p.start_stage(s);
    }
    let pg2 = Postgres::start().await;
    let nodes = pg_nodes(&[p.db_url.clone(), pg2.fresh_db().await]);
    let stop = CancellationToken::new();
    let (bus, index, ns, t) = (
        p.bus.clone(),
        imgcrawl_index::Config::default(),
        nodes.clone(),
        stop.clone(),
    );
    let writers = tokio::spawn(async move { imgcrawl_index::run_nodes(bus, index, &ns, t).await });
    let ha = imgcrawl_ha::Config {
        nodes: nodes.clone(),
        check_interval_ms: interval_ms,
        consistency_interval_secs: 0,
        listen: String::new(),
        ..Default::default()
    };
    let watcher = imgcrawl_ha::start(p.bus.clone(), ha, stop.clone())
        .await
        .expect("watcher");
    let first = wait_for(Duration::from_secs(60), || async {
        current_primary(&p.bus, POSTGRES).await.ok().flatten()
    })
    .await;
    assert_eq!(first.map(|p| p.primary).as_deref(), Some("pg1"));

    let spec = SyntheticSpec {
        pages: 1500,
        links_per_page: 4,
        images_per_page: 8,
        distinct_images: 3000,
        seed: 5,
        min_side: 32,
        max_side: 96,
        ..SyntheticSpec::default()
    };
    let server = serve(synthetic_with(&spec).expect("site")).await;
    let job = p
        .request(&server.seed_url(), |r| {
            r.politeness = Some(imgcrawl_events::Politeness {
                delay_ms: 4,
                ..Default::default()
            });
            r.scope = Some(imgcrawl_events::Scope {
                max_depth: 64,
                max_pages: 100_000,
                max_images: 1_000_000,
                ..Default::default()
            })
        })
        .await;
    let pg1 = connect(&nodes[0].url).await;
    let warm = wait_until(Duration::from_secs(120), || async {
        stored(&pg1, job).await >= 300
    })
    .await;
    assert!(warm, "the crawl did not get going");
    pg1.close().await;

    let pid = p.pg.postmaster_pid().expect("pg1 runs");
    let killed_at = Utc::now();
    let killed = Instant::now();
    // SAFETY: kill(2) on the postmaster the harness spawned.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    let switched = wait_for(Duration::from_secs(120), || async {
        current_primary(&p.bus, POSTGRES)
            .await
            .ok()
            .flatten()
            .filter(|p| p.primary == "pg2")
    })
    .await
    .expect("failover to pg2");
    let detection = killed.elapsed();
    // The watcher wrote the pointer at `at`; the new primary announces only after it saw it.
    let switched_at = switched.at;
    println!(
        "{label}: pointer -> pg2 (epoch {}) {:.2} s after the kill: {}",
        switched.epoch,
        detection.as_secs_f64(),
        switched.reason
    );

    // keep crawling a while on the new primary, then stop the job and let it drain
    tokio::time::sleep(Duration::from_secs(5)).await;
    let stop_job = Event::CrawlStopped(CrawlStopped {
        job_id: job,
        reason: Some("benchmark done".into()),
        occurred_at: Utc::now(),
    });
    p.bus
        .publisher()
        .publish(&stop_job)
        .await
        .expect("stop the job");
    let pg2db = connect(&nodes[1].url).await;
    let done = wait_until(Duration::from_secs(300), || async {
        let s: Option<String> = sqlx::query_scalar("select status from jobs where job_id = $1")
            .bind(job)
            .fetch_optional(&pg2db)
            .await
            .ok()
            .flatten();
        matches!(s.as_deref(), Some("stopped" | "completed"))
    })
    .await;
    assert!(done, "the job did not drain on pg2");

    let events = read_events(&p).await;
    // every announced source, at the time its announcement was stored
    let indexed: Vec<(DateTime<Utc>, String)> = events
        .iter()
        .filter(|e| e.1 == EventKind::ImagesIndexed.subject())
        .flat_map(|e| {
            let v: Value = serde_json::from_slice(&e.3).unwrap_or(Value::Null);
            let urls: Vec<String> = v["images"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["url"].as_str().unwrap_or_default().to_string())
                .collect();
            urls.into_iter().map(move |u| (e.2, u))
        })
        .collect();
    let last_old = indexed
        .iter()
        .map(|e| e.0)
        .filter(|t| *t < switched_at)
        .max()
        .expect("announcements before");
    let first_new = indexed
        .iter()
        .map(|e| e.0)
        .filter(|t| *t >= switched_at)
        .min()
        .expect("announcements after");
    let gap = (first_new - last_old).to_std().unwrap_or_default();
    let late = indexed
        .iter()
        .filter(|e| e.0 > killed_at + chrono::Duration::milliseconds(500) && e.0 < switched_at)
        .count();
    println!("{label}: last commit on pg1 {last_old}, first on pg2 {first_new}; announced by pg1 more than 0.5 s after the kill: {late}");
    let warm_window = indexed
        .iter()
        .filter(|e| e.0 < killed_at && e.0 >= killed_at - chrono::Duration::seconds(3))
        .count();
    let indexed_per_sec = warm_window as f64 / 3.0;

    // lost: stored in the stream, not stored on the new primary; duplicated: announced
    // twice, or two rows for one key
    let stored_events: BTreeSet<String> = events
        .iter()
        .filter(|e| e.1 == EventKind::ImageStored.subject())
        .map(|e| key(&e.3))
        .collect();
    let rows: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "select url from image_sources where job_id = $1 and status = 'stored'",
    )
    .bind(job)
    .fetch_all(&pg2db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let lost = stored_events.difference(&rows).count();
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, k) in &indexed {
        *per_key.entry(k.as_str()).or_default() += 1;
    }
    let dup_announced: usize = per_key.values().map(|n| n - 1).sum();
    let dup_rows: i64 = sqlx::query_scalar(
        "select (select count(*) - count(distinct sha256) from images) + (select count(*) - count(distinct (job_id, url)) from image_sources)",
    )
    .fetch_one(&pg2db)
    .await
    .unwrap();
    let images: i64 = sqlx::query_scalar("select count(*) from images")
        .fetch_one(&pg2db)
        .await
        .unwrap();
    pg2db.close().await;

    let cfg = imgcrawl_index::Config {
        database_url: nodes[1].url.clone(),
        ..Default::default()
    };
    let (cmp, _) =
        imgcrawl_index::verify::against_replay(&p.bus, &cfg, None, CancellationToken::new())
            .await
            .expect("verify");
    stop.cancel();
    watcher.wait().await;
    let _ = writers.await;
    p.shutdown().await;
    drop(pg2);
    Outcome {
        label,
        detection,
        gap,
        indexed_per_sec,
        lost,
        duplicated: dup_announced + usize::try_from(dup_rows).unwrap_or(usize::MAX),
        identical: cmp.identical(),
        images: usize::try_from(images).unwrap_or(0),
    }
}

async fn connect(url: &str) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .expect("connect")
}

async fn stored(db: &PgPool, job: Uuid) -> i64 {
    sqlx::query_scalar("select count(*) from image_sources where job_id = $1 and status = 'stored'")
        .bind(job)
        .fetch_one(db)
        .await
        .unwrap_or(0)
}

/// `<url>` of an event body (`job` is the same for the whole benchmark).
fn key(payload: &[u8]) -> String {
    let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    v["url"].as_str().unwrap_or_default().to_string()
}

/// Every message of the stream: (sequence, subject, stored at, body).
async fn read_events(p: &Pipeline) -> Vec<(u64, String, DateTime<Utc>, bytes::Bytes)> {
    let stream = p
        .bus
        .js
        .get_stream(&p.bus.config.stream)
        .await
        .expect("stream");
    let last = stream.get_info().await.expect("info").state.last_sequence;
    let consumer = stream
        .create_consumer(OrderedConfig::default())
        .await
        .expect("consumer");
    let mut msgs = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    while out
        .last()
        .map_or(0, |e: &(u64, String, DateTime<Utc>, bytes::Bytes)| e.0)
        < last
    {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("read")
            .expect("end")
            .expect("message");
        let info = m.info().expect("info");
        out.push((
            info.stream_sequence,
            m.subject.to_string(),
            to_chrono(info.published),
            m.payload.clone(),
        ));
    }
    out
}
