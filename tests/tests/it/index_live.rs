//! The live index stage against a real nats-server and PostgreSQL: events published
//! on the bus end up as rows, poison is dead-lettered, completions are announced after
//! the commit, a database outage is ridden out, a restart resumes from the checkpoint,
//! and a database that went back in time is rebuilt from the log.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use imgcrawl_bus::dlq::DeadLetter;
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::*;
use imgcrawl_index::{read_checkpoint, run, Config};
use imgcrawl_tests::{wait_until, NatsServer, Postgres};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const L: Uuid = Uuid::from_u128(0x1_0001);
const M: Uuid = Uuid::from_u128(0x1_0002);
const N: Uuid = Uuid::from_u128(0x1_0003);
const P: Uuid = Uuid::from_u128(0x1_0004);
const SHA: &str = "4444444444444444444444444444444444444444444444444444444444444444";

fn at(s: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_767_225_600 + s, 0).single().unwrap()
}

fn job_l() -> Vec<Event> {
    let (page, img) = (
        "https://l.test/".to_string(),
        "https://l.test/a.png".to_string(),
    );
    vec![
        Event::CrawlRequested(CrawlRequested {
            job_id: Some(L),
            url: Some(page.clone()),
            occurred_at: Some(at(1)),
            ..Default::default()
        }),
        Event::PageDiscovered(PageDiscovered {
            job_id: L,
            url: page.clone(),
            depth: 0,
            referrer: None,
            occurred_at: at(2),
        }),
        Event::ImageDiscovered(ImageDiscovered {
            job_id: L,
            url: img.clone(),
            page_url: page.clone(),
            alt: None,
            found_by: FoundBy::ImgSrc,
            occurred_at: at(3),
        }),
        Event::PageFetched(PageFetched {
            job_id: L,
            url: page.clone(),
            final_url: page.clone(),
            depth: 0,
            status: 200,
            bytes: 10,
            title: None,
            links_found: 0,
            pages_discovered: 0,
            images_found: 1,
            images_discovered: 1,
            render: None,
            occurred_at: at(4),
        }),
        Event::ImageDownloaded(ImageDownloaded {
            job_id: L,
            url: img.clone(),
            final_url: img.clone(),
            page_url: page,
            alt: None,
            found_by: FoundBy::ImgSrc,
            sha256: SHA.into(),
            bytes: 99,
            format: "png".into(),
            width: 1,
            height: 1,
            content_type: "image/png".into(),
            occurred_at: at(5),
        }),
        Event::ImageStored(ImageStored {
            job_id: L,
            url: img,
            sha256: SHA.into(),
            object_key: "k".into(),
            bytes: 99,
            content_type: "image/png".into(),
            occurred_at: at(6),
        }),
    ]
}

/// A job whose only page times out.
fn one_page_job(job: Uuid, page: &str, t: i64) -> Vec<Event> {
    let page = page.to_string();
    vec![
        Event::CrawlRequested(CrawlRequested {
            job_id: Some(job),
            url: Some(page.clone()),
            occurred_at: Some(at(t)),
            ..Default::default()
        }),
        Event::PageDiscovered(PageDiscovered {
            job_id: job,
            url: page.clone(),
            depth: 0,
            referrer: None,
            occurred_at: at(t + 1),
        }),
        Event::PageFailed(PageFailed {
            job_id: job,
            url: page,
            depth: 0,
            reason: PageFailure::Timeout,
            detail: "slow".into(),
            http_status: None,
            occurred_at: at(t + 2),
        }),
    ]
}

/// The job's status; `None` also while the stage has not created the schema yet.
async fn status(pool: &PgPool, job: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM jobs WHERE job_id = $1")
        .bind(job)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
}

async fn wait_status(pool: &PgPool, job: Uuid, want: &str) {
    let became = wait_until(Duration::from_secs(30), || async {
        status(pool, job).await.as_deref() == Some(want)
    })
    .await;
    assert!(became, "job {job} never became {want}");
}

fn start(bus: &Bus, config: &Config) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let token = CancellationToken::new();
    let (bus, config, t) = (bus.clone(), config.clone(), token.clone());
    (
        token,
        tokio::spawn(async move { run(bus, config, t).await.expect("index stage") }),
    )
}

async fn stop(token: CancellationToken, task: tokio::task::JoinHandle<()>) {
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stage stops promptly")
        .expect("stage task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stage_projects_announces_survives_outages_and_resumes() {
    let (mut pg, nats) = (Postgres::start().await, NatsServer::start().await);
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let db_url = pg.fresh_db().await;
    let config = Config {
        database_url: db_url.clone(),
        batch_size: 4,
        batch_wait_ms: 20,
        ..Config::default()
    };
    let mut announced = bus.client.subscribe("imgcrawl.>").await.unwrap();

    let events = job_l();
    bus.publisher().publish_all(&events[..3]).await.unwrap();
    let poison = bus
        .js
        .publish("imgcrawl.page.fetched", "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    bus.publisher().publish_all(&events[3..]).await.unwrap();
    let (token, task) = start(&bus, &config);
    let pool = imgcrawl_index::connect(&db_url).await.unwrap();
    wait_status(&pool, L, "completed").await;

    // What the stage published, in order: the dead letter, then indexed, then completed.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|s: &String| s == "imgcrawl.crawl.completed")
    {
        let m = tokio::time::timeout(Duration::from_secs(10), announced.next())
            .await
            .expect("announcement")
            .unwrap();
        if m.subject.as_str() == "imgcrawl.dlq.index-postgres" {
            let dl: DeadLetter = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(dl.stream_sequence, poison.sequence);
        }
        if m.subject.as_str() == "imgcrawl.crawl.completed" {
            let c: CrawlCompleted = serde_json::from_slice(&m.payload).unwrap();
            assert_eq!(
                (c.job_id, c.status, c.images_stored, c.occurred_at),
                (L, CompletionStatus::Completed, 1, at(6))
            );
        }
        seen.push(m.subject.to_string());
    }
    let pos = |s: &str| seen.iter().position(|x| x == s);
    assert!(
        pos("imgcrawl.dlq.index-postgres").is_some(),
        "poison is dead-lettered: {seen:?}"
    );
    assert!(
        pos("imgcrawl.images.indexed") < pos("imgcrawl.crawl.completed"),
        "{seen:?}"
    );

    // PostgreSQL goes down while events arrive: the stage retries and catches up.
    pg.kill();
    bus.publisher()
        .publish_all(&one_page_job(M, "https://m.test/", 10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.start_again().await.expect("postgres starts again");
    wait_status(&pool, M, "completed").await;
    stop(token, task).await;
    let cp = read_checkpoint(&pool, "postgres").await.unwrap().unwrap();
    assert!(
        cp.last_seq >= poison.sequence + 3,
        "the checkpoint passed the poison: {cp:?}"
    );

    // While the stage is down, more events arrive; a new run resumes from the checkpoint.
    bus.publisher()
        .publish_all(&one_page_job(N, "https://n.test/", 20))
        .await
        .unwrap();
    let pages_before: i64 = sqlx::query_scalar("SELECT count(*) FROM pages")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (token, task) = start(&bus, &config);
    wait_status(&pool, N, "completed").await;
    let pages_after: i64 = sqlx::query_scalar("SELECT count(*) FROM pages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        pages_after,
        pages_before + 1,
        "nothing from the first run was applied twice"
    );

    // The database loses everything under the running stage (a failover to an empty
    // standby): the stage notices its checkpoint went back and rebuilds from the log.
    sqlx::query("TRUNCATE jobs, job_stops, pages, images, image_tombstones, image_sources, rejections, projection_checkpoint")
        .execute(&pool)
        .await
        .unwrap();
    bus.publisher()
        .publish_all(&one_page_job(P, "https://p.test/", 30))
        .await
        .unwrap();
    for job in [L, M, N, P] {
        wait_status(&pool, job, "completed").await;
    }
    stop(token, task).await;
    let counters: (i64, i64) =
        sqlx::query_as("SELECT pages_fetched, images_stored FROM jobs WHERE job_id = $1")
            .bind(L)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(counters, (1, 1));
    let pages: i64 = sqlx::query_scalar("SELECT count(*) FROM pages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pages, 4);
}
