//! The `images` and `image_tombstones` tables: one row per distinct image (SHA-256).
//!
//! Upserts are commutative, so applying groups in causal order inside a batch gives
//! the rows sequential application gives: `id`, `url` and the other first-download
//! fields come from the lowest sequence, `first_seen_at`/`last_seen_at` are a min/max,
//! `object_key` is set once, and a tombstone always wins: a deleted image stays
//! deleted through replays and later re-downloads.

use std::collections::{HashMap, HashSet};

use imgcrawl_events::{ImageDeleted, ImageDownloaded, ImageIndexed, ImageStored};
use sqlx::PgConnection;

use super::batch::{first_by, Item};
use super::clean::{big, filename, int, opt_text, text, ts};
use super::progress::Progress;
use crate::error::{db, ReadModelError};

/// Upserts the images of sources that just moved to `downloaded` (in sequence order).
/// A known image is rewritten only if the batch changes it (an earlier id, an earlier
/// first or later last sighting): a download that changes nothing writes no row
/// version.
pub(crate) async fn upsert_images(
    c: &mut PgConnection,
    got: Vec<Item<&ImageDownloaded>>,
) -> Result<(), ReadModelError> {
    if got.is_empty() {
        return Ok(());
    }
    let mut span: HashMap<&str, (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> =
        HashMap::new();
    for i in &got {
        let e = span.entry(i.ev.sha256.as_str()).or_insert((i.at, i.at));
        *e = (e.0.min(i.at), e.1.max(i.at));
    }
    let firsts = first_by(got, |e| e.sha256.clone());
    let first_at = firsts
        .iter()
        .map(|i| ts(span[i.ev.sha256.as_str()].0))
        .collect::<Vec<_>>();
    let last_at = firsts
        .iter()
        .map(|i| ts(span[i.ev.sha256.as_str()].1))
        .collect::<Vec<_>>();
    let first = |col: &str| {
        format!("{col} = CASE WHEN EXCLUDED.id < i.id THEN EXCLUDED.{col} ELSE i.{col} END")
    };
    let firsts_sql = [
        "url",
        "filename",
        "bytes",
        "width",
        "height",
        "format",
        "content_type",
    ]
    .map(first)
    .join(", ");
    let sql = format!(
        "INSERT INTO images AS i (sha256, id, url, filename, bytes, width, height, format, content_type,
                                  first_seen_at, last_seen_at, deleted, deleted_at)
         SELECT u.sha256, u.id, u.url, u.filename, u.bytes, u.width, u.height, u.format, u.content_type,
                u.first_at, u.last_at, t.sha256 IS NOT NULL, t.deleted_at
         FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::int4[], $7::int4[], $8::text[],
                     $9::text[], $10::timestamptz[], $11::timestamptz[])
              AS u(sha256, id, url, filename, bytes, width, height, format, content_type, first_at, last_at)
         LEFT JOIN image_tombstones t ON t.sha256 = u.sha256
         ON CONFLICT (sha256) DO UPDATE SET {firsts_sql}, id = LEAST(i.id, EXCLUDED.id),
            first_seen_at = LEAST(i.first_seen_at, EXCLUDED.first_seen_at),
            last_seen_at = GREATEST(i.last_seen_at, EXCLUDED.last_seen_at)
         WHERE EXCLUDED.id < i.id OR EXCLUDED.first_seen_at < i.first_seen_at
            OR EXCLUDED.last_seen_at > i.last_seen_at"
    );
    sqlx::query(&sql)
        .bind(
            firsts
                .iter()
                .map(|i| text(&i.ev.sha256))
                .collect::<Vec<_>>(),
        )
        .bind(firsts.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
        .bind(firsts.iter().map(|i| text(&i.ev.url)).collect::<Vec<_>>())
        .bind(
            firsts
                .iter()
                .map(|i| filename(&i.ev.url))
                .collect::<Vec<_>>(),
        )
        .bind(firsts.iter().map(|i| big(i.ev.bytes)).collect::<Vec<_>>())
        .bind(firsts.iter().map(|i| int(i.ev.width)).collect::<Vec<_>>())
        .bind(firsts.iter().map(|i| int(i.ev.height)).collect::<Vec<_>>())
        .bind(
            firsts
                .iter()
                .map(|i| text(&i.ev.format))
                .collect::<Vec<_>>(),
        )
        .bind(
            firsts
                .iter()
                .map(|i| text(&i.ev.content_type))
                .collect::<Vec<_>>(),
        )
        .bind(first_at)
        .bind(last_at)
        .execute(c)
        .await
        .map_err(db("upsert images"))?;
    Ok(())
}

/// Moves sources from `downloaded` to `stored` (but for `folded`: the store events
/// `images::outcomes` already applied and recorded), sets the images' object keys
/// (first wins) and, if `announce`, returns the sources to announce in `images.indexed`:
/// those transitions whose image is not deleted, in sequence order (none otherwise:
/// the ids are then not read back).
pub(crate) async fn stored<'a>(
    c: &mut PgConnection,
    items: &[Item<&'a ImageStored>],
    folded: Vec<Item<&'a ImageStored>>,
    announce: bool,
    progress: &mut Progress,
) -> Result<Vec<(u64, ImageIndexed)>, ReadModelError> {
    let applied: HashSet<u64> = folded.iter().map(|i| i.seq).collect();
    let items: Vec<&Item<&ImageStored>> =
        items.iter().filter(|i| !applied.contains(&i.seq)).collect();
    let mut done = move_to_stored(c, &items, progress).await?;
    done.extend(folded);
    done.sort_by_key(|i| i.seq);
    let keys = first_by(done.clone(), |e| e.sha256.clone());
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (shas, object_keys) = (
        keys.iter().map(|i| text(&i.ev.sha256)).collect::<Vec<_>>(),
        keys.iter()
            .map(|i| text(&i.ev.object_key))
            .collect::<Vec<_>>(),
    );
    if !announce {
        sqlx::query(
            "UPDATE images i SET object_key = u.object_key
             FROM UNNEST($1::text[], $2::text[]) AS u(sha256, object_key)
             WHERE i.sha256 = u.sha256 AND i.object_key IS NULL",
        )
        .bind(&shas)
        .bind(&object_keys)
        .execute(c)
        .await
        .map_err(db("update image keys"))?;
        return Ok(Vec::new());
    }
    let images: Vec<(String, i64, bool)> = sqlx::query_as(
        "WITH u AS (SELECT * FROM UNNEST($1::text[], $2::text[]) AS u(sha256, object_key)),
              set AS (UPDATE images i SET object_key = u.object_key FROM u
                      WHERE i.sha256 = u.sha256 AND i.object_key IS NULL)
         SELECT i.sha256, i.id, i.deleted FROM images i JOIN u ON i.sha256 = u.sha256",
    )
    .bind(&shas)
    .bind(&object_keys)
    .fetch_all(c)
    .await
    .map_err(db("update image keys"))?;
    let live: HashMap<String, i64> = images
        .into_iter()
        .filter(|(_, _, del)| !del)
        .map(|(s, id, _)| (s, id))
        .collect();
    Ok(done
        .iter()
        .filter_map(|i| {
            let id = *live.get(&i.ev.sha256)?;
            let ev = ImageIndexed {
                job_id: i.ev.job_id,
                url: i.ev.url.clone(),
                sha256: i.ev.sha256.clone(),
                image_id: id,
                occurred_at: i.at,
            };
            Some((i.seq, ev))
        })
        .collect())
}

/// Moves the sources of `items` from `downloaded` to `stored`; returns the items that
/// moved them (recorded as transitions).
async fn move_to_stored<'a>(
    c: &mut PgConnection,
    items: &[&Item<&'a ImageStored>],
    progress: &mut Progress,
) -> Result<Vec<Item<&'a ImageStored>>, ReadModelError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let moved: Vec<(i64,)> = sqlx::query_as(
        "UPDATE image_sources s SET status = 'stored', stored_at = u.at
         FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::timestamptz[]) AS u(job_id, url, seq, at)
         WHERE s.job_id = u.job_id AND s.url = u.url AND s.status = 'downloaded'
         RETURNING u.seq",
    )
    .bind(items.iter().map(|i| i.ev.job_id).collect::<Vec<_>>())
    .bind(items.iter().map(|i| text(&i.ev.url)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .fetch_all(&mut *c)
    .await
    .map_err(db("update stored sources"))?;
    let by_seq: HashMap<i64, &Item<&ImageStored>> =
        items.iter().map(|i| (big(i.seq), *i)).collect();
    let done: Vec<Item<&ImageStored>> = moved
        .iter()
        .filter_map(|(s,)| by_seq.get(s).map(|i| **i))
        .collect();
    for i in &done {
        progress.record(i.ev.job_id, i.seq, i.at, |d| d.images_stored += 1);
    }
    Ok(done)
}

/// Records tombstones (first deletion per SHA-256 wins) and marks the images deleted.
pub(crate) async fn deleted(
    c: &mut PgConnection,
    items: &[Item<&ImageDeleted>],
) -> Result<(), ReadModelError> {
    if items.is_empty() {
        return Ok(());
    }
    let shas: Vec<String> = items.iter().map(|i| text(&i.ev.sha256)).collect();
    sqlx::query(
        "INSERT INTO image_tombstones AS t (sha256, seq, reason, deleted_at)
         SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::timestamptz[])
         ON CONFLICT (sha256) DO UPDATE SET seq = EXCLUDED.seq, reason = EXCLUDED.reason, deleted_at = EXCLUDED.deleted_at
         WHERE EXCLUDED.seq < t.seq",
    )
    .bind(&shas)
    .bind(items.iter().map(|i| big(i.seq)).collect::<Vec<_>>())
    .bind(items.iter().map(|i| opt_text(i.ev.reason.as_deref())).collect::<Vec<_>>())
    .bind(items.iter().map(|i| ts(i.at)).collect::<Vec<_>>())
    .execute(&mut *c)
    .await
    .map_err(db("insert image_tombstones"))?;
    sqlx::query(
        "UPDATE images i SET deleted = true, deleted_at = t.deleted_at
         FROM image_tombstones t
         WHERE t.sha256 = i.sha256 AND i.sha256 = ANY($1)",
    )
    .bind(&shas)
    .execute(c)
    .await
    .map_err(db("mark images deleted"))?;
    Ok(())
}
