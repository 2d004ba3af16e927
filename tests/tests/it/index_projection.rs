//! The index projection against a real PostgreSQL: batch splits, replays, duplicates,
//! completion.

use crate::index_common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use imgcrawl_events::{CompletionStatus, CrawlCompleted, Event, IndexedImage};
use imgcrawl_index::{
    apply_batch, apply_batch_through, apply_batch_with, read_checkpoint, BatchEffects, Sourced,
};
use imgcrawl_tests::Postgres;
use sqlx::PgPool;
use uuid::Uuid;

use index_common::fresh_pool;
use index_common::stream::*;

const TABLES: [&str; 8] = [
    "jobs",
    "job_stops",
    "pages",
    "images",
    "image_tombstones",
    "image_sources",
    "rejections",
    "projection_checkpoint",
];

async fn apply(pool: &PgPool, batch: &[Sourced]) -> BatchEffects {
    let mut tx = pool.begin().await.unwrap();
    let effects = apply_batch(&mut tx, "postgres", batch).await.unwrap();
    tx.commit().await.unwrap();
    effects
}

/// Applies every batch; returns all completions (sorted) and indexed events (in order).
async fn apply_all(
    pool: &PgPool,
    batches: &[Vec<Sourced>],
) -> (Vec<CrawlCompleted>, Vec<IndexedImage>) {
    let (mut done, mut indexed) = (Vec::new(), Vec::new());
    for b in batches {
        let e = apply(pool, b).await;
        done.extend(e.completed);
        indexed.extend(e.indexed);
    }
    done.sort_by_key(|c| (c.occurred_at, c.job_id));
    (done, indexed)
}

async fn digest(pool: &PgPool, table: &str) -> String {
    let sql = format!(
        "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
    );
    sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap()
}

async fn digests(pool: &PgPool) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, digest(pool, t).await);
    }
    out
}

#[tokio::test]
async fn any_batch_split_gives_identical_rows_and_effects() {
    let pg = Postgres::start().await;
    let events = stream();
    let one = fresh_pool(&pg).await;
    let whole = apply_all(&one, std::slice::from_ref(&events)).await;
    let expected = digests(&one).await;
    let single: Vec<Vec<Sourced>> = events.iter().map(|e| vec![e.clone()]).collect();
    let mut splits = vec![("one event per batch", single)];
    for seed in [7, 42, 2026, 99_991] {
        splits.push(("random split", random_split(&events, seed, 9)));
    }
    for (name, batches) in splits {
        let pool = fresh_pool(&pg).await;
        let got = apply_all(&pool, &batches).await;
        assert_eq!(
            digests(&pool).await,
            expected,
            "{name}: {} batches",
            batches.len()
        );
        assert_eq!(got, whole, "{name}: effects differ");
    }
}

#[tokio::test]
async fn a_batch_that_announces_nothing_writes_the_same_rows() {
    let pg = Postgres::start().await;
    let events = stream();
    let announced = fresh_pool(&pg).await;
    let (_, indexed) = apply_all(&announced, std::slice::from_ref(&events)).await;
    assert!(!indexed.is_empty(), "the stream stores images");
    let expected = digests(&announced).await;
    for seed in [7, 2026] {
        let pool = fresh_pool(&pg).await;
        for b in random_split(&events, seed, 9) {
            let mut tx = pool.begin().await.unwrap();
            let e = apply_batch_with(&mut tx, "postgres", &b, 0, false)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert!(e.indexed.is_empty(), "nothing to announce, nothing built");
        }
        assert_eq!(digests(&pool).await, expected, "split seed {seed}");
    }
}

#[tokio::test]
async fn projected_rows_carry_no_foreign_keys_and_orphans_write_none() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let keys: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(keys, 0, "the writer checks jobs itself (write::batch)");
    // Without the keys, only the writer keeps rows of unknown jobs out.
    let events = stream();
    let job = events
        .iter()
        .find_map(|s| match &s.event {
            Event::CrawlRequested(r) => r.job_id,
            _ => None,
        })
        .unwrap();
    let orphans: Vec<Sourced> = events
        .iter()
        .filter(|s| s.event.job_id() == Some(job) && !matches!(s.event, Event::CrawlRequested(_)))
        .cloned()
        .collect();
    assert!(!orphans.is_empty());
    let e = apply(&pool, &orphans).await;
    assert!(e.applied.orphans > 0, "dropped as orphans");
    for table in ["pages", "image_sources", "rejections", "images"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}: rows of a job never requested");
    }
}

#[tokio::test]
async fn a_download_that_changes_no_image_writes_no_row_version() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let job = Uuid::from_u128(0x19);
    let download = |seq: u64, url: &str, at: u64| {
        let e = Event::ImageDownloaded(imgcrawl_events::ImageDownloaded {
            job_id: job,
            url: url.into(),
            final_url: url.into(),
            page_url: "http://a.test/".into(),
            alt: None,
            found_by: imgcrawl_events::FoundBy::ImgSrc,
            sha256: X.into(),
            bytes: 1000,
            format: "jpeg".into(),
            width: 10,
            height: 20,
            content_type: "image/jpeg".into(),
            occurred_at: t(at),
        });
        Sourced::new(STREAM, seq, published(seq), e)
    };
    let request = Event::CrawlRequested(imgcrawl_events::CrawlRequested {
        job_id: Some(job),
        url: Some("http://a.test/".into()),
        ..Default::default()
    });
    let db = &pool;
    let version = move || async move {
        let row: (String, DateTime<Utc>) =
            sqlx::query_as("SELECT xmin::text, last_seen_at FROM images WHERE sha256 = $1")
                .bind(X)
                .fetch_one(db)
                .await
                .unwrap();
        row
    };
    apply(
        &pool,
        &[
            Sourced::new(STREAM, 1, published(1), request),
            download(2, "http://a.test/1.jpg", 5),
        ],
    )
    .await;
    let first = version().await;
    // the same bytes again, seen at a time inside the known span: nothing to change
    apply(&pool, &[download(3, "http://a.test/2.jpg", 5)]).await;
    assert_eq!(
        version().await,
        first,
        "an upsert that changes nothing writes nothing"
    );
    // seen later: last_seen_at moves, so the row is written
    apply(&pool, &[download(4, "http://a.test/3.jpg", 9)]).await;
    let later = version().await;
    assert_ne!(later.0, first.0);
    assert_eq!(later.1, t(9));
}

#[tokio::test]
async fn updated_tables_leave_room_for_hot_updates() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let options: Vec<(String, Vec<String>)> = sqlx::query_as(
        "SELECT relname::text, coalesce(reloptions, '{}') FROM pg_class
         WHERE relname IN ('images', 'image_sources') ORDER BY relname",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        options,
        [
            (
                "image_sources".to_string(),
                vec!["fillfactor=80".to_string()]
            ),
            ("images".to_string(), vec!["fillfactor=50".to_string()]),
        ]
    );
}

type Ts = Option<DateTime<Utc>>;
type JobRow = (String, Ts, Ts, i64, i64, i64, i64, i64, i64, i64, i64, i64);
type ImageRow = (
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    bool,
    Ts,
    DateTime<Utc>,
    DateTime<Utc>,
);

/// A job's status, stopped_at, completed_at, counters and last_seq.
async fn job(pool: &PgPool, id: Uuid) -> (String, Ts, Ts, [i64; 8], i64) {
    let r: JobRow = sqlx::query_as(
        "SELECT status, stopped_at, completed_at, pages_discovered, pages_fetched, pages_failed, images_discovered,
                images_downloaded, images_rejected, images_stored, bytes_downloaded, last_seq FROM jobs WHERE job_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap();
    (
        r.0,
        r.1,
        r.2,
        [r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10],
        r.11,
    )
}

#[tokio::test]
async fn the_projection_holds_what_the_events_say() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let effects = apply(&pool, &stream()).await;
    assert_eq!(
        (
            effects.applied.checkpoint,
            effects.applied.orphans,
            effects.applied.outputs
        ),
        (45, 1, 2)
    );
    assert!(effects.invalid.is_empty(), "{:?}", effects.invalid);

    // A: 2 pages (fetched, failed), 3 image URLs (2 stored with the same bytes, 1 rejected).
    let a = job(&pool, A).await;
    assert_eq!(
        (a.0.as_str(), a.1, a.2),
        ("completed", None, Some(t(20))),
        "a stop after completion changes nothing"
    );
    assert_eq!(a.3, [2, 1, 1, 3, 2, 1, 2, 2000]);
    assert_eq!(a.4, 40, "last_seq is the job's last applied event");
    let jb = job(&pool, b()).await;
    assert_eq!(
        (jb.0.as_str(), jb.1, jb.2),
        ("stopped", Some(t(19)), Some(t(24)))
    );
    let d = job(&pool, D).await;
    assert_eq!(
        (d.0.as_str(), d.2),
        ("completed", Some(t(34))),
        "completed at the first balanced moment"
    );
    assert_eq!(
        d.3,
        [1, 1, 0, 2, 2, 0, 1, 2000],
        "the late download still counts"
    );
    let e = job(&pool, E).await;
    assert_eq!(
        (e.0.as_str(), e.1, e.2),
        ("stopped", Some(t(35)), Some(t(38))),
        "a stop before the request applies"
    );
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE job_id = $1")
        .bind(C)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(orphans, 0);

    // B's request had neither job id nor occurred_at: derived id, publish time.
    let (requested_at, seeds): (DateTime<Utc>, Vec<String>) =
        sqlx::query_as("SELECT requested_at, seeds FROM jobs WHERE job_id = $1")
            .bind(b())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (requested_at, seeds),
        (published(8), vec!["https://b.test/".to_string()])
    );

    // One image row per sha; id and url from the first download; tombstones win.
    let rows: Vec<ImageRow> =
        sqlx::query_as("SELECT sha256, id, url, filename, object_key, deleted, deleted_at, first_seen_at, last_seen_at FROM images ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 3);
    let x = &rows[0];
    assert_eq!(
        (x.0.as_str(), x.1, x.2.as_str(), x.3.as_deref()),
        (X, 9, "https://a.test/img/one.jpg", Some("one.jpg"))
    );
    assert_eq!(
        (x.4.as_deref(), x.5, x.6),
        (Some(format!("images/{X}.jpg").as_str()), true, Some(t(27)))
    );
    assert_eq!(
        (x.7, x.8),
        (t(9), t(33)),
        "the re-download after deletion is seen but does not resurrect"
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].5, rows[1].6),
        (Y, true, Some(t(23))),
        "deleted before it was stored"
    );
    assert_eq!(
        (rows[2].0.as_str(), rows[2].5, rows[2].4.as_deref()),
        (Z, false, None)
    );

    let sources: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT url, status, sha256 FROM image_sources WHERE job_id = $1 ORDER BY seq",
    )
    .bind(A)
    .fetch_all(&pool)
    .await
    .unwrap();
    let statuses: Vec<&str> = sources.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(statuses, ["stored", "stored", "rejected"]);
    let rejections: Vec<(String, String)> =
        sqlx::query_as("SELECT url, reason FROM rejections WHERE job_id = $1")
            .bind(A)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rejections,
        vec![(
            "https://a.test/img/broken.png".to_string(),
            "not_an_image".to_string()
        )]
    );
    let title: Option<String> =
        sqlx::query_scalar("SELECT title FROM pages WHERE job_id = $1 AND url = 'https://a.test/'")
            .bind(A)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        title.as_deref(),
        Some("Home"),
        "NUL characters are dropped, not fatal"
    );

    // Effects: both stored sources of A are announced; nothing for deleted images.
    let indexed: Vec<(String, i64, DateTime<Utc>)> = effects
        .indexed
        .iter()
        .map(|i| (i.url.clone(), i.image_id, i.stored_at))
        .collect();
    assert_eq!(
        indexed,
        vec![
            ("https://a.test/img/one.jpg".into(), 9, t(13)),
            ("https://cdn.test/x/one%20copy.jpg".into(), 9, t(20))
        ]
    );
    let done: BTreeMap<Uuid, (CompletionStatus, DateTime<Utc>)> = effects
        .completed
        .iter()
        .map(|c| (c.job_id, (c.status, c.occurred_at)))
        .collect();
    let want = BTreeMap::from([
        (A, (CompletionStatus::Completed, t(20))),
        (b(), (CompletionStatus::Stopped, t(24))),
        (D, (CompletionStatus::Completed, t(34))),
        (E, (CompletionStatus::Stopped, t(38))),
    ]);
    assert_eq!(done, want);
    let a_done = effects.completed.iter().find(|c| c.job_id == A).unwrap();
    assert_eq!(
        (
            a_done.pages_fetched,
            a_done.pages_failed,
            a_done.images_stored,
            a_done.images_rejected,
            a_done.bytes
        ),
        (1, 1, 2, 1, 2000)
    );
    let events = effects.events(true);
    match events.first() {
        Some(Event::ImagesIndexed(a)) => {
            assert_eq!(
                a.images, effects.indexed,
                "one announcement, every source in order"
            );
            assert_eq!(a.checkpoint, effects.applied.checkpoint);
        }
        other => panic!("the batch's announcement comes first, got {other:?}"),
    }
    assert!(matches!(events.last(), Some(Event::CrawlCompleted(_))));
    assert_eq!(events.len(), 5, "one announcement and four completions");
    assert_eq!(effects.events(false).len(), 4);
}

/// The first discovery of a URL in a job wins, also when a later duplicate and the
/// outcome share its batch (the outcome's upsert writes the discovery's columns).
#[tokio::test]
async fn the_first_discovery_wins_in_any_batch() {
    let pg = Postgres::start().await;
    let events = stream();
    let at = |seq: u64| events.iter().position(|e| e.seq == seq).unwrap();
    let (first, outcome) = (at(43), at(45));
    for batches in [
        vec![&events[..]],
        vec![&events[..first], &events[first..=outcome]],
        vec![&events[..=first], &events[first + 1..=outcome]],
    ] {
        let pool = fresh_pool(&pg).await;
        for b in &batches {
            apply(&pool, b).await;
        }
        let row: (String, i64, String) = sqlx::query_as(
            "select page_url, seq, status from image_sources where job_id = $1 and url = $2",
        )
        .bind(F)
        .bind("https://f.test/a.png")
        .fetch_one(&pool)
        .await
        .unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.len()).collect();
        assert_eq!(
            row,
            ("https://f.test/".to_string(), 43, "rejected".to_string()),
            "batches of {sizes:?}"
        );
    }
}

#[tokio::test]
async fn reapplying_applied_events_changes_nothing() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let events = stream();
    let n = events.len();
    apply(&pool, &events[..30]).await;
    let overlap = apply(&pool, &events[20..]).await;
    assert_eq!(
        (overlap.applied.skipped, overlap.applied.applied),
        (10, n - 30)
    );
    let before = digests(&pool).await;
    let again = apply(&pool, &events).await;
    assert_eq!(
        (
            again.applied.skipped,
            again.applied.applied,
            again.applied.checkpoint
        ),
        (n, 0, n as u64)
    );
    assert!(again.completed.is_empty() && again.indexed.is_empty());
    assert_eq!(digests(&pool).await, before);

    let reference = fresh_pool(&pg).await;
    apply(&reference, &events).await;
    assert_eq!(
        digests(&reference).await,
        before,
        "an overlapping redelivery equals one clean pass"
    );
}

#[tokio::test]
async fn duplicates_with_new_sequences_do_not_move_counters() {
    let pg = Postgres::start().await;
    let base = fresh_pool(&pg).await;
    let events = stream();
    apply(&base, &events).await;
    let dup = fresh_pool(&pg).await;
    apply(&dup, &events).await;
    // Every event again, published later with new sequences (outside the dedup window),
    // in a few batches.
    let again: Vec<Sourced> = events
        .iter()
        .map(|s| sourced(s.seq + 100, s.event.clone()))
        .collect();
    let effects: Vec<BatchEffects> = {
        let mut v = Vec::new();
        for b in random_split(&again, 5, 7) {
            v.push(apply(&dup, &b).await);
        }
        v
    };
    assert!(
        effects
            .iter()
            .all(|e| e.completed.is_empty() && e.indexed.is_empty()),
        "nothing completes or is indexed twice"
    );
    for t in [
        "job_stops",
        "pages",
        "images",
        "image_tombstones",
        "image_sources",
        "rejections",
    ] {
        assert_eq!(digest(&dup, t).await, digest(&base, t).await, "{t} changed");
    }
    for id in [A, b(), D, E] {
        let (x, y) = (job(&base, id).await, job(&dup, id).await);
        assert_eq!(
            (x.0, x.1, x.2, x.3),
            (y.0, y.1, y.2, y.3),
            "job {id} changed"
        );
        assert!(y.4 > 100, "last_seq still follows the applied events");
    }
}

#[tokio::test]
async fn completion_is_detected_at_its_event() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let mut seen: BTreeMap<Uuid, (u64, CrawlCompleted)> = BTreeMap::new();
    for s in stream() {
        for c in apply(&pool, std::slice::from_ref(&s)).await.completed {
            assert!(
                seen.insert(c.job_id, (s.seq, c)).is_none(),
                "a job completed twice"
            );
        }
    }
    let at: BTreeMap<Uuid, u64> = seen.iter().map(|(j, (s, _))| (*j, *s)).collect();
    assert_eq!(at, BTreeMap::from([(A, 20), (b(), 24), (D, 34), (E, 38)]));
    for (seq, c) in seen.values() {
        assert_eq!(c.occurred_at, t(*seq));
    }
    assert_eq!(seen[&b()].1.status, CompletionStatus::Stopped);
}

#[tokio::test]
async fn the_checkpoint_passes_over_non_events_and_is_locked_per_batch() {
    let pg = Postgres::start().await;
    let pool = fresh_pool(&pg).await;
    let events = stream();
    let mut tx = pool.begin().await.unwrap();
    let e = apply_batch_through(&mut tx, "standby", &events[..5], 9)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(e.applied.checkpoint, 9);
    let cp = read_checkpoint(&pool, "standby").await.unwrap().unwrap();
    assert_eq!((cp.last_seq, cp.updated_at), (9, Some(published(5))));
    assert!(
        read_checkpoint(&pool, "postgres").await.unwrap().is_none(),
        "checkpoints are per name"
    );
    let mut tx = pool.begin().await.unwrap();
    let e = apply_batch(&mut tx, "standby", &events[..9]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (e.applied.skipped, e.applied.applied),
        (9, 0),
        "sequences 6..=9 were passed over"
    );
}

#[tokio::test]
async fn a_page_found_again_nearer_the_seed_is_visited_again_in_any_batch_split() {
    let pg = Postgres::start().await;
    let events: Vec<Sourced> = revisit_events()
        .into_iter()
        .enumerate()
        .map(|(i, e)| sourced(i as u64 + 1, e))
        .collect();
    let single: Vec<Vec<Sourced>> = events.iter().map(|e| vec![e.clone()]).collect();
    let mut splits = vec![("whole", vec![events.clone()]), ("one by one", single)];
    for seed in [3, 17, 2026] {
        splits.push(("random split", random_split(&events, seed, 4)));
    }
    let mut first: Option<BTreeMap<&'static str, String>> = None;
    for (name, batches) in splits {
        let pool = fresh_pool(&pg).await;
        let (done, _) = apply_all(&pool, &batches).await;
        let row: (i32, String, i64, Option<String>) = sqlx::query_as(
            "SELECT depth, status, seq, referrer FROM pages WHERE job_id = $1 AND url = $2",
        )
        .bind(G)
        .bind(GX)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            row,
            (1, "fetched".to_string(), 5, Some(G0.to_string())),
            "{name}: the row follows the nearest visit"
        );
        let (status, _, completed_at, counters, _) = job(&pool, G).await;
        assert_eq!(status, "completed", "{name}");
        assert_eq!(
            &counters[..3],
            &[3, 2, 1],
            "{name}: pages discovered, fetched, failed"
        );
        assert_eq!(
            completed_at,
            Some(index_common::stream::t(11)),
            "{name}: completed at the near visit's outcome, not before"
        );
        assert_eq!(done.len(), 1, "{name}: one completion");
        let d = digests(&pool).await;
        match &first {
            None => first = Some(d),
            Some(f) => assert_eq!(&d, f, "{name}: identical rows"),
        }
    }
}
