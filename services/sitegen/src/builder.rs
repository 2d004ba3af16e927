//! Assembles a [`Site`] from pages, images and special responses, and derives its
//! ground truth by walking it the way a correct crawler would.
//!
//! The walk is breadth-first from the seed: a page path is resolved by following the
//! site's own redirect responses (a hop back into the chain is a loop, a hop to the
//! alternate origin leaves the scope), and the final response decides the outcome (HTML
//! page, HTTP error, not HTML). Robots-disallowed paths are declared, not parsed; the
//! crate's tests check the declaration against `robots.txt` with a real parser.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use imgcrawl_events::{ImageFilters, PageFailure, RejectReason, Scope};

use crate::expected::{
    Expected, ExpectedImage, ExpectedPage, ExpectedPageFailure, ExpectedRejection,
};
use crate::html::Page;
use crate::images::Image;
use crate::site::{Resource, Site, ALT_ORIGIN, ORIGIN};

/// Most redirects followed while resolving one URL.
const MAX_HOPS: usize = 10;

/// What a page declares it links to.
#[derive(Debug, Clone, Default)]
struct Links {
    pages: Vec<String>,
    images: Vec<(bool, String)>,
}

/// How fetching a path ends.
enum Fetch {
    /// A 200 response at `final_path` after `hops`.
    Ok {
        final_path: String,
        hops: Vec<String>,
    },
    /// A failure, with the HTTP status when there was a final response.
    Failed {
        reason: PageFailure,
        status: Option<u16>,
        hops: Vec<String>,
    },
}

/// Collects resources and declarations; [`Builder::finish`] derives the truth.
#[derive(Default)]
pub(crate) struct Builder {
    resources: BTreeMap<String, Resource>,
    pages: HashMap<String, Links>,
    images: HashMap<String, Image>,
    bad_images: HashMap<String, RejectReason>,
    blocked: BTreeSet<String>,
    must_not_fetch: BTreeSet<String>,
}

impl Builder {
    /// Adds a raw resource.
    pub fn resource(&mut self, path: &str, res: Resource) -> &mut Builder {
        self.resources.insert(path.into(), res);
        self
    }

    /// Adds an HTML page and what it links to.
    pub fn page(&mut self, path: &str, page: &Page) -> &mut Builder {
        let images = page.images.iter().map(|p| (false, p.clone()));
        let alt = page.alt_images.iter().map(|p| (true, p.clone()));
        self.pages.insert(
            path.into(),
            Links {
                pages: page.links.clone(),
                images: images.chain(alt).collect(),
            },
        );
        self.resource(path, Resource::html(page.render()))
    }

    /// Serves a valid image at `path`.
    pub fn image(&mut self, path: &str, image: &Image) -> &mut Builder {
        self.images.insert(path.into(), image.clone());
        self.resource(path, Resource::image(image))
    }

    /// Serves `res` at `path`, an image URL a downloader must reject for `reason`.
    pub fn bad_image(&mut self, path: &str, res: Resource, reason: RejectReason) -> &mut Builder {
        self.bad_images.insert(path.into(), reason);
        self.resource(path, res)
    }

    /// Declares `path` disallowed by the site's robots.txt.
    pub fn blocked(&mut self, path: &str) -> &mut Builder {
        self.blocked.insert(path.into());
        self
    }

    /// Declares a path that a correct crawler never requests (e.g. out of scope).
    pub fn never(&mut self, path: &str) -> &mut Builder {
        self.must_not_fetch.insert(path.into());
        self
    }

    /// Follows the site's redirects from `path`.
    fn fetch(&self, path: &str) -> Fetch {
        let mut hops: Vec<String> = Vec::new();
        let mut cur = path.to_string();
        loop {
            if self.blocked.contains(&cur) {
                return Fetch::Failed {
                    reason: PageFailure::Robots,
                    status: None,
                    hops,
                };
            }
            hops.push(cur.clone());
            let Some(res) = self.resources.get(&cur) else {
                return Fetch::Failed {
                    reason: PageFailure::HttpStatus,
                    status: Some(404),
                    hops,
                };
            };
            if !(300..400).contains(&res.status) {
                return match res.status {
                    200 => Fetch::Ok {
                        final_path: cur,
                        hops,
                    },
                    s => Fetch::Failed {
                        reason: PageFailure::HttpStatus,
                        status: Some(s),
                        hops,
                    },
                };
            }
            let loc = res
                .headers
                .iter()
                .find(|(k, _)| k == "location")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            if loc.starts_with(ALT_ORIGIN) {
                return Fetch::Failed {
                    reason: PageFailure::OutOfScope,
                    status: None,
                    hops,
                };
            }
            let next = loc.strip_prefix(ORIGIN).unwrap_or(loc).to_string();
            if hops.contains(&next) {
                return Fetch::Failed {
                    reason: PageFailure::RedirectLoop,
                    status: None,
                    hops,
                };
            }
            if hops.len() > MAX_HOPS {
                return Fetch::Failed {
                    reason: PageFailure::TooManyRedirects,
                    status: None,
                    hops,
                };
            }
            cur = next;
        }
    }

    /// The outcome of downloading image `path` (`alt`: on the alternate origin).
    fn image_outcome(
        &self,
        alt: bool,
        path: &str,
        depth: u32,
    ) -> Result<ExpectedImage, ExpectedRejection> {
        let reject = |reason, http_status, body_bytes| ExpectedRejection {
            url_path: path.into(),
            reason,
            http_status,
            body_bytes,
            depth,
        };
        let (final_path, _) = match self.fetch(path) {
            Fetch::Ok { final_path, hops } => (final_path, hops),
            Fetch::Failed {
                reason: PageFailure::Robots,
                ..
            } => return Err(reject(RejectReason::Robots, None, None)),
            Fetch::Failed {
                reason: PageFailure::HttpStatus,
                status,
                ..
            } => return Err(reject(RejectReason::HttpStatus, status, None)),
            Fetch::Failed { .. } => return Err(reject(RejectReason::TooManyRedirects, None, None)),
        };
        let body = self.resources.get(&final_path).map(|r| r.body.len() as u64);
        if let Some(reason) = self.bad_images.get(&final_path) {
            return Err(reject(*reason, None, body));
        }
        let Some(img) = self.images.get(&final_path) else {
            return Err(reject(RejectReason::NotAnImage, None, body));
        };
        Ok(ExpectedImage {
            url_path: path.into(),
            final_path,
            alt_host: alt,
            sha256: img.sha256.clone(),
            format: img.format,
            width: img.width,
            height: img.height,
            bytes: img.bytes.len() as u64,
            depth,
        })
    }

    /// Walks the site breadth-first from `seed` and returns it with its truth.
    pub fn finish(self, seed: &str) -> Site {
        let mut truth = Expected::default();
        let mut never = self.must_not_fetch.clone();
        let mut seen_pages: BTreeSet<String> = BTreeSet::from([seed.to_string()]);
        let mut seen_images: BTreeSet<(bool, String)> = BTreeSet::new();
        let mut queue = VecDeque::from([(seed.to_string(), 0u32)]);
        while let Some((path, depth)) = queue.pop_front() {
            let (final_path, hops) = match self.fetch(&path) {
                Fetch::Ok { final_path, hops } if self.pages.contains_key(&final_path) => {
                    (final_path, hops)
                }
                Fetch::Ok { hops, .. } => {
                    let f = ExpectedPageFailure {
                        path,
                        reason: PageFailure::NotHtml,
                        http_status: Some(200),
                        depth,
                        hops,
                    };
                    truth.pages_failed.push(f);
                    continue;
                }
                Fetch::Failed {
                    reason,
                    status,
                    hops,
                } => {
                    if reason == PageFailure::Robots {
                        never.insert(path.clone());
                    }
                    truth.pages_failed.push(ExpectedPageFailure {
                        path,
                        reason,
                        http_status: status,
                        depth,
                        hops,
                    });
                    continue;
                }
            };
            let links = &self.pages[&final_path];
            for next in &links.pages {
                if seen_pages.insert(next.clone()) {
                    queue.push_back((next.clone(), depth + 1));
                }
            }
            for (alt, img) in &links.images {
                if seen_images.insert((*alt, img.clone())) {
                    match self.image_outcome(*alt, img, depth) {
                        Ok(i) => truth.images.push(i),
                        Err(r) => {
                            if r.reason == RejectReason::Robots {
                                never.insert(img.clone());
                            }
                            truth.rejected.push(r);
                        }
                    }
                }
            }
            truth.pages_fetched.push(ExpectedPage {
                path,
                final_path,
                hops,
                depth,
            });
        }
        truth.must_not_fetch = never.into_iter().collect();
        let expected = truth.for_job(&Scope::default(), &ImageFilters::default());
        Site {
            resources: self.resources,
            seed_path: seed.into(),
            truth,
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(b: &Builder, path: &str) -> (Option<PageFailure>, Vec<String>) {
        match b.fetch(path) {
            Fetch::Ok { hops, .. } => (None, hops),
            Fetch::Failed { reason, hops, .. } => (Some(reason), hops),
        }
    }

    #[test]
    fn redirects_resolve_loop_leave_scope_or_run_out() {
        let mut b = Builder::default();
        b.page("/end", &Page::new("end"));
        b.resource("/a", Resource::redirect(301, &format!("{ORIGIN}/end")));
        b.resource("/x", Resource::redirect(302, "/y"))
            .resource("/y", Resource::redirect(302, "/x"));
        b.resource(
            "/out",
            Resource::redirect(302, &format!("{ALT_ORIGIN}/end")),
        );
        for i in 0..20 {
            b.resource(
                &format!("/c{i}"),
                Resource::redirect(302, &format!("/c{}", i + 1)),
            );
        }
        b.blocked("/end2");
        b.resource("/to-blocked", Resource::redirect(302, "/end2"));
        assert_eq!(outcome(&b, "/a"), (None, vec!["/a".into(), "/end".into()]));
        assert_eq!(outcome(&b, "/x").0, Some(PageFailure::RedirectLoop));
        assert_eq!(outcome(&b, "/out").0, Some(PageFailure::OutOfScope));
        assert_eq!(outcome(&b, "/c0").0, Some(PageFailure::TooManyRedirects));
        assert_eq!(outcome(&b, "/nope").0, Some(PageFailure::HttpStatus));
        assert_eq!(
            outcome(&b, "/to-blocked"),
            (Some(PageFailure::Robots), vec!["/to-blocked".into()])
        );
    }

    #[test]
    fn walk_records_min_depth_and_each_url_once() {
        let mut b = Builder::default();
        let img = crate::images::render(&crate::images::ImageSpec::new(
            crate::Format::Png,
            10,
            10,
            1,
        ))
        .unwrap();
        b.image("/i.png", &img);
        let mut home = Page::new("home");
        home.links(&["/p1", "/p2"]);
        b.page("/", &home);
        let mut p1 = Page::new("p1");
        p1.links(&["/p2", "/"]).images(&["/i.png"]);
        b.page("/p1", &p1);
        let mut p2 = Page::new("p2");
        p2.images(&["/i.png", "/i.png"]);
        b.page("/p2", &p2);
        let site = b.finish("/");
        assert_eq!(site.truth.fetched_paths(), vec!["/", "/p1", "/p2"]);
        assert_eq!(site.truth.images.len(), 1);
        assert_eq!(site.truth.images[0].depth, 1);
    }
}
