//! A job's scope: which pages are crawled and which images are sent to download.
//!
//! * Page hosts: the job's `hosts` (exactly, or any subdomain with `scope.subdomains`).
//! * Depth: children of a page at depth `d` have depth `d + 1`, and are only published
//!   while `d + 1 <= max_depth`.
//! * Include / exclude patterns match a page's path plus `?query`, robots.txt style:
//!   from the start of the path, `*` matches any run of characters, a trailing `$`
//!   anchors the end. A pattern that starts with neither `/` nor `*` may match anywhere
//!   (as if it started with `*`). Exclude wins over include; seeds are exempt.
//! * Images: any host with `scope.images_any_host`, else the page hosts.

use imgcrawl_events::JobSpec;
use url::Url;

/// A compiled include/exclude pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Literal pieces between `*`s; the first piece is anchored at the start.
    pieces: Vec<String>,
    /// A trailing `$`: the last piece must end the text.
    anchored_end: bool,
}

impl Pattern {
    /// Compiles a pattern (see the module docs).
    pub fn new(raw: &str) -> Pattern {
        let raw = raw.trim();
        let (body, anchored_end) = match raw.strip_suffix('$') {
            Some(b) => (b, true),
            None => (raw, false),
        };
        let body = if body.starts_with('/') || body.starts_with('*') {
            body.to_string()
        } else {
            format!("*{body}")
        };
        Pattern {
            pieces: body.split('*').map(str::to_string).collect(),
            anchored_end,
        }
    }

    /// Does `text` (a path plus `?query`) match?
    pub fn matches(&self, text: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(p) => p,
            None => return true,
        };
        let Some(mut tail) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return !self.anchored_end || tail.is_empty();
        };
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(i) => tail = &tail[i + piece.len()..],
                None => return false,
            }
        }
        if self.anchored_end {
            tail.ends_with(last.as_str())
        } else {
            tail.contains(last.as_str())
        }
    }
}

/// The scope of one job, compiled once per message.
#[derive(Debug, Clone)]
pub struct JobScope {
    hosts: Vec<String>,
    subdomains: bool,
    max_depth: u32,
    images_any_host: bool,
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// A URL's host, lowercase and without a trailing dot.
fn host_of(url: &Url) -> Option<String> {
    let h = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    Some(h)
}

/// The path and query a pattern is matched against.
pub fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

impl JobScope {
    /// Compiles a job's scope rules.
    pub fn new(spec: &JobSpec) -> JobScope {
        let s = &spec.scope;
        JobScope {
            hosts: spec
                .hosts
                .iter()
                .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            subdomains: s.subdomains,
            max_depth: s.max_depth,
            images_any_host: s.images_any_host,
            include: s.include.iter().map(|p| Pattern::new(p)).collect(),
            exclude: s.exclude.iter().map(|p| Pattern::new(p)).collect(),
        }
    }

    /// Is `url` an http(s) URL on one of the page hosts? (Also the redirect check.)
    pub fn host_allowed(&self, url: &Url) -> bool {
        if !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let Some(host) = host_of(url) else {
            return false;
        };
        self.hosts.iter().any(|h| {
            *h == host
                || (self.subdomains
                    && host
                        .strip_suffix(h.as_str())
                        .is_some_and(|p| p.ends_with('.')))
        })
    }

    /// Is `url` a page of this job: on a page host, matching the include patterns (if
    /// any) and no exclude pattern?
    pub fn page_allowed(&self, url: &Url) -> bool {
        if !self.host_allowed(url) {
            return false;
        }
        let pq = path_and_query(url);
        if self.exclude.iter().any(|p| p.matches(&pq)) {
            return false;
        }
        self.include.is_empty() || self.include.iter().any(|p| p.matches(&pq))
    }

    /// May an image at `url` be sent to download?
    pub fn image_allowed(&self, url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https") && (self.images_any_host || self.host_allowed(url))
    }

    /// The depth of the children of a page at `depth`, if they are still within
    /// `max_depth`.
    pub fn child_depth(&self, depth: u32) -> Option<u32> {
        depth.checked_add(1).filter(|d| *d <= self.max_depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgcrawl_events::{CrawlRequested, Scope};

    fn spec(scope: Scope) -> JobSpec {
        let req = CrawlRequested {
            url: Some("https://example.org/".into()),
            scope: Some(scope),
            ..Default::default()
        };
        JobSpec::resolve(&req, "S", 1, chrono::Utc::now()).unwrap()
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/blog", "/blog", true),
            ("/blog", "/blog/post", true),
            ("/blog", "/blogs", true),
            ("/blog", "/x/blog", false),
            ("/blog$", "/blog", true),
            ("/blog$", "/blog/", false),
            ("/blog/*", "/blog/a/b", true),
            ("/blog/*", "/blog", false),
            ("*.jpg$", "/a/b.jpg", true),
            ("*.jpg$", "/a/b.jpg?x", false),
            ("/*.php", "/index.php?id=1", true),
            ("/*?page=*", "/list?page=2", true),
            ("/*?page=*", "/list?sort=1", false),
            ("/a*b*c$", "/aXXbYYc", true),
            ("/a*b*c$", "/aXXcYYb", false),
            ("/a*b*c$", "/abcbc", true),
            ("tag", "/posts/tag/x", true),
            ("tag$", "/posts/tag", true),
            ("tag$", "/posts/tag/x", false),
            ("*", "/anything", true),
            ("/", "/anything", true),
            ("$", "", true),
        ];
        for (p, text, want) in cases {
            assert_eq!(Pattern::new(p).matches(text), *want, "{p:?} vs {text:?}");
        }
    }

    #[test]
    fn host_table() {
        let exact = JobScope::new(&spec(Scope::default()));
        let subs = JobScope::new(&spec(Scope {
            subdomains: true,
            ..Default::default()
        }));
        let cases: &[(&str, bool, bool)] = &[
            ("https://example.org/x", true, true),
            ("http://EXAMPLE.org./x", true, true),
            ("https://example.org:8443/x", true, true),
            ("https://www.example.org/", false, true),
            ("https://a.b.example.org/", false, true),
            ("https://badexample.org/", false, false),
            ("https://example.org.evil.test/", false, false),
            ("https://other.test/", false, false),
            ("ftp://example.org/", false, false),
        ];
        for (url, want_exact, want_subs) in cases {
            assert_eq!(exact.host_allowed(&u(url)), *want_exact, "exact {url}");
            assert_eq!(subs.host_allowed(&u(url)), *want_subs, "subdomains {url}");
        }
    }

    #[test]
    fn include_exclude_and_depth() {
        let s = JobScope::new(&spec(Scope {
            include: vec!["/blog/*".into(), "/about$".into()],
            exclude: vec!["*/private/*".into(), "*?print=1".into()],
            max_depth: 2,
            ..Default::default()
        }));
        assert!(s.page_allowed(&u("https://example.org/blog/post")));
        assert!(s.page_allowed(&u("https://example.org/about")));
        assert!(!s.page_allowed(&u("https://example.org/about/team")));
        assert!(!s.page_allowed(&u("https://example.org/shop")));
        assert!(
            !s.page_allowed(&u("https://example.org/blog/private/x")),
            "exclude wins"
        );
        assert!(
            !s.page_allowed(&u("https://example.org/blog/post?print=1")),
            "query is matched"
        );
        assert!(!s.page_allowed(&u("https://other.test/blog/post")));
        assert_eq!(s.child_depth(0), Some(1));
        assert_eq!(s.child_depth(1), Some(2));
        assert_eq!(s.child_depth(2), None);
        assert_eq!(s.child_depth(u32::MAX), None);
    }

    #[test]
    fn image_hosts() {
        let any = JobScope::new(&spec(Scope::default()));
        let pages_only = JobScope::new(&spec(Scope {
            images_any_host: false,
            ..Default::default()
        }));
        assert!(any.image_allowed(&u("https://cdn.test/a.png")));
        assert!(!pages_only.image_allowed(&u("https://cdn.test/a.png")));
        assert!(pages_only.image_allowed(&u("https://example.org/a.png")));
        let explicit = JobScope::new(&spec(Scope {
            hosts: vec!["Static.Example.ORG.".into()],
            ..Default::default()
        }));
        assert!(explicit.host_allowed(&u("https://static.example.org/")));
        assert!(!explicit.host_allowed(&u("https://example.org/")));
    }
}
