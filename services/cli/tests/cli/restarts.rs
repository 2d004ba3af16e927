//! The local stack through many restarts, with a crawl before each: every crawl's
//! images stay indexed, the stream keeps its id, and the projection never refuses its
//! own stream (the first releases' stream identity changed across nats-server
//! restarts, and the third `up` failed for good).

use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::sitegen;

use super::{crawl_and_wait, imgcrawl, local_stack_env, text};

/// `stream IMGCRAWL (id X)` from `imgcrawl status`.
fn stream_id(env: &[(&str, String)]) -> String {
    let out = imgcrawl(env, &["status"]);
    assert!(out.status.success(), "status: {}", text(&out.stderr));
    let s = text(&out.stdout);
    let at = s
        .find("stream IMGCRAWL (id ")
        .expect("status names the stream id");
    let rest = &s[at + "stream IMGCRAWL (id ".len()..];
    rest[..rest.find(')').unwrap()].to_string()
}

/// `up` (the first time with `first_up`), a crawl, `down`, five times, then a last
/// `up`: every crawl stays indexed, the stream id never changes, nothing is refused.
async fn restart_cycle(
    env: &[(&'static str, String)],
    home: &std::path::Path,
    first_up: &[&str],
) -> String {
    struct Down<'a>(&'a [(&'static str, String)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = imgcrawl(self.0, &["down"]);
        }
    }
    let _guard = Down(env);
    let server = serve(sitegen::demo()).await;
    let n = server.site().expected.images.len();
    let mut jobs: Vec<String> = Vec::new();
    let mut id = None;
    let mut status = String::new();
    for round in 0..6 {
        let args = if round == 0 {
            first_up.to_vec()
        } else {
            vec!["up"]
        };
        let out = imgcrawl(env, &args);
        assert!(
            out.status.success(),
            "up in round {round}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let now = stream_id(env);
        assert_eq!(
            id.get_or_insert(now.clone()),
            &now,
            "round {round}: same stream id"
        );
        // every crawl so far is still indexed, in full
        for job in &jobs {
            let out = imgcrawl(env, &["images", "--job", job, "--jsonl"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            assert_eq!(
                text(&out.stdout).lines().count(),
                n,
                "round {round}: job {job}"
            );
        }
        if round < 5 {
            let summary = crawl_and_wait(env, &server.seed_url());
            assert_eq!(summary["status"], "completed", "round {round}: {summary}");
            assert_eq!(summary["images"]["stored"], n, "round {round}: {summary}");
            jobs.push(summary["job_id"].as_str().unwrap().to_string());
        } else {
            status = text(&imgcrawl(env, &["status"]).stdout);
        }
        let out = imgcrawl(env, &["down"]);
        assert!(out.status.success(), "down: {}", text(&out.stderr));
    }
    assert_eq!(jobs.len(), 5);
    let log = std::fs::read_to_string(home.join("run.log")).unwrap_or_default();
    assert!(
        !log.contains("refusing"),
        "the projection refused its stream:\n{log}"
    );
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_restarts_with_crawls_between_keep_every_image_and_the_stream_id() {
    let home = tempfile::tempdir().unwrap();
    let env = local_stack_env(home.path());
    restart_cycle(&env, home.path(), &["up"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_restarts_of_a_three_node_cluster_keep_every_image_and_the_stream_id() {
    let home = tempfile::tempdir().unwrap();
    let mut env = local_stack_env(home.path());
    // three consecutive ports each for clients, monitoring and routes
    for (var, base) in [
        ("IMGCRAWL_NATS_PORT", free_ports(3)),
        ("IMGCRAWL_NATS_MONITOR_PORT", free_ports(3)),
        ("IMGCRAWL_NATS_CLUSTER_PORT", free_ports(3)),
    ] {
        env.retain(|(k, _)| *k != var);
        env.push((var, base.to_string()));
    }
    let status = restart_cycle(
        &env,
        home.path(),
        &["up", "--nats-nodes", "3", "--nats-sync", "always"],
    )
    .await;
    assert!(
        status.contains("cluster imgcrawl-local: R3, stream leader n"),
        "{status}"
    );
    assert_eq!(status.matches("; replica n").count(), 2, "{status}");
    assert!(status.contains("consumer leaders: crawl on n"), "{status}");
    assert!(status.contains("fsync always"), "{status}");
    // the node count of a home is kept
    let out = imgcrawl(&env, &["up", "--nats-nodes", "1"]);
    assert!(!out.status.success() && text(&out.stderr).contains("cannot change"));
    let _ = imgcrawl(&env, &["down"]);
}

/// The first of `n` consecutive free ports.
fn free_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let base = imgcrawl_tests::free_port();
        if base > 65000 {
            continue;
        }
        let all = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all {
            return base;
        }
    }
    panic!("no {n} consecutive free ports")
}

/// A worker that cannot start makes `up` fail with the worker's own reason on one
/// line, and no backtrace even when `RUST_BACKTRACE` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_says_why_the_workers_could_not_start() {
    let home = tempfile::tempdir().unwrap();
    let mut env = local_stack_env(home.path());
    env.push(("RUST_BACKTRACE", "1".into()));
    struct Down<'a>(&'a [(&'static str, String)]);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = imgcrawl(self.0, &["down"]);
        }
    }
    // a config file the workers refuse: an unknown section field
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "[crawl]\nno_such_setting = 1\n").unwrap();
    env.push(("IMGCRAWL_CONFIG", bad.display().to_string()));
    let _guard = Down(&env);
    let out = imgcrawl(&env, &["up"]);
    assert!(!out.status.success(), "up with a broken config must fail");
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("error: the workers could not start: ")
            && lines[0].contains("no_such_setting")
            && lines[0].contains("run.log"),
        "{err}"
    );
    assert!(
        !err.contains("stack backtrace") && !err.contains("Stack backtrace"),
        "{err}"
    );
}
