//! Reading a projection's digest: per table, the row count, the latest record, the id
//! range and a content digest, all in one read-only snapshot together with the
//! checkpoint, so a running writer cannot move them apart.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::{ProjectionDigest, Schema, TableDigest};
use crate::error::{db, IndexError};

/// Tables that are not projected rows: the migrations' bookkeeping, the writers'
/// positions and the stream identity (compared on their own).
const NOT_ROWS: [&str; 3] = [
    "_sqlx_migrations",
    "projection_checkpoint",
    "projection_meta",
];

/// Columns tried, in order, as a table's id (the seed's "latest record" and "id range").
const ID_COLUMNS: [&str; 3] = ["id", "seq", "request_seq"];

/// `"name"`, quoted for SQL.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The projected tables of the `public` schema and their columns (sorted by name).
pub(super) async fn schema_of(c: &mut PgConnection) -> Result<Schema, IndexError> {
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

/// Digests every table of `schema` (only the listed columns).
pub(super) async fn read(
    pool: &PgPool,
    checkpoint_name: &str,
    only: Option<&Schema>,
) -> Result<ProjectionDigest, IndexError> {
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
    let checkpoint: Option<i64> =
        sqlx::query_scalar("SELECT last_seq FROM projection_checkpoint WHERE name = $1")
            .bind(checkpoint_name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("read checkpoint"))?;
    let stream: Option<(
        String,
        Option<String>,
        Option<chrono::DateTime<chrono::Utc>>,
    )> = sqlx::query_as("SELECT stream, stream_id, stream_created FROM projection_meta")
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("read projection meta"))?;
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
        checkpoint: checkpoint.map_or(0, |s| u64::try_from(s).unwrap_or(0)),
        stream: stream.map(|(stream, id, created)| crate::RecordedStream {
            stream,
            id,
            created,
        }),
        tables,
    })
}

/// One table's checks.
async fn table_digest(
    c: &mut PgConnection,
    table: &str,
    columns: &[String],
) -> Result<TableDigest, IndexError> {
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
async fn content_digest(c: &mut PgConnection, t: &str, row: &str) -> Result<String, IndexError> {
    let sql = format!("SELECT h FROM (SELECT md5({row}) AS h FROM {t}) r ORDER BY h COLLATE \"C\"");
    let mut hashes = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *c);
    let mut hasher = Sha256::new();
    while let Some(h) = hashes.try_next().await.map_err(db("digest rows"))? {
        hasher.update(h.as_bytes());
        hasher.update(b"\n");
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Row counts of every projected table.
pub(super) async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, IndexError> {
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
