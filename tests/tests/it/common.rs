//! Assertions shared by the end-to-end tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use imgcrawl_events::EventKind;
use imgcrawl_tests::pipeline::RawEvent;
use imgcrawl_tests::sitegen::{Expected, SiteServer};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// The full URL of an expected image.
pub fn image_url(server: &SiteServer, path: &str, alt: bool) -> String {
    if alt {
        server.alt_url(path)
    } else {
        server.url(path)
    }
}

/// (url, sha256) of every stored image source of `job`.
pub async fn stored_sources(db: &PgPool, job: Uuid) -> BTreeSet<(String, String)> {
    sqlx::query("select url, sha256 from image_sources where job_id = $1 and status = 'stored'")
        .bind(job)
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.get("url"),
                r.get::<Option<String>, _>("sha256").unwrap_or_default(),
            )
        })
        .collect()
}

/// (url, sha256) a correct crawl stores.
pub fn expected_sources(server: &SiteServer, expected: &Expected) -> BTreeSet<(String, String)> {
    expected
        .images
        .iter()
        .map(|i| (image_url(server, &i.url_path, i.alt_host), i.sha256.clone()))
        .collect()
}

/// Asserts the index holds exactly the expected images, each with the right format,
/// dimensions and size, byte-identical URLs merged into one image.
pub async fn assert_images(db: &PgPool, job: Uuid, server: &SiteServer, expected: &Expected) {
    let got = stored_sources(db, job).await;
    let want = expected_sources(server, expected);
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nunexpected {extra:#?}"
    );
    for img in &expected.images {
        let r = sqlx::query(
            "select format, width, height, bytes, deleted from images where sha256 = $1",
        )
        .bind(&img.sha256)
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(
            r.get::<String, _>("format"),
            img.format.name(),
            "{}",
            img.url_path
        );
        assert_eq!(
            r.get::<i32, _>("width") as u32,
            img.width,
            "{}",
            img.url_path
        );
        assert_eq!(
            r.get::<i32, _>("height") as u32,
            img.height,
            "{}",
            img.url_path
        );
        assert_eq!(
            r.get::<i64, _>("bytes") as u64,
            img.bytes,
            "{}",
            img.url_path
        );
        assert!(!r.get::<bool, _>("deleted"));
    }
    // one images row per distinct sha256, sources merged
    for (sha, sources) in expected.sources_by_sha256() {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from image_sources where job_id = $1 and sha256 = $2",
        )
        .bind(job)
        .bind(sha)
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(n as usize, sources.len(), "sources of {sha}");
    }
    let distinct: i64 = sqlx::query_scalar(
        "select count(distinct i.sha256) from images i join image_sources s on s.sha256 = i.sha256 where s.job_id = $1",
    )
    .bind(job)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(distinct as usize, expected.distinct_sha256().len());
}

/// (url, reason) of every rejection of `job`.
pub async fn rejections(db: &PgPool, job: Uuid) -> BTreeSet<(String, String)> {
    sqlx::query("select url, reason from rejections where job_id = $1")
        .bind(job)
        .fetch_all(db)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("url"), r.get("reason")))
        .collect()
}

/// (url, reason) a correct crawl rejects.
pub fn expected_rejections(server: &SiteServer, expected: &Expected) -> BTreeSet<(String, String)> {
    expected
        .rejected
        .iter()
        .map(|r| {
            (
                server.url(&r.url_path),
                serde_json::to_value(r.reason)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

/// Asserts the bucket holds each distinct image exactly once, under a key ending in
/// `<sha256>.<ext>`, with bytes hashing to that sha256.
pub fn assert_bucket(dir: &Path, expected: &Expected) {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().to_string();
        let sha = name.split('.').next().unwrap().to_string();
        let bytes = std::fs::read(&entry).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            sha,
            "content of {}",
            entry.display()
        );
        *found.entry(sha).or_default() += 1;
    }
    let want: BTreeSet<&str> = expected.distinct_sha256();
    let got: BTreeSet<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(got, want, "bucket objects");
    assert!(
        found.values().all(|n| *n == 1),
        "each image stored once: {found:?}"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The highest stream sequence among the subjects the index applies.
pub fn last_applied_seq(events: &[RawEvent]) -> u64 {
    events
        .iter()
        .filter(|e| EventKind::from_subject(&e.subject).is_some_and(|k| !k.is_index_output()))
        .map(|e| e.seq)
        .max()
        .unwrap_or(0)
}

/// The index's checkpoint.
pub async fn checkpoint(db: &PgPool) -> u64 {
    let s: i64 =
        sqlx::query_scalar("select last_seq from projection_checkpoint where name = 'postgres'")
            .fetch_one(db)
            .await
            .unwrap();
    s as u64
}

/// Row counts and counters that must not move when events are replayed or duplicated.
pub async fn fingerprint(db: &PgPool) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in ["jobs", "pages", "images", "image_sources", "rejections"] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {t}"))
            .fetch_one(db)
            .await
            .unwrap();
        out.push((t.to_string(), n));
    }
    let r = sqlx::query(
        "select sum(pages_discovered)::bigint a, sum(pages_fetched)::bigint b, sum(pages_failed)::bigint c, sum(images_discovered)::bigint d,
                sum(images_downloaded)::bigint e, sum(images_rejected)::bigint f, sum(images_stored)::bigint g, sum(bytes_downloaded)::bigint h
         from jobs",
    )
    .fetch_one(db)
    .await
    .unwrap();
    for c in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        out.push((
            format!("counter {c}"),
            r.get::<Option<i64>, _>(c).unwrap_or(0),
        ));
    }
    let digest: Option<String> = sqlx::query_scalar(
        "select md5(string_agg(sha256 || ':' || id || ':' || url || ':' || coalesce(object_key,''), '|' order by sha256)) from images",
    )
    .fetch_one(db)
    .await
    .unwrap();
    out.push((digest.unwrap_or_default(), 0));
    out
}
