//! The system under test, as real processes: a 3-node JetStream cluster (R3), one or
//! two PostgreSQL servers, the `imgcrawl` workers split into one process per stage
//! (two download replicas), an HA watcher with two databases, and a fixture site.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::{CrawlRequested, Event};
use imgcrawl_sitegen::{SiteServer, SyntheticSpec};
use sqlx::PgPool;
use uuid::Uuid;

use crate::cluster::{ClusterOptions, NatsCluster};
use crate::process::{target_dir, Proc};
use crate::Postgres;

/// The worker processes: (name, `imgcrawl run` stages).
pub const WORKERS: [(&str, &str); 5] = [
    ("crawl", "crawl"),
    ("download-1", "download"),
    ("download-2", "download"),
    ("store", "store"),
    ("index", "index"),
];

/// The `imgcrawl` binary the workers run: `IMGCRAWL_BIN`, else the one built with
/// this profile.
pub fn imgcrawl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("IMGCRAWL_BIN") {
        return PathBuf::from(p);
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    target_dir().join(profile).join("imgcrawl")
}

/// One worker process, restartable.
pub struct Worker {
    /// Its name in [`WORKERS`].
    pub name: &'static str,
    stage: &'static str,
    proc: Option<Proc>,
}

/// Everything a scenario runs against.
pub struct Rig {
    dir: tempfile::TempDir,
    /// The JetStream cluster.
    pub cluster: NatsCluster,
    /// PostgreSQL servers (two with HA).
    pub pgs: Vec<Postgres>,
    /// Database URL per server.
    pub dbs: Vec<String>,
    /// The fixture site.
    pub site: SiteServer,
    /// A bus connection for the checker.
    pub bus: Bus,
    /// The worker processes.
    pub workers: Vec<Worker>,
    /// The HA watcher, with two databases.
    watcher: Option<Proc>,
    /// When the killed PostgreSQL node answered again.
    pub pg_returned: Option<std::time::Instant>,
    env: Vec<(String, String)>,
}

/// How the rig is built.
#[derive(Debug, Clone)]
pub struct RigOptions {
    /// The fixture site's shape.
    pub site: SyntheticSpec,
    /// Two PostgreSQL nodes with an HA watcher (else one database).
    pub ha: bool,
    /// The cluster's settings.
    pub cluster: ClusterOptions,
    /// Replicas of the stream, buckets and blob store.
    pub replicas: usize,
}

impl Rig {
    /// Builds and starts everything.
    pub async fn start(options: &RigOptions) -> Rig {
        let dir = tempfile::Builder::new()
            .prefix("imgcrawl-chaos-")
            .tempdir()
            .unwrap();
        let cluster = NatsCluster::start(3, options.cluster.clone()).await;
        let mut pgs = vec![Postgres::start().await];
        if options.ha {
            pgs.push(Postgres::start().await);
        }
        let mut dbs = Vec::new();
        for pg in &pgs {
            dbs.push(pg.create_db("imgcrawl").await);
        }
        let site = imgcrawl_sitegen::synthetic_with(&options.site).expect("fixture site");
        let site = crate::pipeline::serve(site).await;
        let bus = connect(&cluster, options.replicas).await;
        let bucket = dir.path().join("bucket");
        std::fs::create_dir_all(&bucket).unwrap();
        let mut env = vec![
            ("NATS_URL".to_string(), cluster.urls()),
            (
                "IMGCRAWL_NATS_REPLICAS".into(),
                options.replicas.to_string(),
            ),
            ("DATABASE_URL".into(), dbs[0].clone()),
            ("IMGCRAWL_BUCKET".into(), bucket.display().to_string()),
            ("IMGCRAWL_ALLOW_LOOPBACK".into(), "true".into()),
            (
                "IMGCRAWL_HOME".into(),
                dir.path().join("home").display().to_string(),
            ),
            ("RUST_LOG".into(), "info,async_nats=warn,sqlx=warn".into()),
        ];
        if options.ha {
            let nodes = format!("pg1={},pg2={}", dbs[0], dbs[1]);
            env.push(("IMGCRAWL_HA_NODES".into(), nodes));
        }
        let mut rig = Rig {
            dir,
            cluster,
            pgs,
            dbs,
            site,
            bus,
            workers: WORKERS
                .iter()
                .map(|(name, stage)| Worker {
                    name,
                    stage,
                    proc: None,
                })
                .collect(),
            watcher: None,
            pg_returned: None,
            env,
        };
        if options.ha {
            rig.watcher = Some(rig.spawn(
                "ha",
                &[
                    "ha",
                    "--listen",
                    "",
                    "--check-interval-ms",
                    "1000",
                    "--failures",
                    "2",
                ],
            ));
        }
        for i in 0..rig.workers.len() {
            rig.start_worker(i);
        }
        rig
    }

    fn spawn(&self, log: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(imgcrawl_bin());
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Proc::spawn(&mut cmd, &self.dir.path().join(format!("{log}.log"))).expect("spawn imgcrawl")
    }

    /// Starts (or restarts) worker `i`.
    pub fn start_worker(&mut self, i: usize) {
        let stage = self.workers[i].stage;
        let proc = self.spawn(self.workers[i].name, &["run", "--stage", stage]);
        self.workers[i].proc = Some(proc);
    }

    /// Kills worker `i` with SIGKILL.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(p) = self.workers[i].proc.take() {
            p.signal_tree(libc::SIGKILL);
        }
    }

    /// CPU seconds (user and system) used so far by the workers and the nats nodes
    /// that run now (PostgreSQL not included).
    pub fn cpu_seconds(&self) -> f64 {
        let pids = self
            .workers
            .iter()
            .filter_map(|w| w.proc.as_ref().map(Proc::pid))
            .chain(self.cluster.pids());
        pids.map(cpu_of).sum()
    }

    /// The URL of the site's first page.
    pub fn seed(&self) -> String {
        self.site.seed_url()
    }

    /// (url, sha256) of every image the site holds.
    pub fn ground_truth(&self) -> BTreeSet<(String, String)> {
        self.site
            .site()
            .expected
            .images
            .iter()
            .map(|i| {
                let url = if i.alt_host {
                    self.site.alt_url(&i.url_path)
                } else {
                    self.site.url(&i.url_path)
                };
                (url, i.sha256.clone())
            })
            .collect()
    }

    /// The URL of every page a correct crawl fetches (as linked, before redirects).
    pub fn page_urls(&self) -> Vec<String> {
        self.site
            .site()
            .expected
            .pages_fetched
            .iter()
            .map(|p| self.site.url(&p.path))
            .collect()
    }

    /// Publishes the crawl request; returns the job id.
    pub async fn request(&self) -> Uuid {
        let job = Uuid::now_v7();
        let req = CrawlRequested {
            job_id: Some(job),
            url: Some(self.seed()),
            occurred_at: Some(chrono::Utc::now()),
            ..Default::default()
        };
        self.bus
            .publisher()
            .publish(&Event::CrawlRequested(req))
            .await
            .expect("publish the crawl request");
        job
    }

    /// A pool on database `i` (none if it does not answer).
    pub async fn pool(&self, i: usize) -> Option<PgPool> {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(2))
            .connect(&self.dbs[i])
            .await
            .ok()
    }

    /// Runs an `imgcrawl` command with the workers' environment; its output.
    pub fn imgcrawl(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new(imgcrawl_bin());
        cmd.args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run imgcrawl")
    }

    /// The last lines of a process's log (`crawl`, `download-1`, `ha`…).
    pub fn log(&self, name: &str) -> String {
        crate::process::log_tail(&self.dir.path().join(format!("{name}.log")), 3000)
    }
}

/// Connects the checker, creating the topology with `replicas`.
async fn connect(cluster: &NatsCluster, replicas: usize) -> Bus {
    let config = BusConfig {
        replicas,
        client_name: "imgcrawl-chaos".into(),
        ..BusConfig::with_url(cluster.urls())
    };
    // each attempt already rides out elections for 30 s; two minutes in all
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match Bus::connect(config.clone()).await {
            Ok(b) => return b,
            Err(e) if std::time::Instant::now() > deadline => {
                panic!("connect to the cluster: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Keeps a shared rig handle for fault tasks.
pub type Shared = Arc<tokio::sync::Mutex<Rig>>;

/// CPU seconds of process `pid` (utime + stime from /proc; 0 if it is gone).
fn cpu_of(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // after the command: state is field 3, utime 14 and stime 15 (1-based)
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}
