//! The README as a new user follows it: from a fresh directory with only the built
//! binary on the `PATH` and a fresh per-user data directory (so `up` installs its own
//! nats-server), the quick start's demo, then every `imgcrawl` line of "Using it" and
//! the HTTP example, in order. The lines are read from README.md itself, so the README
//! cannot drift from what works.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{free_port, sitegen, Postgres};

use super::{text, Reap, BIN};

/// The first fenced block after `heading` that contains `needle`.
fn block<'a>(readme: &'a str, heading: &str, needle: &str) -> Vec<&'a str> {
    let from = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has {heading}"));
    let mut blocks = readme[from..].split("```").skip(1).step_by(2);
    blocks
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("a block with {needle} under {heading}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

/// A README line without its trailing comment.
fn command(line: &str) -> &str {
    line.split("  #").next().unwrap_or(line).trim()
}

struct User {
    cwd: tempfile::TempDir,
    data: tempfile::TempDir,
    path: String,
    env: Vec<(&'static str, String)>,
}

impl User {
    fn new() -> User {
        let (cwd, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // PostgreSQL runs as an unprivileged user when we are root: it must reach ./.imgcrawl
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(cwd.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin_dir = Path::new(BIN).parent().unwrap().display().to_string();
        User {
            path: format!("{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            env: vec![
                ("IMGCRAWL_NATS_PORT", free_port().to_string()),
                ("IMGCRAWL_NATS_MONITOR_PORT", free_port().to_string()),
                ("IMGCRAWL_PG_PORT", free_port().to_string()),
                ("IMGCRAWL_API_PORT", free_port().to_string()),
            ],
            cwd,
            data,
        }
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.cwd.path())
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.data.path())
            .env("XDG_DATA_HOME", self.data.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs a README line (`imgcrawl …` found on the PATH; `curl …` through bash).
    fn run(&self, line: &str) -> Output {
        let out = if line.starts_with("imgcrawl ") {
            let mut words = line.split_whitespace();
            words.next();
            self.command("imgcrawl").args(words).output()
        } else {
            self.command("bash").args(["-c", line]).output()
        }
        .expect("run a README line");
        assert!(
            out.status.success(),
            "`{line}` failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = self.command("imgcrawl").arg("down").output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_works_from_a_fresh_directory_with_the_binary_on_the_path() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("read README.md");
    let user = User::new();

    // the quick start's main job: `just demo` runs `imgcrawl demo`
    assert!(readme.contains("just demo") && readme.contains("just test"));
    let out = user.run("imgcrawl demo");
    let said = text(&out.stderr);
    assert!(
        said.contains("installing nats-server"),
        "installs its server: {said}"
    );
    assert!(
        user.data
            .path()
            .join("imgcrawl/tools/bin/nats-server")
            .is_file(),
        "into the per-user data directory"
    );

    let site = serve(sitegen::demo()).await;
    let pg = Postgres::start().await;
    let rebuilt = pg.fresh_db().await;
    let bucket = tempfile::tempdir().unwrap();
    let mut job = String::new();
    let mut server = None;
    let lines = block(&readme, "## Using it", "imgcrawl up");
    assert!(lines.len() >= 10, "{lines:?}");
    for line in lines.iter().map(|l| command(l)) {
        let line = line
            .replace("https://example.org/", &site.seed_url())
            .replace("<job-id>", &job)
            .replace("postgres://.../new", &rebuilt)
            .replace("s3://bucket/prefix", &bucket.path().display().to_string());
        match line.as_str() {
            "imgcrawl serve" => server = Some(start_server(&user)),
            "imgcrawl down" => {} // last, below
            l if l.ends_with(" --wait") => {
                let out = user.run(&format!("{l} --json"));
                let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(summary["status"], "completed", "{summary}");
                job = summary["job_id"].as_str().unwrap().to_string();
            }
            l => {
                let out = user.run(l);
                if l.contains("events --job") {
                    assert!(
                        text(&out.stdout).contains("crawl.completed"),
                        "{}",
                        text(&out.stdout)
                    );
                }
                if l.starts_with("imgcrawl images") {
                    let n = site.site().expected.images.len();
                    assert_eq!(text(&out.stdout).lines().count(), n);
                }
            }
        }
    }
    let _server = server.expect("the README starts the API");
    let curl = block(&readme, "Or over HTTP", "curl")
        .join(" ")
        .replace('\\', " ");
    let port = &user
        .env
        .iter()
        .find(|(k, _)| *k == "IMGCRAWL_API_PORT")
        .unwrap()
        .1;
    let curl = curl
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{port}"))
        .replace("https://example.org/", &site.seed_url())
        .replace("curl ", "curl -sf ");
    let out = user.run(&curl);
    assert!(
        text(&out.stdout).contains("job_id"),
        "{}",
        text(&out.stdout)
    );
    user.run("imgcrawl down");
}

/// Starts `imgcrawl serve` from the user's directory and waits for its port.
fn start_server(user: &User) -> Reap {
    let child = user
        .command("imgcrawl")
        .arg("serve")
        // the example crawls the loopback fixture site, which the API refuses by default
        .env("IMGCRAWL_ALLOW_LOOPBACK", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port: u16 = user
        .env
        .iter()
        .find(|(k, _)| *k == "IMGCRAWL_API_PORT")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Reap(child)
}
