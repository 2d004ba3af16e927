//! Consistency checks: every node's projection digested with the index's `verify`
//! library (row count, latest record, id range, content digest per table) and
//! compared **at the same checkpoint**, since same checkpoint ⇒ same digests.
//!
//! Nodes at the same checkpoint are compared with each other. A node alone at its
//! checkpoint (the nodes are moving, or it is the only healthy one) is compared with a
//! reference: a database `imgcrawl_ha_reference` on the server of the best healthy
//! node, replayed from the stream with `until` = that node's checkpoint. The reference
//! only moves forward, so it is replayed incrementally (only the events since the last
//! check); a node behind it is reported as not compared and is compared by a later
//! check. Before digesting, the check waits a little for the checkpoints to meet.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use imgcrawl_bus::ha::Node;
use imgcrawl_index::verify::{self, ProjectionDigest};
use imgcrawl_index::{read_checkpoint, IndexError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::health::Health;
use crate::report::{Diff, NodeReport, Report};
use crate::state::Shared;

mod reference;

pub use reference::REFERENCE_DB;

fn node_report(name: &str, d: Option<&ProjectionDigest>) -> NodeReport {
    NodeReport {
        name: name.to_string(),
        checkpoint: d.map(|d| d.checkpoint),
        compared_with: None,
        identical: None,
        rows: d.map(|d| d.tables.iter().map(|t| t.rows).sum()),
        differences: Vec::new(),
        note: None,
    }
}

pub(crate) fn compared(
    r: &mut NodeReport,
    with: &str,
    left: &ProjectionDigest,
    right: &ProjectionDigest,
) {
    let diffs = verify::compare(left, right);
    r.compared_with = Some(with.to_string());
    r.identical = Some(diffs.is_empty());
    r.differences = diffs
        .into_iter()
        .map(|d| Diff {
            table: d.table,
            check: d.check.to_string(),
            left: d.left,
            right: d.right,
        })
        .collect();
}

pub(crate) async fn digest_of(
    url: &str,
    checkpoint_name: &str,
) -> Result<ProjectionDigest, IndexError> {
    let pool = imgcrawl_index::connect(url).await?;
    let d = verify::digest(&pool, checkpoint_name, None).await;
    pool.close().await;
    d
}

/// Waits (up to `max`) for the nodes' checkpoints to be equal.
async fn converge(nodes: &[Node], checkpoint_name: &str, max: Duration) {
    let deadline = tokio::time::Instant::now() + max;
    loop {
        let mut seen = Vec::new();
        for n in nodes {
            let read = async {
                let pool = imgcrawl_index::connect(&n.url).await.ok()?;
                let cp = read_checkpoint(&pool, checkpoint_name).await.ok().flatten();
                pool.close().await;
                Some(cp.map(|c| c.last_seq))
            };
            if let Ok(Some(cp)) = tokio::time::timeout(Duration::from_secs(5), read).await {
                seen.push(cp);
            }
        }
        seen.sort();
        seen.dedup();
        if seen.len() <= 1 || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The healthy nodes, best priority first.
fn healthy(shared: &Shared) -> Vec<Node> {
    let i = shared.lock();
    let up = |n: &&Node| {
        i.nodes
            .iter()
            .any(|s| s.name == n.name && s.health == Health::Up)
    };
    let mut nodes: Vec<Node> = shared.config.nodes.iter().filter(up).cloned().collect();
    nodes.sort_by_key(|n| (n.priority, n.name.clone()));
    nodes
}

/// Digests every node; a node that cannot be digested gets a note.
async fn digest_all(
    nodes: &[Node],
    name: &str,
) -> (Vec<Option<ProjectionDigest>>, Vec<NodeReport>) {
    let mut digests = Vec::new();
    let mut reports = Vec::new();
    for n in nodes {
        match digest_of(&n.url, name).await {
            Ok(d) => {
                reports.push(node_report(&n.name, Some(&d)));
                digests.push(Some(d));
            }
            Err(e) => {
                let mut r = node_report(&n.name, None);
                r.note = Some(format!("digest failed: {e}"));
                reports.push(r);
                digests.push(None);
            }
        }
    }
    (digests, reports)
}

/// Compares the nodes that share a checkpoint; returns those alone at theirs.
fn compare_groups(digests: &[Option<ProjectionDigest>], reports: &mut [NodeReport]) -> Vec<usize> {
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, d) in digests.iter().enumerate() {
        if let Some(d) = d {
            groups.entry(d.checkpoint).or_default().push(i);
        }
    }
    let mut alone = Vec::new();
    for members in groups.values() {
        let (Some((&base, rest)), Some(b)) = (
            members.split_first(),
            members.first().and_then(|&m| digests[m].as_ref()),
        ) else {
            continue;
        };
        if rest.is_empty() {
            alone.push(base);
            continue;
        }
        let mut all = true;
        for &o in rest {
            if let Some(od) = &digests[o] {
                let with = reports[base].name.clone();
                compared(&mut reports[o], &with, od, b);
                all &= reports[o].identical == Some(true);
            }
        }
        reports[base].compared_with = Some(reports[rest[0]].name.clone());
        reports[base].identical = Some(all);
    }
    alone
}

/// Runs one consistency check over the healthy nodes.
pub(crate) async fn check(
    shared: &Shared,
    trigger: &str,
    request_id: Option<Uuid>,
    shutdown: &CancellationToken,
) -> Report {
    let started_at = Utc::now();
    let name = shared.config.checkpoint_name.clone();
    let nodes = healthy(shared);
    converge(&nodes, &name, Duration::from_secs(3)).await;
    let (digests, mut reports) = digest_all(&nodes, &name).await;
    let alone = compare_groups(&digests, &mut reports);
    if !alone.is_empty() && shared.config.consistency_reference {
        reference::compare(shared, &nodes, &digests, &alone, &mut reports, shutdown).await;
    } else {
        for &i in &alone {
            reports[i].note = Some("alone at its checkpoint; reference replay is off".into());
        }
    }
    let different = reports.iter().any(|r| r.identical == Some(false));
    let incomplete = reports.is_empty() || reports.iter().any(|r| r.identical.is_none());
    let status = match (different, incomplete) {
        (true, _) => "different",
        (false, true) => "incomplete",
        (false, false) => "identical",
    };
    Report {
        id: Uuid::now_v7(),
        request_id,
        trigger: trigger.to_string(),
        started_at,
        finished_at: Utc::now(),
        status: status.to_string(),
        identical: status == "identical",
        nodes: reports,
        by: shared.me.clone(),
    }
}

/// The report of a check abandoned after `limit`.
pub(crate) fn abandoned(
    shared: &Shared,
    trigger: &str,
    request_id: Option<Uuid>,
    limit: Duration,
) -> Report {
    let now = Utc::now();
    Report {
        id: Uuid::now_v7(),
        request_id,
        trigger: trigger.to_string(),
        started_at: now - chrono::Duration::from_std(limit).unwrap_or_default(),
        finished_at: now,
        status: format!("failed: no result within {limit:?}"),
        identical: false,
        nodes: Vec::new(),
        by: shared.me.clone(),
    }
}
