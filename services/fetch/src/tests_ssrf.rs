//! SSRF: public-looking names that resolve to loopback, private or link-local
//! addresses (IPv4, IPv6, IPv4-mapped and NAT64 forms), IP literals in their odd
//! spellings, and redirects to any of them are refused for pages, images and
//! robots.txt alike, unless the operator allows the class. Names resolve through a
//! fixed table ([`StaticLookup`]), so no test depends on the machine's DNS.

use std::net::IpAddr;
use std::str::FromStr;

use reqwest::dns::{Name, Resolve};

use super::*;
use crate::guard::{AddressGuard, GuardedResolver, StaticLookup, BLOCKED_MARKER};

const PAGE: &str = "text/html";
const IMAGE: &str = "image/*";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Names that look public and resolve where they should not.
fn table() -> StaticLookup {
    StaticLookup::default()
        .with("public.example", &[ip("127.0.0.1")])
        .with("loop6.example", &[ip("::1")])
        .with("mapped.example", &[ip("::ffff:127.0.0.1")])
        .with("private.example", &[ip("10.0.0.7")])
        .with("mapped-private.example", &[ip("::ffff:192.168.1.1")])
        .with("ula.example", &[ip("fd00::7")])
        .with("nat64.example", &[ip("64:ff9b::a00:1")])
        .with("metadata.example", &[ip("169.254.169.254")])
        .with("linklocal6.example", &[ip("fe80::1")])
        .with("mixed.example", &[ip("93.184.216.34"), ip("192.168.1.1")])
}

const REFUSED_NAMES: [&str; 10] = [
    "public.example",
    "loop6.example",
    "mapped.example",
    "private.example",
    "mapped-private.example",
    "ula.example",
    "nat64.example",
    "metadata.example",
    "linklocal6.example",
    "mixed.example",
];

fn strict() -> Fetcher {
    Fetcher::with_lookup(FetchConfig::default(), Arc::new(table())).expect("fetcher")
}

async fn get_as(
    f: &Fetcher,
    u: &Url,
    accept: &'static str,
    robots: bool,
) -> Result<crate::Fetched, FetchError> {
    let p = Politeness::default();
    let opts = RequestOptions {
        politeness: &p,
        obey_robots: robots,
        in_scope: ANY,
        accept,
    };
    f.get(u, &opts).await
}

fn blocked<T: std::fmt::Debug>(what: &str, r: Result<T, FetchError>) {
    assert!(
        matches!(r, Err(FetchError::BlockedAddress(_))),
        "{what}: {r:?}"
    );
}

#[tokio::test]
async fn names_resolving_to_refused_addresses_are_refused_for_pages_images_and_robots() {
    let f = strict();
    for name in REFUSED_NAMES {
        let u = Url::parse(&format!("http://{name}/x.jpg")).unwrap();
        blocked(&format!("page {name}"), get_as(&f, &u, PAGE, true).await);
        blocked(&format!("image {name}"), get_as(&f, &u, IMAGE, false).await);
        blocked(&format!("robots {name}"), f.robots_allowed(&u).await);
    }
}

#[tokio::test]
async fn ip_literals_in_every_spelling_are_refused() {
    let f = strict();
    for lit in [
        "http://127.0.0.1/",
        "http://0x7f.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://10.1.2.3/",
        "http://[::ffff:10.1.2.3]/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://[fd12::1]/",
        "http://0.0.0.0/",
        "http://[::]/",
    ] {
        let u = Url::parse(lit).unwrap();
        blocked(&format!("page {lit}"), get_as(&f, &u, PAGE, false).await);
        blocked(&format!("image {lit}"), get_as(&f, &u, IMAGE, false).await);
        blocked(&format!("robots {lit}"), f.robots_allowed(&u).await);
    }
}

#[tokio::test]
async fn an_allowed_class_is_reached_through_the_same_lookup() {
    let addr = serve(Router::new().route("/p", get(|| async { "reached" }))).await;
    let loopback = Fetcher::with_lookup(loopback_config(), Arc::new(table())).expect("fetcher");
    let u = Url::parse(&format!("http://public.example:{}/p", addr.port())).unwrap();
    let got = get_as(&loopback, &u, PAGE, false)
        .await
        .expect("allowed loopback");
    assert_eq!(got.read_capped(100).await.unwrap().as_ref(), b"reached");
    // allowing loopback allows nothing else
    let private = Url::parse("http://private.example/p").unwrap();
    blocked(
        "private with loopback allowed",
        get_as(&loopback, &private, PAGE, false).await,
    );
    let meta = Url::parse("http://metadata.example/p").unwrap();
    let everything = Fetcher::with_lookup(
        FetchConfig {
            allow_loopback: true,
            allow_private: true,
            ..Default::default()
        },
        Arc::new(table()),
    )
    .expect("fetcher");
    blocked(
        "link-local is never allowed",
        get_as(&everything, &meta, PAGE, false).await,
    );
}

fn redirecting_site() -> Router {
    let to = |target: &'static str| get(move || async move { redirect(target) });
    Router::new()
        .route("/robots.txt", get(|| async { "User-agent: *\nAllow: /\n" }))
        .route("/to-private", to("http://private.example/x"))
        .route("/to-ula", to("http://ula.example/x.png"))
        .route("/to-nat64", to("http://nat64.example/x"))
        .route(
            "/to-metadata",
            to("http://metadata.example/latest/meta-data"),
        )
        .route("/to-linklocal6", to("http://linklocal6.example/"))
        .route("/to-mapped", to("http://[::ffff:10.0.0.1]/x"))
        .route("/to-mapped-name", to("http://mapped-private.example/x"))
        .route("/to-mixed", to("http://mixed.example/x"))
}

#[tokio::test]
async fn redirects_to_refused_addresses_are_refused_for_pages_and_images() {
    let addr = serve(redirecting_site()).await;
    // loopback is allowed (the site is on it), private and link-local are not
    let f = Fetcher::with_lookup(loopback_config(), Arc::new(table())).expect("fetcher");
    for path in [
        "/to-private",
        "/to-ula",
        "/to-nat64",
        "/to-metadata",
        "/to-linklocal6",
        "/to-mapped",
        "/to-mapped-name",
        "/to-mixed",
    ] {
        let u = url(addr, path);
        blocked(&format!("page {path}"), get_as(&f, &u, PAGE, true).await);
        blocked(&format!("image {path}"), get_as(&f, &u, IMAGE, false).await);
    }
}

#[tokio::test]
async fn a_robots_txt_redirected_to_a_refused_address_disallows_the_site() {
    let site = Router::new()
        .route(
            "/robots.txt",
            get(|| async { redirect("http://metadata.example/robots.txt") }),
        )
        .route("/page", get(|| async { "page" }));
    let addr = serve(site).await;
    let f = Fetcher::with_lookup(loopback_config(), Arc::new(table())).expect("fetcher");
    let r = get_as(&f, &url(addr, "/page"), PAGE, true).await;
    match r {
        Err(FetchError::Robots(why)) => assert!(why.contains("metadata.example"), "{why}"),
        other => panic!("expected a robots refusal, got {other:?}"),
    }
    assert!(!f.robots_allowed(&url(addr, "/page")).await.unwrap());
}

#[tokio::test]
async fn the_connect_time_resolver_drops_refused_addresses() {
    let guard = AddressGuard {
        allow_loopback: false,
        allow_private: false,
    };
    let resolver = GuardedResolver {
        guard,
        lookup: Arc::new(table()),
    };
    // a rebinding name: one public address is kept, the private one dropped
    let kept: Vec<IpAddr> = resolver
        .resolve(Name::from_str("mixed.example").unwrap())
        .await
        .expect("public address left")
        .map(|a| a.ip())
        .collect();
    assert_eq!(kept, [ip("93.184.216.34")]);
    for name in ["private.example", "mapped.example", "linklocal6.example"] {
        let e = match resolver.resolve(Name::from_str(name).unwrap()).await {
            Ok(addrs) => panic!("{name} resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(BLOCKED_MARKER), "{name}: {e}");
    }
}
