//! Re-publishing recent `crawl.completed` events on start-up.
//!
//! The live stage publishes a batch's effects only after its transaction commits. If
//! the process dies between the commit and the PubAcks, the rows say "completed" but
//! nobody was told, and the events will never be produced again (the batch is below
//! the checkpoint now). So on start-up, and after a commit whose outcome was unknown,
//! the stage publishes `crawl.completed` again for every job that completed within
//! `republish_window_secs` of the checkpoint's time. The window is measured in stream
//! time (the checkpoint's `updated_at` is the publish time of the last applied event),
//! so it still covers the last batch after a long outage. Message ids are
//! deterministic (`crawl.completed:<job>`), so a re-publication inside the stream's
//! duplicate window is dropped by the server; one after it is a harmless duplicate
//! that consumers of `crawl.completed` must tolerate. `image.indexed` is not
//! re-published: it is a best-effort notification.

use imgcrawl_bus::Bus;
use imgcrawl_events::{CompletionStatus, CrawlCompleted, Event};
use sqlx::PgPool;
use tracing::{info, warn};
use uuid::Uuid;

use crate::error::{db, IndexError};

type Row = (
    Uuid,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    chrono::DateTime<chrono::Utc>,
);

/// `crawl.completed` for the jobs of projection `checkpoint_name` that completed
/// within `window_secs` (stream time) before its checkpoint, oldest first.
pub async fn recent_completions(
    pool: &PgPool,
    checkpoint_name: &str,
    window_secs: u64,
) -> Result<Vec<CrawlCompleted>, IndexError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT j.job_id, j.status, j.pages_fetched, j.pages_failed, j.images_stored, j.images_rejected,
                j.bytes_downloaded, j.completed_at
         FROM jobs j JOIN projection_checkpoint c ON c.name = $1
         WHERE j.status IN ('completed', 'stopped') AND j.completed_at IS NOT NULL
           AND j.completed_at >= c.updated_at - make_interval(secs => $2)
         ORDER BY j.completed_at, j.job_id",
    )
    .bind(checkpoint_name)
    .bind(window_secs as f64)
    .fetch_all(pool)
    .await
    .map_err(db("select recent completions"))?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(rows
        .into_iter()
        .map(|r| CrawlCompleted {
            job_id: r.0,
            status: if r.1 == "stopped" {
                CompletionStatus::Stopped
            } else {
                CompletionStatus::Completed
            },
            pages_fetched: u(r.2),
            pages_failed: u(r.3),
            images_stored: u(r.4),
            images_rejected: u(r.5),
            bytes: u(r.6),
            occurred_at: r.7,
        })
        .collect())
}

/// Publishes [`recent_completions`]; failures are logged, not fatal.
pub(crate) async fn republish(bus: &Bus, pool: &PgPool, checkpoint_name: &str, window_secs: u64) {
    let events = match recent_completions(pool, checkpoint_name, window_secs).await {
        Ok(c) => c.into_iter().map(Event::CrawlCompleted).collect::<Vec<_>>(),
        Err(e) => return warn!(error = %e, "cannot read recent completions"),
    };
    if events.is_empty() {
        return;
    }
    match bus.publisher().publish_all(&events).await {
        Ok(()) => info!(
            count = events.len(),
            "re-published recent crawl.completed events"
        ),
        Err(e) => warn!(error = %e, "cannot re-publish recent completions"),
    }
}
