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
//! that consumers of `crawl.completed` must tolerate. `images.indexed` is not
//! re-published: it is a best-effort notification.

use imgcrawl_bus::Bus;
use imgcrawl_events::{CrawlCompleted, Event};
use imgcrawl_readmodel::jobs;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::error::IndexError;

/// `crawl.completed` for the jobs of projection `checkpoint_name` that completed
/// within `window_secs` (stream time) before its checkpoint, oldest first.
pub async fn recent_completions(
    pool: &PgPool,
    checkpoint_name: &str,
    window_secs: u64,
) -> Result<Vec<CrawlCompleted>, IndexError> {
    Ok(jobs::recent_completions(pool, checkpoint_name, window_secs).await?)
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
