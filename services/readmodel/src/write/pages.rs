//! The `pages` table: discoveries and outcomes.

use std::collections::HashMap;

use imgcrawl_events::PageDiscovered;
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{Item, PageOutcome};
use super::clean::{big, int, name, opt_text, text, ts};
use super::progress::Progress;
use crate::error::{db, ReadModelError};

/// Inserts discovered pages; the first discovery of a URL in a job wins, unless a later
/// one is at a smaller link depth: then the page is visited again, and its row is
/// re-opened as that visit's (depth, referrer, discovery time; no outcome) until that
/// visit's outcome, just as if the deeper visit had never been. Each new
/// row is a transition (`pages_discovered`); a row re-opened from `fetched` or `failed`
/// takes its outcome back out of the counts.
pub(crate) async fn discovered(
    c: &mut PgConnection,
    items: &[Item<&PageDiscovered>],
    progress: &mut Progress,
) -> Result<(), ReadModelError> {
    if items.is_empty() {
        return Ok(());
    }
    // One snapshot for the whole statement: `before` sees the rows as they were.
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "WITH u AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::int4[], $5::text[], $6::timestamptz[])
                      AS u(job_id, url, seq, depth, referrer, at)
         ), before AS (
             SELECT p.job_id, p.url, p.status FROM pages p JOIN u USING (job_id, url)
         ), changed AS (
             INSERT INTO pages AS p (job_id, url, seq, depth, referrer, status, discovered_at)
             SELECT u.job_id, u.url, u.seq, u.depth, u.referrer, 'discovered', u.at FROM u
             ON CONFLICT (job_id, url) DO UPDATE SET
                seq = EXCLUDED.seq, depth = EXCLUDED.depth, referrer = EXCLUDED.referrer,
                status = 'discovered', discovered_at = EXCLUDED.discovered_at,
                http_status = NULL, final_url = NULL, title = NULL, failure = NULL,
                detail = NULL, bytes = NULL, links_found = NULL, pages_discovered = NULL,
                images_found = NULL, images_discovered = NULL, fetched_at = NULL
             WHERE EXCLUDED.depth < p.depth
             RETURNING p.job_id, p.url, p.seq
         )
         SELECT changed.seq, before.status FROM changed LEFT JOIN before USING (job_id, url)",
    )
    .bind(items.iter().map(|i| i.ev.job_id).collect::<Vec<Uuid>>())
    .bind(items.iter().map(|i| text(&i.ev.url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| int(i.ev.depth)).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .map(|i| opt_text(i.ev.referrer.as_deref()))
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .fetch_all(c)
    .await
    .map_err(db("insert pages"))?;
    let by_seq: HashMap<i64, &Item<&PageDiscovered>> =
        items.iter().map(|i| (big(i.seq), i)).collect();
    for (seq, before) in rows {
        if let Some(i) = by_seq.get(&seq) {
            progress.record(i.ev.job_id, i.seq, i.at, |d| match before.as_deref() {
                None => d.pages_discovered += 1,
                Some("fetched") => d.pages_fetched -= 1,
                Some("failed") => d.pages_failed -= 1,
                Some(_) => {}
            });
        }
    }
    Ok(())
}

/// One outcome as columns.
struct Row {
    job_id: Uuid,
    url: String,
    depth: i32,
    fetched: bool,
    http_status: Option<i32>,
    final_url: Option<String>,
    title: Option<String>,
    failure: Option<String>,
    detail: Option<String>,
    bytes: Option<i64>,
    counts: [Option<i32>; 4],
}

fn row(o: &PageOutcome<'_>) -> Row {
    match o {
        PageOutcome::Fetched(e) => Row {
            job_id: e.job_id,
            url: text(&e.url),
            depth: int(e.depth),
            fetched: true,
            http_status: Some(i32::from(e.status)),
            final_url: Some(text(&e.final_url)),
            title: opt_text(e.title.as_deref()),
            failure: None,
            detail: None,
            bytes: Some(big(e.bytes)),
            counts: [
                e.links_found,
                e.pages_discovered,
                e.images_found,
                e.images_discovered,
            ]
            .map(|n| Some(int(n))),
        },
        PageOutcome::Failed(e) => Row {
            job_id: e.job_id,
            url: text(&e.url),
            depth: int(e.depth),
            fetched: false,
            http_status: e.http_status.map(i32::from),
            final_url: None,
            title: None,
            failure: Some(name(&e.reason)),
            detail: Some(text(&e.detail)),
            bytes: None,
            counts: [None; 4],
        },
    }
}

/// Records page outcomes. A page moves from `discovered` to `fetched` or `failed` once
/// per visit: only the outcome of the visit at the row's depth counts, and a later
/// outcome of the same visit changes nothing. An outcome of a page never
/// discovered creates it (counted as discovered too, so the counts still balance).
pub(crate) async fn outcomes(
    c: &mut PgConnection,
    items: &[Item<PageOutcome<'_>>],
    progress: &mut Progress,
) -> Result<(), ReadModelError> {
    if items.is_empty() {
        return Ok(());
    }
    let rows: Vec<Row> = items.iter().map(|i| row(&i.ev)).collect();
    let count = |k: usize| rows.iter().map(|r| r.counts[k]).collect::<Vec<_>>();
    let returned: Vec<(Uuid, String, i64, String)> = sqlx::query_as(
        "INSERT INTO pages AS p (job_id, url, seq, depth, status, http_status, final_url, title, failure, detail, bytes,
                                 links_found, pages_discovered, images_found, images_discovered, discovered_at, fetched_at)
         SELECT u.job_id, u.url, u.seq, u.depth, CASE WHEN u.fetched THEN 'fetched' ELSE 'failed' END, u.http_status,
                u.final_url, u.title, u.failure, u.detail, u.bytes, u.c0, u.c1, u.c2, u.c3, u.at, u.at
         FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::int4[], $5::bool[], $6::int4[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::int8[], $12::int4[], $13::int4[], $14::int4[], $15::int4[], $16::timestamptz[])
              AS u(job_id, url, seq, depth, fetched, http_status, final_url, title, failure, detail, bytes, c0, c1, c2, c3, at)
         ON CONFLICT (job_id, url) DO UPDATE SET
            status = EXCLUDED.status, http_status = EXCLUDED.http_status, final_url = EXCLUDED.final_url,
            title = EXCLUDED.title, failure = EXCLUDED.failure, detail = EXCLUDED.detail, bytes = EXCLUDED.bytes,
            links_found = EXCLUDED.links_found, pages_discovered = EXCLUDED.pages_discovered,
            images_found = EXCLUDED.images_found, images_discovered = EXCLUDED.images_discovered,
            fetched_at = EXCLUDED.fetched_at
         WHERE p.status = 'discovered' AND p.depth = EXCLUDED.depth
         RETURNING p.job_id, p.url, p.seq, p.status",
    )
    .bind(rows.iter().map(|r| r.job_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.url.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.depth).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fetched).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.http_status).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.final_url.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.title.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.failure.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.detail.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.bytes).collect::<Vec<_>>())
    .bind(count(0))
    .bind(count(1))
    .bind(count(2))
    .bind(count(3))
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .fetch_all(c)
    .await
    .map_err(db("upsert page outcomes"))?;
    let by_key: HashMap<(Uuid, &str), &Item<PageOutcome<'_>>> = rows
        .iter()
        .zip(items)
        .map(|(r, i)| ((r.job_id, r.url.as_str()), i))
        .collect();
    for (job, url, row_seq, status) in returned {
        let Some(i) = by_key.get(&(job, url.as_str())) else {
            continue;
        };
        let created = row_seq == big(i.seq);
        progress.record(job, i.seq, i.at, |d| {
            d.pages_discovered += i64::from(created);
            if status == "fetched" {
                d.pages_fetched += 1;
            } else {
                d.pages_failed += 1;
            }
        });
    }
    Ok(())
}
