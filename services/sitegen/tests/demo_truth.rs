//! Checks the demo site's ground truth against its own markup: an independent walker
//! parses the served HTML with `scraper`, applies robots.txt with `texting_robots`,
//! follows the site's redirects, and must reach exactly the pages and images the truth
//! lists, at the same depths. Also checks determinism and that every image is real.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use imgcrawl_events::{ImageFilters, PageFailure, RejectReason, Scope};
use imgcrawl_sitegen::{demo, Format, Origins, Site};
use scraper::{Html, Selector};
use texting_robots::Robot;
use url::Url;

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "gif", "webp", "svg"];

fn origins() -> Origins {
    Origins::loopback(9)
}

fn select<'a>(doc: &'a Html, css: &str, attr: &'a str) -> Vec<&'a str> {
    let sel = Selector::parse(css).unwrap();
    doc.select(&sel)
        .filter_map(|e| e.value().attr(attr))
        .collect()
}

/// (page links, image urls) found in `html` served at `page`.
fn extract(html: &str, page: &Url) -> (Vec<Url>, Vec<Url>) {
    let doc = Html::parse_document(html);
    let base = select(&doc, "base[href]", "href")
        .first()
        .and_then(|h| page.join(h).ok())
        .unwrap_or_else(|| page.clone());
    let join = |s: &str| {
        let mut u = base
            .join(s.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))?;
        u.set_fragment(None);
        Some(u)
    };
    let mut raw: Vec<String> = Vec::new();
    for (css, attr) in [
        ("img[src]", "src"),
        ("[data-src]", "data-src"),
        ("[data-original]", "data-original"),
    ] {
        raw.extend(select(&doc, css, attr).into_iter().map(String::from));
    }
    for (css, attr) in [
        ("img[srcset]", "srcset"),
        ("source[srcset]", "srcset"),
        ("[data-srcset]", "data-srcset"),
    ] {
        for set in select(&doc, css, attr) {
            raw.extend(
                set.split(',')
                    .filter_map(|c| c.split_whitespace().next())
                    .map(String::from),
            );
        }
    }
    for style in select(&doc, "[style]", "style") {
        if let Some(rest) = style
            .split("background-image")
            .nth(1)
            .and_then(|r| r.split("url(").nth(1))
        {
            let inner = rest.split(')').next().unwrap_or("");
            raw.push(inner.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    raw.extend(
        select(&doc, "meta[property=\"og:image\"]", "content")
            .into_iter()
            .map(String::from),
    );
    raw.extend(
        select(&doc, "meta[name=\"twitter:image\"]", "content")
            .into_iter()
            .map(String::from),
    );
    let mut images: Vec<Url> = raw.iter().filter_map(|s| join(s)).collect();
    let mut links = Vec::new();
    for href in select(&doc, "a[href]", "href") {
        let Some(u) = join(href) else { continue };
        let ext = u
            .path()
            .rsplit('.')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            images.push(u);
        } else {
            links.push(u);
        }
    }
    (links, images)
}

struct Walk {
    pages: BTreeMap<String, u32>,
    images: BTreeMap<(bool, String), u32>,
    requested: BTreeSet<String>,
}

/// Breadth-first walk of the served demo, the way a correct crawler does it.
fn walk(site: &Site) -> Walk {
    let o = origins();
    let origin = Url::parse(&o.origin).unwrap();
    let robots_body = site.get("/robots.txt").unwrap().render(&o).1;
    let robot = Robot::new("imgcrawl", &robots_body).unwrap();
    let mut w = Walk {
        pages: BTreeMap::new(),
        images: BTreeMap::new(),
        requested: BTreeSet::new(),
    };
    let mut queue = VecDeque::from([(origin.join(&site.seed_path).unwrap(), 0u32)]);
    w.pages.insert(site.seed_path.clone(), 0);
    while let Some((url, depth)) = queue.pop_front() {
        let mut cur = url.clone();
        let mut chain = vec![];
        let body = loop {
            if !robot.allowed(cur.as_str())
                || chain.contains(&cur)
                || cur.origin() != origin.origin()
            {
                break None;
            }
            chain.push(cur.clone());
            w.requested.insert(cur.path().to_string());
            let Some(res) = site.get(cur.path()) else {
                break None;
            };
            let (headers, body) = res.render(&o);
            if let Some((_, loc)) = headers.iter().find(|(k, _)| k == "location") {
                cur = cur.join(loc).unwrap();
                continue;
            }
            let html = headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/html"));
            break (res.status == 200 && html).then(|| String::from_utf8(body.to_vec()).unwrap());
        };
        let Some(body) = body else { continue };
        let (links, images) = extract(&body, &cur);
        for link in links.into_iter().filter(|l| l.origin() == origin.origin()) {
            if let std::collections::btree_map::Entry::Vacant(e) =
                w.pages.entry(link.path().to_string())
            {
                e.insert(depth + 1);
                queue.push_back((link, depth + 1));
            }
        }
        for img in images {
            let key = (img.origin() != origin.origin(), img.path().to_string());
            w.images.entry(key).or_insert(depth);
        }
    }
    w
}

#[test]
fn an_independent_walk_of_the_markup_reaches_exactly_the_truth() {
    let site = demo();
    let w = walk(&site);
    let t = &site.truth;
    let truth_pages: BTreeMap<String, u32> = t
        .pages_fetched
        .iter()
        .map(|p| (p.path.clone(), p.depth))
        .chain(t.pages_failed.iter().map(|p| (p.path.clone(), p.depth)))
        .collect();
    assert_eq!(truth_pages, w.pages);
    let truth_images: BTreeMap<(bool, String), u32> = t
        .images
        .iter()
        .map(|i| ((i.alt_host, i.url_path.clone()), i.depth))
        .chain(
            t.rejected
                .iter()
                .map(|r| ((false, r.url_path.clone()), r.depth)),
        )
        .collect();
    assert_eq!(truth_images, w.images);
    let robot = Robot::new("imgcrawl", &site.get("/robots.txt").unwrap().body).unwrap();
    for f in &t.pages_failed {
        assert_eq!(
            f.reason == PageFailure::Robots,
            !robot.allowed(&f.path),
            "{}",
            f.path
        );
    }
    for r in &t.rejected {
        assert_eq!(
            r.reason == RejectReason::Robots,
            !robot.allowed(&r.url_path),
            "{}",
            r.url_path
        );
    }
    for never in &t.must_not_fetch {
        assert!(
            !w.requested.contains(never),
            "{never} is requested by a correct walk"
        );
    }
}

#[test]
fn every_case_is_present_in_the_truth() {
    let site = demo();
    let t = &site.truth;
    let formats: BTreeSet<Format> = t.images.iter().map(|i| i.format).collect();
    assert_eq!(formats.len(), 5, "{formats:?}");
    let reasons: BTreeSet<String> = t
        .rejected
        .iter()
        .map(|r| format!("{:?}", r.reason))
        .collect();
    assert_eq!(
        reasons,
        ["DecodeFailed", "HttpStatus", "NotAnImage", "Robots"]
            .map(String::from)
            .into()
    );
    let failures: BTreeSet<String> = t
        .pages_failed
        .iter()
        .map(|p| format!("{:?}", p.reason))
        .collect();
    let want = [
        "HttpStatus",
        "NotHtml",
        "OutOfScope",
        "RedirectLoop",
        "Robots",
    ]
    .map(String::from);
    assert_eq!(failures, want.into());
    assert!(
        t.sources_by_sha256().values().any(|v| v.len() == 2),
        "one image at two urls"
    );
    assert!(t.images.iter().any(|i| i.alt_host));
    assert!(
        t.images.iter().any(|i| i.url_path != i.final_path),
        "an image behind a redirect"
    );
    let landing = t
        .pages_fetched
        .iter()
        .find(|p| p.path == "/r/start")
        .unwrap();
    assert_eq!(landing.hops, ["/r/start", "/r/middle", "/landing.html"]);
    for d in 0..=7 {
        assert_eq!(t.image(&format!("/img/depth-{d}.png")).unwrap().depth, d);
    }
    assert!(t.must_not_fetch.contains(&"/outside.html".to_string()));
    assert!(t
        .pages_fetched
        .iter()
        .any(|p| p.path == "/private/public/ok.html"));
    assert!(t.pages_fetched.iter().any(|p| p.path == "/script.cgi.html"));
}

#[test]
fn default_expectation_stops_at_depth_five_and_keeps_the_tiny_image() {
    let site = demo();
    let e = &site.expected;
    assert_eq!(
        e,
        &site
            .truth
            .for_job(&Scope::default(), &ImageFilters::default())
    );
    assert!(e.image("/img/depth-5.png").is_some());
    assert!(e.image("/img/depth-6.png").is_none());
    for p in [
        "/deep/6.html",
        "/deep/7.html",
        "/img/depth-6.png",
        "/img/depth-7.png",
    ] {
        assert!(e.must_not_fetch.contains(&p.to_string()), "{p}");
    }
    assert_eq!(
        e.image("/img/tiny.png").map(|i| (i.width, i.height)),
        Some((8, 8))
    );
    let strict = site.truth.for_job(
        &Scope::default(),
        &ImageFilters {
            min_width: 16,
            ..Default::default()
        },
    );
    assert_eq!(
        strict.rejection("/img/tiny.png"),
        Some(RejectReason::TooSmall)
    );
}

#[test]
fn demo_is_deterministic_and_its_images_are_what_the_truth_says() {
    let (a, b) = (demo(), demo());
    assert_eq!(a.resources, b.resources);
    assert_eq!(a.truth, b.truth);
    for i in &a.truth.images {
        let body = &a.get(&i.final_path).unwrap().body;
        assert_eq!(
            imgcrawl_events::Sha256::hex(body),
            i.sha256,
            "{}",
            i.url_path
        );
        assert_eq!(body.len() as u64, i.bytes);
        if i.format == Format::Svg {
            let text = std::str::from_utf8(body).unwrap();
            assert!(text.contains(&format!("width=\"{}\" height=\"{}\"", i.width, i.height)));
            continue;
        }
        let decoded = image::load_from_memory(body).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (i.width, i.height),
            "{}",
            i.url_path
        );
    }
    let broken = &a.get("/img/broken.png").unwrap().body;
    assert!(
        image::load_from_memory(broken).is_err(),
        "the broken png must not decode"
    );
}
