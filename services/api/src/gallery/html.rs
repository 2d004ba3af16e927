//! The gallery's HTML pieces, rendered the same way by the server (first view) and by
//! the script (updates): jobs, thumbnail cards, the HA line, the job filter's options.
//!
//! Each piece is an `askama` template under `assets/`, checked and compiled with the
//! crate; every value is escaped by [`Named`] (named entities, as the script's `esc`),
//! unless a field is a [`Safe`] piece rendered by another template.

use std::fmt;

use askama::filters::{Escaper, Safe};
use askama::Template;

use crate::model::crawl::JobStatus;
use crate::model::ha::HaNode;
use crate::model::images::ImageSummary;

/// The HTML escaper of every template (see `askama.toml`): `&`, `<`, `>`, `"` and `'`
/// as `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&#39;`.
#[derive(Debug, Clone, Copy)]
pub struct Named;

impl Escaper for Named {
    fn write_escaped_str<W: fmt::Write>(&self, mut dest: W, text: &str) -> fmt::Result {
        let mut rest = text;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            dest.write_str(&rest[..i])?;
            dest.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        dest.write_str(rest)
    }
}

/// Escapes text for HTML content and attribute values (as the templates do).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    // Writing into a String cannot fail.
    let _ = Named.write_escaped_str(&mut out, s);
    out
}

/// `12.3 KiB`.
pub fn human(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (bytes.max(0) as f64, 0);
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Standard base64 with padding (CSP script hashes).
pub(crate) fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Renders a template; a template whose values all display cannot fail, so a failure
/// (never seen) leaves the piece empty rather than failing the page.
pub(crate) fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "gallery template failed");
        String::new()
    })
}

/// One job's card (`assets/job.html`).
#[derive(Template)]
#[template(path = "job.html")]
struct JobCard<'a> {
    id: uuid::Uuid,
    state: &'a str,
    title: &'a str,
    stoppable: bool,
    pct: i64,
    pages_done: i64,
    pages_discovered: i64,
    stored: i64,
    rejected: i64,
    pending: i64,
    bytes: String,
    rate: f64,
}

/// One job, as the script renders it too.
pub fn job_html(j: &JobStatus) -> String {
    let state = serde_json::to_value(j.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (p, im) = (&j.pages, &j.images);
    let done = p.fetched + p.failed + im.stored + im.rejected;
    let all = p.discovered + im.discovered;
    let pct = if j.state.is_finished() {
        100
    } else if all > 0 {
        (done * 100 / all).min(100)
    } else {
        0
    };
    let title = j
        .label
        .clone()
        .or_else(|| j.seeds.first().cloned())
        .unwrap_or_default();
    render(&JobCard {
        id: j.job_id,
        state: &state,
        title: &title,
        stoppable: matches!(state.as_str(), "running" | "requested"),
        pct,
        pages_done: p.fetched + p.failed,
        pages_discovered: p.discovered,
        stored: im.stored,
        rejected: im.rejected,
        pending: im.pending,
        bytes: human(j.bytes_downloaded),
        rate: j.rate.images_per_sec,
    })
}

/// The job list (`assets/jobs.html`): the cards one a line, or a hint when empty.
#[derive(Template)]
#[template(path = "jobs.html")]
struct JobList {
    jobs: Vec<String>,
}

/// Every job's card, or the "no jobs yet" hint.
pub(crate) fn jobs_html(jobs: &[JobStatus]) -> String {
    render(&JobList {
        jobs: jobs.iter().map(job_html).collect(),
    })
}

/// One option of the job filter.
struct JobOption {
    id: uuid::Uuid,
    title: String,
}

/// The job filter's options (`assets/job_options.html`).
#[derive(Template)]
#[template(path = "job_options.html")]
struct JobOptions {
    options: Vec<JobOption>,
}

/// An option per job: its label, else its first seed, else its id (60 characters).
pub(crate) fn job_options_html(jobs: &[JobStatus]) -> String {
    let options = jobs
        .iter()
        .map(|j| {
            let t = j
                .label
                .clone()
                .or_else(|| j.seeds.first().cloned())
                .unwrap_or_else(|| j.job_id.to_string());
            JobOption {
                id: j.job_id,
                title: t.chars().take(60).collect(),
            }
        })
        .collect();
    render(&JobOptions { options })
}

/// One thumbnail card (`assets/card.html`).
#[derive(Template)]
#[template(path = "card.html")]
struct Card<'a> {
    id: i64,
    src: &'a str,
    alt: &'a str,
    width: i32,
    height: i32,
    format: &'a str,
    size: String,
}

/// One thumbnail card, as the script renders it too.
pub fn card_html(i: &ImageSummary) -> String {
    render(&Card {
        id: i.id,
        src: &i.links.thumbnail,
        alt: i.filename.as_deref().unwrap_or(""),
        width: i.width,
        height: i.height,
        format: &i.format,
        size: human(i.bytes),
    })
}

/// One node of the HA line.
struct NodeLine<'a> {
    healthy: bool,
    role: &'a str,
    name: &'a str,
    lag: String,
    checkpoint: String,
}

/// The HA line (`assets/ha.html`).
#[derive(Template)]
#[template(path = "ha.html")]
struct HaLine<'a> {
    nodes: Vec<NodeLine<'a>>,
    mode: &'a str,
    last: String,
}

/// The HA line: every node (role, health, lag), then the mode; as the script's
/// `renderHa` draws it.
pub(crate) fn ha_html(nodes: &[HaNode], mode: &str, last_seq: Option<u64>) -> String {
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    render(&HaLine {
        nodes: nodes
            .iter()
            .map(|n| NodeLine {
                healthy: n.healthy,
                role: &n.role,
                name: &n.name,
                lag: opt(n.lag_events),
                checkpoint: opt(n.checkpoint),
            })
            .collect(),
        mode,
        last: opt(last_seq),
    })
}

/// The page (`assets/gallery.html`): its pieces are rendered by the templates above
/// (or are the stylesheet and the script, verbatim: the CSP allows the script by hash).
#[derive(Template)]
#[template(path = "gallery.html")]
pub(crate) struct Page<'a> {
    pub style: Safe<&'a str>,
    pub script: Safe<&'a str>,
    pub page_size: u32,
    pub next_cursor: &'a str,
    pub ha: Safe<String>,
    pub jobs: Safe<String>,
    pub job_options: Safe<String>,
    pub image_count: &'a str,
    pub grid: Safe<String>,
    pub sentinel: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ha_line_lists_every_node_then_the_mode() {
        let node = |name: &str, role: &str, healthy| HaNode {
            name: name.into(),
            role: role.into(),
            endpoint: String::new(),
            url: String::new(),
            healthy,
            latency_ms: None,
            checkpoint: Some(7),
            epoch: None,
            lag_events: None,
            lag_seconds: None,
            error: None,
        };
        let html = ha_html(
            &[
                node("pg1", "standby", false),
                node("<pg2>", "primary", true),
            ],
            "watched",
            Some(9),
        );
        let pg1 = html.find("standby <b>pg1</b>").expect("pg1");
        let pg2 = html
            .find("primary <b>&lt;pg2&gt;</b>")
            .expect("pg2, escaped");
        assert!(
            pg1 < pg2 && html.ends_with(">watched node</span>"),
            "{html}"
        );
        assert_eq!(html.matches("dot up").count(), 1);
        assert_eq!(html.matches("7<span class=\"muted\">/9</span>").count(), 2);
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn text_is_escaped_and_sizes_are_human() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(12), "12 B");
    }
}
