//! The compose stack run for real with Podman (ignored by default: `just deploy-run`).
//!
//! The services, commands, environment, secrets, configs, volumes and replicas are
//! read from `infra/compose/compose.yml` itself and started as Podman containers on a
//! network of their own, each reachable by its service name as under compose. No
//! registry is reachable here, so the images come from
//! `infra/compose/local/build-images.sh` (Debian packages and this repository's
//! binaries: imgcrawl, nats-server, s3s-fs in MinIO's place); Grafana, MinIO's init
//! job and the NATS exporters have no local image and are left out. Podman 4.3 runs
//! healthchecks only through systemd timers, which this machine lacks, so this runner
//! runs each service's healthcheck itself (`podman exec`) to follow the compose file's
//! bring-up order.
//!
//! The run: a fixture site served from the host on the network's gateway, a crawl
//! request, `kill -9` of the stream leader's nats container at 30 % of the images
//! (restarted 10 s later), then a check in the chaos suite's manner: every image of the
//! site's ground truth indexed with its bytes' SHA-256, none lost, none unexpected, every
//! distinct image once in the bucket; and both PostgreSQL nodes
//! hold the same rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use imgcrawl_events::{CrawlRequested, Event};
use serde_json::Value;
use uuid::Uuid;

use super::deploy::{infra, scalar, secrets, strings, yaml_file};

/// `podman` with this machine's engine settings.
fn podman(args: &[&str]) -> Output {
    let conf = infra().join("compose/local/containers.conf");
    Command::new(std::env::var("CONTAINER_ENGINE").unwrap_or_else(|_| "podman".into()))
        .args(args)
        .env("CONTAINERS_CONF", conf)
        .output()
        .expect("run podman")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The local image standing in for a service's registry image; None: left out.
fn local_image(service: &str, image: &str) -> Option<String> {
    if image.contains("IMGCRAWL_IMAGE") {
        return Some("imgcrawl:dev".into());
    }
    let local = match service {
        s if s.starts_with("nats-exporter") => return None,
        s if s.starts_with("nats-") => "imgcrawl-local/nats",
        s if s.starts_with("pg-") => "imgcrawl-local/postgres",
        "minio" => "imgcrawl-local/s3",
        "prometheus" => "imgcrawl-local/prometheus",
        "alertmanager" => "imgcrawl-local/alertmanager",
        _ => return None,
    };
    Some(local.into())
}

/// The containers, volumes and network of one run; all removed on drop.
struct Stack {
    prefix: String,
    network: String,
    containers: Vec<(String, String)>,
    volumes: BTreeSet<String>,
    compose: Value,
    secrets: tempfile::TempDir,
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::env::var_os("IMGCRAWL_KEEP_STACK").is_some() {
            eprintln!("kept the stack {} (IMGCRAWL_KEEP_STACK)", self.prefix);
            return;
        }
        for (name, _) in &self.containers {
            let _ = podman(&["rm", "-f", "-t", "5", name]);
        }
        for v in &self.volumes {
            let _ = podman(&["volume", "rm", "-f", v]);
        }
        let _ = podman(&["network", "rm", "-f", &self.network]);
    }
}

impl Stack {
    fn new() -> Stack {
        let prefix = format!(
            "imgcrawl-e2e-{}",
            &Uuid::now_v7().simple().to_string()[24..]
        );
        let network = prefix.clone();
        podman_ok(&["network", "create", &network]);
        Stack {
            prefix,
            network,
            containers: Vec::new(),
            volumes: BTreeSet::new(),
            compose: yaml_file(&infra().join("compose/compose.yml")),
            secrets: secrets(),
        }
    }

    /// The network's gateway: the host as the containers see it.
    fn gateway(&self) -> String {
        podman_ok(&[
            "network",
            "inspect",
            &self.network,
            "--format",
            "{{range .Subnets}}{{.Gateway}}{{end}}",
        ])
    }

    fn service(&self, name: &str) -> &Value {
        &self.compose["services"][name]
    }

    /// Starts every replica of `service` with the compose file's settings (plus
    /// `extra_env`), publishing `publish` container ports on random loopback ports.
    fn start(&mut self, service: &str, extra_env: &[(&str, &str)], publish: &[u16]) {
        let svc = self.service(service).clone();
        let image = local_image(service, &scalar(&svc["image"])).expect("a local image");
        let dir = infra().join("compose");
        let replicas = svc["deploy"]["replicas"].as_u64().unwrap_or(1);
        for i in 1..=replicas {
            let name = format!("{}-{service}-{i}", self.prefix);
            let mut args: Vec<String> = vec![
                "run".into(),
                "-d".into(),
                "--name".into(),
                name.clone(),
                "--network".into(),
                self.network.clone(),
                "--network-alias".into(),
                service.into(),
                "--hostname".into(),
                format!("{service}-{i}"),
            ];
            if let Some(env) = svc["environment"].as_object() {
                for (k, v) in env {
                    args.push("-e".into());
                    args.push(format!("{k}={}", scalar(v)));
                }
            }
            for (k, v) in extra_env {
                args.push("-e".into());
                args.push(format!("{k}={v}"));
            }
            if let Some(f) = svc["env_file"].as_str() {
                let file = Path::new(f).file_name().expect("env file name");
                args.push("--env-file".into());
                args.push(self.secrets.path().join(file).display().to_string());
            }
            for s in strings(&svc["secrets"]) {
                let file = scalar(&self.compose["secrets"][&s]["file"]);
                let file = Path::new(&file).file_name().expect("secret file name");
                args.push("-v".into());
                args.push(format!(
                    "{}:/run/secrets/{s}:ro",
                    self.secrets.path().join(file).display()
                ));
            }
            for c in svc["configs"].as_array().into_iter().flatten() {
                let file = scalar(&self.compose["configs"][scalar(&c["source"])]["file"]);
                args.push("-v".into());
                args.push(format!(
                    "{}:{}:ro",
                    dir.join(file).display(),
                    scalar(&c["target"])
                ));
            }
            for v in strings(&svc["volumes"]) {
                let (src, rest) = v.split_once(':').expect("src:dst");
                let src = if src.starts_with('.') {
                    dir.join(src)
                        .canonicalize()
                        .expect("bind source")
                        .display()
                        .to_string()
                } else {
                    let vol = format!("{}-{src}", self.prefix);
                    self.volumes.insert(vol.clone());
                    vol
                };
                args.push("-v".into());
                args.push(format!("{src}:{rest}"));
            }
            for p in publish {
                args.push("-p".into());
                args.push(format!("127.0.0.1::{p}"));
            }
            args.push(image.clone());
            if !image.starts_with("imgcrawl-local/s3") {
                args.extend(strings(&svc["command"]));
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            podman_ok(&refs);
            self.containers.push((name, service.to_string()));
        }
    }

    /// The containers of a service.
    fn of(&self, service: &str) -> Vec<String> {
        self.containers
            .iter()
            .filter(|(_, s)| s == service)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The healthcheck this runner runs in a container of `service`: the compose
    /// file's, except where the local image lacks its tool (wget in nats).
    fn check_cmd(&self, service: &str) -> Vec<String> {
        if service.starts_with("nats-") {
            return http_check(8222, "/healthz");
        }
        if service == "minio" {
            return vec![
                "bash".into(),
                "-c".into(),
                "exec 3<>/dev/tcp/127.0.0.1/9000".into(),
            ];
        }
        let test = strings(&self.service(service)["healthcheck"]["test"]);
        test.into_iter().skip(1).collect()
    }

    /// Waits until every container of these services passes its healthcheck.
    fn wait_healthy(&self, services: &[&str], timeout: Duration) -> Duration {
        let start = Instant::now();
        for service in services {
            let cmd = self.check_cmd(service);
            for name in self.of(service) {
                loop {
                    let mut args = vec!["exec", name.as_str()];
                    args.extend(cmd.iter().map(String::as_str));
                    if podman(&args).status.success() {
                        break;
                    }
                    assert!(
                        start.elapsed() < timeout,
                        "{name} not healthy in {timeout:?}:\n{}",
                        self.logs(&name)
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        start.elapsed()
    }

    fn logs(&self, name: &str) -> String {
        let out = podman(&["logs", "--tail", "40", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// The loopback port published for a container port.
    fn published(&self, name: &str, port: u16) -> u16 {
        let out = podman_ok(&["port", name, &format!("{port}/tcp")]);
        out.rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("a port")
    }
}

fn http_check(port: u16, path: &str) -> Vec<String> {
    vec![
        "bash".into(),
        "-c".into(),
        format!("exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs podman and the local images (just deploy-run)"]
async fn compose_stack_crawls_a_site_through_a_nats_node_kill() {
    let total = Instant::now();
    let mut stack = Stack::new();
    let private = [("IMGCRAWL_ALLOW_PRIVATE", "true")];

    // 1. the three nats-servers
    for n in ["nats-1", "nats-2", "nats-3"] {
        stack.start(n, &[], if n == "nats-1" { &[4222] } else { &[] });
    }
    let nats_up = stack.wait_healthy(&["nats-1", "nats-2", "nats-3"], Duration::from_secs(120));
    // 2. PostgreSQL and the bucket
    stack.start("pg-1", &[], &[5432]);
    stack.start("pg-2", &[], &[5432]);
    stack.start("minio", &[], &[]);
    stack.wait_healthy(&["pg-1", "pg-2", "minio"], Duration::from_secs(180));
    // 3. imgcrawl: writers and watchers, then stages and the API
    let roles = [
        "index-pg-1",
        "index-pg-2",
        "ha",
        "crawl",
        "download",
        "store",
        "api",
    ];
    for role in roles {
        let env: &[(&str, &str)] = match role {
            "crawl" | "download" | "api" => &private,
            _ => &[],
        };
        stack.start(role, env, if role == "api" { &[8000] } else { &[] });
    }
    stack.start("prometheus", &[], &[9090]);
    stack.start("alertmanager", &[], &[]);
    stack.wait_healthy(&roles, Duration::from_secs(300));
    let bring_up = total.elapsed();
    let containers = stack.containers.len();
    eprintln!("{containers} containers healthy in {bring_up:.1?} (nats cluster {nats_up:.1?})");

    // the fixture site, on the gateway the containers reach the host by
    let gateway = stack.gateway();
    let spec = imgcrawl_sitegen::SyntheticSpec {
        pages: 60,
        links_per_page: 4,
        images_per_page: 10,
        distinct_images: 600,
        seed: 15,
        bytes: Some((2 * 1024, 12 * 1024)),
        min_side: 32,
        max_side: 200,
        ..Default::default()
    };
    let site = imgcrawl_sitegen::synthetic_with(&spec).expect("site");
    let site = imgcrawl_sitegen::serve(
        std::sync::Arc::new(site),
        format!("{gateway}:0").parse().expect("addr"),
    )
    .await
    .expect("serve the site on the gateway");
    let truth: BTreeSet<(String, String)> = site
        .site()
        .expected
        .images
        .iter()
        .map(|i| (site.url(&i.url_path), i.sha256.clone()))
        .collect();

    // a bus and the databases from the host, with the stack's credentials
    let toml_text =
        std::fs::read_to_string(stack.secrets.path().join("imgcrawl.toml")).expect("toml");
    let stages: imgcrawl_pipeline::StagesConfig = toml::from_str(&toml_text).expect("toml");
    let nats_port = stack.published(&stack.of("nats-1")[0], 4222);
    let mut bus_config = stages.bus.clone();
    bus_config.nats_url = format!("nats://127.0.0.1:{nats_port}");
    bus_config.replicas = 3;
    let bus = imgcrawl_bus::Bus::connect(bus_config).await.expect("bus");
    let pg_password =
        std::fs::read_to_string(stack.secrets.path().join("pg-password")).expect("password");
    let db_url = |node: &str| {
        let port = stack.published(&stack.of(node)[0], 5432);
        format!("postgres://imgcrawl:{pg_password}@127.0.0.1:{port}/imgcrawl")
    };
    let (url1, url2) = (db_url("pg-1"), db_url("pg-2"));

    // the crawl
    let job = Uuid::now_v7();
    bus.publisher()
        .publish(&Event::CrawlRequested(CrawlRequested {
            job_id: Some(job),
            url: Some(site.seed_url()),
            occurred_at: Some(chrono::Utc::now()),
            ..Default::default()
        }))
        .await
        .expect("publish the crawl request");
    let started = Instant::now();
    let want = truth.len() as i64;
    let (mut killed, mut restarted) = (None::<(String, Instant)>, false);
    let (mut last, mut last_change, mut longest) = (0i64, Instant::now(), Duration::ZERO);
    let mut completed = false;
    while started.elapsed() < Duration::from_secs(600) {
        let (count, done) = observe(&url1, job).await;
        if count > last {
            longest = longest.max(last_change.elapsed());
            (last, last_change) = (count, Instant::now());
        }
        if killed.is_none() && count * 10 >= want * 3 {
            // kill -9 the stream leader's container
            let leader = stream_leader(&bus).await.unwrap_or_else(|| "nats-2".into());
            let name = stack.of(&leader)[0].clone();
            podman_ok(&["kill", "-s", "KILL", &name]);
            eprintln!(
                "killed {leader} ({name}) at {count}/{want} images, {:.1?}",
                started.elapsed()
            );
            killed = Some((name, Instant::now()));
        }
        if let Some((name, at)) = &killed {
            if !restarted && at.elapsed() >= Duration::from_secs(10) {
                podman_ok(&["start", name]);
                eprintln!("restarted {name} at {:.1?}", started.elapsed());
                restarted = true;
            }
        }
        if done {
            longest = longest.max(last_change.elapsed());
            completed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let crawl_secs = started.elapsed().as_secs_f64();
    // what the index holds against the site's ground truth
    let indexed = rows(&url1, job).await;
    let got: BTreeSet<(String, String)> = indexed
        .iter()
        .filter(|(_, (_, status))| status == "stored")
        .map(|(url, (sha, _))| (url.clone(), sha.clone().unwrap_or_default()))
        .collect();
    let lost: Vec<&(String, String)> = truth.difference(&got).collect();
    let unexpected = got.difference(&truth).count();
    // the standby holds the same rows as the primary
    let mut same = false;
    for _ in 0..120 {
        same = rows(&url1, job).await == rows(&url2, job).await;
        if same {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let objects = podman_ok(&[
        "exec",
        &stack.of("minio")[0],
        "bash",
        "-c",
        "find /data/imgcrawl -type f -name '*.*' -not -path '*/_imgcrawl/*' | grep -c /images/ || true",
    ]);
    let distinct: BTreeSet<&String> = truth.iter().map(|(_, sha)| sha).collect();
    let size = podman_ok(&["image", "inspect", "imgcrawl:dev", "--format", "{{.Size}}"]);
    println!(
        "compose run: {containers} containers healthy in {:.1} s; crawl of {want} images ({} distinct) \
         completed={completed} in {crawl_secs:.1} s, longest stall {:.1} s; indexed {} lost {} \
         unexpected {unexpected}; objects in the bucket {objects}; pg-2 identical to pg-1: {same}; \
         killed {:?}; imgcrawl:dev {:.1} MB",
        bring_up.as_secs_f64(),
        distinct.len(),
        longest.as_secs_f64(),
        got.len(),
        lost.len(),
        killed.as_ref().map(|(n, _)| n),
        size.parse::<f64>().unwrap_or(0.0) / 1e6,
    );
    for (url, _) in lost.iter().take(10) {
        println!("  lost: {url} ({:?})", indexed.get(url));
    }
    if !completed {
        for (name, _) in &stack.containers {
            eprintln!("--- {name}\n{}", stack.logs(name));
        }
    }
    assert!(completed, "the crawl did not complete");
    assert!(
        killed.is_some() && restarted,
        "the nats kill did not happen"
    );
    assert!(lost.is_empty(), "{} images lost", lost.len());
    assert_eq!(got, truth);
    assert_eq!(unexpected, 0);
    assert_eq!(objects.trim().parse::<usize>().ok(), Some(distinct.len()));
    assert!(same, "pg-2 differs from pg-1");
}

/// Images stored for `job` and whether it completed, read from a database.
async fn observe(url: &str, job: Uuid) -> (i64, bool) {
    let Ok(pool) = sqlx::PgPool::connect(url).await else {
        return (0, false);
    };
    let n: i64 = sqlx::query_scalar(
        "select count(*) from image_sources where job_id = $1 and status = 'stored'",
    )
    .bind(job)
    .fetch_one(&pool)
    .await
    .unwrap_or(0);
    let status: Option<String> = sqlx::query_scalar("select status from jobs where job_id = $1")
        .bind(job)
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten();
    pool.close().await;
    (n, status.as_deref() == Some("completed"))
}

/// (url, sha256, status) of the job's image sources on one node.
async fn rows(url: &str, job: Uuid) -> BTreeMap<String, (Option<String>, String)> {
    let Ok(pool) = sqlx::PgPool::connect(url).await else {
        return BTreeMap::new();
    };
    let rows: Vec<(String, Option<String>, String)> =
        sqlx::query_as("select url, sha256, status from image_sources where job_id = $1")
            .bind(job)
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    rows.into_iter().map(|(u, s, st)| (u, (s, st))).collect()
}

/// The compose service name of the event stream's leader (its server name).
async fn stream_leader(bus: &imgcrawl_bus::Bus) -> Option<String> {
    let mut s = bus.js.get_stream(&bus.config.stream).await.ok()?;
    let info = s.info().await.ok()?;
    info.cluster.as_ref()?.leader.clone()
}
