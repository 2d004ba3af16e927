//! A projection without a crawl: synthetic `crawl.requested`, `image.downloaded` and
//! `image.stored` events (no bytes anywhere) that the real index stage applies.

use chrono::Utc;
use imgcrawl_bus::Bus;
use sqlx::PgPool;

use super::ApiServer;
use imgcrawl_events::{CrawlRequested, Event, FoundBy, ImageDownloaded, ImageStored};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The two events of synthetic image `i` of `job`: downloaded, then stored. Sizes
/// spread over 2 kB..62 kB, four formats.
pub fn image_events(job: Uuid, i: usize) -> [Event; 2] {
    const FORMATS: [(&str, &str, &str); 4] = [
        ("jpeg", "image/jpeg", "jpg"),
        ("png", "image/png", "png"),
        ("webp", "image/webp", "webp"),
        ("gif", "image/gif", "gif"),
    ];
    let sha = hex::encode(Sha256::digest(format!("synthetic image {i}").as_bytes()));
    let (format, content_type, ext) = FORMATS[i % FORMATS.len()];
    let url = format!("https://synthetic.example/img/{i}.{ext}");
    let now = Utc::now();
    let bytes = 2_000 + (i as u64 * 7919) % 60_000;
    [
        Event::ImageDownloaded(ImageDownloaded {
            job_id: job,
            url: url.clone(),
            final_url: url.clone(),
            page_url: format!("https://synthetic.example/p/{}.html", i / 10),
            alt: None,
            found_by: FoundBy::ImgSrc,
            sha256: sha.clone(),
            bytes,
            format: format.into(),
            width: 64 + (i as u32 * 31) % 900,
            height: 64 + (i as u32 * 17) % 700,
            content_type: content_type.into(),
            occurred_at: now,
        }),
        Event::ImageStored(ImageStored {
            job_id: job,
            url,
            object_key: format!("images/{}/{sha}.{ext}", &sha[0..2]),
            sha256: sha,
            bytes,
            content_type: content_type.into(),
            occurred_at: now,
        }),
    ]
}

/// Publishes a job request and `count` synthetic images in it; returns the job id.
pub async fn publish_images(bus: &Bus, count: usize) -> Uuid {
    let job = Uuid::now_v7();
    let req = CrawlRequested {
        job_id: Some(job),
        url: Some("https://synthetic.example/".into()),
        occurred_at: Some(Utc::now()),
        ..Default::default()
    };
    let publisher = bus.publisher();
    publisher
        .publish(&Event::CrawlRequested(req))
        .await
        .expect("publish the request");
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<Event> = chunk.iter().flat_map(|i| image_events(job, *i)).collect();
        publisher.publish_all(&batch).await.expect("publish images");
    }
    job
}

/// A pool on `url` with the index's migrations applied.
pub async fn migrated(url: &str) -> PgPool {
    let pool = imgcrawl_index::connect(url).await.expect("connect");
    imgcrawl_index::migrate(&pool).await.expect("migrate");
    pool
}

/// Images with an object key (stored and indexed).
pub async fn stored(db: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("select count(*) from images where object_key is not null")
        .fetch_one(db)
        .await
        .map_or(0, |n| n as usize)
}

/// The ids `GET /api/images` lists (one page of up to 500).
pub async fn listed(api: &ApiServer) -> Vec<i64> {
    let r = api.get("/api/images", "/api/images?limit=500").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let page = r.json();
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}
