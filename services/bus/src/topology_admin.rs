//! The operator's side of the topology (`imgcrawl topology show|apply`): read what
//! exists, compare it with a [`BusConfig`] ([`crate::topology_diff`]) and, when asked,
//! change it. A starting process never does this ([`crate::topology::ensure`]).

use async_nats::jetstream::{self, stream};

use crate::patience::patiently;
use crate::topology::{self, ensure_kv, stream_info};
use crate::topology_diff::{diff, targets, updated, Change, Field, Target, Verdict};
use crate::{ha, hosts, tombstones, BusConfig, BusError};

/// One stream or bucket: what the configuration asks, what exists, the differences.
#[derive(Debug, Clone)]
pub struct Report {
    /// The stream or bucket and what the configuration asks of it.
    pub target: Target,
    /// What exists (none: missing).
    pub current: Option<stream::Info>,
    /// The differences (empty when missing or up to date).
    pub changes: Vec<Change>,
}

/// Reads every stream and bucket of the topology and compares it with `cfg`.
pub async fn inspect(js: &jetstream::Context, cfg: &BusConfig) -> Result<Vec<Report>, BusError> {
    let mut out = Vec::new();
    for target in targets(cfg) {
        let current = patiently("stream info", || stream_info(js, &target.stream)).await?;
        let changes = current
            .as_ref()
            .map(|i| compare(i, &target))
            .unwrap_or_default();
        out.push(Report {
            target,
            current,
            changes,
        });
    }
    Ok(out)
}

/// Whether the stream lives on a standalone server (not a JetStream cluster).
pub fn standalone(info: &stream::Info) -> bool {
    info.cluster
        .as_ref()
        .and_then(|c| c.name.as_ref())
        .is_none()
}

/// A standalone server keeps one copy whatever `num_replicas` says (it even stores
/// the number it was given): compare with one, and replicas cannot change there.
fn compare(info: &stream::Info, target: &Target) -> Vec<Change> {
    if !standalone(info) {
        return diff(&info.config, &target.wanted);
    }
    let mut config = info.config.clone();
    config.num_replicas = 1;
    let mut changes = diff(&config, &target.wanted);
    for c in changes.iter_mut().filter(|c| c.field == Field::Replicas) {
        c.verdict = Verdict::CannotChange(STANDALONE);
    }
    changes
}

/// Why replicas cannot change on a standalone server.
pub const STANDALONE: &str =
    "a standalone server keeps one copy: replicas need a JetStream cluster of that many servers";

/// What [`apply`] did to one stream or bucket.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The stream or bucket.
    pub target: Target,
    /// It was missing and was created with the configured settings.
    pub created: bool,
    /// The changes made.
    pub applied: Vec<Change>,
    /// The changes left: they cannot be made in place, or weaken and were not allowed.
    pub skipped: Vec<Change>,
    /// The changes the server accepted but did not make (replicas beyond a standalone
    /// server or a cluster too small); `current` is what it kept.
    pub refused: Vec<Change>,
}

/// Makes the topology what `cfg` says as far as it can: updates existing streams
/// (weakening changes only with `allow_weaker`), creates what is missing.
pub async fn apply(
    js: &jetstream::Context,
    cfg: &BusConfig,
    allow_weaker: bool,
) -> Result<Vec<Applied>, BusError> {
    let mut out = Vec::new();
    let mut missing = false;
    for r in inspect(js, cfg).await? {
        let Some(info) = r.current else {
            missing = true;
            out.push(Applied {
                target: r.target,
                created: true,
                applied: Vec::new(),
                skipped: Vec::new(),
                refused: Vec::new(),
            });
            continue;
        };
        let (applied, skipped): (Vec<Change>, Vec<Change>) =
            r.changes.into_iter().partition(|c| match c.verdict {
                Verdict::Apply => true,
                Verdict::Weakens => allow_weaker,
                Verdict::CannotChange(_) => false,
            });
        let next = updated(&info.config, &r.target.wanted, &applied, allow_weaker);
        let mut refused = Vec::new();
        if next != info.config {
            // the same update again is harmless: retried through an election
            let got = patiently("update stream", || async {
                js.update_stream(next.clone()).await.map_err(|e| {
                    BusError::Topology(format!("update {} {}: {e}", r.target.kind, r.target.name))
                })
            })
            .await?;
            // a standalone server accepts R3 and keeps R1: believe what it reports
            let still = compare(&got, &r.target);
            refused = still
                .into_iter()
                .filter(|c| applied.iter().any(|a| a.field == c.field))
                .collect();
        }
        let applied = applied
            .into_iter()
            .filter(|a| !refused.iter().any(|c| c.field == a.field))
            .collect();
        out.push(Applied {
            target: r.target,
            created: false,
            applied,
            skipped,
            refused,
        });
    }
    if missing {
        create_missing(js, cfg).await?;
    }
    Ok(out)
}

/// Creates whatever of the topology is missing, as a start would.
pub async fn create_missing(js: &jetstream::Context, cfg: &BusConfig) -> Result<(), BusError> {
    patiently("topology", || topology::ensure(js, cfg)).await?;
    ensure_kv(js, cfg, tombstones::kv_config()).await?;
    ensure_kv(js, cfg, ha::kv_config()).await?;
    ensure_kv(js, cfg, hosts::kv_config()).await?;
    ensure_kv(js, cfg, crate::ownership::kv_config()).await?;
    Ok(())
}
