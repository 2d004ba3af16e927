//! The `image_sources` and `rejections` tables: image URLs and their outcomes.
//!
//! An image source (a URL in a job) moves forward only: `discovered` -> `downloaded`
//! | `rejected`, `downloaded` -> `stored`. Rows of `rejections` and `images` follow
//! from real transitions only (the statements' `RETURNING`), so a duplicate outcome
//! outside the stream's dedup window changes nothing, in any batch split.
//!
//! Rows are written once where the batch allows it: a discovery whose outcome follows
//! it in the batch is inserted by the outcome's upsert (with the discovery's columns
//! and sequence), and a download whose `image.stored` is in the batch goes straight
//! to `stored` (the separate update in `catalog::stored` would find the source
//! `downloaded` and move it on, whatever the two sequences). The rows and transitions
//! are those of the separate statements; a replay writes far fewer row versions.

use std::collections::HashMap;

use imgcrawl_events::{ImageDiscovered, ImageDownloaded, ImageRejected, ImageStored};
use sqlx::PgConnection;
use uuid::Uuid;

use super::batch::{ImageOutcome, Item};
use super::clean::{big, name, opt_text, text, ts};
use super::progress::Progress;
use crate::error::{db, ReadModelError};

/// Splits discoveries into those to insert now and those whose outcome follows them in
/// the batch (`outcomes` inserts those rows).
pub(crate) fn split_discoveries<'a>(
    found: &[Item<&'a ImageDiscovered>],
    outcomes: &[Item<ImageOutcome<'_>>],
) -> (
    Vec<Item<&'a ImageDiscovered>>,
    Vec<Item<&'a ImageDiscovered>>,
) {
    let later: HashMap<(Uuid, String), u64> =
        outcomes.iter().map(|o| (o.ev.key(), o.seq)).collect();
    found.iter().copied().partition(|d| {
        let key = (d.ev.job_id, text(&d.ev.url));
        later.get(&key).is_none_or(|&outcome| outcome <= d.seq)
    })
}

/// Inserts discovered image URLs; the first discovery of a URL in a job wins.
pub(crate) async fn discovered(
    c: &mut PgConnection,
    items: &[Item<&ImageDiscovered>],
    progress: &mut Progress,
) -> Result<(), ReadModelError> {
    if items.is_empty() {
        return Ok(());
    }
    let rows: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO image_sources (job_id, url, page_url, alt, found_by, status, seq, discovered_at)
         SELECT u.job_id, u.url, u.page_url, u.alt, u.found_by, 'discovered', u.seq, u.at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::timestamptz[])
              AS u(job_id, url, page_url, alt, found_by, seq, at)
         ON CONFLICT (job_id, url) DO NOTHING
         RETURNING seq",
    )
    .bind(items.iter().map(|i| i.ev.job_id).collect::<Vec<Uuid>>())
    .bind(items.iter().map(|i| text(&i.ev.url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| text(&i.ev.page_url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| opt_text(i.ev.alt.as_deref())).collect::<Vec<_>>())
    .bind(items.iter().map(|i| name(&i.ev.found_by)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .fetch_all(c)
    .await
    .map_err(db("insert image_sources"))?;
    let by_seq: HashMap<i64, &Item<&ImageDiscovered>> =
        items.iter().map(|i| (big(i.seq), i)).collect();
    for (seq,) in rows {
        if let Some(i) = by_seq.get(&seq) {
            progress.record(i.ev.job_id, i.seq, i.at, |d| d.images_discovered += 1);
        }
    }
    Ok(())
}

/// Columns of one outcome for the `image_sources` upsert.
struct SourceRow {
    job_id: Uuid,
    url: String,
    page_url: String,
    alt: Option<String>,
    found_by: Option<String>,
    sha256: Option<String>,
    final_url: Option<String>,
}

fn source_row(o: &ImageOutcome<'_>) -> SourceRow {
    match o {
        ImageOutcome::Downloaded(e) => SourceRow {
            job_id: e.job_id,
            url: text(&e.url),
            page_url: text(&e.page_url),
            alt: opt_text(e.alt.as_deref()),
            found_by: Some(name(&e.found_by)),
            sha256: Some(text(&e.sha256)),
            final_url: Some(text(&e.final_url)),
        },
        ImageOutcome::Rejected(e) => SourceRow {
            job_id: e.job_id,
            url: text(&e.url),
            page_url: text(&e.page_url),
            alt: None,
            found_by: None,
            sha256: None,
            final_url: None,
        },
    }
}

/// What the outcome upsert writes for a batch's outcomes, row by row (computed
/// without the database).
struct Plan<'s, 'f> {
    rows: Vec<SourceRow>,
    /// The batch's earlier discovery of each row's URL, if any.
    found_of: Vec<Option<Item<&'f ImageDiscovered>>>,
    /// Whether each row is a download (else a rejection).
    downloaded: Vec<bool>,
    /// The batch's `image.stored` of each downloaded row's URL, if any.
    store_of: Vec<Option<Item<&'s ImageStored>>>,
}

/// Matches each outcome with the batch's discovery and store events of its URL.
fn plan<'s, 'f>(
    items: &[Item<ImageOutcome<'_>>],
    found: &[Item<&'f ImageDiscovered>],
    stored: &[Item<&'s ImageStored>],
) -> Plan<'s, 'f> {
    let mut rows: Vec<SourceRow> = items.iter().map(|i| source_row(&i.ev)).collect();
    let founds: HashMap<(Uuid, String), &Item<&ImageDiscovered>> = found
        .iter()
        .map(|d| ((d.ev.job_id, text(&d.ev.url)), d))
        .collect();
    let found_of: Vec<Option<Item<&ImageDiscovered>>> = rows
        .iter()
        .map(|r| founds.get(&(r.job_id, r.url.clone())).map(|d| **d))
        .collect();
    for (r, d) in rows.iter_mut().zip(&found_of) {
        if let Some(d) = d {
            r.page_url = text(&d.ev.page_url);
            r.alt = opt_text(d.ev.alt.as_deref());
            r.found_by = Some(name(&d.ev.found_by));
        }
    }
    let downloaded: Vec<bool> = items
        .iter()
        .map(|i| matches!(i.ev, ImageOutcome::Downloaded(_)))
        .collect();
    let stores: HashMap<(Uuid, String), &Item<&ImageStored>> = stored
        .iter()
        .map(|s| ((s.ev.job_id, text(&s.ev.url)), s))
        .collect();
    let store_of = rows
        .iter()
        .zip(&downloaded)
        .map(|(r, ok)| {
            ok.then(|| stores.get(&(r.job_id, r.url.clone())).map(|s| **s))
                .flatten()
        })
        .collect();
    Plan {
        rows,
        found_of,
        downloaded,
        store_of,
    }
}

/// The upsert of a plan; returns the rows that really moved (job, url, row seq).
async fn upsert(
    c: &mut PgConnection,
    items: &[Item<ImageOutcome<'_>>],
    p: &Plan<'_, '_>,
) -> Result<Vec<(Uuid, String, i64)>, ReadModelError> {
    let rows = &p.rows;
    sqlx::query_as(
        "INSERT INTO image_sources AS s (job_id, url, sha256, page_url, alt, found_by, final_url, status, seq,
                                         discovered_at, downloaded_at, stored_at)
         SELECT u.job_id, u.url, u.sha256, u.page_url, u.alt, u.found_by, u.final_url,
                CASE WHEN u.ok AND u.stored_at IS NOT NULL THEN 'stored' WHEN u.ok THEN 'downloaded' ELSE 'rejected' END,
                u.seq, u.found_at, CASE WHEN u.ok THEN u.at END, u.stored_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[],
                     $9::int8[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
              AS u(job_id, url, sha256, page_url, alt, found_by, final_url, ok, seq, at, stored_at, found_at)
         ON CONFLICT (job_id, url) DO UPDATE SET sha256 = EXCLUDED.sha256, final_url = EXCLUDED.final_url,
            status = EXCLUDED.status, downloaded_at = EXCLUDED.downloaded_at, stored_at = EXCLUDED.stored_at
         WHERE s.status = 'discovered'
         RETURNING s.job_id, s.url, s.seq",
    )
    .bind(rows.iter().map(|r| r.job_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.url.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sha256.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.page_url.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.alt.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.found_by.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.final_url.clone()).collect::<Vec<_>>())
    .bind(&p.downloaded)
    .bind(
        items
            .iter()
            .zip(&p.found_of)
            .map(|(i, d)| big(d.map_or(i.seq, |d| d.seq)))
            .collect::<Vec<_>>(),
    )
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .bind(p.store_of.iter().map(|s| s.map(|s| ts(s.at))).collect::<Vec<_>>())
    .bind(
        items
            .iter()
            .zip(&p.found_of)
            .map(|(i, d)| ts(d.map_or(i.at, |d| d.at)))
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db("upsert image outcomes"))
}

/// What the rows that moved imply: the downloads and rejections to record, the store
/// events folded into the upsert, and the job counters (in `progress`).
struct Moved<'a, 's> {
    got: Vec<Item<&'a ImageDownloaded>>,
    lost: Vec<Item<&'a ImageRejected>>,
    folded: Vec<Item<&'s ImageStored>>,
}

/// Accounts for the rows the upsert `returned` (those that really moved).
fn account<'a, 's>(
    items: &[Item<ImageOutcome<'a>>],
    p: &Plan<'s, '_>,
    returned: Vec<(Uuid, String, i64)>,
    progress: &mut Progress,
) -> Moved<'a, 's> {
    let by_key: HashMap<(Uuid, &str), usize> = p
        .rows
        .iter()
        .enumerate()
        .map(|(n, r)| ((r.job_id, r.url.as_str()), n))
        .collect();
    let mut m = Moved {
        got: Vec::new(),
        lost: Vec::new(),
        folded: Vec::new(),
    };
    for (job, url, row_seq) in returned {
        let Some(&n) = by_key.get(&(job, url.as_str())) else {
            continue;
        };
        let i = &items[n];
        if let Some(d) = p.found_of[n].filter(|d| row_seq == big(d.seq)) {
            progress.record(job, d.seq, d.at, |c| c.images_discovered += 1);
        }
        if let Some(st) = p.store_of[n] {
            progress.record(job, st.seq, st.at, |d| d.images_stored += 1);
            m.folded.push(st);
        }
        let created = row_seq == big(i.seq);
        progress.record(job, i.seq, i.at, |d| {
            d.images_discovered += i64::from(created);
            match i.ev {
                ImageOutcome::Downloaded(e) => {
                    d.images_downloaded += 1;
                    d.bytes_downloaded = d.bytes_downloaded.saturating_add(big(e.bytes));
                }
                ImageOutcome::Rejected(_) => d.images_rejected += 1,
            }
        });
        match i.ev {
            ImageOutcome::Downloaded(e) => m.got.push(Item {
                seq: i.seq,
                at: i.at,
                ev: e,
            }),
            ImageOutcome::Rejected(e) => m.lost.push(Item {
                seq: i.seq,
                at: i.at,
                ev: e,
            }),
        }
    }
    m.got.sort_by_key(|i| i.seq);
    m.lost.sort_by_key(|i| i.seq);
    m
}

/// Records download outcomes: moves sources out of `discovered` (inserting those of
/// `found`, the batch's earlier discoveries of the same URLs, as discovered; downloads
/// whose `image.stored` is in `stored` straight on to `stored`), then writes the
/// rejections and images those transitions imply. Returns the store events applied
/// that way (their transitions recorded). Planning and accounting are pure ([`plan`],
/// [`account`]); the statements are [`upsert`], `rejections` and the catalog's.
pub(crate) async fn outcomes<'a>(
    c: &mut PgConnection,
    items: &[Item<ImageOutcome<'_>>],
    found: &[Item<&ImageDiscovered>],
    stored: &[Item<&'a ImageStored>],
    progress: &mut Progress,
) -> Result<Vec<Item<&'a ImageStored>>, ReadModelError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let p = plan(items, found, stored);
    let returned = upsert(c, items, &p).await?;
    let moved = account(items, &p, returned, progress);
    rejections(c, &moved.lost).await?;
    super::catalog::upsert_images(c, moved.got).await?;
    Ok(moved.folded)
}

/// Inserts the rejections of sources that just moved to `rejected`.
async fn rejections(
    c: &mut PgConnection,
    items: &[Item<&ImageRejected>],
) -> Result<(), ReadModelError> {
    if items.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO rejections (job_id, url, reason, detail, http_status, page_url, seq, occurred_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::int8[],
                              $8::timestamptz[])
         ON CONFLICT (job_id, url) DO NOTHING",
    )
    .bind(items.iter().map(|i| i.ev.job_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| text(&i.ev.url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| name(&i.ev.reason)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| text(&i.ev.detail)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.ev.http_status.map(i32::from)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| text(&i.ev.page_url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .execute(c)
    .await
    .map_err(db("insert rejections"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use imgcrawl_events::{FoundBy, RejectReason};

    fn at(s: i64) -> chrono::DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600 + s, 0).unwrap()
    }

    fn downloaded(job: Uuid, url: &str) -> ImageDownloaded {
        ImageDownloaded {
            job_id: job,
            url: url.into(),
            final_url: url.into(),
            page_url: "http://a.test/outcome-page".into(),
            alt: None,
            found_by: FoundBy::ImgSrc,
            sha256: "a".repeat(64),
            bytes: 100,
            format: "png".into(),
            width: 1,
            height: 1,
            content_type: "image/png".into(),
            occurred_at: at(0),
        }
    }

    fn rejected(job: Uuid, url: &str) -> ImageRejected {
        ImageRejected {
            job_id: job,
            url: url.into(),
            page_url: "http://a.test/".into(),
            reason: RejectReason::NotAnImage,
            detail: "html".into(),
            http_status: None,
            occurred_at: at(0),
        }
    }

    fn found(job: Uuid, url: &str) -> ImageDiscovered {
        ImageDiscovered {
            job_id: job,
            url: url.into(),
            page_url: "http://a.test/discovery-page".into(),
            alt: Some("a cat".into()),
            found_by: FoundBy::Srcset,
            occurred_at: at(0),
        }
    }

    fn stored(job: Uuid, url: &str) -> ImageStored {
        ImageStored {
            job_id: job,
            url: url.into(),
            sha256: "a".repeat(64),
            object_key: "images/aa/aa/a.png".into(),
            bytes: 100,
            content_type: "image/png".into(),
            occurred_at: at(0),
        }
    }

    fn item<T>(seq: u64, ev: T) -> Item<T> {
        Item {
            seq,
            at: at(seq as i64),
            ev,
        }
    }

    #[test]
    fn a_plan_takes_the_discovery_columns_and_folds_stores_of_downloads_only() {
        let job = Uuid::from_u128(1);
        let (d1, r2) = (
            downloaded(job, "http://a.test/1.png"),
            rejected(job, "http://a.test/2.png"),
        );
        let items = [
            item(5, ImageOutcome::Downloaded(&d1)),
            item(6, ImageOutcome::Rejected(&r2)),
        ];
        let (f1, s1, s2) = (
            found(job, "http://a.test/1.png"),
            stored(job, "http://a.test/1.png"),
            stored(job, "http://a.test/2.png"),
        );
        let founds = [item(3, &f1)];
        let stores = [item(7, &s1), item(8, &s2)];
        let p = plan(&items, &founds, &stores);
        assert_eq!(p.downloaded, [true, false]);
        assert_eq!(p.rows[0].page_url, "http://a.test/discovery-page");
        assert_eq!(p.rows[0].alt.as_deref(), Some("a cat"));
        assert_eq!(p.rows[0].found_by.as_deref(), Some("srcset"));
        assert_eq!(p.rows[0].sha256.as_deref(), Some("a".repeat(64).as_str()));
        assert_eq!(p.found_of[0].map(|d| d.seq), Some(3));
        assert!(p.found_of[1].is_none());
        assert_eq!(p.store_of[0].map(|s| s.seq), Some(7));
        assert!(p.store_of[1].is_none(), "a rejection is never stored");
    }

    #[test]
    fn accounting_counts_only_the_rows_that_moved() {
        let job = Uuid::from_u128(2);
        let (d1, r2, d3) = (
            downloaded(job, "http://a.test/1.png"),
            rejected(job, "http://a.test/2.png"),
            downloaded(job, "http://a.test/3.png"),
        );
        let items = [
            item(10, ImageOutcome::Downloaded(&d1)),
            item(11, ImageOutcome::Rejected(&r2)),
            item(12, ImageOutcome::Downloaded(&d3)),
        ];
        let f1 = found(job, "http://a.test/1.png");
        let s1 = stored(job, "http://a.test/1.png");
        let (founds, stores) = ([item(4, &f1)], [item(13, &s1)]);
        let p = plan(&items, &founds, &stores);
        // 1.png inserted by this upsert with its discovery's seq; 2.png was already
        // discovered earlier (row seq 1); 3.png did not move (a duplicate outcome)
        let returned = vec![
            (job, "http://a.test/1.png".to_string(), 4),
            (job, "http://a.test/2.png".to_string(), 1),
        ];
        let mut progress = Progress::default();
        let m = account(&items, &p, returned, &mut progress);
        assert_eq!(m.got.iter().map(|i| i.seq).collect::<Vec<_>>(), [10]);
        assert_eq!(m.lost.iter().map(|i| i.seq).collect::<Vec<_>>(), [11]);
        assert_eq!(m.folded.iter().map(|i| i.seq).collect::<Vec<_>>(), [13]);
        let d = &progress.get(&job).unwrap().delta;
        assert_eq!(d.images_discovered, 1, "the batch's own discovery, once");
        assert_eq!(
            (d.images_downloaded, d.images_rejected, d.images_stored),
            (1, 1, 1)
        );
        assert_eq!(d.bytes_downloaded, 100);
    }
}
