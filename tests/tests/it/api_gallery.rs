//! The gallery in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `infra/scripts/bootstrap.sh`) opens `/` after a fixture crawl; the rendered DOM
//! must hold a thumbnail per image and the job's counters, the thumbnails must have
//! been requested (rendered into the cache), and a screenshot is kept as a test
//! artifact in `target/test-artifacts/gallery.png`.

use crate::api_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api_common::ApiServer;
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{sitegen, target_dir, Pipeline};

/// The Chromium binary, or a failure that says how to install it.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!("headless chromium is needed: run `bash infra/scripts/bootstrap.sh` (apt-get install chromium)");
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
fn browse(profile: &Path, url: &str, extra: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Rendered cards: `data-id="<digits>"` (the script's template has `data-id="${`).
fn cards(dom: &str) -> usize {
    dom.split("<figure class=\"card\" data-id=\"")
        .skip(1)
        .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gallery_shows_thumbnails_and_job_counters_in_a_browser() {
    let p = Pipeline::start().await;
    let server = serve(sitegen::demo()).await;
    let job = p
        .request(&server.seed_url(), |r| r.label = Some("demo site".into()))
        .await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let api = ApiServer::for_pipeline(&p, |_| {}).await;
    let expected = server.site().expected.clone();
    let images = expected.distinct_sha256().len();
    let url = format!("{}/", api.base);
    let profile = tempfile::tempdir().unwrap();

    let dom = tokio::task::spawn_blocking({
        let (profile, url) = (profile.path().to_path_buf(), url.clone());
        move || browse(&profile, &url, &["--dump-dom"])
    })
    .await
    .unwrap();
    assert_eq!(cards(&dom), images, "one thumbnail per image");
    assert!(dom.contains("<img class=\"thumb\" loading=\"lazy\" src=\"/api/images/"));
    assert!(
        dom.contains(&format!("data-job=\"{job}\" data-state=\"completed\"")),
        "the job and its state"
    );
    assert!(
        dom.contains(&format!(
            "data-counter=\"images_stored\">{}<",
            expected.images.len()
        )),
        "the job's counters"
    );
    assert!(dom.contains(&format!(
        "data-counter=\"pages_done\">{}<",
        expected.pages_fetched.len() + expected.pages_failed.len()
    )));
    assert!(dom.contains("data-counter=\"lag_events\""), "the HA state");
    assert!(dom.contains("demo site"));

    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("gallery.png");
    let _ = std::fs::remove_file(&shot);
    tokio::task::spawn_blocking({
        let (profile, url, arg) = (
            profile.path().to_path_buf(),
            url.clone(),
            format!("--screenshot={}", shot.display()),
        );
        move || browse(&profile, &url, &[&arg])
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).expect("screenshot written");
    let size = imagesize::blob_size(&png).unwrap();
    assert_eq!((size.width, size.height), (1280, 900));
    eprintln!("screenshot: {}", shot.display());

    // an image's detail, deep-linked: sizes, format, sources, pages
    let (sha, sources) = expected
        .sources_by_sha256()
        .into_iter()
        .find(|(_, v)| v.len() > 1)
        .unwrap();
    let id: i64 = sqlx::query_scalar("select id from images where sha256 = $1")
        .bind(sha)
        .fetch_one(&p.db().await)
        .await
        .unwrap();
    let detail_url = format!("{url}#image={id}");
    let dom = tokio::task::spawn_blocking({
        let (profile, u) = (profile.path().to_path_buf(), detail_url.clone());
        move || browse(&profile, &u, &["--dump-dom"])
    })
    .await
    .unwrap();
    let section = dom
        .split("id=\"detail-sources\"")
        .nth(1)
        .expect("detail sources")
        .split("</ul>")
        .next()
        .unwrap();
    assert_eq!(
        section.matches("<li>").count(),
        sources.len(),
        "every source listed: {section}"
    );
    assert!(
        dom.contains(&format!("<dd>{sha}</dd>")),
        "the detail shows the hash"
    );
    assert!(
        dom.contains("<dialog id=\"detail\" open"),
        "the detail dialog is open"
    );
    let shot = artifacts.join("gallery-detail.png");
    tokio::task::spawn_blocking({
        let (profile, u, arg) = (
            profile.path().to_path_buf(),
            detail_url,
            format!("--screenshot={}", shot.display()),
        );
        move || browse(&profile, &u, &[&arg])
    })
    .await
    .unwrap();
    assert!(shot.is_file());

    // the browser asked for the thumbnails: they were rendered into the cache
    let rendered: usize = std::fs::read_dir(api.cache.path())
        .unwrap()
        .flatten()
        .map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0))
        .sum();
    assert!(
        rendered >= 5,
        "thumbnails rendered for the browser: {rendered}"
    );
}
