//! The render role's protocol: the crawl stage asks for a page to be rendered in
//! headless Chromium with a core NATS request on [`RENDER_SUBJECT`] (a queue group of
//! render processes answers; nothing of it is stored in the stream, which keeps only
//! the facts the crawl stage publishes from the answer: `image.discovered` with
//! `found_by` `rendered_dom` / `rendered_request`, and `page.fetched` with `render`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The request subject; outside `imgcrawl.>`, so the event stream does not capture it.
pub const RENDER_SUBJECT: &str = "imgcrawl-render.page";

/// The queue group render processes share: each request goes to one of them.
pub const RENDER_QUEUE: &str = "render";

/// Render one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    /// The job (for logs).
    pub job_id: Uuid,
    /// The page URL (after the crawl stage's redirects).
    pub url: String,
    /// Milliseconds the renderer may spend on the page, load and scrolling included.
    pub budget_ms: u64,
}

/// What rendering a page gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum RenderReply {
    /// The page rendered.
    Rendered {
        /// The URL the browser ended on.
        final_url: String,
        /// The final DOM serialised (`document.documentElement.outerHTML`), cut to fit
        /// a NATS message (`truncated` then says so).
        html: String,
        /// Whether `html` was cut.
        truncated: bool,
        /// Image URLs the page requested while it rendered (absolute, as requested).
        requested_images: Vec<String>,
        /// Milliseconds spent.
        elapsed_ms: u64,
    },
    /// The page could not be rendered; the crawl stage keeps its static parse.
    Failed {
        /// Why, lowercase.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_with_their_tag() {
        let r = RenderReply::Failed {
            reason: "timed out".into(),
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(j, r#"{"outcome":"failed","reason":"timed out"}"#);
        assert_eq!(serde_json::from_str::<RenderReply>(&j).unwrap(), r);
        assert!(serde_json::from_str::<RenderReply>(r#"{"outcome":"odd"}"#).is_err());
    }
}
