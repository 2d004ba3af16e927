//! Politeness through the whole pipeline, measured where it matters: at the hosts.
//!
//! Two loopback hosts (127.0.0.1 and 127.0.0.2, each its own listener) record every
//! request's arrival and completion. The crawl and download stages run in one process,
//! as `imgcrawl run` does, and must pass one gate per host: the job's delay holds
//! between any two requests to a host (pages, images and robots.txt alike), never more
//! than the job's concurrency is in flight, and robots.txt is fetched once per host.
//! A host that answers 429 is backed off (no new request before its `Retry-After`)
//! and then finished; an image that opts out with `X-Robots-Tag` is rejected with
//! the reason. Two crawl and four download replicas, each with its own gates (as
//! separate processes), still give each host one gate through host leases, and the
//! replica holding a busy host's lease can die: the host is taken over once the lease
//! expires.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use imgcrawl_events::Politeness;
use imgcrawl_sitegen::images::{render, Format, ImageSpec};
use imgcrawl_tests::pipeline::{Pipeline, Stage};
use tokio_util::sync::CancellationToken;

use crate::common;

/// One request as a host saw it.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    start: Instant,
    end: Instant,
    status: u16,
}

/// How the fixture hosts behave.
#[derive(Clone)]
struct Host {
    /// This host's `http://ip:port`.
    base: String,
    /// The other host's base (pages link across).
    other: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Image requests answer 429 (`Retry-After: 1`) until this long after the first.
    throttle_for: Duration,
    first_image: Arc<Mutex<Option<Instant>>>,
}

const PAGES: usize = 4;
const IMAGES_PER_PAGE: usize = 4;
/// How long each response takes (so overlapping requests would show).
const SERVICE: Duration = Duration::from_millis(15);

fn png(seed: u64) -> Vec<u8> {
    render(&ImageSpec::new(Format::Png, 24, 24, seed))
        .expect("png")
        .bytes
        .to_vec()
}

async fn handle(State(h): State<Host>, Path(path): Path<String>) -> Response {
    let start = Instant::now();
    tokio::time::sleep(SERVICE).await;
    let (status, resp) = respond(&h, &path);
    h.hits.lock().unwrap().push(Hit {
        path,
        start,
        end: Instant::now(),
        status,
    });
    resp
}

fn respond(h: &Host, path: &str) -> (u16, Response) {
    let html = |body: String| {
        (
            200,
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        )
    };
    if path == "robots.txt" {
        return (200, "User-agent: *\nAllow: /\n".into_response());
    }
    if path.is_empty() {
        let links: String = (0..PAGES)
            .map(|p| {
                format!(
                    r#"<a href="/p{p}.html">p{p}</a> <a href="{}/p{p}.html">x</a>"#,
                    h.other
                )
            })
            .collect();
        return html(format!("<title>home</title>{links}"));
    }
    if let Some(p) = path.strip_prefix('p').and_then(|p| p.strip_suffix(".html")) {
        let imgs: String = (0..IMAGES_PER_PAGE)
            .map(|i| format!(r#"<img src="/img/{p}-{i}.png">"#))
            .collect();
        return html(format!(
            "<title>{p}</title>{imgs}<img src=\"/img/optout.png\">"
        ));
    }
    if let Some(name) = path.strip_prefix("img/") {
        let now = Instant::now();
        let first = *h.first_image.lock().unwrap().get_or_insert(now);
        if now.duration_since(first) < h.throttle_for {
            let mut r = StatusCode::TOO_MANY_REQUESTS.into_response();
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return (429, r);
        }
        let seed = name
            .bytes()
            .fold(h.base.len() as u64, |a, b| a * 31 + u64::from(b));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
        if name == "optout.png" {
            headers.insert(
                "x-robots-tag",
                HeaderValue::from_static("otherbot: noindex"),
            );
            headers.append("x-robots-tag", HeaderValue::from_static("noarchive, NoAI"));
        }
        return (200, (headers, png(seed)).into_response());
    }
    (404, StatusCode::NOT_FOUND.into_response())
}

/// Two hosts on their own loopback addresses; returns them (the first is the seed's).
async fn hosts(throttle_for: Duration) -> Vec<Host> {
    let mut listeners = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let l = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        listeners.push(l);
    }
    let bases: Vec<String> = listeners
        .iter()
        .map(|l| {
            let a: SocketAddr = l.local_addr().unwrap();
            format!("http://{a}")
        })
        .collect();
    let mut out = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let h = Host {
            base: bases[i].clone(),
            other: bases[1 - i].clone(),
            hits: Arc::default(),
            throttle_for,
            first_image: Arc::default(),
        };
        let app = Router::new()
            .route("/", get(|s: State<Host>| handle(s, Path(String::new()))))
            .route("/{*path}", get(handle))
            .with_state(h.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        out.push(h);
    }
    out
}

/// The smallest gap between two request arrivals, and the most requests in flight.
fn spacing(hits: &[Hit]) -> (Duration, usize) {
    let mut starts: Vec<Instant> = hits.iter().map(|h| h.start).collect();
    starts.sort();
    let gap = starts
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(Duration::MAX);
    let busiest = hits
        .iter()
        .map(|a| {
            hits.iter()
                .filter(|b| b.start <= a.start && a.start < b.end)
                .count()
        })
        .max()
        .unwrap_or(0);
    (gap, busiest)
}

async fn crawl(p: &Pipeline, seed: &str, politeness: Politeness) -> uuid::Uuid {
    let job = p
        .request(seed, |r| {
            r.scope = Some(imgcrawl_events::Scope {
                hosts: vec!["127.0.0.1".into(), "127.0.0.2".into()],
                ..Default::default()
            });
            r.politeness = Some(politeness);
        })
        .await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gate_per_host_for_pages_images_and_robots() {
    let hosts = hosts(Duration::ZERO).await;
    let p = Pipeline::start().await;
    let delay = Duration::from_millis(120);
    let job = crawl(
        &p,
        &format!("{}/", hosts[0].base),
        Politeness {
            delay_ms: delay.as_millis() as u64,
            per_host_concurrency: 1,
            ..Default::default()
        },
    )
    .await;
    let db = p.db().await;
    let stored = common::stored_sources(&db, job).await.len();
    assert_eq!(stored, 2 * PAGES * IMAGES_PER_PAGE, "every image stored");
    for h in &hosts {
        let hits = h.hits.lock().unwrap().clone();
        let robots = hits.iter().filter(|x| x.path == "robots.txt").count();
        assert_eq!(
            robots, 1,
            "{}: one robots.txt fetch for both stages",
            h.base
        );
        assert!(
            hits.len() > PAGES * IMAGES_PER_PAGE,
            "{}: {} requests",
            h.base,
            hits.len()
        );
        let (gap, busiest) = spacing(&hits);
        // the host sees arrivals a little off the gate's schedule (loopback jitter);
        // two gates side by side would put arrivals a few ms apart
        assert!(
            gap >= delay - Duration::from_millis(15),
            "{}: two requests arrived {gap:?} apart (delay {delay:?})",
            h.base
        );
        assert_eq!(busiest, 1, "{}: more than one request in flight", h.base);
    }
    let rejected = common::rejections(&db, job).await;
    let opted: Vec<_> = rejected.iter().filter(|(_, r)| r == "opted_out").collect();
    assert_eq!(opted.len(), 2, "one opted-out image per host: {rejected:?}");
    assert_eq!(rejected.len(), 2, "nothing else rejected: {rejected:?}");
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_answering_429_is_backed_off_then_finished() {
    let hosts = hosts(Duration::from_millis(800)).await;
    let mut p = Pipeline::start_without_stages().await;
    for f in [&mut p.configs.crawl.fetch, &mut p.configs.download.fetch] {
        f.backoff_base_ms = 200;
    }
    // one delivery for other transient failures: the URLs answered 429 are finished
    // only because a throttling host parks them (`park_deliveries`) instead
    p.configs.download.retry_deliveries = 1;
    for s in Stage::ALL {
        p.start_stage(s);
    }
    let job = crawl(
        &p,
        &format!("{}/", hosts[0].base),
        Politeness {
            per_host_concurrency: 4,
            ..Default::default()
        },
    )
    .await;
    let db = p.db().await;
    assert_eq!(
        common::stored_sources(&db, job).await.len(),
        2 * PAGES * IMAGES_PER_PAGE,
        "every image stored once the hosts recover: {:?}",
        common::rejections(&db, job).await
    );
    for h in &hosts {
        let hits = h.hits.lock().unwrap().clone();
        let first_429 = hits
            .iter()
            .filter(|x| x.status == 429)
            .map(|x| x.end)
            .min()
            .expect("the host throttled");
        // after the first 429 reached us, nothing new starts before its Retry-After
        let early: Vec<&Hit> = hits
            .iter()
            .filter(|x| {
                x.start > first_429 + Duration::from_millis(20)
                    && x.start < first_429 + Duration::from_millis(950)
            })
            .collect();
        assert!(
            early.is_empty(),
            "{}: requests inside the back-off: {early:?}",
            h.base
        );
        let throttled = hits.iter().filter(|x| x.status == 429).count();
        assert!(
            throttled <= 8,
            "{}: {throttled} requests were answered 429: the host was not backed off",
            h.base
        );
    }
    p.shutdown().await;
}

/// Starts a crawl or download replica as its own "process": its own host table and
/// leases (named after `agent`), so nothing is shared with the other replicas but the
/// bus. Returns its task.
fn replica(
    p: &Pipeline,
    stage: Stage,
    agent: &str,
    token: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    // its own connection, with short partition leases (a dead replica's partitions
    // are taken over after LEASE_TTL)
    let bus_config = imgcrawl_bus::BusConfig {
        partition_lease_ttl_ms: LEASE_TTL.as_millis() as u64,
        client_name: agent.to_string(),
        ..p.bus.config.clone()
    };
    let token = token.clone();
    let mut configs = p.configs.clone();
    for f in [&mut configs.crawl.fetch, &mut configs.download.fetch] {
        f.hosts = imgcrawl_fetch::Hosts::default();
        f.user_agent = format!("{agent}/0.1");
        f.lease_ttl_ms = LEASE_TTL.as_millis() as u64;
    }
    let agent = agent.to_string();
    tokio::spawn(async move {
        let bus = imgcrawl_bus::Bus::connect(bus_config)
            .await
            .expect("connect");
        if let Err(e) = stage.run(bus, &configs, &[], token).await {
            eprintln!("{agent}: {e}");
        }
    })
}

const LEASE_TTL: Duration = Duration::from_millis(1500);

/// Who holds partition `partition` of `stage` now (a replica's random id), if anyone.
async fn partition_owner(p: &Pipeline, stage: &str, partition: u16) -> Option<String> {
    let kv = p.bus.js.get_key_value("imgcrawl-partitions").await.ok()?;
    let v = kv.get(format!("{stage}.p{partition}")).await.ok()??;
    let r: serde_json::Value = serde_json::from_slice(&v).ok()?;
    let expires = r["expires_ms"].as_u64()?;
    let now = chrono::Utc::now().timestamp_millis() as u64;
    let owner = r["owner"].as_str()?;
    (!owner.is_empty() && expires > now).then(|| owner.to_string())
}

/// Which replica holds `host`'s lease now (its agent name), if any.
async fn holder(p: &Pipeline, host: &str) -> Option<String> {
    let kv = p.bus.js.get_key_value("imgcrawl-hosts").await.ok()?;
    let v = kv.get(format!("host.{host}")).await.ok()??;
    let r: serde_json::Value = serde_json::from_slice(&v).ok()?;
    let h = r["holder"].as_str()?;
    // "<agent>-<pid>-<random>"
    let cut = h.rfind('-').and_then(|i| h[..i].rfind('-'))?;
    Some(h[..cut].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_crawl_and_four_download_replicas_share_each_hosts_limits() {
    let hosts = hosts(Duration::ZERO).await;
    let mut p = Pipeline::start_without_stages().await;
    p.start_stage(Stage::Store);
    p.start_stage(Stage::Index);
    let token = CancellationToken::new();
    let mut replicas = Vec::new();
    for i in 0..2 {
        let name = format!("crawl{i}");
        replicas.push((name.clone(), replica(&p, Stage::Crawl, &name, &token)));
    }
    for i in 0..4 {
        let name = format!("download{i}");
        replicas.push((name.clone(), replica(&p, Stage::Download, &name, &token)));
    }
    let delay = Duration::from_millis(60);
    let job = p
        .request(&format!("{}/", hosts[0].base), |r| {
            r.scope = Some(imgcrawl_events::Scope {
                hosts: vec!["127.0.0.1".into(), "127.0.0.2".into()],
                ..Default::default()
            });
            r.politeness = Some(Politeness {
                delay_ms: delay.as_millis() as u64,
                per_host_concurrency: 2,
                ..Default::default()
            });
        })
        .await;

    // mid-crawl, kill the download replica that owns the seed host's partition (no
    // release: its partition and host leases have to expire)
    let busy = &hosts[0];
    let victim_stage = "download";
    let partition = p.bus.partitioning.of_url(&busy.base);
    let owner_before = imgcrawl_tests::wait_for(Duration::from_secs(60), || async {
        let n = busy.hits.lock().unwrap().len();
        if n < 12 {
            return None;
        }
        partition_owner(&p, victim_stage, partition).await
    })
    .await;
    // owner ids are "<client name>-<random>", the client name the replica's agent
    let victim = owner_before
        .as_deref()
        .and_then(|o| o.rsplit_once('-'))
        .map(|(agent, _)| agent.to_string())
        .expect("a replica owns the busy host's partition");
    eprintln!(
        "the busy host's partition {partition} is owned by {victim}; its lease holder is {:?}",
        holder(&p, "127.0.0.1").await
    );
    let killed_at = Instant::now();
    let at = replicas
        .iter()
        .position(|(n, _)| *n == victim)
        .unwrap_or_else(|| panic!("holder {victim} is not a replica"));
    let (_, task) = replicas.remove(at);
    task.abort();
    let _ = task.await;
    // its partition goes to another replica of its stage once its lease expires
    let moved = imgcrawl_tests::wait_for(Duration::from_secs(30), || async {
        let now = partition_owner(&p, victim_stage, partition).await;
        (now.is_some() && now != owner_before).then(|| killed_at.elapsed())
    })
    .await
    .expect("the dead replica's partition was taken over");
    eprintln!(
        "killed {victim} ({victim_stage}, partition {partition} of the busy host); \
         another replica took the partition after {moved:?}"
    );
    assert!(
        moved <= LEASE_TTL + LEASE_TTL / 3 + Duration::from_secs(2),
        "partition takeover took {moved:?} (lease ttl {LEASE_TTL:?})"
    );

    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let db = p.db().await;
    assert_eq!(
        common::stored_sources(&db, job).await.len(),
        2 * PAGES * IMAGES_PER_PAGE,
        "every image stored once: {:?}",
        common::rejections(&db, job).await
    );
    for h in &hosts {
        let hits = h.hits.lock().unwrap().clone();
        let (gap, busiest) = spacing(&hits);
        assert!(
            gap >= delay - Duration::from_millis(15),
            "{}: two requests arrived {gap:?} apart across replicas (delay {delay:?})",
            h.base
        );
        assert!(
            busiest <= 2,
            "{}: {busiest} requests in flight at once",
            h.base
        );
        let robots = hits.iter().filter(|x| x.path == "robots.txt").count();
        assert_eq!(
            robots, 1,
            "{}: robots.txt fetched once for six replicas",
            h.base
        );
    }
    // the busy host's silence after the kill: the takeover time
    let mut after: Vec<Instant> = busy
        .hits
        .lock()
        .unwrap()
        .iter()
        .map(|x| x.start)
        .filter(|s| *s > killed_at)
        .collect();
    after.sort();
    let resumed = after.first().map(|s| *s - killed_at);
    eprintln!(
        "killed {victim}, the owner of the busy host's partition; the host was fetched from again after {resumed:?}"
    );
    let resumed = resumed.expect("the busy host was fetched from again");
    assert!(
        resumed <= LEASE_TTL + Duration::from_secs(2),
        "the busy host waited {resumed:?} for a new holder (lease ttl {LEASE_TTL:?})"
    );
    token.cancel();
    for (_, t) in replicas {
        let _ = t.await;
    }
    p.shutdown().await;
}
