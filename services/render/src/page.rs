//! Rendering one page: a new tab whose every request is paused and checked by the
//! fetch crate's address guard (private, loopback and link-local targets refused unless
//! allowed), image requests recorded (and failed, unless `load_images`), the page loaded, scrolled a viewport at a time until its height
//! stops growing (lazy loaders and infinite scroll fire), the final DOM read, the tab
//! closed. Everything within the request's budget.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams, RequestPattern,
    RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::Page;
use futures::StreamExt;
use imgcrawl_events::RenderReply;
use imgcrawl_fetch::guard::AddressGuard;

use crate::browser::Running;
use crate::{Config, RenderError};

/// Scrolls one viewport down; answers `[bottom of the viewport, document height]`.
const SCROLL: &str = "(() => { window.scrollBy(0, window.innerHeight); \
    const d = document.scrollingElement || document.documentElement; \
    return [Math.ceil(window.scrollY + window.innerHeight), d.scrollHeight]; })()";

/// Renders `url` within `budget`.
pub(crate) async fn render(
    running: &Running,
    config: &Config,
    url: &str,
    budget: Duration,
) -> Result<RenderReply, RenderError> {
    let started = Instant::now();
    let deadline = started + budget;
    let page = running.browser.new_page("about:blank").await?;
    let result = drive(&page, config, url, deadline).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), page.close()).await;
    let (final_url, html, requested) = result?;
    let (html, truncated) = cap(html, config.max_html_bytes);
    Ok(RenderReply::Rendered {
        final_url,
        html,
        truncated,
        requested_images: requested,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Loads, scrolls and reads the page: (final URL, final DOM, requested image URLs).
async fn drive(
    page: &Page,
    config: &Config,
    url: &str,
    deadline: Instant,
) -> Result<(String, String, Vec<String>), RenderError> {
    let requested = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    // every request pauses: the address guard sees each one, images are recorded
    let pattern = RequestPattern {
        url_pattern: Some("*".into()),
        resource_type: None,
        request_stage: Some(RequestStage::Request),
    };
    page.execute(EnableParams {
        patterns: Some(vec![pattern]),
        handle_auth_requests: None,
    })
    .await?;
    let guard = AddressGuard {
        allow_loopback: config.allow_loopback,
        allow_private: config.allow_private,
    };
    let (tab, sink, load, max) = (
        page.clone(),
        requested.clone(),
        config.load_images,
        config.max_requested_images,
    );
    let recorder = tokio::spawn(async move {
        while let Some(ev) = paused.next().await {
            let image = ev.resource_type == ResourceType::Image;
            if image {
                let mut r = sink.lock().unwrap_or_else(|e| e.into_inner());
                if r.len() < max && !r.contains(&ev.request.url) {
                    r.push(ev.request.url.clone());
                }
            }
            let tab = tab.clone();
            // one task per request: a slow name lookup holds up no other request
            tokio::spawn(async move {
                let id = ev.request_id.clone();
                let allowed = match url::Url::parse(&ev.request.url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {
                        guard.check_url(&u).await.is_ok()
                    }
                    Ok(_) => true, // data:, blob: and the like never leave the browser
                    Err(_) => false,
                };
                let _ = if allowed && (load || !image) {
                    tab.execute(ContinueRequestParams::new(id))
                        .await
                        .map(|_| ())
                } else {
                    let why = if allowed {
                        ErrorReason::BlockedByClient
                    } else {
                        ErrorReason::AddressUnreachable
                    };
                    tab.execute(FailRequestParams::new(id, why))
                        .await
                        .map(|_| ())
                };
            });
        }
    });
    let outcome = async {
        let left = deadline.saturating_duration_since(Instant::now());
        let budget_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        tokio::time::timeout(left, page.goto(url))
            .await
            .map_err(|_| RenderError::Timeout(budget_ms))??;
        scroll(page, config, deadline).await;
        let final_url = page.url().await?.unwrap_or_else(|| url.to_string());
        if final_url.starts_with("chrome-error:") {
            // the browser's own error page: refused by the guard, or unreachable
            return Err(RenderError::Navigation);
        }
        let html = page.content().await?;
        Ok::<_, RenderError>((final_url, html))
    }
    .await;
    recorder.abort();
    let (final_url, html) = outcome?;
    let requested = std::mem::take(&mut *requested.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((final_url, html, requested))
}

/// Scrolls a viewport at a time until the bottom stays put twice, `max_scrolls`, or
/// the deadline (a script error only ends the scrolling).
async fn scroll(page: &Page, config: &Config, deadline: Instant) {
    let pause = Duration::from_millis(config.scroll_pause_ms);
    let mut still = 0;
    let mut last_height = 0u64;
    for _ in 0..config.max_scrolls {
        if Instant::now() + pause >= deadline {
            return;
        }
        let Ok(Ok(v)) = page
            .evaluate(SCROLL)
            .await
            .map(|r| r.into_value::<(u64, u64)>())
        else {
            return;
        };
        tokio::time::sleep(pause).await;
        let (bottom, height) = v;
        if bottom >= height && height == last_height {
            still += 1;
            if still >= 2 {
                return;
            }
        } else {
            still = 0;
        }
        last_height = height;
    }
}

/// Cuts `html` to at most `max` bytes at a character boundary.
pub(crate) fn cap(mut html: String, max: usize) -> (String, bool) {
    if html.len() <= max {
        return (html, false);
    }
    let mut end = max;
    while !html.is_char_boundary(end) {
        end -= 1;
    }
    html.truncate(end);
    (html, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_cuts_at_a_character_boundary() {
        assert_eq!(cap("abc".into(), 5), ("abc".to_string(), false));
        assert_eq!(cap("abcdef".into(), 3), ("abc".to_string(), true));
        assert_eq!(cap("aé".into(), 2), ("a".to_string(), true));
    }
}
