//! One headless Chromium per process, launched on the first render (a render process
//! that never gets a request never starts a browser) and relaunched after it died.

use std::sync::Arc;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use futures::StreamExt;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::{Config, RenderError};

/// Chromium's flags: headless in a container (no sandbox as root, no GPU, no shared
/// memory), nothing in the background.
const ARGS: [&str; 11] = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
];

/// A running browser and what keeps it alive.
pub(crate) struct Running {
    /// The browser.
    pub(crate) browser: Browser,
    /// Its DevTools connection's event loop.
    handler: tokio::task::JoinHandle<()>,
    /// Its profile directory, removed on drop.
    _profile: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

/// The process's browser, started on demand.
#[derive(Default)]
pub(crate) struct Chromium {
    slot: Mutex<Option<Arc<Running>>>,
}

impl Chromium {
    /// The running browser, launching it if there is none (or the last one died).
    pub(crate) async fn get(&self, config: &Config) -> Result<Arc<Running>, RenderError> {
        let mut slot = self.slot.lock().await;
        if let Some(r) = slot.as_ref() {
            if !r.handler.is_finished() {
                return Ok(r.clone());
            }
            warn!("chromium exited; relaunching");
        }
        let r = Arc::new(launch(config).await?);
        *slot = Some(r.clone());
        Ok(r)
    }

    /// Closes the browser, if one runs.
    pub(crate) async fn close(&self) {
        if let Some(r) = self.slot.lock().await.take() {
            if let Ok(mut r) = Arc::try_unwrap(r) {
                let _ = tokio::time::timeout(Duration::from_secs(5), r.browser.close()).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), r.browser.wait()).await;
            }
        }
    }
}

async fn launch(config: &Config) -> Result<Running, RenderError> {
    let exe = config.chromium_path().ok_or(RenderError::NoChromium)?;
    let profile = tempfile::Builder::new()
        .prefix("imgcrawl-render-")
        .tempdir()
        .map_err(|e| RenderError::Launch(format!("profile dir: {e}")))?;
    let cfg = BrowserConfig::builder()
        .chrome_executable(&exe)
        .no_sandbox()
        .user_data_dir(profile.path())
        .viewport(None)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .args(ARGS)
        .build()
        .map_err(RenderError::Launch)?;
    let (browser, mut events) = Browser::launch(cfg)
        .await
        .map_err(|e| RenderError::Launch(e.to_string()))?;
    let handler = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            if let Err(e) = ev {
                tracing::debug!(error = %e, "devtools connection event");
            }
        }
    });
    info!(chromium = %exe.display(), "chromium started");
    Ok(Running {
        browser,
        handler,
        _profile: profile,
    })
}
