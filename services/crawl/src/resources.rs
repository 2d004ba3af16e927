//! A page's resources: its stylesheets (and their `@import`s, to a bounded depth) and
//! web app manifests, fetched after the parse through the same [`imgcrawl_fetch::Fetcher`]
//! as pages (one host gate per process, robots.txt, the address guard, redirects checked
//! against the job's scope) and added to the page's images as `stylesheet` and
//! `manifest`. URLs are resolved against the resource's own final URL, not the page.
//!
//! What a resource yields is cached per job and URL in a bounded, process-wide table
//! (oldest out first), so a site-wide stylesheet is fetched once per crawl and process,
//! not once per page; a resource that failed is cached as empty (logged once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use imgcrawl_events::{FoundBy, JobSpec};
use imgcrawl_fetch::RequestOptions;
use tracing::debug;
use url::Url;
use uuid::Uuid;

use crate::css;
use crate::extract::Extracted;
use crate::handler::Crawler;
use crate::normalize::normalize;
use crate::scope::JobScope;

/// The Accept header of stylesheet requests.
const ACCEPT_CSS: &str = "text/css,*/*;q=0.1";
/// The Accept header of manifest requests.
const ACCEPT_MANIFEST: &str = "application/manifest+json,application/json;q=0.9,*/*;q=0.1";

/// What one fetched resource refers to, resolved against its final URL.
#[derive(Debug, Default)]
pub(crate) struct Resource {
    /// Image URLs.
    images: Vec<Url>,
    /// Stylesheets it imports.
    imports: Vec<Url>,
}

/// The kind of a resource: how its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Stylesheet,
    Manifest,
}

/// A cache key: the job, the kind of resource, its URL.
type Key = (Uuid, Kind, String);

/// Resources by (job, kind, URL), bounded; shared by every page of the process.
#[derive(Debug)]
pub(crate) struct ResourceCache {
    cap: usize,
    inner: Mutex<Entries>,
}

/// The cached resources, and their keys oldest first.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Key, Arc<Resource>>,
    order: VecDeque<Key>,
}

impl ResourceCache {
    /// A cache holding at most `cap` resources.
    pub(crate) fn new(cap: usize) -> ResourceCache {
        ResourceCache {
            cap: cap.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    fn get(&self, key: &Key) -> Option<Arc<Resource>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.map.get(key).cloned()
    }

    fn put(&self, key: Key, r: Arc<Resource>) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.map.insert(key.clone(), r).is_none() {
            g.order.push_back(key);
        }
        while g.order.len() > self.cap {
            if let Some(old) = g.order.pop_front() {
                g.map.remove(&old);
            }
        }
    }
}

/// The icon URLs of a web app manifest (`icons[].src`), as written.
pub fn manifest_icons(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    v.get("icons")
        .and_then(|i| i.as_array())
        .map(|icons| {
            icons
                .iter()
                .filter_map(|i| i.get("src").and_then(|s| s.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Crawler {
    /// Fetches the page's stylesheets (following `@import`s up to the configured
    /// depth) and manifests, and adds their images to `found`.
    pub(crate) async fn add_resources(
        &self,
        spec: &JobSpec,
        scope: &JobScope,
        found: &mut Extracted,
    ) {
        let max_images = self.config.max_images_per_page;
        let mut queue: VecDeque<(Url, u32)> =
            found.stylesheets.iter().map(|u| (u.clone(), 0)).collect();
        let mut visited: HashSet<Url> = HashSet::new();
        while let Some((url, depth)) = queue.pop_front() {
            if visited.len() >= self.config.max_stylesheets_per_page || !visited.insert(url.clone())
            {
                continue;
            }
            let r = self.resource(spec, scope, Kind::Stylesheet, &url).await;
            for u in &r.images {
                found.add_image(u.clone(), FoundBy::Stylesheet, max_images);
            }
            if depth < self.config.max_import_depth {
                queue.extend(r.imports.iter().map(|u| (u.clone(), depth + 1)));
            }
        }
        for url in found.manifests.clone() {
            let r = self.resource(spec, scope, Kind::Manifest, &url).await;
            for u in &r.images {
                found.add_image(u.clone(), FoundBy::Manifest, max_images);
            }
        }
    }

    /// One resource, from the cache or fetched (and then cached, empty on failure).
    async fn resource(
        &self,
        spec: &JobSpec,
        scope: &JobScope,
        kind: Kind,
        url: &Url,
    ) -> Arc<Resource> {
        let key = (spec.job_id, kind, url.to_string());
        if let Some(r) = self.resources.get(&key) {
            return r;
        }
        let r = Arc::new(match self.fetch_resource(spec, scope, kind, url).await {
            Ok(r) => r,
            Err(why) => {
                debug!(job = %spec.job_id, url = %url, ?kind, %why, "resource skipped");
                Resource::default()
            }
        });
        self.resources.put(key, r.clone());
        r
    }

    async fn fetch_resource(
        &self,
        spec: &JobSpec,
        scope: &JobScope,
        kind: Kind,
        url: &Url,
    ) -> Result<Resource, String> {
        if !scope.image_allowed(url) {
            return Err("out of the job's scope".into());
        }
        let in_scope = |u: &Url| scope.image_allowed(u);
        let opts = RequestOptions {
            politeness: &spec.politeness,
            obey_robots: spec.politeness.obey_robots,
            in_scope: &in_scope,
            accept: match kind {
                Kind::Stylesheet => ACCEPT_CSS,
                Kind::Manifest => ACCEPT_MANIFEST,
            },
        };
        let fetched = self
            .fetcher
            .get(url, &opts)
            .await
            .map_err(|e| e.to_string())?;
        if !(200..300).contains(&fetched.status) {
            return Err(format!("http {}", fetched.status));
        }
        let html = fetched
            .content_type
            .as_deref()
            .is_some_and(|c| c.to_ascii_lowercase().starts_with("text/html"));
        if html {
            return Err("an html page, not a resource".into());
        }
        let base = fetched.final_url.clone();
        let body = fetched
            .read_capped(self.config.max_resource_bytes)
            .await
            .map_err(|e| e.to_string())?;
        let resolve = |raw: &[String]| -> Vec<Url> {
            raw.iter().filter_map(|u| normalize(&base, u)).collect()
        };
        Ok(match kind {
            Kind::Stylesheet => {
                let sheet = css::scan(&String::from_utf8_lossy(&body));
                Resource {
                    images: resolve(&sheet.images),
                    imports: resolve(&sheet.imports),
                }
            }
            Kind::Manifest => Resource {
                images: resolve(&manifest_icons(&body)),
                imports: Vec::new(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_icons_are_read_and_junk_is_not() {
        let body = br#"{"name":"x","icons":[{"src":"/i/192.png","sizes":"192x192"},{"sizes":"1x1"},{"src":"i/512.png"}]}"#;
        assert_eq!(manifest_icons(body), ["/i/192.png", "i/512.png"]);
        assert!(manifest_icons(b"not json").is_empty());
        assert!(manifest_icons(br#"{"icons":"nope"}"#).is_empty());
    }

    #[test]
    fn the_cache_is_bounded_oldest_out() {
        let c = ResourceCache::new(2);
        let k = |s: &str| (Uuid::nil(), Kind::Stylesheet, s.to_string());
        for s in ["a", "b", "c"] {
            c.put(k(s), Arc::new(Resource::default()));
        }
        assert!(c.get(&k("a")).is_none());
        assert!(c.get(&k("b")).is_some() && c.get(&k("c")).is_some());
    }
}
