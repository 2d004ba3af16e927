//! Extraction tests: one HTML fixture per case, plus a big mixed page.

use super::*;

const LIMITS: Limits = Limits {
    max_links: 1000,
    max_images: 1000,
};

fn page() -> Url {
    Url::parse("https://example.org/dir/index.html").unwrap()
}

fn run(html: &str) -> Extracted {
    extract(html, &page(), LIMITS)
}

/// (url, found_by) of every image.
fn images(e: &Extracted) -> Vec<(String, FoundBy)> {
    e.images
        .iter()
        .map(|i| (i.url.to_string(), i.found_by))
        .collect()
}

fn links(e: &Extracted) -> Vec<String> {
    e.links.iter().map(Url::to_string).collect()
}

fn alt_of<'a>(e: &'a Extracted, url: &str) -> Option<&'a str> {
    e.images
        .iter()
        .find(|i| i.url.as_str() == url)
        .and_then(|i| i.alt.as_deref())
}

fn owned(v: &[(&str, FoundBy)]) -> Vec<(String, FoundBy)> {
    v.iter().map(|(u, f)| (u.to_string(), *f)).collect()
}

#[test]
fn img_src() {
    let e = run(include_str!("../fixtures/img_src.html"));
    use FoundBy::ImgSrc;
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/a.png", ImgSrc),
            ("https://example.org/abs/b.jpg", ImgSrc),
            ("https://cdn.example.net/c.gif", ImgSrc),
            ("https://other.example.com/d.webp", ImgSrc),
        ])
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/a.png"),
        Some("A picture of a cat")
    );
    assert_eq!(
        alt_of(&e, "https://cdn.example.net/c.gif"),
        None,
        "empty alt is none"
    );
    assert_eq!(e.images_found, 5, "occurrences before dedup (a.png twice)");
    assert_eq!(e.title.as_deref(), Some("img src"));
}

#[test]
fn srcset_candidates() {
    let e = run(include_str!("../fixtures/srcset.html"));
    use FoundBy::{ImgSrc, Srcset};
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/small.jpg", ImgSrc),
            ("https://example.org/dir/medium.jpg", Srcset),
            ("https://example.org/dir/large.jpg", Srcset),
            ("https://example.org/img,w_100/x.jpg", Srcset),
            ("https://example.org/img,w_200/x.jpg", Srcset),
            ("https://example.org/dir/one.jpg", Srcset),
            ("https://example.org/dir/two.jpg", Srcset),
            ("https://example.org/dir/three.jpg", Srcset),
        ])
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/large.jpg"),
        Some("sizes")
    );
}

#[test]
fn picture_sources() {
    let e = run(include_str!("../fixtures/picture.html"));
    use FoundBy::{ImgSrc, PictureSource};
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/hero.avif", PictureSource),
            ("https://example.org/dir/hero@2x.avif", PictureSource),
            ("https://example.org/dir/hero.webp", PictureSource),
            ("https://example.org/dir/hero.jpg", ImgSrc),
        ])
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/hero.webp"),
        Some("The hero")
    );
}

#[test]
fn lazy_attributes() {
    let e = run(include_str!("../fixtures/lazy.html"));
    use FoundBy::{ImgSrc, LazyAttribute};
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/placeholder.gif", ImgSrc),
            ("https://example.org/dir/real1.jpg", LazyAttribute),
            ("https://example.org/dir/real2-1x.jpg", LazyAttribute),
            ("https://example.org/dir/real2-2x.jpg", LazyAttribute),
            ("https://example.org/dir/real3.jpg", LazyAttribute),
            ("https://example.org/dir/real4.jpg", LazyAttribute),
            ("https://example.org/dir/real5", LazyAttribute),
            ("https://example.org/dir/real6.webp", LazyAttribute),
            ("https://example.org/dir/real6.jpg", LazyAttribute),
            ("https://example.org/bg/real7.JPEG", LazyAttribute),
            ("https://example.org/dir/real8.jpg", ImgSrc),
        ])
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/real1.jpg"),
        Some("lazy one")
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/real6.webp"),
        Some("six")
    );
    assert_eq!(
        alt_of(&e, "https://example.org/dir/real8.jpg"),
        Some("no js")
    );
}

#[test]
fn inline_styles() {
    let e = run(include_str!("../fixtures/inline_style.html"));
    use FoundBy::InlineStyle;
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/bg1.jpg", InlineStyle),
            ("https://example.org/dir/bg2.png", InlineStyle),
            ("https://example.org/dir/bg3.webp", InlineStyle),
            ("https://example.org/dir/bg4.jpg", InlineStyle),
        ])
    );
}

#[test]
fn meta_images() {
    let e = run(include_str!("../fixtures/meta.html"));
    use FoundBy::{OgImage, TwitterImage};
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/og.jpg", OgImage),
            ("https://example.org/og-url.jpg", OgImage),
            ("https://example.org/og-secure.jpg", OgImage),
            ("https://example.org/dir/tw.png", TwitterImage),
            ("https://example.org/dir/tw-src.png", TwitterImage),
            ("https://example.org/dir/tw-prop.png", TwitterImage),
        ])
    );
}

#[test]
fn links_and_image_links() {
    let e = run(include_str!("../fixtures/links.html"));
    assert_eq!(
        links(&e),
        vec![
            "https://example.org/dir/page2.html",
            "https://example.org/dir/page3.html?x=1",
            "https://other.example/",
            "https://example.org/dir/index.html",
            "https://example.org/dir/nofollow.html",
            "https://example.org/dir/area.html",
        ]
    );
    assert_eq!(
        e.links_found, 7,
        "page2 counted twice; mailto/javascript/tel/missing ignored"
    );
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/dir/photo.JPG", FoundBy::Link),
            (
                "https://example.org/files/scan.tiff?download=1",
                FoundBy::Link
            )
        ])
    );
}

#[test]
fn icons() {
    let e = run(include_str!("../fixtures/icons.html"));
    let urls: Vec<String> = images(&e)
        .into_iter()
        .map(|(u, f)| {
            assert_eq!(f, FoundBy::Icon);
            u
        })
        .collect();
    assert_eq!(
        urls,
        vec![
            "https://example.org/favicon.ico",
            "https://example.org/favicon-old.ico",
            "https://example.org/apple.png",
            "https://example.org/apple-pre.png",
            "https://example.org/mask.svg",
        ]
    );
    assert!(e.links.is_empty());
}

#[test]
fn base_href() {
    let e = run(include_str!("../fixtures/base.html"));
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/static/v2/img/a.png", FoundBy::ImgSrc),
            ("https://example.org/root.png", FoundBy::ImgSrc)
        ])
    );
    assert_eq!(
        links(&e),
        vec![
            "https://example.org/static/v2/next.html",
            "https://example.org/static/up.html"
        ]
    );
}

#[test]
fn unusable_base_href_falls_back_to_the_page() {
    for base in [
        r#"<base href="javascript:alert(1)">"#,
        r#"<base href="http://">"#,
        r#"<base target="_blank">"#,
    ] {
        let e = run(&format!(
            "<html><head>{base}</head><body><a href='x.html'>x</a></body></html>"
        ));
        assert_eq!(links(&e), vec!["https://example.org/dir/x.html"], "{base}");
    }
}

#[test]
fn title_is_collapsed_and_svg_titles_ignored() {
    let e = run(include_str!("../fixtures/title.html"));
    assert_eq!(e.title.as_deref(), Some("Hello, world & friends"));
    assert_eq!(run("<svg><title>only svg</title></svg>").title, None);
    assert_eq!(run("<title>   </title>").title, None);
}

#[test]
fn mixed_page() {
    let e = run(include_str!("../fixtures/mixed.html"));
    use FoundBy::*;
    assert_eq!(e.title.as_deref(), Some("Gallery — Example"));
    assert_eq!(
        links(&e),
        vec![
            "https://example.org/gallery/",
            "https://example.org/gallery/albums/",
            "https://example.org/gallery/page/2?sort=asc&x=~user",
            "https://example.org/regions/north",
        ]
    );
    assert_eq!(e.links_found, 7, "home, albums x3, next page, area, '#'");
    assert_eq!(
        images(&e),
        owned(&[
            ("https://cdn.example.net/og/cover.jpg", OgImage),
            ("https://example.org/twitter/card.png", TwitterImage),
            ("https://example.org/favicon.png", Icon),
            ("https://example.org/bg/header.jpg", InlineStyle),
            ("https://example.org/gallery/photos/beach.jpg", ImgSrc),
            ("https://example.org/gallery/photos/beach-640.jpg", Srcset),
            ("https://example.org/gallery/photos/beach-1280.jpg", Srcset),
            (
                "https://example.org/gallery/photos/sunset.avif",
                PictureSource
            ),
            ("https://example.org/gallery/photos/sunset.jpg", ImgSrc),
            (
                "https://example.org/gallery/photos/forest.jpg",
                LazyAttribute
            ),
            ("https://example.org/gallery/photos/full/beach.JPEG", Link),
            ("https://example.org/gallery/tiles/1.png", InlineStyle),
            ("https://example.org/gallery/tiles/2.png", InlineStyle),
            ("https://example.org/gallery/photos/noscript.jpg", ImgSrc),
        ])
    );
    assert_eq!(e.images_found, 15, "beach.jpg twice (img and link)");
    assert_eq!(
        alt_of(&e, "https://example.org/gallery/photos/sunset.avif"),
        Some("Sunset")
    );
    assert_eq!(
        alt_of(&e, "https://example.org/gallery/photos/forest.jpg"),
        Some("Forest")
    );
}

#[test]
fn limits_cap_kept_urls_but_not_counts() {
    let html: String = (0..50)
        .map(|i| format!("<a href='p{i}.html'></a><img src='i{i}.png'>"))
        .collect();
    let e = extract(
        &html,
        &page(),
        Limits {
            max_links: 10,
            max_images: 5,
        },
    );
    assert_eq!((e.links.len(), e.images.len()), (10, 5));
    assert_eq!((e.links_found, e.images_found), (50, 50));
}

#[test]
fn garbage_never_panics() {
    for junk in [
        "",
        "<",
        "<img src=",
        "<a href='\u{0}'>",
        "<<<>>>",
        "\u{feff}<html><body><img srcset=', , ,'>",
        "<source srcset='x 1x'>",
        "<div style='background:url('>",
    ] {
        let _ = run(junk);
    }
    let e = run("<img src='http://[::1'><a href='http://exa mple.org/'>x</a>");
    assert!(e.images.is_empty() && e.links.is_empty());
}

#[test]
fn image_extensions() {
    for (u, want) in [
        ("https://a.test/x.JPG", true),
        ("https://a.test/x.jpeg?w=1", true),
        ("https://a.test/x.svg", true),
        ("https://a.test/x.html", false),
        ("https://a.test/jpg", false),
        ("https://a.test/x.jpg/", false),
        ("https://a.test/?f=x.jpg", false),
    ] {
        assert_eq!(has_image_extension(&Url::parse(u).unwrap()), want, "{u}");
    }
}

#[test]
fn every_html_source() {
    let e = run(include_str!("../fixtures/sources.html"));
    use FoundBy::*;
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/hero-preload.jpg", Preload),
            ("https://example.org/hero-640.jpg", Preload),
            ("https://example.org/hero-1280.jpg", Preload),
            ("https://example.org/dir/img/banner.png", StyleBlock),
            ("https://example.org/dir/img/set-1x.webp", StyleBlock),
            ("https://example.org/dir/img/set-2x.webp", StyleBlock),
            ("https://example.org/img/star.svg", StyleBlock),
            // JSON object keys come sorted (brand, image, review)
            ("https://example.org/ld/brand-logo.png", JsonLd),
            ("https://example.org/ld/lamp-1.jpg", JsonLd),
            ("https://cdn.example.net/ld/lamp-2.jpg", JsonLd),
            ("https://example.org/ld/author.jpg", JsonLd),
            ("https://example.org/ld/thumb.jpg", JsonLd),
            ("https://example.org/media/poster.jpg", VideoPoster),
            ("https://example.org/btn/submit.png", InputImage),
            ("https://example.org/obj/diagram.svg", Embed),
            ("https://example.org/obj/untyped.png", Embed),
            ("https://example.org/emb/chart.png", Embed),
            ("https://example.org/svg/href.png", SvgImage),
            ("https://example.org/svg/xlink.png", SvgImage),
            ("https://example.org/md/meta.jpg", Microdata),
            ("https://example.org/md/logo.png", Microdata),
            ("https://example.org/md/img.jpg", ImgSrc),
        ])
    );
    assert_eq!(
        alt_of(&e, "https://example.org/btn/submit.png"),
        Some("Submit")
    );
    assert_eq!(
        links(&e),
        [
            "https://example.org/next.html",
            "https://example.org/frames/inner.html",
            "https://elsewhere.example.com/embed",
        ],
        "refresh target and frames are pages (scope decides later)"
    );
    let sheets: Vec<String> = e.stylesheets.iter().map(Url::to_string).collect();
    assert_eq!(
        sheets,
        [
            "https://example.org/dir/css/site.css",
            "https://example.org/css/alt.css",
            "https://example.org/css/imported.css",
        ]
    );
    let manifests: Vec<String> = e.manifests.iter().map(Url::to_string).collect();
    assert_eq!(manifests, ["https://example.org/app.webmanifest"]);
}

#[test]
fn frameset_frames_are_pages() {
    let e = run(
        r#"<html><head><title>f</title></head><frameset cols="50%,50%">
        <frame src="left.html"><frame src="/right.html"><noframes><img src="nf.png"></noframes>
        </frameset></html>"#,
    );
    assert_eq!(
        links(&e),
        [
            "https://example.org/dir/left.html",
            "https://example.org/right.html"
        ]
    );
}

#[test]
fn pages_that_must_yield_nothing() {
    let e = run(include_str!("../fixtures/negatives.html"));
    assert_eq!(images(&e), owned(&[]), "comments, scripts, strings, text");
    assert!(e.links.is_empty(), "{:?}", e.links);
    assert!(e.stylesheets.is_empty() && e.manifests.is_empty());
    assert_eq!(e.images_found, 0);
}

#[test]
fn refresh_targets() {
    use crate::sources::refresh_target;
    let cases = [
        ("5; url=/a", Some("/a")),
        ("0;URL='/b c'", Some("/b c")),
        ("3, \"/c\"", Some("/c")),
        ("1.5 /d", Some("/d")),
        ("0; url = /e", Some("/e")),
        ("5", None),
        ("", None),
        ("0; url=", None),
    ];
    for (content, want) in cases {
        assert_eq!(refresh_target(content), want, "{content:?}");
    }
}

#[test]
fn added_images_and_links_are_deduplicated_and_capped() {
    let mut e = run(r#"<img src="/a.png"><a href="/p">p</a>"#);
    let u = |s: &str| Url::parse(s).unwrap();
    e.add_image(u("https://example.org/a.png"), FoundBy::Stylesheet, 10);
    e.add_image(u("https://example.org/b.png"), FoundBy::Stylesheet, 10);
    e.add_image(u("https://example.org/c.png"), FoundBy::Stylesheet, 2);
    e.add_link(u("https://example.org/p"), 10);
    e.add_link(u("https://example.org/q"), 10);
    assert_eq!(
        images(&e),
        owned(&[
            ("https://example.org/a.png", FoundBy::ImgSrc),
            ("https://example.org/b.png", FoundBy::Stylesheet),
        ])
    );
    assert_eq!(e.images_found, 4);
    assert_eq!(
        links(&e),
        ["https://example.org/p", "https://example.org/q"]
    );
}
