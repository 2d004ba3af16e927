//! Synthetic sites: shape, determinism, real images, writing to a directory.

use std::collections::BTreeSet;
use std::time::Instant;

use imgcrawl_sitegen::{synthetic, synthetic_with, Origins, SyntheticSpec};

#[test]
fn small_synthetic_site_has_the_asked_shape() {
    let site = synthetic(40, 4, 3, 100, 7).unwrap();
    let t = &site.truth;
    assert_eq!(t.pages_fetched.len(), 40, "every page reachable");
    assert!(t.pages_failed.is_empty() && t.rejected.is_empty());
    assert_eq!(
        t.images.len(),
        100,
        "min(distinct, pages * images_per_page)"
    );
    assert_eq!(
        t.distinct_sha256().len(),
        t.images.len(),
        "distinct images have distinct bytes"
    );
    assert!(t.pages_fetched.iter().all(|p| p.depth <= 4), "shallow tree");
    let formats: BTreeSet<&str> = t.images.iter().map(|i| i.format.name()).collect();
    assert_eq!(formats, BTreeSet::from(["jpeg", "png", "webp"]));
    for i in &t.images {
        let d = image::load_from_memory(&site.get(&i.url_path).unwrap().body).unwrap();
        assert_eq!((d.width(), d.height()), (i.width, i.height));
        assert!((64..=800).contains(&i.width) && (64..=800).contains(&i.height));
    }
}

#[test]
fn synthetic_is_deterministic_and_repeats_images_when_slots_outnumber_them() {
    let (a, b) = (
        synthetic(20, 3, 5, 30, 3).unwrap(),
        synthetic(20, 3, 5, 30, 3).unwrap(),
    );
    assert_eq!(a.resources, b.resources);
    assert_eq!(a.truth, b.truth);
    assert_eq!(a.truth.images.len(), 30);
    let other = synthetic(20, 3, 5, 30, 4).unwrap();
    assert_ne!(a.truth.distinct_sha256(), other.truth.distinct_sha256());
    let none = synthetic(3, 1, 2, 0, 1).unwrap();
    assert!(none.truth.images.is_empty());
}

#[test]
fn write_to_puts_every_file_where_a_static_server_finds_it() {
    let site = synthetic(5, 2, 2, 10, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let summary = site.write_to(dir.path(), &Origins::loopback(80)).unwrap();
    assert_eq!(summary.written, site.resources.len());
    assert!(summary.skipped.is_empty());
    assert!(dir.path().join("index.html").is_file());
    assert!(dir.path().join("robots.txt").is_file());
    for i in &site.truth.images {
        let on_disk = std::fs::read(dir.path().join(&i.url_path[1..])).unwrap();
        assert_eq!(imgcrawl_events::Sha256::hex(&on_disk), i.sha256);
    }
}

#[test]
fn demo_write_to_skips_what_a_file_cannot_express() {
    let site = imgcrawl_sitegen::demo();
    let dir = tempfile::tempdir().unwrap();
    let summary = site.write_to(dir.path(), &Origins::loopback(80)).unwrap();
    assert!(summary.skipped.contains(&"/r/start".to_string()));
    let home = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(home.contains("http://localhost:80/outside.html"));
}

/// The benchmark's size; run with `--ignored --nocapture` in release to see timing.
#[test]
#[ignore]
fn benchmark_sized_site_generation_time() {
    let start = Instant::now();
    let site = synthetic_with(&SyntheticSpec::default()).unwrap();
    let t = &site.truth;
    let bytes: u64 = t.images.iter().map(|i| i.bytes).sum();
    println!(
        "{} pages, {} images, {} MiB, mean {} KiB, in {:?}",
        t.pages_fetched.len(),
        t.images.len(),
        bytes >> 20,
        bytes / t.images.len() as u64 / 1024,
        start.elapsed()
    );
    assert_eq!(t.images.len(), 20_000);
}

#[test]
fn byte_ranges_are_met_by_re_encoding_or_padding() {
    let spec = SyntheticSpec {
        pages: 10,
        links_per_page: 2,
        images_per_page: 4,
        distinct_images: 40,
        seed: 5,
        bytes: Some((5 * 1024, 30 * 1024)),
        ..Default::default()
    };
    let site = synthetic_with(&spec).unwrap();
    let t = &site.truth;
    assert_eq!(t.distinct_sha256().len(), 40);
    for i in &t.images {
        let body = &site.get(&i.url_path).unwrap().body;
        assert_eq!(body.len() as u64, i.bytes);
        assert!(
            (5 * 1024 - 1..=30 * 1024).contains(&body.len()),
            "{} is {} bytes",
            i.url_path,
            body.len()
        );
        let d = image::load_from_memory(body).unwrap();
        assert_eq!((d.width(), d.height()), (i.width, i.height));
        assert!((64..=800).contains(&i.width) && (64..=800).contains(&i.height));
    }
    assert_eq!(
        synthetic_with(&spec).unwrap().truth,
        site.truth,
        "deterministic"
    );
}
