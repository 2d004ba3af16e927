//! Untimed checks that the timed runs did real work: every PostgreSQL replay holds the
//! same projection (`verify` digests), the jobs ended as the history says, and a
//! rebuilt bucket passes `verify_bucket`.

use std::path::Path;

use anyhow::{ensure, Result};
use imgcrawl_bus::Bus;
use serde_json::{json, Value};

/// Compares every database with the first; returns the first's row counts and job
/// statuses.
pub async fn databases(urls: &[String]) -> Result<Value> {
    let Some(first) = urls.first() else {
        return Ok(Value::Null);
    };
    let left = imgcrawl_index::connect(first).await?;
    for other in &urls[1..] {
        let right = imgcrawl_index::connect(other).await?;
        let cmp =
            imgcrawl_index::verify::compare_databases(&left, &right, "postgres", false).await?;
        ensure!(
            cmp.identical(),
            "two replays of one stream differ: {:?}",
            cmp.differences
        );
        right.close().await;
    }
    let rows = imgcrawl_index::verify::row_counts(&left).await?;
    let statuses = imgcrawl_readmodel::jobs::count_by_status(&left).await?;
    left.close().await;
    let rows: serde_json::Map<String, Value> =
        rows.into_iter().map(|(t, n)| (t, json!(n))).collect();
    let statuses: serde_json::Map<String, Value> =
        statuses.into_iter().map(|(s, n)| (s, json!(n))).collect();
    Ok(json!({ "replays_identical": urls.len(), "rows": rows, "jobs_by_status": statuses }))
}

/// Checks the bucket rebuilt into `dir` against the events.
pub async fn bucket(bus: &Bus, dir: &Path) -> Result<Value> {
    let config = imgcrawl_store::Config {
        target: dir.display().to_string(),
        ..imgcrawl_store::Config::default()
    };
    let report = imgcrawl_store::verify_bucket(bus, &config, None, 16).await?;
    ensure!(
        report.identical(),
        "the rebuilt bucket differs from the events: {:?}",
        report.problems.iter().take(5).collect::<Vec<_>>()
    );
    Ok(json!({ "verified_objects": report.ok, "identical": true }))
}
