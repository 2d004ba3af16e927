//! Images as the index holds them: filtered keyset pages and one image (for the API
//! and the gallery), and a job's images (for `imgcrawl images`). Deleted images (and
//! images not in the bucket yet) are never listed. Sources and pages of an image are
//! in [`crate::sources`].

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::error::{db, ReadModelError};

/// The host of a URL in SQL: scheme, optional userinfo, then up to a port, path, query
/// or fragment.
const HOST_OF_URL: &str =
    "lower(substring(s.url from '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^:/?#]+)'))";

/// Orders of a listing; every order is a keyset on a unique key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Highest id first (the id grows with the stream).
    #[default]
    Newest,
    /// Lowest id first.
    Oldest,
    /// Largest files first (ties by id).
    Largest,
    /// Smallest files first (ties by id).
    Smallest,
}

/// Where the previous page ended: the sort key of its last image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// `bytes` of the last image (ignored by the id orders).
    pub bytes: i64,
    /// `id` of the last image.
    pub id: i64,
}

/// Validated filters of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFilter {
    /// A source in this job.
    pub job: Option<Uuid>,
    /// A source URL on this host (lowercase).
    pub host: Option<String>,
    /// One of these formats.
    pub formats: Vec<String>,
    /// Width range.
    pub width: (Option<i32>, Option<i32>),
    /// Height range.
    pub height: (Option<i32>, Option<i32>),
    /// Size range.
    pub bytes: (Option<i64>, Option<i64>),
    /// `first_seen_at` in `[since, until)`.
    pub since: Option<DateTime<Utc>>,
    /// See `since`.
    pub until: Option<DateTime<Utc>>,
}

/// One `images` row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ImageRow {
    /// Id.
    pub id: i64,
    /// SHA-256.
    pub sha256: String,
    /// First URL.
    pub url: String,
    /// File name.
    pub filename: Option<String>,
    /// Size.
    pub bytes: i64,
    /// Width.
    pub width: i32,
    /// Height.
    pub height: i32,
    /// Format.
    pub format: String,
    /// Content type.
    pub content_type: String,
    /// First download.
    pub first_seen_at: DateTime<Utc>,
    /// Latest download.
    pub last_seen_at: DateTime<Utc>,
    /// Bucket key.
    pub object_key: Option<String>,
    /// Tombstoned.
    pub deleted: bool,
}

const COLUMNS: &str =
    "i.id, i.sha256, i.url, i.filename, i.bytes, i.width, i.height, i.format, i.content_type,
    i.first_seen_at, i.last_seen_at, i.object_key, i.deleted";

fn range<'a, T>(q: &mut QueryBuilder<'a, Postgres>, col: &str, r: (Option<T>, Option<T>))
where
    T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
{
    if let Some(min) = r.0 {
        q.push(format!(" AND {col} >= ")).push_bind(min);
    }
    if let Some(max) = r.1 {
        q.push(format!(" AND {col} <= ")).push_bind(max);
    }
}

fn push_filters<'a>(q: &mut QueryBuilder<'a, Postgres>, f: &'a ImageFilter) {
    if !f.formats.is_empty() {
        q.push(" AND i.format = ANY(")
            .push_bind(&f.formats)
            .push(")");
    }
    range(q, "i.width", f.width);
    range(q, "i.height", f.height);
    range(q, "i.bytes", f.bytes);
    if let Some(t) = f.since {
        q.push(" AND i.first_seen_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND i.first_seen_at < ").push_bind(t);
    }
    if f.job.is_some() || f.host.is_some() {
        q.push(" AND EXISTS (SELECT 1 FROM image_sources s WHERE s.sha256 = i.sha256 AND s.status IN ('downloaded', 'stored')");
        if let Some(job) = f.job {
            q.push(" AND s.job_id = ").push_bind(job);
        }
        if let Some(host) = &f.host {
            q.push(format!(" AND {HOST_OF_URL} = ")).push_bind(host);
        }
        q.push(")");
    }
}

fn push_keyset(q: &mut QueryBuilder<'_, Postgres>, sort: Order, after: Option<After>) {
    if let Some(c) = after {
        match sort {
            Order::Newest => q.push(" AND i.id < ").push_bind(c.id),
            Order::Oldest => q.push(" AND i.id > ").push_bind(c.id),
            Order::Largest => q
                .push(" AND (i.bytes, i.id) < (")
                .push_bind(c.bytes)
                .push(", ")
                .push_bind(c.id)
                .push(")"),
            Order::Smallest => q
                .push(" AND (i.bytes, i.id) > (")
                .push_bind(c.bytes)
                .push(", ")
                .push_bind(c.id)
                .push(")"),
        };
    }
    q.push(match sort {
        Order::Newest => " ORDER BY i.id DESC",
        Order::Oldest => " ORDER BY i.id ASC",
        Order::Largest => " ORDER BY i.bytes DESC, i.id DESC",
        Order::Smallest => " ORDER BY i.bytes ASC, i.id ASC",
    });
}

/// The statement of a listing page: `prefix` (e.g. `EXPLAIN `, empty to run it), then
/// the live, stored images matching `filter` after `after` in `sort` order, at most
/// `limit + 1` (the extra row says whether more follow). Values are bound: filters
/// first, then the keyset, then the limit.
pub fn list_query<'a>(
    prefix: &str,
    filter: &'a ImageFilter,
    sort: Order,
    after: Option<After>,
    limit: u32,
) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "{prefix}SELECT {COLUMNS} FROM images i WHERE NOT i.deleted AND i.object_key IS NOT NULL"
    ));
    push_filters(&mut q, filter);
    push_keyset(&mut q, sort, after);
    q.push(" LIMIT ").push_bind(i64::from(limit) + 1);
    q
}

/// One page of live, stored images after `after`, and whether more follow.
pub async fn list(
    pool: &PgPool,
    filter: &ImageFilter,
    sort: Order,
    after: Option<After>,
    limit: u32,
) -> Result<(Vec<ImageRow>, bool), ReadModelError> {
    let mut q = list_query("", filter, sort, after, limit);
    let mut rows: Vec<ImageRow> = q
        .build_query_as()
        .fetch_all(pool)
        .await
        .map_err(db("list images"))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// The image with `id`, deleted or not.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<ImageRow>, ReadModelError> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM images i WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db("read image"))
}

/// How many live, stored images the index holds (the ones listings show).
pub async fn count_live(pool: &PgPool) -> Result<i64, ReadModelError> {
    sqlx::query_scalar("SELECT count(*) FROM images WHERE NOT deleted AND object_key IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(db("count images"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_keysets_build_one_parameterised_statement() {
        let f = ImageFilter {
            job: Some(Uuid::nil()),
            host: Some("cdn.example.org".into()),
            formats: vec!["png".into()],
            width: (Some(10), None),
            bytes: (None, Some(99)),
            ..Default::default()
        };
        let mut q = QueryBuilder::new("SELECT 1 FROM images i WHERE true");
        push_filters(&mut q, &f);
        let c = After { bytes: 5, id: 7 };
        push_keyset(&mut q, Order::Largest, Some(c));
        let sql = q.sql();
        assert!(sql.contains("i.format = ANY($1)"), "{sql}");
        assert!(
            sql.contains("i.width >= $2") && sql.contains("i.bytes <= $3"),
            "{sql}"
        );
        assert!(
            sql.contains("s.job_id = $4") && sql.contains("= $5)"),
            "{sql}"
        );
        assert!(sql.contains("(i.bytes, i.id) < ($6, $7)"), "{sql}");
        assert!(sql.ends_with("ORDER BY i.bytes DESC, i.id DESC"), "{sql}");
        assert!(
            !sql.contains("cdn.example.org"),
            "values are bound, never inlined"
        );
    }
}
