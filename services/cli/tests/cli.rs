//! The `imgcrawl` binary as a user runs it: clear errors, a crawl followed to the
//! end with `run` in another process, `images --jsonl`, `status`, graceful SIGTERM,
//! and the local stack's `up`/`down` (idempotent, data kept).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{free_port, nats::nats_binary, sitegen, NatsServer, Postgres};

#[path = "cli/backup.rs"]
mod backup;
#[path = "cli/readme.rs"]
mod readme;
#[path = "cli/restarts.rs"]
mod restarts;
#[path = "cli/topology.rs"]
mod topology;

const BIN: &str = env!("CARGO_BIN_EXE_imgcrawl");

/// Environment for a private local stack in `home`: its own ports and nats-server.
fn local_stack_env(home: &std::path::Path) -> Vec<(&'static str, String)> {
    // PostgreSQL runs as an unprivileged user when we are root: it must reach its dir.
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o755)).unwrap();
    vec![
        ("IMGCRAWL_HOME", home.display().to_string()),
        ("IMGCRAWL_NATS_PORT", free_port().to_string()),
        ("IMGCRAWL_NATS_MONITOR_PORT", free_port().to_string()),
        ("IMGCRAWL_PG_PORT", free_port().to_string()),
        ("IMGCRAWL_METRICS_PORT", free_port().to_string()),
        ("IMGCRAWL_HA_METRICS_PORT", free_port().to_string()),
        (
            "IMGCRAWL_NATS_SERVER",
            nats_binary().unwrap().display().to_string(),
        ),
    ]
}

/// `imgcrawl crawl URL --wait --json` (90 s at most): asserts it succeeded and returns
/// its JSON summary.
fn crawl_and_wait(env: &[(&str, String)], url: &str) -> serde_json::Value {
    let args = ["crawl", url, "--wait", "--json", "--timeout", "90"];
    let out = imgcrawl(env, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn imgcrawl(env: &[(&str, String)], args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run imgcrawl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn errors_are_clear_when_the_stack_is_down_or_a_url_is_bad() {
    let env = [
        ("NATS_URL", format!("nats://127.0.0.1:{}", free_port())),
        (
            "DATABASE_URL",
            format!("postgres://imgcrawl@127.0.0.1:{}/imgcrawl", free_port()),
        ),
    ];
    let out = imgcrawl(&env, &["status"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot connect to nats") && err.contains("imgcrawl up"),
        "{err}"
    );

    for (url, says) in [
        ("not-a-url", "seed url"),
        ("ftp://example.org/", "only http(s)"),
    ] {
        let out = imgcrawl(&env, &["crawl", url]);
        assert!(!out.status.success(), "{url}");
        assert!(
            text(&out.stderr).contains(says),
            "{url}: {}",
            text(&out.stderr)
        );
    }
    let out = imgcrawl(&env, &["images", "--job", "nope"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid value"),
        "{}",
        text(&out.stderr)
    );
}

/// Kills the child on drop (a failed assertion must not leak a worker).
struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_crawl_wait_images_status_and_a_graceful_sigterm() {
    let nats = NatsServer::start().await;
    let pg = Postgres::start().await;
    let db = pg.fresh_db().await;
    let bucket = tempfile::tempdir().unwrap();
    let env = vec![
        ("NATS_URL", nats.url()),
        ("DATABASE_URL", db),
        ("IMGCRAWL_BUCKET", bucket.path().display().to_string()),
    ];
    let mut run = Command::new(BIN);
    run.args(["run", "--allow-loopback"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        run.env(k, v);
    }
    let mut worker = Reap(run.spawn().unwrap());

    let server = serve(sitegen::demo()).await;
    let expected = server.site().expected.clone();
    let summary = crawl_and_wait(&env, &server.seed_url());
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["images"]["stored"], expected.images.len());
    assert_eq!(
        summary["images"]["distinct"],
        expected.distinct_sha256().len()
    );
    let job = summary["job_id"].as_str().unwrap().to_string();

    let out = imgcrawl(&env, &["images", "--job", &job, "--jsonl"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.images.len());
    for l in &lines {
        for k in [
            "url",
            "page_url",
            "sha256",
            "bytes",
            "width",
            "height",
            "format",
            "object_key",
        ] {
            assert!(!l[k].is_null(), "{k} in {l}");
        }
    }
    let got: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["url"].as_str().unwrap().into(),
                l["sha256"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String)> = expected
        .images
        .iter()
        .map(|i| {
            (
                if i.alt_host {
                    server.alt_url(&i.url_path)
                } else {
                    server.url(&i.url_path)
                },
                i.sha256.clone(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // the stream, from the binary: filtered by job and subject, and by sequence range
    let events = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["events", "--json"];
        all.extend_from_slice(args);
        let out = imgcrawl(&env, &all);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let downloaded = events(&["--job", &job, "--subject", "image.downloaded"]);
    assert_eq!(
        downloaded.len(),
        expected.images.len(),
        "one image.downloaded per image"
    );
    for e in &downloaded {
        assert_eq!(e["subject"], "imgcrawl.image.downloaded");
        assert_eq!(e["job_id"], job.as_str());
        assert_eq!(e["event"], "image.downloaded.v1");
        assert!(
            e["data"]["sha256"].is_string() && e["msg_id"].is_string(),
            "{e}"
        );
    }
    let all = events(&[]);
    assert!(all.len() > downloaded.len());
    let seqs: Vec<u64> = all.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in stream order");
    let range = events(&["--from-seq", "3", "--to-seq", "7"]);
    let got: Vec<u64> = range.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(got, vec![3, 4, 5, 6, 7]);
    assert_eq!(events(&["--last", "2"]).len(), 2);
    assert_eq!(events(&["--limit", "4"]).len(), 4);
    let out = imgcrawl(&env, &["events", "--job", &job, "--subject", "crawl.*"]);
    let lines = text(&out.stdout);
    assert!(
        lines.contains("crawl.requested") && lines.contains("crawl.completed"),
        "{lines}"
    );
    let out = imgcrawl(&env, &["events", "--from-seq", "9", "--to-seq", "2"]);
    assert!(!out.status.success() && text(&out.stderr).contains("after --to-seq"));

    let out = imgcrawl(&env, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    for needle in [
        "stream IMGCRAWL",
        "crawl",
        "download",
        "store",
        "dead letters: none",
        &job,
        "completed",
    ] {
        assert!(s.contains(needle), "status shows {needle}:\n{s}");
    }

    // SIGTERM: the stages drain and the process exits cleanly within seconds
    let pid = worker.0.id() as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    let status = loop {
        if let Some(st) = worker.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "imgcrawl run did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_is_idempotent_and_keeps_data_across_down_and_up() {
    let home = tempfile::tempdir().unwrap();
    let env = local_stack_env(home.path());
    let down = |env: &Vec<(&str, String)>| {
        let out = imgcrawl(env, &["down"]);
        assert!(out.status.success(), "down: {}", text(&out.stderr));
    };
    struct Down<'a>(&'a dyn Fn());
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let cleanup = || {
        let _ = imgcrawl(&env, &["down"]);
    };
    let _guard = Down(&cleanup);

    let out = imgcrawl(&env, &["up"]);
    assert!(
        out.status.success(),
        "up: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let pid = std::fs::read_to_string(home.path().join("nats.pid")).unwrap();
    let out = imgcrawl(&env, &["up"]);
    assert!(out.status.success(), "second up: {}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(home.path().join("nats.pid")).unwrap(),
        pid,
        "up twice starts nothing new"
    );

    let server = serve(sitegen::demo()).await;
    let n = server.site().expected.images.len();
    let summary = crawl_and_wait(&env, &server.seed_url());
    assert_eq!(summary["images"]["stored"], n);
    let job = summary["job_id"].as_str().unwrap().to_string();

    down(&env);
    let out = imgcrawl(&env, &["status"]);
    assert!(!out.status.success(), "status after down fails clearly");
    let out = imgcrawl(&env, &["up"]);
    assert!(out.status.success(), "up again: {}", text(&out.stderr));
    let out = imgcrawl(&env, &["images", "--job", &job, "--jsonl"]);
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).lines().count(),
        n,
        "the index survived down/up"
    );
    let objects = walk(&home.path().join("bucket")).len();
    assert_eq!(
        objects,
        server.site().expected.distinct_sha256().len(),
        "the bucket survived down/up"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_verify_rebuild_both_projections_and_report_differences() {
    let nats = NatsServer::start().await;
    let pg = Postgres::start().await;
    let (live, rebuilt) = (pg.fresh_db().await, pg.fresh_db().await);
    let bucket = tempfile::tempdir().unwrap();
    let env = vec![("NATS_URL", nats.url()), ("DATABASE_URL", live.clone())];
    let mut run = Command::new(BIN);
    run.args(["run", "--allow-loopback"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    run.env("IMGCRAWL_BUCKET", bucket.path())
        .env("NATS_URL", nats.url())
        .env("DATABASE_URL", &live);
    let _worker = Reap(run.spawn().unwrap());
    // no wait for the index's schema: `crawl --wait` must cope with a fresh database
    let server = serve(sitegen::demo()).await;
    crawl_and_wait(&env, &server.seed_url());

    let out = imgcrawl(&env, &["verify"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("nothing to verify"),
        "{}",
        text(&out.stderr)
    );

    // stderr is not a terminal here: no bar, one JSON line
    let out = imgcrawl(
        &env,
        &[
            "replay",
            "--projection",
            "postgres",
            "--database-url",
            &rebuilt,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["caught_up"], true, "{summary}");
    assert!(
        summary["events"].as_u64().unwrap() > 0 && summary["rows"]["images"].as_u64().unwrap() > 0,
        "{summary}"
    );

    let against = ["verify", "--against-database-url", &rebuilt];
    let out = imgcrawl(&env, &against);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("identical"),
        "{}",
        text(&out.stdout)
    );
    let out = imgcrawl(&env, &["verify", "--against-replay", "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["identical"], true, "{report}");

    let db = sqlx::PgPool::connect(&rebuilt).await.unwrap();
    sqlx::query("update pages set title = 'changed' where seq = (select max(seq) from pages)")
        .execute(&db)
        .await
        .unwrap();
    let out = imgcrawl(&env, &against);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("DIFFERS pages digest") && s.contains("DIFFERS pages latest record"),
        "{s}"
    );

    let copy = tempfile::tempdir().unwrap();
    let to = copy.path().display().to_string();
    let out = imgcrawl(
        &env,
        &["replay", "--projection", "objects", "--to", &to, "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["written"],
        server.site().expected.distinct_sha256().len(),
        "{summary}"
    );
    let out = imgcrawl(&env, &["verify", "--bucket", &to]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::fs::remove_dir_all(copy.path().join("images")).unwrap();
    let out = imgcrawl(&env, &["verify", "--bucket", &to]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("missing"),
        "{}",
        text(&out.stdout)
    );
}

/// `GET path` on a loopback port with HTTP/1.0: the status line and body.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_prometheus_scrapes_the_workers_and_down_stops_it() {
    let home = tempfile::tempdir().unwrap();
    let mut env = local_stack_env(home.path());
    let prom = free_port();
    env.push(("IMGCRAWL_PROMETHEUS_PORT", prom.to_string()));
    let metrics: u16 = env
        .iter()
        .find(|(k, _)| *k == "IMGCRAWL_METRICS_PORT")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap();
    let cleanup = || {
        let _ = imgcrawl(&env, &["down"]);
    };
    struct Down<'a>(&'a dyn Fn());
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _guard = Down(&cleanup);
    let out = imgcrawl(&env, &["up", "--prometheus"]);
    assert!(
        out.status.success(),
        "up: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("prometheus"),
        "{}",
        text(&out.stdout)
    );
    let ready = imgcrawl_tests::wait_until(Duration::from_secs(60), || async {
        http_get(metrics, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.0 200"))
    })
    .await;
    assert!(ready, "{:?}", http_get(metrics, "/readyz"));
    let scraped = imgcrawl_tests::wait_until(Duration::from_secs(60), || async {
        // up{job="imgcrawl-workers"} == 1
        let q = "/api/v1/query?query=up%7Bjob%3D%22imgcrawl-workers%22%7D%20%3D%3D%201";
        http_get(prom, q)
            .is_some_and(|r| r.contains("\"imgcrawl-workers\"") && r.contains("\"1\"]"))
    })
    .await;
    assert!(scraped, "prometheus scrapes the workers");
    let out = imgcrawl(&env, &["down"]);
    assert!(out.status.success(), "down: {}", text(&out.stderr));
    assert!(
        http_get(prom, "/-/ready").is_none(),
        "down stops prometheus"
    );
}
