//! The render role: renders pages in headless Chromium for the crawl stage.
//!
//! The crawl stage sends a [`RenderRequest`] for each page of a job that renders
//! (`scope.render`) with a core NATS request on [`RENDER_SUBJECT`]; render processes
//! answer in the queue group [`RENDER_QUEUE`], so N replicas share the work and crawl
//! processes never run a browser. Each answer is a [`RenderReply`]: the final DOM and
//! the image URLs the page requested, or why it failed (the crawl stage then keeps its
//! static parse and records the reason in `page.fetched.render`). Nothing here writes
//! to the stream: the facts are published by the crawl stage.
//!
//! * [`config`]: the settings. `browser`: one Chromium per process, started on the
//!   first request. `page`: rendering one page within its budget.

mod browser;
pub mod config;
mod error;
mod page;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use imgcrawl_bus::Bus;
use imgcrawl_events::{RenderReply, RenderRequest, RENDER_QUEUE, RENDER_SUBJECT};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use config::Config;
pub use error::RenderError;

/// Less budget than this left after waiting for a tab: not worth starting.
const MIN_BUDGET: Duration = Duration::from_secs(1);

/// Bytes kept free in a reply for everything but the DOM.
const REPLY_OVERHEAD: usize = 16 * 1024;

/// Runs the render role until `shutdown` fires; in-flight renders finish (up to the
/// grace period).
pub async fn run(bus: Bus, config: Config, shutdown: CancellationToken) -> Result<(), RenderError> {
    let mut sub = bus
        .client
        .queue_subscribe(RENDER_SUBJECT, RENDER_QUEUE.to_string())
        .await
        .map_err(|e| RenderError::Subscribe(e.to_string()))?;
    let mut config = config;
    // a reply must fit in one message
    let max_payload = bus.client.server_info().max_payload;
    let room = max_payload.saturating_sub(REPLY_OVERHEAD).max(1024);
    config.max_html_bytes = config.max_html_bytes.min(room);
    let config = Arc::new(config);
    let chromium = Arc::new(browser::Chromium::default());
    let tabs = Arc::new(Semaphore::new(config.tabs.max(1)));
    let mut tasks = JoinSet::new();
    info!(
        subject = RENDER_SUBJECT,
        tabs = config.tabs,
        "render role starting"
    );
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = sub.next() => match m { Some(m) => m, None => break },
        };
        while tasks.try_join_next().is_some() {}
        let Some(reply_to) = msg.reply.clone() else {
            debug!("render request without a reply subject; ignored");
            continue;
        };
        let (client, config, chromium, tabs) = (
            bus.client.clone(),
            config.clone(),
            chromium.clone(),
            tabs.clone(),
        );
        tasks.spawn(async move {
            let reply = match serde_json::from_slice::<RenderRequest>(&msg.payload) {
                Ok(req) => {
                    let arrived = std::time::Instant::now();
                    let _tab = tabs.acquire_owned().await;
                    render_one(&chromium, &config, &req, arrived.elapsed()).await
                }
                Err(e) => RenderReply::Failed {
                    reason: format!("malformed render request: {e}"),
                },
            };
            match serde_json::to_vec(&reply) {
                Ok(body) => {
                    if let Err(e) = client.publish(reply_to, body.into()).await {
                        warn!(error = %e, "render reply not sent");
                    }
                }
                Err(e) => warn!(error = %e, "render reply not encoded"),
            }
        });
    }
    let _ = sub.unsubscribe().await;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
    chromium.close().await;
    info!("render role stopped");
    Ok(())
}

/// Renders one requested page, whose budget started `waited` ago (while it waited
/// for a tab); every failure becomes a `Failed` reply.
async fn render_one(
    chromium: &browser::Chromium,
    config: &Config,
    req: &RenderRequest,
    waited: Duration,
) -> RenderReply {
    let budget = Duration::from_millis(req.budget_ms.clamp(1, config.max_budget_ms.max(1)));
    let Some(budget) = budget.checked_sub(waited).filter(|b| *b >= MIN_BUDGET) else {
        return RenderReply::Failed {
            reason: format!("no free tab within the budget ({} tabs)", config.tabs),
        };
    };
    let running = match chromium.get(config).await {
        Ok(r) => r,
        Err(e) => {
            return RenderReply::Failed {
                reason: e.to_string(),
            }
        }
    };
    match page::render(&running, config, &req.url, budget).await {
        Ok(reply) => {
            debug!(job = %req.job_id, url = %req.url, "page rendered");
            reply
        }
        Err(e) => {
            debug!(job = %req.job_id, url = %req.url, error = %e, "render failed");
            RenderReply::Failed {
                reason: e.to_string(),
            }
        }
    }
}
