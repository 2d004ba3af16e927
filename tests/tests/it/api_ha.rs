//! The API and its databases, against real servers (nats-server, PostgreSQL, the HA
//! watcher, the index writers):
//!
//! * with two PostgreSQL nodes, `POST /api/ha/failover` is carried out by the HA
//!   watcher: refused (409) for a lagging standby without `force`, done (200, the new
//!   primary and epoch) with it; the API's reads move to the new primary without a
//!   restart, and `/api/ha-status` lists both nodes with the right primary, epoch and
//!   health;
//! * without a watcher, a failover answers 503 `no_watcher` within the configured wait
//!   and the request is withdrawn; several standbys and no target is 422.
//!
//! The database-down and size-index tests are in `api_db.rs`.

use crate::api_common;

use std::time::{Duration, Instant};

use api_common::synthetic::{listed, migrated, stored};
use api_common::{config, synthetic, ApiServer, Auth, Resp};
use imgcrawl_bus::ha::{current_primary, HaStore, Node, POSTGRES};
use imgcrawl_bus::ha_requests::{FailoverRequest, FAILOVER_REQUEST_KEY};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_tests::{
    free_port, pg_nodes, wait_for, wait_until, NatsServer, Pipeline, Postgres, Stage,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const IMAGES: usize = 40;

async fn ha_status(api: &ApiServer) -> Value {
    let r = api.get("/api/ha-status", "/api/ha-status").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// `POST /api/ha/failover` with the token.
async fn failover(api: &ApiServer, body: Option<Value>) -> Resp {
    let (route, path) = ("/api/ha/failover", "/api/ha/failover");
    api.call("POST", route, path, Auth::Good, body, &[]).await
}

fn node<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("node {name} not listed: {status:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_follows_the_ha_pointer_without_a_restart() {
    // pg1: projected by the index stage; pg2: the schema, no rows until its writer runs
    let mut p = Pipeline::start_without_stages().await;
    p.start_stage(Stage::Index);
    let pg2 = Postgres::start().await;
    let url2 = pg2.fresh_db().await;
    migrated(&url2).await;
    synthetic::publish_images(&p.bus, IMAGES).await;
    let db1 = p.db().await;
    let applied = wait_until(Duration::from_secs(60), || async {
        stored(&db1).await == IMAGES
    })
    .await;
    assert!(applied, "pg1 has the images");

    // the watcher elects pg1; failovers only on request
    let nodes = pg_nodes(&[p.db_url.clone(), url2.clone()]);
    let stop = CancellationToken::new();
    let ha = imgcrawl_ha::Config {
        nodes: nodes.clone(),
        check_interval_ms: 200,
        check_timeout_ms: 2000,
        auto_failover: false,
        lag_threshold_secs: 0,
        consistency_interval_secs: 0,
        listen: "127.0.0.1:0".into(),
        request_timeout_ms: 8000,
        ..Default::default()
    };
    let watcher = imgcrawl_ha::start(p.bus.clone(), ha, stop.clone())
        .await
        .expect("start watcher");
    let first = wait_for(Duration::from_secs(20), || async {
        current_primary(&p.bus, POSTGRES)
            .await
            .ok()
            .flatten()
            .filter(|p| p.epoch >= 1)
    })
    .await
    .expect("an initial election");
    assert_eq!((first.primary.as_str(), first.epoch), ("pg1", 1));

    // the API with the node list (pg1's URL with a password, which must never show)
    let cache = tempfile::tempdir().unwrap();
    let mut c = config(&p.db_url, &p.configs.store, cache.path());
    c.nodes = nodes.clone();
    c.nodes[0].url = p.db_url.replace("imgcrawl@", "imgcrawl:hunter2@");
    let api = ApiServer::start(p.bus.clone(), c, cache).await;
    let from_pg1 = listed(&api).await;
    assert_eq!(from_pg1.len(), IMAGES, "reads come from pg1");
    let s = ha_status(&api).await;
    assert_eq!(
        (
            s["mode"].as_str(),
            s["primary"].as_str(),
            s["epoch"].as_i64()
        ),
        (Some("watched"), Some("pg1"), Some(1))
    );
    assert_eq!(s["reads_from"], "pg1");
    assert_eq!(s["pointer"]["primary"], "pg1");
    assert_eq!(s["nodes"].as_array().unwrap().len(), 2);
    let (n1, n2) = (node(&s, "pg1"), node(&s, "pg2"));
    assert_eq!(
        (&n1["role"], &n1["healthy"]),
        (&json!("primary"), &json!(true))
    );
    assert_eq!(
        (&n2["role"], &n2["healthy"]),
        (&json!("standby"), &json!(true))
    );
    assert!(n1["checkpoint"].as_u64().unwrap() > 0, "{n1}");
    assert_eq!(n2["checkpoint"], 0, "pg2 applied nothing yet");
    assert!(n2["lag_events"].as_u64().unwrap() > 0, "pg2 lags: {n2}");
    assert_eq!(n1["epoch"], 1, "the watcher stamped its epoch on pg1");
    let url1 = n1["url"].as_str().unwrap();
    assert!(!url1.contains("hunter2") && url1.contains("***"), "{url1}");
    assert!(!s.to_string().contains("hunter2"));

    // a manual failover asked of the API, carried out by the watcher: pg2 lags, so
    // the watcher refuses it without force and nothing moves
    let lagging = wait_until(Duration::from_secs(10), || async {
        watcher
            .status()
            .nodes
            .iter()
            .any(|n| n.state.name == "pg2" && n.state.lagging)
    })
    .await;
    assert!(lagging, "the watcher sees pg2 lagging");
    let r = failover(&api, Some(json!({"target": "pg2", "reason": "api test"}))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (409, "failover_refused"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("lags") && msg.contains("force"), "{msg}");
    let s = ha_status(&api).await;
    assert_eq!(
        (s["primary"].as_str(), s["epoch"].as_i64()),
        (Some("pg1"), Some(1))
    );

    // forced, without a target (pg2 is the only standby): the primary moves, and this
    // server reads from pg2 as soon as it answers
    let asked = Instant::now();
    let r = failover(&api, Some(json!({"reason": "api test", "force": true}))).await;
    let took = asked.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let done = r.json();
    assert_eq!(
        (
            done["primary"].as_str(),
            done["epoch"].as_u64(),
            done["previous"].as_str()
        ),
        (Some("pg2"), Some(2), Some("pg1"))
    );
    let reason = done["reason"].as_str().unwrap();
    assert!(
        reason.contains("pg1 -> pg2") && reason.contains("api test"),
        "{reason}"
    );
    assert_eq!(done["watcher"], watcher.id());
    eprintln!("POST /api/ha/failover answered 200 in {took:?}");
    assert_eq!(
        ha_status(&api).await["reads_from"],
        "pg2",
        "the api reads from the new primary once it answered"
    );
    let pointer = current_primary(&p.bus, POSTGRES).await.unwrap().unwrap();
    assert_eq!((pointer.primary.as_str(), pointer.epoch), ("pg2", 2));
    assert!(
        listed(&api).await.is_empty(),
        "reads come from pg2, which has no rows yet"
    );
    let r = failover(&api, Some(json!({"target": "pg2"}))).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_primary"));
    let s = ha_status(&api).await;
    assert_eq!(
        (s["primary"].as_str(), s["epoch"].as_i64()),
        (Some("pg2"), Some(2))
    );
    assert_eq!(s["pointer"]["previous"], "pg1");
    assert_eq!(node(&s, "pg1")["role"], "standby");
    assert_eq!(node(&s, "pg2")["role"], "primary");
    let ready = api.get("/readyz", "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["primary"], "pg2");

    // pg2's own writer catches up: the same images, now from the new primary
    let writer_stop = CancellationToken::new();
    let writer_config = imgcrawl_index::Config {
        database_url: url2.clone(),
        ..p.configs.index.clone()
    };
    let writer = tokio::spawn(imgcrawl_index::run_node(
        p.bus.clone(),
        writer_config,
        "pg2",
        writer_stop.clone(),
    ));
    let caught_up = wait_until(Duration::from_secs(60), || async {
        listed(&api).await.len() == IMAGES
    })
    .await;
    assert!(caught_up, "pg2's writer applied the stream");
    assert_eq!(listed(&api).await, from_pg1, "the same ids on both nodes");

    // the old primary goes away: reads do not notice, the status does
    p.kill_stage(Stage::Index).await;
    p.pg.stop().await;
    assert_eq!(listed(&api).await, from_pg1);
    let s = ha_status(&api).await;
    let n1 = node(&s, "pg1");
    assert_eq!(n1["healthy"], false, "{n1}");
    assert!(n1["error"].is_string(), "{n1}");
    assert_eq!(node(&s, "pg2")["healthy"], true);
    assert_eq!(api.get("/readyz", "/readyz").await.status, 200);

    writer_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    stop.cancel();
    watcher.abort();
}

/// An API on a real nats-server with HA nodes that are not there (pools connect
/// lazily), failovers waiting `wait_ms` for a watcher.
async fn api_without_watcher(bus: &Bus, names: &[&str], wait_ms: u64) -> ApiServer {
    let cache = tempfile::tempdir().unwrap();
    let store = imgcrawl_store::Config {
        target: "memory://".into(),
        ..Default::default()
    };
    let nowhere = format!("postgres://nobody@127.0.0.1:{}/none", free_port());
    let mut c = config(&nowhere, &store, cache.path());
    c.nodes = names
        .iter()
        .zip(1..)
        .map(|(name, priority)| Node {
            name: name.to_string(),
            url: nowhere.clone(),
            priority,
        })
        .collect();
    c.failover_wait_ms = wait_ms;
    ApiServer::start(bus.clone(), c, cache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_watcher_a_failover_answers_503_within_the_wait() {
    let nats = NatsServer::start().await;
    let bus = Bus::connect(BusConfig::with_url(nats.url())).await.unwrap();
    let api = api_without_watcher(&bus, &["pg1", "pg2"], 400).await;
    let store = HaStore::open(&bus).await.unwrap();
    let pending = {
        let store = store.clone();
        tokio::spawn(async move {
            wait_for(Duration::from_secs(5), || async {
                let r = store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await;
                r.ok().flatten().map(|(r, _)| r)
            })
            .await
        })
    };
    // no body: the only standby; nobody answers
    let start = Instant::now();
    let r = failover(&api, None).await;
    let took = start.elapsed();
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "no_watcher"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("no HA watcher holding the lease answered") && msg.contains("imgcrawl ha"),
        "{msg}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "answered in {took:?}"
    );
    eprintln!("no watcher: 503 after {took:?}");
    let asked = pending
        .await
        .unwrap()
        .expect("the request was in KV meanwhile");
    assert_eq!((asked.target.as_str(), asked.force), ("pg2", false));
    let left = store.get::<FailoverRequest>(FAILOVER_REQUEST_KEY).await;
    assert!(
        left.unwrap().is_none(),
        "the unanswered request was withdrawn"
    );
    let s = ha_status(&api).await;
    assert_eq!(
        (s["primary"].as_str(), s["epoch"].as_i64()),
        (Some("pg1"), Some(0))
    );

    // the checks before asking still answer at once
    let r = failover(&api, Some(json!({"target": "pg9"}))).await;
    assert_eq!((r.status, r.code().as_str()), (404, "not_found"));
    assert_eq!(r.json()["error"]["field"], "target");
    let r = failover(&api, Some(json!({"target": "pg1"}))).await;
    assert_eq!((r.status, r.code().as_str()), (409, "already_primary"));
    let r = failover(&api, Some(json!({"target": "pg2", "forse": true}))).await;
    assert_eq!((r.status, r.code().as_str()), (422, "invalid_body"));
    // several standbys: name one
    let three = api_without_watcher(&bus, &["pg1", "pg2", "pg3"], 400).await;
    let r = failover(&three, None).await;
    assert_eq!((r.status, r.code().as_str()), (422, "target_required"));
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("pg2, pg3"), "{msg}");
}
