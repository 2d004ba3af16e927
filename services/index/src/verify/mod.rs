//! Comparing two PostgreSQL projections: the seed's three consistency checks per table
//! (row count, latest record, id range) plus a content digest, at the same checkpoint.
//!
//! Every projected column comes from the events, so two projections of one stream at
//! one checkpoint are identical row for row; any difference is a real one. The digest
//! of a table is the SHA-256 over the sorted MD5s of its rows' text renderings (all
//! columns, in name order, rendered in UTC), read in one snapshot with the checkpoint.
//! This module is a library on purpose: `imgcrawl verify` uses it, and so can an HA
//! watcher's periodic consistency check.

mod scratch;

use std::collections::BTreeMap;

use imgcrawl_readmodel::digest as read;
use sqlx::PgPool;

use crate::IndexError;

pub use imgcrawl_readmodel::digest::{ProjectionDigest, Schema, TableDigest};
pub use scratch::{against_replay, ScratchDatabase};

/// One thing that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The table (or `projection_meta` for the stream).
    pub table: String,
    /// Which check: `table`, `columns`, `rows`, `latest record`, `id range`, `digest`
    /// or `stream`.
    pub check: &'static str,
    /// The value on the left.
    pub left: String,
    /// The value on the right.
    pub right: String,
}

/// The result of comparing two projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The left projection.
    pub left: ProjectionDigest,
    /// The right projection.
    pub right: ProjectionDigest,
    /// What differs (empty: identical).
    pub differences: Vec<Difference>,
    /// What was left out on purpose (columns or tables only one side has, when
    /// comparing the common columns of two schema versions).
    pub notes: Vec<String>,
}

impl Comparison {
    /// Whether the projections are identical.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }
}

/// Digests the projection in `pool` whose checkpoint is `checkpoint_name`; with
/// `only`, just those tables and columns.
pub async fn digest(
    pool: &PgPool,
    checkpoint_name: &str,
    only: Option<&Schema>,
) -> Result<ProjectionDigest, IndexError> {
    Ok(read::read(pool, checkpoint_name, only).await?)
}

/// The projected tables of a database and their columns.
pub async fn schema(pool: &PgPool) -> Result<Schema, IndexError> {
    Ok(read::schema(pool).await?)
}

/// Row counts of every projected table, by name.
pub async fn row_counts(pool: &PgPool) -> Result<Vec<(String, i64)>, IndexError> {
    Ok(read::row_counts(pool).await?)
}

/// The tables and columns both schemas have, and notes on what only one has.
pub fn common_schema(left: &Schema, right: &Schema) -> (Schema, Vec<String>) {
    let mut common = Schema::new();
    let mut notes = Vec::new();
    for (table, cols) in left {
        let Some(other) = right.get(table) else {
            notes.push(format!("table {table} only on the left"));
            continue;
        };
        let shared: Vec<String> = cols.iter().filter(|c| other.contains(c)).cloned().collect();
        for c in cols.iter().filter(|c| !other.contains(c)) {
            notes.push(format!("column {table}.{c} only on the left"));
        }
        for c in other.iter().filter(|c| !cols.contains(c)) {
            notes.push(format!("column {table}.{c} only on the right"));
        }
        common.insert(table.clone(), shared);
    }
    for table in right.keys().filter(|t| !left.contains_key(*t)) {
        notes.push(format!("table {table} only on the right"));
    }
    (common, notes)
}

/// Compares two databases' projections named `checkpoint_name`. Refuses
/// ([`IndexError::CheckpointsDiffer`]) unless both are at the same checkpoint. With
/// `common_columns`, only the tables and columns both have are compared and the rest
/// is listed in [`Comparison::notes`] (comparing a new schema version with the old).
pub async fn compare_databases(
    left: &PgPool,
    right: &PgPool,
    checkpoint_name: &str,
    common_columns: bool,
) -> Result<Comparison, IndexError> {
    let (only, notes) = if common_columns {
        let (l, r) = (schema(left).await?, schema(right).await?);
        let (common, notes) = common_schema(&l, &r);
        (Some(common), notes)
    } else {
        (None, Vec::new())
    };
    let l = digest(left, checkpoint_name, only.as_ref()).await?;
    let r = digest(right, checkpoint_name, only.as_ref()).await?;
    compared(l, r, notes)
}

/// [`compare`] after checking that the checkpoints agree.
pub(crate) fn compared(
    left: ProjectionDigest,
    right: ProjectionDigest,
    notes: Vec<String>,
) -> Result<Comparison, IndexError> {
    if left.checkpoint != right.checkpoint {
        return Err(IndexError::CheckpointsDiffer {
            left: left.checkpoint,
            right: right.checkpoint,
        });
    }
    Ok(Comparison {
        differences: compare(&left, &right),
        left,
        right,
        notes,
    })
}

fn shown<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "none".to_string(), |v| v.to_string())
}

/// At most 200 characters of `s`.
fn short(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Every difference between two digests (checkpoints aside).
pub fn compare(left: &ProjectionDigest, right: &ProjectionDigest) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut diff = |table: &str, check, l: String, r: String| {
        if l != r {
            out.push(Difference {
                table: table.to_string(),
                check,
                left: short(&l),
                right: short(&r),
            });
        }
    };
    diff(
        "projection_meta",
        "stream",
        shown(&left.stream),
        shown(&right.stream),
    );
    let rights: BTreeMap<&str, &TableDigest> =
        right.tables.iter().map(|t| (t.table.as_str(), t)).collect();
    let lefts: BTreeMap<&str, &TableDigest> =
        left.tables.iter().map(|t| (t.table.as_str(), t)).collect();
    for (name, l) in &lefts {
        let Some(r) = rights.get(name) else {
            diff(name, "table", "present".into(), "missing".into());
            continue;
        };
        diff(name, "columns", l.columns.join(", "), r.columns.join(", "));
        diff(name, "rows", l.rows.to_string(), r.rows.to_string());
        diff(name, "latest record", shown(&l.latest), shown(&r.latest));
        let range = |d: &TableDigest| d.id_range.map(|(a, b)| format!("{a}..{b}"));
        diff(name, "id range", shown(&range(l)), shown(&range(r)));
        diff(name, "digest", l.digest.clone(), r.digest.clone());
    }
    for name in rights.keys().filter(|n| !lefts.contains_key(*n)) {
        diff(name, "table", "missing".into(), "present".into());
    }
    out
}

#[cfg(test)]
mod tests;
