//! A projection's digest, for `imgcrawl verify` and the HA consistency check: per table, the row count, the latest record, the id
//! range and a content digest, all in one read-only snapshot together with the
//! checkpoint, so a running writer cannot move them apart.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::error::{db, ReadModelError};
use crate::meta::RecordedStream;

/// Tables that are not projected rows: the migrations' bookkeeping, the writers'
/// positions and the stream identity (compared on their own).
/// Tables and their columns (sorted by name).
pub type Schema = BTreeMap<String, Vec<String>>;

/// One table's consistency figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    /// Table name.
    pub table: String,
    /// The columns digested, by name.
    pub columns: Vec<String>,
    /// Row count.
    pub rows: i64,
    /// The column used for the latest record and the id range (`id`, `seq` or
    /// `request_seq`), if the table has one.
    pub id_column: Option<String>,
    /// The row with the highest id, as text.
    pub latest: Option<String>,
    /// Lowest and highest id.
    pub id_range: Option<(i64, i64)>,
    /// Content digest (hex SHA-256).
    pub digest: String,
}

/// A projection's digest at its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionDigest {
    /// The checkpoint (last applied sequence; 0 if none).
    pub checkpoint: u64,
    /// The stream it projects, as recorded.
    pub stream: Option<RecordedStream>,
    /// Per table, by name.
    pub tables: Vec<TableDigest>,
}

const NOT_ROWS: [&str; 3] = [
    "_sqlx_migrations",
    "projection_checkpoint",
    "projection_meta",
];

/// Columns tried, in order, as a table's id (the seed's "latest record" and "id range").
const ID_COLUMNS: [&str; 3] = ["id", "seq", "request_seq"];

/// `"name"`, quoted for SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The projected tables of the `public` schema and their columns (sorted by name).
async fn schema_of(c: &mut PgConnection) -> Result<Schema, ReadModelError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text
         FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(db("read schema"))?;
    let mut schema: Schema = BTreeMap::new();
    for (table, column) in rows {
        if !NOT_ROWS.contains(&table.as_str()) {
            schema.entry(table).or_default().push(column);
        }
    }
    Ok(schema)
}

/// Digests the projection in `pool` whose checkpoint is `checkpoint_name`; with
/// `only`, just those tables and columns.
pub async fn read(
    pool: &PgPool,
    checkpoint_name: &str,
    only: Option<&Schema>,
) -> Result<ProjectionDigest, ReadModelError> {
    let mut tx = pool.begin().await.map_err(db("begin"))?;
    for set in [
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "SET LOCAL TimeZone = 'UTC'",
        "SET LOCAL DateStyle = 'ISO, YMD'",
        "SET LOCAL IntervalStyle = 'postgres'",
        "SET LOCAL extra_float_digits = 1",
    ] {
        sqlx::query(set)
            .execute(&mut *tx)
            .await
            .map_err(db("set digest session"))?;
    }
    let checkpoint = crate::checkpoint::read(&mut *tx, checkpoint_name).await?;
    let stream = crate::meta::read(&mut *tx).await?;
    let schema = match only {
        Some(s) => s.clone(),
        None => schema_of(&mut tx).await?,
    };
    let mut tables = Vec::with_capacity(schema.len());
    for (table, columns) in &schema {
        tables.push(table_digest(&mut tx, table, columns).await?);
    }
    tx.commit().await.map_err(db("commit"))?;
    Ok(ProjectionDigest {
        checkpoint: checkpoint.map_or(0, |c| c.last_seq),
        stream,
        tables,
    })
}

/// One table's checks.
async fn table_digest(
    c: &mut PgConnection,
    table: &str,
    columns: &[String],
) -> Result<TableDigest, ReadModelError> {
    let t = ident(table);
    let row = format!(
        "ROW({})::text",
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
        .fetch_one(&mut *c)
        .await
        .map_err(db("count rows"))?;
    let id = ID_COLUMNS
        .iter()
        .find(|id| columns.iter().any(|c| c == *id))
        .map(|id| ident(id));
    let (mut latest, mut id_range) = (None, None);
    if let Some(id) = &id {
        latest = sqlx::query_scalar(&format!(
            "SELECT {row} FROM {t} ORDER BY {id} DESC, {row} COLLATE \"C\" DESC LIMIT 1"
        ))
        .fetch_optional(&mut *c)
        .await
        .map_err(db("read latest record"))?;
        let range: (Option<i64>, Option<i64>) = sqlx::query_as(&format!(
            "SELECT min({id})::bigint, max({id})::bigint FROM {t}"
        ))
        .fetch_one(&mut *c)
        .await
        .map_err(db("read id range"))?;
        id_range = range.0.zip(range.1);
    }
    Ok(TableDigest {
        table: table.to_string(),
        columns: columns.to_vec(),
        rows,
        id_column: id.map(|i| i.trim_matches('"').to_string()),
        latest,
        id_range,
        digest: content_digest(c, &t, &row).await?,
    })
}

/// SHA-256 over the sorted MD5s of the rows' text renderings: every column counts,
/// the physical row order does not, and the client holds one row at a time.
async fn content_digest(
    c: &mut PgConnection,
    t: &str,
    row: &str,
) -> Result<String, ReadModelError> {
    let sql = format!("SELECT h FROM (SELECT md5({row}) AS h FROM {t}) r ORDER BY h COLLATE \"C\"");
    let mut hashes = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *c);
    let mut hasher = Sha256::new();
    while let Some(h) = hashes.try_next().await.map_err(db("digest rows"))? {
        hasher.update(h.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The projected tables of a database and their columns.
pub async fn schema(pool: &PgPool) -> Result<Schema, ReadModelError> {
    let mut c = pool.acquire().await.map_err(db("acquire"))?;
    schema_of(&mut c).await
}

/// Row counts of every projected table, by name.
pub async fn row_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, ReadModelError> {
    let mut c = pool.acquire().await.map_err(db("acquire"))?;
    let schema = schema_of(&mut c).await?;
    let mut out = Vec::with_capacity(schema.len());
    for table in schema.keys() {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", ident(table)))
            .fetch_one(&mut *c)
            .await
            .map_err(db("count rows"))?;
        out.push((table.clone(), n));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("images"), "\"images\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
