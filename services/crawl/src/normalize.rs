//! URL normalisation: one spelling per resource, so seen-set keys and message ids
//! deduplicate what is really the same URL.
//!
//! Resolved against the base; http(s) only; no fragment; lowercase scheme and host, no
//! default port, `.`/`..` segments removed (all by the `url` crate's WHATWG parser);
//! an empty query (`?`) dropped; percent-escapes uppercased, and escapes of unreserved
//! characters (letters, digits, `-`, `_`, `~`) decoded (RFC 3986 §6.2.2, both safe).

use url::Url;

/// URLs longer than this are ignored (they bloat events and are almost always traps).
pub const MAX_URL_LEN: usize = 4096;

/// Resolves `raw` (an attribute value) against `base` and normalises it; `None` for
/// empty values, non-http(s) schemes (`data:`, `javascript:`, `mailto:`...), unparsable
/// or over-long URLs.
pub fn normalize(base: &Url, raw: &str) -> Option<Url> {
    let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if raw.is_empty() || raw.len() > MAX_URL_LEN {
        return None;
    }
    let url = base.join(raw).ok()?;
    canonical(url)
}

/// Normalises an absolute URL (see the module docs); `None` if it is not http(s).
pub fn canonical(mut url: Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    let path = fix_escapes(url.path());
    if path != url.path() {
        url.set_path(&path);
    }
    if let Some(q) = url.query() {
        let q = fix_escapes(q);
        if Some(q.as_str()) != url.query() {
            url.set_query(Some(&q));
        }
    }
    let s = url.as_str();
    (s.len() <= MAX_URL_LEN).then_some(url)
}

/// Uppercases the hex digits of every `%XX` escape and decodes escapes of unreserved
/// characters other than `.` (a decoded dot could turn into a dot-segment). An escape
/// is kept when its character would complete a new escape with a `%` that starts none
/// before it: `%7%41` stays `%7%41`, because `%7A` would be `z` (another resource, and
/// normalising twice would not give the same URL; found by the `normalize` fuzz target).
fn fix_escapes(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h << 4) | l;
                let unreserved = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'~');
                if unreserved && !(hex(c).is_some() && after_stray_percent(&out)) {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push(b[i + 1].to_ascii_uppercase() as char);
                    out.push(b[i + 2].to_ascii_uppercase() as char);
                }
                i += 3;
                continue;
            }
        }
        // `s` is ASCII after the url parser's encoding, but stay UTF-8 safe anyway.
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// Whether `out` ends with a `%` that starts no escape, alone or with one hex digit (a
/// hex digit appended now would make it an escape).
fn after_stray_percent(out: &str) -> bool {
    match out.as_bytes() {
        [.., b'%'] => true,
        [.., b'%', d] => hex(*d).is_some(),
        _ => false,
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let base = Url::parse("http://Example.ORG:80/dir/page.html?x=1#top").unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("other.html", Some("http://example.org/dir/other.html")),
            ("/abs", Some("http://example.org/abs")),
            (
                "//cdn.example.org/i.png",
                Some("http://cdn.example.org/i.png"),
            ),
            (
                "HTTPS://WWW.Example.org:443/A/B",
                Some("https://www.example.org/A/B"),
            ),
            ("http://example.org:8080/", Some("http://example.org:8080/")),
            ("a/./b/../c", Some("http://example.org/dir/a/c")),
            ("../../../../up", Some("http://example.org/up")),
            ("#frag", Some("http://example.org/dir/page.html?x=1")),
            ("x.html#frag", Some("http://example.org/dir/x.html")),
            ("x.html?", Some("http://example.org/dir/x.html")),
            ("x.html?#f", Some("http://example.org/dir/x.html")),
            ("?q=a", Some("http://example.org/dir/page.html?q=a")),
            (
                "/p%7euser/%41%2f%2F%3a",
                Some("http://example.org/p~user/A%2F%2F%3A"),
            ),
            (
                "/q?a=%7e%2b&b=%e2%82%ac",
                Some("http://example.org/q?a=~%2B&b=%E2%82%AC"),
            ),
            ("/dot%2ename", Some("http://example.org/dot%2Ename")),
            ("/%zz/100%", Some("http://example.org/%zz/100%")),
            // a decoded digit must not complete a stray `%` into a new escape
            ("/%7%41%7e", Some("http://example.org/%7%41~")),
            ("/%%34%31", Some("http://example.org/%%341")),
            ("/%%34%25", Some("http://example.org/%%34%25")),
            ("/caf\u{e9}", Some("http://example.org/caf%C3%A9")),
            ("  /trimmed  ", Some("http://example.org/trimmed")),
            (
                "http://b\u{fc}cher.example/",
                Some("http://xn--bcher-kva.example/"),
            ),
            ("", None),
            ("   ", None),
            ("javascript:alert(1)", None),
            ("mailto:a@example.org", None),
            ("data:image/png;base64,AAAA", None),
            ("tel:+123", None),
            ("ftp://example.org/x", None),
            ("http://", None),
            ("http://exa mple.org/", None),
        ];
        for (raw, want) in cases {
            let got = normalize(&base, raw).map(|u| u.to_string());
            assert_eq!(got.as_deref(), *want, "{raw:?}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        let base = Url::parse("https://a.test/").unwrap();
        for raw in ["/p%7e/%41?%7e=%2f", "/x?", "/a/../b#c", "HTTP://A.TEST:80/"] {
            let once = normalize(&base, raw).unwrap();
            assert_eq!(canonical(once.clone()), Some(once.clone()), "{raw}");
        }
    }

    #[test]
    fn over_long_urls_are_ignored() {
        let base = Url::parse("https://a.test/").unwrap();
        assert!(normalize(&base, &format!("/{}", "a".repeat(MAX_URL_LEN))).is_none());
        assert!(normalize(&base, &format!("/{}", "a".repeat(100))).is_some());
    }
}
