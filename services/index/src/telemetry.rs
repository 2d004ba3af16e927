//! The index's metrics and readiness: what a committed batch adds (size, commit
//! time, events applied, images made queryable, the checkpoint), and the lag of the
//! projection, measured every [`LAG_EVERY`] with the one definition of lag
//! (`imgcrawl_readmodel::lag`) while the live stage runs, with the jobs by status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use imgcrawl_bus::{position, Bus};
use imgcrawl_readmodel::lag;
use imgcrawl_telemetry::labels::JobStatus;
use imgcrawl_telemetry::metrics::{metrics, projection};
use imgcrawl_telemetry::ready;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::BatchEffects;

/// How long the readiness probe waits for the database.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the lag is measured.
pub(crate) const LAG_EVERY: Duration = Duration::from_secs(5);

/// Records a committed batch of `read` messages that took `took` to commit.
pub(crate) fn committed(
    name: &str,
    read: usize,
    took: Duration,
    effects: &BatchEffects,
    checkpoint: u64,
) {
    let m = metrics();
    let p = projection(name);
    m.index_batch_size.get_or_create(&p).observe(read as f64);
    m.index_commit_duration
        .get_or_create(&p)
        .observe(took.as_secs_f64());
    m.index_events_applied
        .get_or_create(&p)
        .inc_by(effects.applied.applied as u64);
    m.images_indexed
        .get_or_create(&p)
        .inc_by(effects.indexed.len() as u64);
    m.index_checkpoint
        .get_or_create(&p)
        .set(i64::try_from(checkpoint).unwrap_or(i64::MAX));
}

/// The readiness state of projection `name`.
pub(crate) fn state_name(name: &str) -> String {
    format!("projection/{name}")
}

/// Marks projection `name` ready (its database answered and it projects) and adds a
/// probe of its database; the returned guard undoes both.
pub(crate) fn ready(name: &str, pool: &PgPool) -> ReadyGuard {
    let r = ready::global();
    r.set(state_name(name), Ok(()));
    let pool = pool.clone();
    let probe = format!("postgres/{name}");
    r.probe(probe.clone(), move || {
        let pool = pool.clone();
        async move {
            imgcrawl_readmodel::admin::ping(&pool, PING_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| e.map_or("no answer in time".to_string(), |e| e.to_string()))
        }
    });
    ReadyGuard {
        state: state_name(name),
        probe,
    }
}

/// Undoes [`ready`] when the projection stops.
pub(crate) struct ReadyGuard {
    state: String,
    probe: String,
}

impl Drop for ReadyGuard {
    fn drop(&mut self) {
        let r = ready::global();
        r.remove_probe(&self.probe);
        r.set(self.state.clone(), Err("stopped".into()));
    }
}

/// Sets the job gauges from the projection (every status seen so far, 0 when none).
async fn count_jobs(pool: &PgPool) {
    let jobs = &metrics().jobs;
    match imgcrawl_readmodel::jobs::count_by_status(pool).await {
        Ok(counts) => {
            for status in ["running", "stopping", "completed", "stopped"] {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                jobs.get_or_create(&JobStatus {
                    status: status.into(),
                })
                .set(n);
            }
        }
        Err(e) => debug!(error = %e, "jobs not counted"),
    }
}

/// Measures the lag of projection `name` (in `pool`), whose checkpoint `checkpoint`
/// holds, and counts its jobs, until `stop`.
pub(crate) async fn measure_lag(
    bus: Bus,
    pool: PgPool,
    name: String,
    checkpoint: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let m = metrics();
    let p = projection(&name);
    let (events, seconds) = (
        m.index_lag_events.get_or_create_owned(&p),
        m.index_lag_seconds.get_or_create_owned(&p),
    );
    let subjects = lag::applied_subjects();
    let mut ticks = tokio::time::interval(LAG_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        count_jobs(&pool).await;
        let cp = checkpoint.load(Ordering::Relaxed);
        let end = match position::stream_end(&bus).await {
            Ok(end) => end,
            Err(e) => {
                debug!(error = %e, "lag not measured");
                continue;
            }
        };
        let waiting = if lag::behind(cp, end.last_seq) {
            match position::oldest_after(&bus, &subjects, cp).await {
                Ok(w) => w.map(|(_, at)| at),
                Err(e) => {
                    debug!(error = %e, "lag not measured");
                    continue;
                }
            }
        } else {
            None
        };
        let l = lag::lag(cp, end.last_seq, waiting, Utc::now());
        events.set(i64::try_from(l.events).unwrap_or(i64::MAX));
        seconds.set(l.seconds);
    }
}
