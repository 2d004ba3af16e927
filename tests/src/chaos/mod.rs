//! The chaos suite: a crawl of a fixture site on real processes (a 3-node JetStream
//! cluster at R3, one process per stage with two download replicas, PostgreSQL, an HA
//! watcher where it matters) while faults are injected, then a Jepsen-style check of
//! every image of the site's ground truth (indexed once, lost, duplicated, unexpected)
//! and `imgcrawl verify --against-replay`.
//!
//! `just chaos` runs every scenario at full size and prints the table; the fast cases
//! run in `just test` (`tests/tests/chaos.rs`).

mod check;
mod faults;
mod rig;

use std::time::{Duration, Instant};

use imgcrawl_sitegen::SyntheticSpec;
use tokio::sync::watch;

pub use check::Counts;
pub use rig::{imgcrawl_bin, Rig, RigOptions};

use crate::cluster::ClusterOptions;

/// A fault scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No fault: the reference for time.
    NoFault,
    /// `kill -9` of the stream leader's nats-server mid-crawl, restarted; then of a
    /// second node after the first returns.
    LeaderKill,
    /// `kill -9` of a random stage process every few seconds for the whole crawl, each
    /// restarted.
    StageKills,
    /// `SIGSTOP` of the stream leader's nats-server for longer than the heartbeat, then
    /// `SIGCONT`.
    NatsPause,
    /// `kill -9` of the primary PostgreSQL's postmaster mid-crawl (two nodes, HA
    /// watcher), brought back later; the returning node must catch up.
    PgFailover,
    /// A network partition of the stream leader's node from the other two (network
    /// namespaces and iptables), healed later.
    Partition,
}

impl Scenario {
    /// Every scenario, in the table's order.
    pub const ALL: [Scenario; 6] = [
        Scenario::NoFault,
        Scenario::LeaderKill,
        Scenario::StageKills,
        Scenario::NatsPause,
        Scenario::PgFailover,
        Scenario::Partition,
    ];

    /// The scenario's name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::NoFault => "no-fault",
            Scenario::LeaderKill => "leader-kill",
            Scenario::StageKills => "stage-kills",
            Scenario::NatsPause => "nats-pause",
            Scenario::PgFailover => "pg-failover",
            Scenario::Partition => "partition",
        }
    }
}

/// How big a run is and how long faults last.
#[derive(Debug, Clone)]
pub struct Size {
    /// The fixture site.
    pub site: SyntheticSpec,
    /// Seconds between stage kills.
    pub kill_every: Duration,
    /// How long a killed nats node stays down.
    pub nats_down: Duration,
    /// How long a paused nats node stays stopped.
    pub pause: Duration,
    /// How long the killed PostgreSQL primary stays down.
    pub pg_down: Duration,
    /// How long a partition lasts.
    pub partition: Duration,
    /// Give up on a crawl after this long.
    pub timeout: Duration,
}

impl Size {
    /// The suite's size: a few thousand images, faults as long as the issue says.
    pub fn full() -> Size {
        Size {
            site: site(400, 4000),
            kill_every: Duration::from_millis(1500),
            nats_down: Duration::from_secs(15),
            pause: Duration::from_secs(12),
            pg_down: Duration::from_secs(60),
            partition: Duration::from_secs(20),
            timeout: Duration::from_secs(900),
        }
    }

    /// Small and quick, for `just test`.
    pub fn fast() -> Size {
        Size {
            site: site(100, 1500),
            kill_every: Duration::from_secs(1),
            nats_down: Duration::from_secs(5),
            pause: Duration::from_secs(8),
            pg_down: Duration::from_secs(10),
            partition: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
        }
    }
}

fn site(pages: usize, images: usize) -> SyntheticSpec {
    SyntheticSpec {
        pages,
        links_per_page: 4,
        images_per_page: images / pages,
        distinct_images: images,
        seed: 7,
        bytes: Some((2 * 1024, 12 * 1024)),
        min_side: 32,
        max_side: 200,
        ..SyntheticSpec::default()
    }
}

/// One scenario's result.
#[derive(Debug, Clone)]
pub struct Report {
    /// Which scenario.
    pub scenario: Scenario,
    /// The checker's counts.
    pub counts: Counts,
    /// The job completed within the timeout.
    pub completed: bool,
    /// Every database node caught up with the primary afterwards (a returning node by
    /// itself).
    pub settled: bool,
    /// `imgcrawl verify --against-replay` said identical.
    pub verified: bool,
    /// Seconds from request to completion.
    pub seconds: f64,
    /// Longest time, in seconds, without a new stored image before completion.
    pub longest_stall: f64,
    /// Faults injected (kills, pauses, partitions).
    pub faults: usize,
    /// What happened, for the notes (fault times, catch-up times).
    pub notes: Vec<String>,
}

impl Report {
    /// Nothing lost, duplicated or unexpected, completed and verified.
    pub fn ok(&self) -> bool {
        let c = &self.counts;
        self.completed
            && self.settled
            && self.verified
            && c.lost == 0
            && c.duplicated == 0
            && c.unexpected == 0
            && c.indexed == c.expected
    }
}

/// Runs one scenario at `size`.
pub async fn run(scenario: Scenario, size: &Size) -> Report {
    let options = RigOptions {
        site: size.site,
        ha: scenario == Scenario::PgFailover,
        cluster: ClusterOptions {
            sync_always: false,
            namespaces: scenario == Scenario::Partition,
        },
        replicas: 3,
    };
    let rig = Rig::start(&options).await;
    let truth = rig.ground_truth();
    let job = rig.request().await;
    let started = Instant::now();
    let rig = std::sync::Arc::new(tokio::sync::Mutex::new(rig));
    let (progress_tx, progress) = watch::channel(0.0f64);
    let (done_tx, done) = watch::channel(false);
    let fault = tokio::spawn(faults::inject(
        scenario,
        size.clone(),
        rig.clone(),
        progress,
        done,
    ));
    let total = truth.len().max(1) as f64;
    let (mut last_count, mut last_change, mut longest) = (0i64, Instant::now(), Duration::ZERO);
    let mut completed = false;
    while started.elapsed() < size.timeout {
        let (count, finished) = faults::observe(&*rig.lock().await, job).await;
        if count > last_count {
            longest = longest.max(last_change.elapsed());
            (last_count, last_change) = (count, Instant::now());
        }
        progress_tx.send_replace(count as f64 / total);
        if finished {
            longest = longest.max(last_change.elapsed());
            completed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    done_tx.send_replace(true);
    let (faults, mut notes) = fault
        .await
        .unwrap_or_else(|e| (0, vec![format!("fault task: {e}")]));
    let rig = rig.lock().await;
    let (primary, db, settled, more) = faults::settle(scenario, &rig).await;
    notes.extend(more);
    let counts = check::check(&db, &rig.bus, job, &truth, &rig.page_urls()).await;
    notes.extend(counts.lost_detail.iter().cloned());
    let url = &rig.dbs[primary];
    let verify = rig.imgcrawl(&[
        "verify",
        "--database-url",
        url,
        "--against-replay",
        "--json",
    ]);
    let verified = verify.status.success()
        && String::from_utf8_lossy(&verify.stdout).contains("\"identical\":true");
    if !verified {
        notes.push(format!(
            "verify: {}{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        ));
    }
    if !completed {
        notes.push(format!("did not complete in {:?}", size.timeout));
        for (name, _) in rig::WORKERS {
            notes.push(format!("--- {name}.log\n{}", rig.log(name)));
        }
    }
    Report {
        scenario,
        counts,
        completed,
        settled,
        verified,
        seconds,
        longest_stall: longest.as_secs_f64(),
        faults,
        notes,
    }
}

/// The table the suite prints; `reference` is the no-fault run's seconds.
pub fn table(reports: &[Report]) -> String {
    let reference = reports
        .iter()
        .find(|r| r.scenario == Scenario::NoFault)
        .map(|r| r.seconds);
    let mut out = String::from(
        "| scenario | expected | indexed | lost | duplicated | unexpected | dead letters | pages revisited | faults | time s | vs no-fault | longest stall s | verified |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in reports {
        let c = &r.counts;
        let ratio = reference.map_or("-".into(), |t| format!("×{:.1}", r.seconds / t.max(0.001)));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1}{} | {} | {:.1} | {} |\n",
            r.scenario.name(),
            c.expected,
            c.indexed,
            c.lost,
            c.duplicated,
            c.unexpected,
            c.dead_letters,
            c.revisited,
            r.faults,
            r.seconds,
            if r.completed { "" } else { " (timed out)" },
            ratio,
            r.longest_stall,
            match (r.verified, r.settled) {
                (true, true) => "identical",
                (true, false) => "identical; a node did not catch up",
                (false, _) => "DIFFERS",
            },
        ));
    }
    out
}

/// One row of the cost of durability: the same crawl on the same 3-node cluster.
#[derive(Debug, Clone)]
pub struct CostRow {
    /// `R1`, `R3`, `R3, sync always`.
    pub label: &'static str,
    /// Images indexed.
    pub images: usize,
    /// Seconds from request to completion.
    pub seconds: f64,
    /// CPU seconds of the workers and the nats nodes.
    pub cpu_seconds: f64,
}

/// Crawls the `size` site with no fault on a 3-node cluster three ways: the stream at
/// R1, at R3, and at R3 with every node fsyncing each write.
pub async fn cost(size: &Size) -> Vec<CostRow> {
    let mut rows = Vec::new();
    for (label, replicas, sync_always) in [
        ("R1", 1, false),
        ("R3", 3, false),
        ("R3, sync always", 3, true),
    ] {
        let options = RigOptions {
            site: size.site,
            ha: false,
            cluster: ClusterOptions {
                sync_always,
                namespaces: false,
            },
            replicas,
        };
        let rig = Rig::start(&options).await;
        let truth = rig.ground_truth();
        let cpu0 = rig.cpu_seconds();
        let job = rig.request().await;
        let started = Instant::now();
        while started.elapsed() < size.timeout {
            if faults::observe(&rig, job).await.1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = rig.cpu_seconds() - cpu0;
        let pool = rig.pool(0).await.expect("database");
        let counts = check::check(&pool, &rig.bus, job, &truth, &rig.page_urls()).await;
        rows.push(CostRow {
            label,
            images: counts.indexed,
            seconds,
            cpu_seconds,
        });
    }
    rows
}

/// The cost table, ratios against the first row.
pub fn cost_table(rows: &[CostRow]) -> String {
    let mut out = String::from(
        "| stream | images | time s | images/s | CPU ms/image | rate vs R1 | CPU vs R1 |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let rate = |r: &CostRow| r.images as f64 / r.seconds.max(0.001);
    let cpu = |r: &CostRow| 1000.0 * r.cpu_seconds / (r.images.max(1) as f64);
    let Some(base) = rows.first() else { return out };
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | ×{:.2} | ×{:.2} |\n",
            r.label,
            r.images,
            r.seconds,
            rate(r),
            cpu(r),
            rate(r) / rate(base),
            cpu(r) / cpu(base),
        ));
    }
    out
}
