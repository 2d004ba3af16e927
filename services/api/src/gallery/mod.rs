//! `GET /`: the gallery, rendered on the server (jobs with progress, the newest
//! images, HA state) so it shows something without JavaScript; a small script
//! (`assets/gallery.js`) then polls jobs and HA state, scrolls the grid infinitely,
//! filters it and opens an image's detail.
//!
//! The page's Content-Security-Policy allows only this script, by hash.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::cursor::Cursor;
use crate::db::images::{self as images_db, ImageFilter};
use crate::db::jobs;
use crate::model::crawl::JobStatus;
use crate::model::images::Sort;
use crate::routes::{ha, images};
use crate::state::AppState;

mod html;

use askama::filters::Safe;
use html::{base64, ha_html, job_options_html, jobs_html, Page};
pub use html::{card_html, esc, human, job_html, Named};

#[cfg(test)]
const TEMPLATE: &str = include_str!("../../assets/gallery.html");
const STYLE: &str = include_str!("../../assets/gallery.css");
const SCRIPT: &str = include_str!("../../assets/gallery.js");

/// Images rendered on the server (the script loads more as the user scrolls).
const FIRST_PAGE: u32 = 100;
/// Jobs shown.
const JOBS: u32 = 20;

/// The page's Content-Security-Policy: our script (by hash), our API, nothing else.
pub fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64(&Sha256::digest(SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// The gallery page.
#[utoipa::path(get, path = "/", tag = "gallery",
    responses(
        (status = 200, description = "The gallery (HTML)", content_type = "text/html", body = String),
        (status = 429, description = "Rate limited", body = crate::error::ErrorBody),
    ))]
pub async fn page(State(state): State<AppState>) -> Response {
    // All at once: with the index down the page costs one acquire timeout, not four.
    let db = state.db();
    let filter = ImageFilter::default();
    let (jobs, page, count, ha) = tokio::join!(
        jobs::list(&db, None, JOBS),
        images_db::list(&db, &filter, Sort::Newest, None, FIRST_PAGE),
        images_db::count(&db),
        ha::measure(&state),
    );
    let count = count.ok();
    let mut listed: Vec<JobStatus> = Vec::new();
    let indexed: Vec<JobStatus> = jobs.as_ref().map(|v| v.clone()).unwrap_or_default();
    for r in state.recent.newest_first().iter().take(5) {
        if !indexed.iter().any(|j| j.job_id == r.job_id) {
            listed.push(r.status());
        }
    }
    listed.extend(indexed);
    let (grid, cursor, sentinel) = match &page {
        Ok((rows, more)) => {
            let cards: String = rows
                .iter()
                .map(|r| card_html(&images::summary(r)))
                .collect();
            let cursor = match rows.last() {
                Some(last) if *more => Cursor {
                    sort: Sort::Newest,
                    bytes: last.bytes,
                    id: last.id,
                }
                .encode(),
                _ => String::new(),
            };
            let sentinel = if rows.is_empty() {
                "no images yet"
            } else if *more {
                "loading more…"
            } else {
                "that is all"
            };
            (cards, cursor, sentinel)
        }
        Err(_) => (String::new(), String::new(), "the index is unavailable"),
    };
    let last = ha.stream.as_ref().ok().map(|(_, last)| *last);
    let count = count.map_or(String::new(), |n| format!("{n} indexed"));
    let mut html = html::render(&Page {
        style: Safe(STYLE),
        script: Safe(SCRIPT),
        page_size: FIRST_PAGE,
        next_cursor: &cursor,
        ha: Safe(ha_html(&ha.nodes, state.nodes.mode(), last)),
        jobs: Safe(jobs_html(&listed)),
        job_options: Safe(job_options_html(&listed)),
        image_count: &count,
        grid: Safe(grid),
        sentinel,
    });
    html.push('\n'); // the template's own last newline, which askama drops
    let mut res = Html(html).into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_has_every_slot_and_the_script_is_allowed_by_hash() {
        for slot in [
            "style",
            "script",
            "page_size",
            "next_cursor",
            "ha",
            "jobs",
            "job_options",
            "image_count",
            "grid",
            "sentinel",
        ] {
            assert!(TEMPLATE.contains(&format!("{{{{{slot}}}}}")), "{slot}");
        }
        let hash = base64(&Sha256::digest(SCRIPT.as_bytes()));
        assert!(csp().contains(&format!("script-src 'sha256-{hash}'")));
    }
}
