//! A generated website: every resource by path, and the ground truth about it.
//!
//! Bodies may contain the placeholders [`ORIGIN`] and [`ALT_ORIGIN`], filled in when the
//! site is served or written, because the server's port is only known then. The alternate
//! origin is a second host name for the same server (`localhost` next to `127.0.0.1`),
//! which a crawl seeded on the first one must treat as out of scope.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::SiteError;
use crate::expected::Expected;
use crate::images::Image;

/// Placeholder for the site's own origin, e.g. `http://127.0.0.1:8080` (no trailing slash).
pub const ORIGIN: &str = "{{ORIGIN}}";
/// Placeholder for the alternate, out-of-scope origin, e.g. `http://localhost:8080`.
pub const ALT_ORIGIN: &str = "{{ALT_ORIGIN}}";

/// The two origins that fill a site's placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    /// Replaces [`ORIGIN`].
    pub origin: String,
    /// Replaces [`ALT_ORIGIN`].
    pub alt_origin: String,
}

impl Origins {
    /// Both origins for a server on loopback port `port`.
    pub fn loopback(port: u16) -> Origins {
        Origins {
            origin: format!("http://127.0.0.1:{port}"),
            alt_origin: format!("http://localhost:{port}"),
        }
    }

    fn fill(&self, text: &str) -> String {
        text.replace(ORIGIN, &self.origin)
            .replace(ALT_ORIGIN, &self.alt_origin)
    }
}

/// One response the site gives for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Other headers (e.g. `Location`), in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// Whether body or headers contain [`ORIGIN`] / [`ALT_ORIGIN`].
    pub templated: bool,
}

impl Resource {
    /// A 200 response with `content_type` and `body`.
    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Resource {
        let body = body.into();
        let templated = contains_placeholder(&body);
        Resource {
            status: 200,
            content_type: Some(content_type.into()),
            headers: Vec::new(),
            body,
            templated,
        }
    }

    /// A 200 HTML page.
    pub fn html(body: String) -> Resource {
        Resource::new("text/html; charset=utf-8", body)
    }

    /// A 200 response serving `image` with its real content type.
    pub fn image(image: &Image) -> Resource {
        Resource {
            status: 200,
            content_type: Some(image.format.content_type().into()),
            headers: Vec::new(),
            body: image.bytes.clone(),
            templated: false,
        }
    }

    /// A redirect (`status` 301, 302, 307 or 308) to `location` (may hold placeholders).
    pub fn redirect(status: u16, location: &str) -> Resource {
        Resource {
            status,
            content_type: None,
            headers: vec![("location".into(), location.into())],
            body: Bytes::new(),
            templated: location.contains(ORIGIN) || location.contains(ALT_ORIGIN),
        }
    }

    /// A plain-text error response with `status`.
    pub fn error(status: u16) -> Resource {
        let mut r = Resource::new("text/plain; charset=utf-8", format!("status {status}\n"));
        r.status = status;
        r
    }

    /// Headers (content type first) and body with the placeholders filled from `origins`.
    pub fn render(&self, origins: &Origins) -> (Vec<(String, String)>, Bytes) {
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        if let Some(ct) = &self.content_type {
            headers.push(("content-type".to_string(), ct.clone()));
        }
        if !self.templated {
            headers.extend(self.headers.iter().cloned());
            return (headers, self.body.clone());
        }
        headers.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.clone(), origins.fill(v))),
        );
        let body = match std::str::from_utf8(&self.body) {
            Ok(text) => Bytes::from(origins.fill(text)),
            Err(_) => self.body.clone(),
        };
        (headers, body)
    }
}

fn contains_placeholder(body: &[u8]) -> bool {
    let has = |p: &str| body.windows(p.len()).any(|w| w == p.as_bytes());
    body.len() >= ORIGIN.len() && (has(ORIGIN) || has(ALT_ORIGIN))
}

/// A generated website and its ground truth.
#[derive(Debug, Clone)]
pub struct Site {
    /// Every resource by URL path (percent-encoded as a client sends it, e.g. `/a%20b.png`).
    pub resources: BTreeMap<String, Resource>,
    /// The path to seed a crawl with (`/`).
    pub seed_path: String,
    /// Everything reachable with no depth limit, with depths; see [`Expected::for_job`].
    pub truth: Expected,
    /// What a crawl with the default job settings must produce (`truth` for the defaults).
    pub expected: Expected,
}

/// What [`Site::write_to`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Files written.
    pub written: usize,
    /// Paths not written because a static file cannot express them (non-200 responses).
    pub skipped: Vec<String>,
}

impl Site {
    /// The absolute URL of `path` under `base` (`http://host:port` with or without `/`).
    pub fn url(base: &str, path: &str) -> String {
        let path = path.strip_prefix('/').unwrap_or(path);
        format!("{}/{path}", base.trim_end_matches('/'))
    }

    /// The seed URL under `base`.
    pub fn seed_url(&self, base: &str) -> String {
        Site::url(base, &self.seed_path)
    }

    /// The resource at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Resource> {
        self.resources.get(path)
    }

    /// Writes every 200 resource under `dir` as a static file (`/` and paths ending in
    /// `/` become `index.html`), filling placeholders from `origins`, for a static server
    /// such as nginx. Redirects and error responses cannot be files and are skipped.
    pub fn write_to(&self, dir: &Path, origins: &Origins) -> Result<WriteSummary, SiteError> {
        let mut summary = WriteSummary::default();
        for (path, res) in &self.resources {
            let Some(file) = file_for(dir, path).filter(|_| res.status == 200) else {
                summary.skipped.push(path.clone());
                continue;
            };
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent).map_err(|source| SiteError::Write {
                    path: parent.into(),
                    source,
                })?;
            }
            let (_, body) = res.render(origins);
            std::fs::write(&file, &body).map_err(|source| SiteError::Write {
                path: file.clone(),
                source,
            })?;
            summary.written += 1;
        }
        Ok(summary)
    }
}

/// The file for URL `path` under `dir`; `None` for paths that cannot be a file safely.
fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.strip_prefix('/')?;
    if rel.contains('?') || rel.split('/').any(|seg| seg == ".." || seg == ".") {
        return None;
    }
    let mut file = dir.join(rel);
    if rel.is_empty() || rel.ends_with('/') {
        file.push("index.html");
    }
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_with_exactly_one_slash() {
        assert_eq!(Site::url("http://h:1", "/a/b.png"), "http://h:1/a/b.png");
        assert_eq!(Site::url("http://h:1/", "/"), "http://h:1/");
        assert_eq!(Site::url("http://h:1/", "x"), "http://h:1/x");
    }

    #[test]
    fn placeholders_are_filled_in_bodies_and_headers() {
        let o = Origins::loopback(99);
        let page = Resource::html(format!(
            "<a href=\"{ALT_ORIGIN}/x\"></a><img src=\"{ORIGIN}/i.png\">"
        ));
        assert!(page.templated);
        let (h, body) = page.render(&o);
        assert_eq!(
            h[0],
            (
                "content-type".to_string(),
                "text/html; charset=utf-8".to_string()
            )
        );
        assert_eq!(
            &body[..],
            b"<a href=\"http://localhost:99/x\"></a><img src=\"http://127.0.0.1:99/i.png\">"
        );
        let (h, _) = Resource::redirect(302, &format!("{ALT_ORIGIN}/away")).render(&o);
        assert_eq!(
            h,
            vec![(
                "location".to_string(),
                "http://localhost:99/away".to_string()
            )]
        );
        assert!(!Resource::new("image/png", vec![0u8; 3]).templated);
    }

    #[test]
    fn file_paths_map_directories_to_index_and_refuse_traversal() {
        let d = Path::new("/site");
        assert_eq!(file_for(d, "/"), Some(PathBuf::from("/site/index.html")));
        assert_eq!(
            file_for(d, "/g/"),
            Some(PathBuf::from("/site/g/index.html"))
        );
        assert_eq!(
            file_for(d, "/a/b.png"),
            Some(PathBuf::from("/site/a/b.png"))
        );
        assert_eq!(file_for(d, "/../etc/passwd"), None);
        assert_eq!(file_for(d, "relative"), None);
    }
}
