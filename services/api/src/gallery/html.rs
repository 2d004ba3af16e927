//! The gallery's HTML pieces, rendered the same way by the server (first view) and by
//! the script (updates): jobs, thumbnail cards, the HA line; escaping and templating.

use crate::model::crawl::JobStatus;
use crate::model::ha::HaNode;
use crate::model::images::ImageSummary;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
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
    let stop = if matches!(state.as_str(), "running" | "requested") {
        format!(
            "<button class=\"secondary stop\" data-job=\"{}\">Stop</button>",
            j.job_id
        )
    } else {
        String::new()
    };
    format!(
        "<article class=\"job\" data-job=\"{id}\" data-state=\"{state}\">\n  <div class=\"job-head\"><span class=\"state {state}\">{state}</span><span class=\"job-seed\" title=\"{t}\">{t}</span><span class=\"job-id\">{id}</span>{stop}</div>\n  <div class=\"bar\"><span style=\"width:{pct}%\"></span></div>\n  <div class=\"counters\"><span>pages <b class=\"counter\" data-counter=\"pages_done\">{pd}</b>/<b class=\"counter\" data-counter=\"pages_discovered\">{pdisc}</b></span><span>images stored <b class=\"counter\" data-counter=\"images_stored\">{st}</b></span><span>rejected <b class=\"counter\" data-counter=\"images_rejected\">{rej}</b></span><span>pending <b class=\"counter\" data-counter=\"images_pending\">{pend}</b></span><span><b class=\"counter\" data-counter=\"bytes\">{bytes}</b></span><span><b class=\"counter\" data-counter=\"rate\">{rate:.1}</b> img/s</span></div>\n</article>",
        id = j.job_id,
        t = esc(&title),
        pd = p.fetched + p.failed,
        pdisc = p.discovered,
        st = im.stored,
        rej = im.rejected,
        pend = im.pending,
        bytes = human(j.bytes_downloaded),
        rate = j.rate.images_per_sec,
    )
}

/// One thumbnail card, as the script renders it too.
pub fn card_html(i: &ImageSummary) -> String {
    format!(
        "<figure class=\"card\" data-id=\"{id}\"><div class=\"frame\"><img class=\"thumb\" loading=\"lazy\" src=\"{src}\" alt=\"{alt}\"></div><figcaption><span>{w}×{h} {fmt}</span><span>{size}</span></figcaption></figure>",
        id = i.id,
        src = esc(&i.links.thumbnail),
        alt = esc(i.filename.as_deref().unwrap_or("")),
        w = i.width,
        h = i.height,
        fmt = esc(&i.format),
        size = human(i.bytes),
    )
}

/// The HA line: every node (role, health, lag), then the mode; as the script's
/// `renderHa` draws it.
pub(crate) fn ha_html(nodes: &[HaNode], mode: &str, last_seq: Option<u64>) -> String {
    let mut out: String = nodes.iter().map(|n| node_html(n, last_seq)).collect();
    out.push_str(&format!(
        "<span class=\"node muted\">{} node</span>",
        esc(mode)
    ));
    out
}

fn node_html(node: &HaNode, last_seq: Option<u64>) -> String {
    let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    format!(
        "<span class=\"node\"><span class=\"dot{up}\"></span>{role} <b>{name}</b> <span class=\"muted\">lag</span> <b class=\"counter\" data-counter=\"lag_events\">{lag}</b> <span class=\"muted\">applied</span> {cp}<span class=\"muted\">/{last}</span></span>",
        up = if node.healthy { " up" } else { "" },
        role = esc(&node.role),
        name = esc(&node.name),
        lag = opt(node.lag_events),
        cp = opt(node.checkpoint),
        last = opt(last_seq),
    )
}

/// Replaces every `{{name}}` of `template` in one pass (so values are never scanned
/// for slots themselves).
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").map(|end| (&after[..end], end)) {
            Some((name, end)) if values.iter().any(|v| v.0 == name) => {
                out.push_str(values.iter().find(|v| v.0 == name).map_or("", |v| v.1));
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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
    fn slots_are_filled_once() {
        let out = fill(
            "a {{x}} b {{y}} {{unknown}} {{",
            &[("x", "{{y}}"), ("y", "2")],
        );
        assert_eq!(out, "a {{y}} b 2 {{unknown}} {{");
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
