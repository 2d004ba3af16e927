//! The render role's settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Settings of the render role. Every field has a default; unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The Chromium binary; empty: the first of `chromium`, `chromium-browser`,
    /// `google-chrome` on the `PATH`.
    pub chromium: Option<PathBuf>,
    /// Pages rendered at once by this process (browser tabs); more requests wait.
    pub tabs: usize,
    /// Upper bound of a request's budget, milliseconds (the crawl stage asks for its
    /// `render_budget_ms`).
    pub max_budget_ms: u64,
    /// Scroll steps (one viewport each) at most, to trigger lazy loaders.
    pub max_scrolls: u32,
    /// Milliseconds to wait after each scroll step for scripts to react.
    pub scroll_pause_ms: u64,
    /// Largest final DOM returned, bytes (also capped by the server's `max_payload`).
    pub max_html_bytes: usize,
    /// Most requested image URLs returned per page.
    pub max_requested_images: usize,
    /// Let the browser download the images the page requests; `false` (the default)
    /// records each image request and fails it, so images are fetched once, by the
    /// download stage, through the host gate.
    pub load_images: bool,
    /// Let the browser reach loopback addresses (the address guard checks every
    /// request a rendered page makes, as the fetcher does for the crawl stage).
    pub allow_loopback: bool,
    /// Let the browser reach private (RFC 1918, unique-local) addresses.
    pub allow_private: bool,
    /// Seconds to let in-flight renders finish on shutdown.
    pub shutdown_grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chromium: None,
            tabs: 4,
            max_budget_ms: 60_000,
            max_scrolls: 30,
            scroll_pause_ms: 250,
            max_html_bytes: 768 * 1024,
            max_requested_images: 5_000,
            load_images: false,
            allow_loopback: false,
            allow_private: false,
            shutdown_grace_secs: 10,
        }
    }
}

impl Config {
    /// The Chromium binary to launch, if one is found.
    pub fn chromium_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.chromium {
            return Some(p.clone());
        }
        let path = std::env::var_os("PATH")?;
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
            .find(|p| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_fields() {
        let c: Config = serde_json::from_str(r#"{"tabs": 2}"#).unwrap();
        assert_eq!(c.tabs, 2);
        assert!(!c.load_images);
        assert!(serde_json::from_str::<Config>(r#"{"tab": 2}"#).is_err());
        let c = Config {
            chromium: Some("/opt/x/chrome".into()),
            ..Config::default()
        };
        assert_eq!(c.chromium_path(), Some(PathBuf::from("/opt/x/chrome")));
    }
}
