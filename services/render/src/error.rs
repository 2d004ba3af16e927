//! Errors of the render role.

/// Why the render role could not run, or a page could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No Chromium binary was found.
    #[error("no chromium binary found (install Debian's chromium, or set render.chromium)")]
    NoChromium,
    /// The browser could not be started.
    #[error("launch chromium: {0}")]
    Launch(String),
    /// A DevTools command failed.
    #[error("devtools: {0}")]
    Cdp(#[from] chromiumoxide::error::CdpError),
    /// The page did not load within its budget.
    #[error("page load timed out after {0} ms")]
    Timeout(u64),
    /// The browser showed its error page (address refused by the guard, unreachable).
    #[error("the browser could not load the page")]
    Navigation,
    /// Subscribing to the request subject failed.
    #[error("subscribe: {0}")]
    Subscribe(String),
}
