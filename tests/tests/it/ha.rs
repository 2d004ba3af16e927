//! HA with real PostgreSQL processes: two nodes, each fed by its own index writer, HA
//! watchers with short intervals (200 ms checks, 2 s check timeout).
//!
//! * the primary is killed mid-crawl: the crawl completes on the standby with every
//!   image indexed once; the old primary returns, catches up, and the consistency check
//!   says identical;
//! * a stall shorter than the check timeout (SIGSTOP, SIGCONT) causes no failover; a
//!   longer one does, and after SIGCONT a writer still holding the old epoch cannot
//!   commit on the old primary;
//! * manual failover and switchover back, through the HTTP API of either watcher;
//! * the lease holder is killed: the other watcher takes over within a few intervals
//!   and acts;
//! * the watcher exports node health, the primary, the epoch and the lease as metrics.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use imgcrawl_bus::ha::{current_primary, Node, Pointer, POSTGRES};
use imgcrawl_events::EventKind;
use imgcrawl_ha::Watcher;
use imgcrawl_index::Fence;
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::{pg_nodes, sitegen, wait_for, wait_until, Pipeline, Postgres, Stage};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Two PostgreSQL nodes, their writers, the other stages, and watchers.
/// The HA API's admin token in these tests.
const HA_TOKEN: &str = "ha-test-token-0123456789";

struct Rig {
    p: Pipeline,
    /// Holds the HA API's token file.
    _secrets: tempfile::TempDir,
    /// The second node's server (kept alive; dropped with the rig).
    _pg2: Postgres,
    nodes: Vec<Node>,
    index: imgcrawl_index::Config,
    ha: imgcrawl_ha::Config,
    writers: HashMap<String, (CancellationToken, JoinHandle<()>)>,
    watchers: Vec<Option<(CancellationToken, Watcher)>>,
}

impl Rig {
    async fn start(watchers: usize) -> Rig {
        let mut p = Pipeline::start_without_stages().await;
        for s in [Stage::Crawl, Stage::Download, Stage::Store] {
            p.start_stage(s);
        }
        let pg2 = Postgres::start().await;
        let url2 = pg2.fresh_db().await;
        let nodes = pg_nodes(&[p.db_url.clone(), url2]);
        let index = imgcrawl_index::Config {
            max_backoff_ms: 300,
            ..p.configs.index.clone()
        };
        let secrets = tempfile::tempdir().expect("token dir");
        let token_file = secrets.path().join("ha-token");
        std::fs::write(&token_file, HA_TOKEN).expect("write token");
        let ha = imgcrawl_ha::Config {
            token_file: Some(token_file),
            nodes: nodes.clone(),
            check_interval_ms: 200,
            check_timeout_ms: 2000,
            consistency_interval_secs: 0,
            consistency_timeout_secs: 60,
            listen: "127.0.0.1:0".into(),
            request_timeout_ms: 8000,
            ..Default::default()
        };
        let mut rig = Rig {
            p,
            _secrets: secrets,
            _pg2: pg2,
            nodes,
            index,
            ha,
            writers: HashMap::new(),
            watchers: Vec::new(),
        };
        for n in ["pg1", "pg2"] {
            rig.start_writer(n);
        }
        for _ in 0..watchers {
            rig.start_watcher().await;
        }
        let first = rig
            .wait_pointer(Duration::from_secs(20), |p| p.epoch >= 1)
            .await;
        assert_eq!(
            (first.primary.as_str(), first.epoch),
            ("pg1", 1),
            "the best priority is elected first"
        );
        rig
    }

    fn node(&self, name: &str) -> &Node {
        self.nodes.iter().find(|n| n.name == name).expect("node")
    }

    fn spawn_writer(&mut self, name: &str, fence: Option<Fence>) {
        let config = imgcrawl_index::Config {
            database_url: self.node(name).url.clone(),
            ..self.index.clone()
        };
        let (bus, token, node) = (
            self.p.bus.clone(),
            CancellationToken::new(),
            name.to_string(),
        );
        let t = token.clone();
        let handle = tokio::spawn(async move {
            let r = match fence {
                Some(f) => imgcrawl_index::run_fenced(bus, config, f, t).await,
                None => imgcrawl_index::run_node(bus, config, &node, t).await,
            };
            if let Err(e) = r {
                eprintln!("writer {node} failed: {e}");
            }
        });
        self.writers.insert(name.to_string(), (token, handle));
    }

    /// The index writer of node `name`, following the pointer.
    fn start_writer(&mut self, name: &str) {
        self.spawn_writer(name, None);
    }

    /// A writer of node `name` that believes it is primary at `epoch` forever: the old
    /// primary's writer that missed the failover.
    fn start_stale_writer(&mut self, name: &str, epoch: u64) {
        let pointer = Pointer {
            primary: name.into(),
            epoch,
            reason: "stale".into(),
            at: chrono::Utc::now(),
            previous: None,
        };
        self.spawn_writer(name, Some(Fence::fixed(name, pointer)));
    }

    async fn kill_writer(&mut self, name: &str) {
        if let Some((_, h)) = self.writers.remove(name) {
            h.abort();
            let _ = h.await;
        }
    }

    async fn start_watcher(&mut self) -> usize {
        let token = CancellationToken::new();
        let w = imgcrawl_ha::start(self.p.bus.clone(), self.ha.clone(), token.clone())
            .await
            .expect("start watcher");
        self.watchers.push(Some((token, w)));
        self.watchers.len() - 1
    }

    /// Kills watcher `i` like a crash: no lease release.
    fn kill_watcher(&mut self, i: usize) {
        if let Some((_, w)) = self.watchers[i].take() {
            w.abort();
        }
    }

    fn leader(&self) -> Option<usize> {
        self.watchers
            .iter()
            .position(|w| w.as_ref().is_some_and(|(_, w)| w.is_leader()))
    }

    fn api(&self, i: usize) -> String {
        let (_, w) = self.watchers[i].as_ref().expect("watcher alive");
        format!("http://{}", w.api_addr().expect("api"))
    }

    async fn pointer(&self) -> Option<Pointer> {
        current_primary(&self.p.bus, POSTGRES).await.ok().flatten()
    }

    async fn wait_pointer(&self, timeout: Duration, ok: impl Fn(&Pointer) -> bool) -> Pointer {
        let found = wait_for(timeout, || async { self.pointer().await.filter(|p| ok(p)) }).await;
        match found {
            Some(p) => p,
            None => panic!("pointer never matched; it is {:?}", self.pointer().await),
        }
    }

    async fn db(&self, name: &str) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&self.node(name).url)
            .await
            .expect("connect node")
    }

    /// (checkpoint, epoch) of node `name`, if it answers within a second.
    async fn checkpoint(&self, name: &str) -> Option<(u64, u64)> {
        let read = async {
            let db = self.db(name).await;
            let r: Option<(i64, i64)> = sqlx::query_as(
                "select last_seq, epoch from projection_checkpoint where name = 'postgres'",
            )
            .fetch_optional(&db)
            .await
            .ok()?;
            db.close().await;
            r.map(|(s, e)| (s as u64, e as u64))
        };
        tokio::time::timeout(Duration::from_secs(2), read)
            .await
            .ok()
            .flatten()
    }

    async fn shutdown(mut self) {
        for w in self.watchers.iter_mut().filter_map(Option::take) {
            w.0.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), w.1.wait()).await;
        }
        for (_, (t, h)) in self.writers.drain() {
            t.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        self.p.shutdown().await;
    }
}

async fn http(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = match method {
        "POST" => client.post(url).bearer_auth(HA_TOKEN),
        _ => client.get(url),
    };
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .expect("http request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn wait_job_on(db: &PgPool, job: Uuid, timeout: Duration) -> String {
    let s = wait_for(timeout, || async {
        let s: Option<String> = sqlx::query_scalar("select status from jobs where job_id = $1")
            .bind(job)
            .fetch_optional(db)
            .await
            .ok()
            .flatten();
        s.filter(|s| s == "completed" || s == "stopped")
    })
    .await;
    s.unwrap_or_else(|| panic!("job {job} did not finish within {timeout:?}"))
}

async fn failovers(db: &PgPool) -> Vec<(i64, Option<String>, String, bool)> {
    sqlx::query_as("select epoch, from_node, to_node, manual from failovers where target = 'postgres' order by epoch")
        .fetch_all(db)
        .await
        .expect("failovers table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_killed_mid_crawl_the_standby_completes_it_and_the_old_primary_returns_identical() {
    let mut rig = Rig::start(1).await;
    let site = sitegen::synthetic(80, 4, 8, 400, 11).unwrap();
    let server = serve(site).await;
    let expected = server.site().expected.clone();
    let job = rig
        .p
        .request(&server.seed_url(), |r| {
            r.politeness = Some(imgcrawl_events::Politeness {
                delay_ms: 10,
                ..Default::default()
            })
        })
        .await;
    let pg1 = rig.db("pg1").await;
    let stored = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from image_sources where job_id = $1 and status = 'stored'",
        )
        .bind(job)
        .fetch_one(&pg1)
        .await
        .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || async { stored().await >= 100 }).await,
        "progress before the kill"
    );
    pg1.close().await;

    let killed = Instant::now();
    rig.p.pg.kill();
    let p = rig
        .wait_pointer(Duration::from_secs(10), |p| p.primary == "pg2")
        .await;
    let took = killed.elapsed();
    assert_eq!(p.epoch, 2);
    assert_eq!(p.previous.as_deref(), Some("pg1"));
    assert!(p.reason.contains("primary pg1 down"), "{}", p.reason);
    assert!(
        took < Duration::from_secs(5),
        "failover took {took:?} with 200 ms checks"
    );

    let pg2 = rig.db("pg2").await;
    assert_eq!(
        wait_job_on(&pg2, job, Duration::from_secs(120)).await,
        "completed"
    );
    common::assert_images(&pg2, job, &server, &expected).await;
    // every stored image source announced exactly once: the promoted writer announced
    // what it applied as a standby, message ids dropped what pg1 had announced
    let events = rig.p.events().await;
    let mut indexed: Vec<String> = events
        .iter()
        .filter(|e| e.subject == EventKind::ImagesIndexed.subject())
        .flat_map(|e| {
            let v = serde_json::from_slice::<Value>(&e.payload).unwrap();
            v["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["url"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let n = indexed.len();
    indexed.sort();
    indexed.dedup();
    assert_eq!(n, indexed.len(), "an image source was announced twice");
    let indexed: BTreeSet<String> = indexed.into_iter().collect();
    let want: BTreeSet<String> = common::stored_sources(&pg2, job)
        .await
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    let missing: Vec<_> = want.difference(&indexed).collect();
    let extra: Vec<_> = indexed.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "not announced: {missing:?}\nannounced, not stored: {extra:?}"
    );

    // the old primary returns: stamped with the new epoch, catches up, stays a standby
    rig.p.pg.start_again().await.expect("restart pg1");
    let caught_up = wait_until(Duration::from_secs(60), || async {
        match (rig.checkpoint("pg1").await, rig.checkpoint("pg2").await) {
            (Some((a, ea)), Some((b, _))) => a == b && ea == 2,
            _ => false,
        }
    })
    .await;
    assert!(
        caught_up,
        "pg1 caught up: {:?} vs {:?}",
        rig.checkpoint("pg1").await,
        rig.checkpoint("pg2").await
    );
    assert_eq!(
        rig.pointer().await.map(|p| p.primary),
        Some("pg2".into()),
        "no automatic failback"
    );

    let (code, report) = http(
        "POST",
        &format!("{}/api/sync?wait=true&timeout_secs=60", rig.api(0)),
        None,
    )
    .await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["status"], "identical", "{report:#}");
    let names: BTreeSet<&str> = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["pg1", "pg2"]));
    assert!(report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["identical"] == true));
    let (_, st) = http("GET", &format!("{}/api/sync-status", rig.api(0)), None).await;
    assert_eq!(st["last"]["id"], report["id"]);

    let pg1 = rig.db("pg1").await;
    let history = failovers(&pg1).await;
    assert_eq!(history, failovers(&pg2).await);
    assert_eq!(
        history
            .iter()
            .map(|f| (f.0, f.2.as_str()))
            .collect::<Vec<_>>(),
        [(1, "pg1"), (2, "pg2")]
    );
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_stall_is_ridden_out_and_a_long_one_is_failed_over_and_fenced() {
    let mut rig = Rig::start(1).await;
    let server = serve(sitegen::demo()).await;
    let job = rig.p.request(&server.seed_url(), |_| {}).await;
    let pg1 = rig.db("pg1").await;
    assert_eq!(
        wait_job_on(&pg1, job, Duration::from_secs(90)).await,
        "completed"
    );
    pg1.close().await;

    // shorter than the 2 s check timeout: nothing happens
    rig.p.pg.pause();
    tokio::time::sleep(Duration::from_millis(500)).await;
    rig.p.pg.resume();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = rig.pointer().await.unwrap();
    assert_eq!(
        (p.primary.as_str(), p.epoch),
        ("pg1", 1),
        "a short stall caused a failover"
    );
    let st = rig.watchers[0].as_ref().unwrap().1.status();
    assert!(st
        .nodes
        .iter()
        .all(|n| n.state.consecutive_failures == 0 && n.state.down_since.is_none()));

    // longer: replaced
    let (cp_before, _) = rig.checkpoint("pg1").await.unwrap();
    rig.p.pg.pause();
    let stalled = Instant::now();
    let p = rig
        .wait_pointer(Duration::from_secs(10), |p| p.primary == "pg2")
        .await;
    assert_eq!(p.epoch, 2);
    assert!(p.reason.contains("slower than"), "{}", p.reason);
    assert!(
        stalled.elapsed() < Duration::from_secs(6),
        "replaced after {:?}",
        stalled.elapsed()
    );
    // pg1's own writer is replaced by one that missed the failover (epoch 1, primary)
    rig.kill_writer("pg1").await;
    rig.start_stale_writer("pg1", 1);
    rig.p.pg.resume();
    // the watcher stamps the new epoch on the returning node before anything else
    assert!(
        wait_until(Duration::from_secs(10), || async {
            rig.checkpoint("pg1").await.is_some_and(|(_, e)| e == 2)
        })
        .await,
        "pg1 stamped with epoch 2: {:?}",
        rig.checkpoint("pg1").await
    );
    let (cp_stamped, _) = rig.checkpoint("pg1").await.unwrap();
    assert!(cp_stamped >= cp_before);

    // new events: the new primary applies them, the stale writer is fenced
    let job2 = rig.p.request(&server.seed_url(), |_| {}).await;
    let pg2 = rig.db("pg2").await;
    assert_eq!(
        wait_job_on(&pg2, job2, Duration::from_secs(90)).await,
        "completed"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cp_after, epoch_after) = rig.checkpoint("pg1").await.unwrap();
    assert_eq!(
        (cp_after, epoch_after),
        (cp_stamped, 2),
        "a writer holding epoch 1 committed on pg1"
    );
    let (cp2, _) = rig.checkpoint("pg2").await.unwrap();
    assert!(cp2 > cp_after);
    let pg1 = rig.db("pg1").await;
    let n: Option<String> = sqlx::query_scalar("select status from jobs where job_id = $1")
        .bind(job2)
        .fetch_optional(&pg1)
        .await
        .unwrap();
    assert_eq!(n, None, "nothing of the new job reached pg1");

    // its real writer (following the pointer) catches up as a standby
    rig.kill_writer("pg1").await;
    rig.start_writer("pg1");
    assert_eq!(
        wait_job_on(&pg1, job2, Duration::from_secs(30)).await,
        "completed"
    );
    assert_eq!(rig.pointer().await.unwrap().primary, "pg2");
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manual_failover_and_switchover_back_through_either_watchers_api() {
    let rig = Rig::start(2).await;
    let leader = wait_for(Duration::from_secs(10), || async { rig.leader() })
        .await
        .expect("a leader");
    let follower = 1 - leader;
    // the follower reports health once it has checked every node itself (a node it has
    // not checked yet is "unknown", and health is 503 until then)
    let url = format!("{}/api/health", rig.api(follower));
    let checked = wait_until(Duration::from_secs(10), || async {
        let (_, h) = http("GET", &url, None).await;
        h["nodes"]
            .as_object()
            .is_some_and(|n| n.values().all(|v| v != "unknown"))
    })
    .await;
    assert!(checked, "the follower checked every node");
    let (code, health) = http("GET", &url, None).await;
    assert_eq!(
        (code, health["primary"].as_str()),
        (200, Some("pg1")),
        "{health}"
    );
    let (_, status) = http("GET", &format!("{}/api/status", rig.api(follower)), None).await;
    assert_eq!(status["epoch"], 1);
    assert_eq!(status["watcher"]["leader"], false);
    let roles: Vec<(&str, &str)> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("pg1", "primary"), ("pg2", "standby")]);

    let (code, body) = http(
        "POST",
        &format!("{}/api/failover", rig.api(follower)),
        Some(json!({"target": "nope"})),
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"]["field"], "target", "{body}");
    // the standby must be checked and caught up; then fail over, asked of the follower
    assert!(
        wait_until(Duration::from_secs(10), || async {
            rig.checkpoint("pg2").await.is_some()
        })
        .await
    );
    let (code, body) = http(
        "POST",
        &format!("{}/api/failover", rig.api(follower)),
        Some(json!({"target": "pg2", "reason": "maintenance"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            body["pointer"]["primary"].as_str(),
            body["pointer"]["epoch"].as_u64()
        ),
        (Some("pg2"), Some(2))
    );
    assert!(body["pointer"]["reason"]
        .as_str()
        .unwrap()
        .contains("maintenance"));
    // the old primary was fenced before the pointer moved
    assert!(rig.checkpoint("pg1").await.is_some_and(|(_, e)| e == 2));

    let server = serve(sitegen::demo()).await;
    let job = rig.p.request(&server.seed_url(), |_| {}).await;
    let pg2 = rig.db("pg2").await;
    assert_eq!(
        wait_job_on(&pg2, job, Duration::from_secs(90)).await,
        "completed"
    );
    common::assert_images(&pg2, job, &server, &server.site().expected).await;

    // switchover back, asked of the leader this time; asking again changes nothing
    let (code, body) = http(
        "POST",
        &format!("{}/api/failover", rig.api(leader)),
        Some(json!({"target": "pg1"})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (
            body["pointer"]["primary"].as_str(),
            body["pointer"]["epoch"].as_u64()
        ),
        (Some("pg1"), Some(3))
    );
    let (code, body) = http(
        "POST",
        &format!("{}/api/failover", rig.api(leader)),
        Some(json!({"target": "pg1"})),
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (409, Some("already_primary")),
        "{body}"
    );
    assert_eq!(rig.pointer().await.map(|p| p.epoch), Some(3));

    let pg1 = rig.db("pg1").await;
    let want = [
        (1, None, "pg1".to_string(), false),
        (2, Some("pg1".to_string()), "pg2".to_string(), true),
        (3, Some("pg2".to_string()), "pg1".to_string(), true),
    ];
    for db in [&pg1, &pg2] {
        let ok = wait_until(Duration::from_secs(10), || async {
            failovers(db).await == want
        })
        .await;
        assert!(ok, "failover history {:?}", failovers(db).await);
    }
    // the events match their schema and their deterministic message ids
    let path = imgcrawl_tests::workspace_root().join("schemas/events/ha.failover.v1.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let failover_events: Vec<_> = rig
        .p
        .events()
        .await
        .into_iter()
        .filter(|e| e.subject == "imgcrawl.ha.failover")
        .collect();
    assert_eq!(failover_events.len(), 3, "one event per epoch");
    for e in &failover_events {
        let body: Value = serde_json::from_slice(&e.payload).unwrap();
        assert!(validator.is_valid(&body), "{body}");
        assert_eq!(
            e.header("Nats-Msg-Id"),
            Some(format!("ha.failover:postgres:{}", body["epoch"]).as_str())
        );
    }
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_lease_holder_dies_the_other_watcher_takes_over_and_acts() {
    let mut rig = Rig::start(2).await;
    let leader = wait_for(Duration::from_secs(10), || async { rig.leader() })
        .await
        .expect("a leader");
    let other = 1 - leader;
    assert!(
        !rig.watchers[other].as_ref().unwrap().1.is_leader(),
        "one lease holder"
    );
    let killed = Instant::now();
    rig.kill_watcher(leader);
    let took = wait_for(Duration::from_secs(10), || async {
        (rig.leader() == Some(other)).then(|| killed.elapsed())
    })
    .await
    .expect("the other watcher took over");
    // lease 600 ms (3 intervals of 200 ms): taken over within a few intervals
    assert!(
        took < Duration::from_millis(3000),
        "took over after {took:?}"
    );
    let (_, st) = http("GET", &format!("{}/api/status", rig.api(other)), None).await;
    assert_eq!(st["watcher"]["leader"], true);

    // and it acts: the primary dies, the new lease holder fails over
    rig.p.pg.kill();
    let p = rig
        .wait_pointer(Duration::from_secs(10), |p| p.primary == "pg2")
        .await;
    assert_eq!(p.epoch, 2);
    let (code, health) = http("GET", &format!("{}/api/health", rig.api(other)), None).await;
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("degraded")),
        "{health}"
    );
    rig.shutdown().await;
}

/// One line of the process's metrics (the watcher runs in this test's process).
fn metric_line(name_and_labels: &str) -> Option<f64> {
    imgcrawl_telemetry::metrics::encode()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_exports_node_health_the_primary_the_epoch_and_the_lease() {
    let rig = Rig::start(1).await;
    let exported = wait_until(Duration::from_secs(15), || async {
        metric_line(r#"imgcrawl_ha_node_up{node="pg1"}"#) == Some(1.0)
            && metric_line(r#"imgcrawl_ha_node_up{node="pg2"}"#) == Some(1.0)
            && metric_line(r#"imgcrawl_ha_node_primary{node="pg1"}"#) == Some(1.0)
            && metric_line("imgcrawl_ha_leader") == Some(1.0)
    })
    .await;
    assert!(exported, "{}", imgcrawl_telemetry::metrics::encode());
    assert_eq!(
        metric_line(r#"imgcrawl_ha_node_primary{node="pg2"}"#),
        Some(0.0)
    );
    assert_eq!(metric_line("imgcrawl_ha_epoch"), Some(1.0));
    assert_eq!(
        metric_line("imgcrawl_ha_failovers_total"),
        Some(1.0),
        "the first election"
    );
    assert_eq!(
        metric_line(r#"imgcrawl_ha_node_check_failures{node="pg2"}"#),
        Some(0.0)
    );
    assert!(metric_line("imgcrawl_ha_rounds_total").is_some_and(|n| n >= 1.0));
    let ready = imgcrawl_telemetry::ready::global()
        .report(Duration::from_secs(2))
        .await;
    assert!(ready.checks["watcher"].ok, "{ready:?}");
    drop(rig);
}
