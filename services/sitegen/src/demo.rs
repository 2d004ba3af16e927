//! The demo site: a dozen pages that exercise every extraction rule and every failure
//! the pipeline must handle, with its ground truth. `just demo` crawls it, and the
//! integration tests compare the index against [`Site::expected`].
//!
//! Map (depth from `/`): `/` links to `/gallery/` (a `<base href>` page), `/lazy.html`,
//! `/about.html` (three fragment variants), the `/deep/1..7.html` chain, a 301→302
//! redirect chain, a redirect loop, a redirect out of scope, a PDF, a 404, robots cases
//! (`/private/` with an `Allow` exception, `/*.cgi$`) and a page on the alternate host.

use bytes::Bytes;
use imgcrawl_events::RejectReason;

use crate::builder::Builder;
use crate::error::SiteError;
use crate::html::Page;
use crate::images::{render, Format, Image, ImageSpec};
use crate::rng::seed_from_name;
use crate::site::{Resource, Site, ALT_ORIGIN, ORIGIN};

/// The demo site's robots.txt.
pub const DEMO_ROBOTS: &str = "# imgcrawl-sitegen demo\n\
User-agent: BadBot\nDisallow: /\n\n\
User-agent: *\nAllow: /private/public/\nDisallow: /private/\nDisallow: /img/private/\nDisallow: /*.cgi$\n";

/// Depth of the `/deep/N.html` chain's last page.
pub const DEMO_DEEPEST: u32 = 7;

/// The demo site (see the module docs for its map).
pub fn demo() -> Site {
    try_demo().expect("the demo's fixed images always encode")
}

/// The demo site, or the encoder's error.
pub fn try_demo() -> Result<Site, SiteError> {
    let mut b = Builder::default();
    b.resource(
        "/robots.txt",
        Resource::new("text/plain; charset=utf-8", DEMO_ROBOTS),
    );
    home(&mut b)?;
    gallery(&mut b)?;
    lazy(&mut b)?;
    about(&mut b)?;
    deep_chain(&mut b)?;
    edge_pages(&mut b)?;
    Ok(b.finish("/"))
}

/// Renders and serves an image at `path`, seeded by its path.
fn img(b: &mut Builder, path: &str, format: Format, w: u32, h: u32) -> Result<Image, SiteError> {
    let image = render(&ImageSpec::new(format, w, h, seed_from_name(path)))?;
    b.image(path, &image);
    Ok(image)
}

fn home(b: &mut Builder) -> Result<(), SiteError> {
    let mut p = Page::new("imgcrawl demo");
    p.head(&format!("<meta property=\"og:image\" content=\"{ORIGIN}/img/og.png\">"))
        .head("<meta name=\"twitter:image\" content=\"/img/twitter.jpg\">")
        .body("<h1 id=\"top\">demo</h1>")
        .body("<img src=\"/img/hero.jpg\" alt=\"hero\">")
        .body("<img src=\"/img/photo-small.jpg\" srcset=\"/img/photo-480.jpg 480w, /img/photo-800.webp 800w\" sizes=\"50vw\" alt=\"photo\">")
        .body("<picture>\n<source type=\"image/webp\" srcset=\"/img/pic.webp\">\n<source srcset=\"/img/pic-1x.png 1x, /img/pic-2x.png 2x\">\n<img src=\"/img/pic.jpg\" alt=\"picture\">\n</picture>")
        .body("<img src=\"/img/depth-0.png\" alt=\"depth 0\">")
        .body("<img src=\"/img/with space.png\" alt=\"space\"> <img src=\"/img/./sub/../norm.png\" alt=\"dots\">")
        .body("<a href=\"/img/link-target.png\">full size</a>")
        .images(&[
            "/img/og.png", "/img/twitter.jpg", "/img/hero.jpg", "/img/photo-small.jpg", "/img/photo-480.jpg",
            "/img/photo-800.webp", "/img/pic.webp", "/img/pic-1x.png", "/img/pic-2x.png", "/img/pic.jpg",
            "/img/depth-0.png", "/img/with%20space.png", "/img/norm.png", "/img/link-target.png",
        ]);
    p.body("<nav>\n<a href=\"/gallery/\">gallery</a> <a href=\"/lazy.html\">lazy</a>\n<a href=\"/about.html#team\">team</a> <a href=\"/about.html#contact\">contact</a> <a href=\"about.html\">about</a> <a href=\"#top\">top</a>\n<a href=\"/deep/1.html\">deep</a> <a href=\"/r/start\">moved</a> <a href=\"/loop/a\">loop</a> <a href=\"/r/away\">away</a>\n<a href=\"/doc.pdf\">pdf</a> <a href=\"/missing.html\">missing</a>\n<a href=\"/private/secret.html\">secret</a> <a href=\"/private/public/ok.html\">public</a> <a href=\"/run.cgi\">cgi</a> <a href=\"/script.cgi.html\">not cgi</a>\n</nav>")
        .body(&format!("<a href=\"{ALT_ORIGIN}/outside.html\">elsewhere</a> <a href=\"mailto:someone@example.org\">mail</a> <a href=\"javascript:void(0)\">js</a>"))
        .links(&[
            "/gallery/", "/lazy.html", "/about.html", "/deep/1.html", "/r/start", "/loop/a", "/r/away", "/doc.pdf",
            "/missing.html", "/private/secret.html", "/private/public/ok.html", "/run.cgi", "/script.cgi.html",
        ]);
    b.page("/", &p);
    img(b, "/img/og.png", Format::Png, 240, 126)?;
    img(b, "/img/twitter.jpg", Format::Jpeg, 240, 120)?;
    img(b, "/img/hero.jpg", Format::Jpeg, 320, 200)?;
    img(b, "/img/photo-small.jpg", Format::Jpeg, 160, 100)?;
    img(b, "/img/photo-480.jpg", Format::Jpeg, 480, 300)?;
    img(b, "/img/photo-800.webp", Format::WebP, 320, 200)?;
    img(b, "/img/pic.webp", Format::WebP, 200, 150)?;
    img(b, "/img/pic-1x.png", Format::Png, 100, 75)?;
    img(b, "/img/pic-2x.png", Format::Png, 200, 150)?;
    img(b, "/img/pic.jpg", Format::Jpeg, 100, 75)?;
    img(b, "/img/depth-0.png", Format::Png, 64, 64)?;
    img(b, "/img/with%20space.png", Format::Png, 90, 60)?;
    img(b, "/img/norm.png", Format::Png, 90, 60)?;
    img(b, "/img/link-target.png", Format::Png, 300, 200)?;
    Ok(())
}

fn gallery(b: &mut Builder) -> Result<(), SiteError> {
    let mut p = Page::new("gallery");
    p.head("<base href=\"/assets/v2/\">")
        .body("<img src=\"cat.gif\" alt=\"cat\"> <a href=\"sub/page.html\">more</a>")
        .body("<img src=\"/img/dup-a.png\" alt=\"one\"> <img src=\"/gallery/dup-b.png\" alt=\"same bytes\">")
        .body("<img src=\"/img/logo.svg\" alt=\"logo\"> <img src=\"/img/tiny.png\" alt=\"tiny\">")
        .body("<img src=\"/img/broken.png\"> <img src=\"/img/fake.jpg\"> <img src=\"/img/gone.jpg\">")
        .body("<img src=\"/img/moved.jpg\" alt=\"moved\"> <img src=\"/img/private/hidden.png\">")
        .body(&format!("<img src=\"{ALT_ORIGIN}/cdn/alt-host.jpg\" alt=\"cdn\">"))
        .links(&["/assets/v2/sub/page.html"])
        .images(&[
            "/assets/v2/cat.gif", "/img/dup-a.png", "/gallery/dup-b.png", "/img/logo.svg", "/img/tiny.png",
            "/img/broken.png", "/img/fake.jpg", "/img/gone.jpg", "/img/moved.jpg", "/img/private/hidden.png",
        ])
        .alt_images(&["/cdn/alt-host.jpg"]);
    b.page("/gallery/", &p);
    img(b, "/assets/v2/cat.gif", Format::Gif, 120, 90)?;
    let dup = img(b, "/img/dup-a.png", Format::Png, 128, 96)?;
    b.image("/gallery/dup-b.png", &dup);
    img(b, "/img/logo.svg", Format::Svg, 120, 80)?;
    img(b, "/img/tiny.png", Format::Png, 8, 8)?;
    img(b, "/img/real/moved.jpg", Format::Jpeg, 150, 100)?;
    b.resource(
        "/img/moved.jpg",
        Resource::redirect(301, "/img/real/moved.jpg"),
    );
    img(b, "/img/private/hidden.png", Format::Png, 50, 50)?;
    img(b, "/cdn/alt-host.jpg", Format::Jpeg, 120, 80)?;
    let mut noisy = ImageSpec::new(Format::Png, 200, 150, seed_from_name("/img/broken.png"));
    noisy.noise = 120;
    let full = render(&noisy)?;
    let cut = Bytes::copy_from_slice(&full.bytes[..full.bytes.len() * 3 / 5]);
    b.bad_image(
        "/img/broken.png",
        Resource::new("image/png", cut),
        RejectReason::DecodeFailed,
    );
    let text = Resource::new("image/jpeg", "this is plain text, not a jpeg\n");
    b.bad_image("/img/fake.jpg", text, RejectReason::NotAnImage);
    b.blocked("/img/private/hidden.png");

    let mut sub = Page::new("gallery, more");
    sub.body(
        "<a href=\"../../../about.html\">about</a> <img src=\"../pix/rel.png\" alt=\"relative\">",
    )
    .links(&["/about.html"])
    .images(&["/assets/v2/pix/rel.png"]);
    b.page("/assets/v2/sub/page.html", &sub);
    img(b, "/assets/v2/pix/rel.png", Format::Png, 80, 80)?;
    Ok(())
}

fn lazy(b: &mut Builder) -> Result<(), SiteError> {
    let mut p = Page::new("lazy images");
    p.body("<img src=\"data:image/gif;base64,R0lGODlhAQABAAAAACw=\" data-src=\"/img/lazy-1.jpg\" alt=\"lazy one\">")
        .body("<img data-srcset=\"/img/lazy-2.webp 1x, /img/lazy-3.png 2x\" alt=\"lazy set\">")
        .body("<img data-original=\"/img/lazy-4.gif\" alt=\"lazy original\">")
        .body("<div style=\"background-image: url('/img/bg.jpg')\">quoted</div>")
        .body("<div style=\"height:10px;background-image:url(/img/bg2.png)\">bare</div>")
        .body("<section style='background-image: url(\"/img/bg3.webp\")'>double</section>")
        .images(&[
            "/img/lazy-1.jpg", "/img/lazy-2.webp", "/img/lazy-3.png", "/img/lazy-4.gif", "/img/bg.jpg", "/img/bg2.png",
            "/img/bg3.webp",
        ]);
    b.page("/lazy.html", &p);
    img(b, "/img/lazy-1.jpg", Format::Jpeg, 200, 120)?;
    img(b, "/img/lazy-2.webp", Format::WebP, 100, 100)?;
    img(b, "/img/lazy-3.png", Format::Png, 200, 200)?;
    img(b, "/img/lazy-4.gif", Format::Gif, 90, 60)?;
    img(b, "/img/bg.jpg", Format::Jpeg, 300, 100)?;
    img(b, "/img/bg2.png", Format::Png, 64, 32)?;
    img(b, "/img/bg3.webp", Format::WebP, 150, 50)?;
    Ok(())
}

fn about(b: &mut Builder) -> Result<(), SiteError> {
    let mut p = Page::new("about");
    p.body("<h2 id=\"team\">team</h2> <IMG SRC=\"/img/team.png\" ALT=\"team\"> <img src=\"/img/hero.jpg\" alt=\"hero again\">")
        .body("<h2 id=\"contact\">contact</h2> <a href=\"#team\">team</a> <a href=\"/\">home</a>")
        .links(&["/"])
        .images(&["/img/team.png", "/img/hero.jpg"]);
    b.page("/about.html", &p);
    img(b, "/img/team.png", Format::Png, 160, 90)?;
    Ok(())
}

fn deep_chain(b: &mut Builder) -> Result<(), SiteError> {
    for d in 1..=DEMO_DEEPEST {
        let (page, image, next) = (
            format!("/deep/{d}.html"),
            format!("/img/depth-{d}.png"),
            format!("/deep/{}.html", d + 1),
        );
        let mut p = Page::new(&format!("depth {d}"));
        p.body(&format!("<img src=\"{image}\" alt=\"depth {d}\">"))
            .images(&[&image]);
        if d < DEMO_DEEPEST {
            p.body(&format!("<a href=\"{next}\">deeper</a>"))
                .links(&[&next]);
        }
        b.page(&page, &p);
        img(b, &image, Format::Png, 64 + d, 64)?;
    }
    Ok(())
}

fn edge_pages(b: &mut Builder) -> Result<(), SiteError> {
    b.resource("/r/start", Resource::redirect(301, "/r/middle"))
        .resource(
            "/r/middle",
            Resource::redirect(302, &format!("{ORIGIN}/landing.html")),
        )
        .resource("/loop/a", Resource::redirect(302, "/loop/b"))
        .resource("/loop/b", Resource::redirect(302, "/loop/a"))
        .resource(
            "/r/away",
            Resource::redirect(302, &format!("{ALT_ORIGIN}/outside.html")),
        );
    let pdf: &[u8] = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    b.resource(
        "/doc.pdf",
        Resource::new("application/pdf", Bytes::from_static(pdf)),
    );
    let pages: [(&str, &str); 6] = [
        ("/landing.html", "/img/landing.jpg"),
        ("/private/secret.html", "/img/secret.png"),
        ("/private/public/ok.html", "/img/allowed.jpg"),
        ("/run.cgi", "/img/run.png"),
        ("/script.cgi.html", "/img/cgi.png"),
        ("/outside.html", "/img/outside.png"),
    ];
    for (path, image) in pages {
        let mut p = Page::new(path);
        p.body(&format!("<img src=\"{image}\" alt=\"{path}\">"))
            .images(&[image]);
        b.page(path, &p);
        let format = if image.ends_with(".jpg") {
            Format::Jpeg
        } else {
            Format::Png
        };
        img(b, image, format, 100, 70)?;
    }
    b.blocked("/private/secret.html").blocked("/run.cgi");
    for never in [
        "/outside.html",
        "/img/outside.png",
        "/img/secret.png",
        "/img/run.png",
    ] {
        b.never(never);
    }
    Ok(())
}
