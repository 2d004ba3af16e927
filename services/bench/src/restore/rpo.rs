//! The RPO drill: a steady stream of events into a fresh nats-server while the
//! continuous archive runs; at a random moment in the second half the machine is lost
//! (the archiver aborted without closing its segment, the server stopped and its data
//! gone). Counted: events acknowledged to the publisher but not in the archive, and
//! the age of the oldest of them at the moment of the loss (the RPO).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use imgcrawl_bus::{Bus, BusConfig};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::servers::{nats_binary, Nats};

/// What the drill measured.
#[derive(Debug, Clone, Serialize)]
pub struct Rpo {
    /// The archive's segment interval.
    pub segment_secs: u64,
    /// Seconds from the start to the loss.
    pub lost_after_secs: f64,
    /// Events the stream acknowledged.
    pub published: u64,
    /// Events in the archive.
    pub archived: u64,
    /// Acknowledged events not in the archive.
    pub lost: u64,
    /// Age of the oldest lost event at the loss (0 when none was lost).
    pub rpo_secs: f64,
}

/// Runs the drill for up to `secs` seconds at about `rate` events/s.
pub async fn measure(secs: u64, segment_secs: u64, rate: u64, seed: u64) -> Result<Rpo> {
    let nats = Nats::start(&nats_binary()).await?;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await?;
    let dir = tempfile::Builder::new()
        .prefix("imgcrawl-bench-rpo-")
        .tempdir()?;
    let cfg = imgcrawl_backup::Config {
        target: dir.path().display().to_string(),
        segment_secs,
        ..Default::default()
    };
    let archiver = tokio::spawn(imgcrawl_backup::run(
        bus.clone(),
        cfg.clone(),
        CancellationToken::new(),
    ));
    let mut rng = fastrand::Rng::with_seed(seed);
    let kill_at = Duration::from_secs_f64(secs as f64 * (0.5 + rng.f64() / 2.0));
    let start = Instant::now();
    let mut acked_at: Vec<f64> = Vec::new(); // by sequence - 1
    let per_tick = (rate / 100).max(1);
    let mut n = 0u64;
    while start.elapsed() < kill_at {
        let mut acks = Vec::with_capacity(per_tick as usize);
        for _ in 0..per_tick {
            n += 1;
            let body = Bytes::from(format!(
                "{{\"n\":{n},\"occurred_at\":\"{}\"}}",
                chrono::Utc::now().to_rfc3339()
            ));
            acks.push(bus.js.publish("imgcrawl.bench.rpo", body).await?);
        }
        for a in acks {
            let ack = a.await.context("publish")?;
            let at = start.elapsed().as_secs_f64();
            let i = usize::try_from(ack.sequence).unwrap_or(usize::MAX) - 1;
            if acked_at.len() <= i {
                acked_at.resize(i + 1, at);
            }
            acked_at[i] = at;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lost_after = start.elapsed().as_secs_f64();
    archiver.abort();
    let _ = archiver.await;
    drop(bus);
    drop(nats); // the server stops and its store (a temp dir) is removed
    let target = imgcrawl_backup::Target::open(&cfg)?;
    let archived = target
        .manifest()
        .await?
        .and_then(|m| m.streams.get("IMGCRAWL").map(|a| a.next_seq() - 1))
        .unwrap_or(0);
    let published = acked_at.len() as u64;
    let lost = published.saturating_sub(archived);
    let rpo_secs = if lost == 0 {
        0.0
    } else {
        lost_after - acked_at[usize::try_from(archived).unwrap_or(0)]
    };
    Ok(Rpo {
        segment_secs,
        lost_after_secs: lost_after,
        published,
        archived,
        lost,
        rpo_secs,
    })
}
