//! Observability end to end, with real processes and a real Prometheus: the demo
//! site is crawled by three `imgcrawl run` processes (crawl and download, store,
//! index), each serving `/metrics`, `/healthz` and `/readyz`, logging JSON and
//! exporting its delivery spans to an OTLP/HTTP receiver run by the test. Debian's
//! `prometheus` scrapes them every second (with the project's alert rules loaded).
//!
//! Checked: every process becomes ready; through Prometheus's HTTP API, the
//! stored-images counter summed over the processes equals the images the index made
//! queryable and the stored image sources in PostgreSQL, and the index lag returns to
//! 0; every `image.stored` event's `traceparent` names the store delivery span that
//! published it, whose parent is the span in the handled `image.downloaded`'s
//! `traceparent`, all in the job's trace; JSON log lines of a delivery carry its
//! trace and job ids. And the API counts its requests by route template and status.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use imgcrawl_telemetry::TraceContext;
use imgcrawl_tests::chaos::imgcrawl_bin;
use imgcrawl_tests::pipeline::serve;
use imgcrawl_tests::process::Proc;
use imgcrawl_tests::{free_port, sitegen, wait_until, Pipeline};
use serde_json::Value;

type Spans = Arc<Mutex<Vec<Value>>>;

/// A minimal OTLP/HTTP (JSON) trace receiver: keeps every span it is sent.
async fn otlp_receiver() -> (SocketAddr, Spans) {
    async fn traces(State(spans): State<Spans>, body: Bytes) -> StatusCode {
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            return StatusCode::BAD_REQUEST;
        };
        let mut got = spans.lock().unwrap();
        for rs in v["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                got.extend(ss["spans"].as_array().into_iter().flatten().cloned());
            }
        }
        StatusCode::OK
    }
    let spans = Spans::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, spans)
}

/// One `imgcrawl run` process with its metrics port.
struct Worker {
    proc: Proc,
    port: u16,
    log: std::path::PathBuf,
}

fn spawn_worker(dir: &Path, name: &str, stages: &[&str], p: &Pipeline, otlp: SocketAddr) -> Worker {
    let bin = imgcrawl_bin();
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p imgcrawl",
        bin.display()
    );
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("run");
    for s in stages {
        cmd.args(["--stage", s]);
    }
    cmd.args(["--metrics-listen", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json"])
        .args(["--otlp-endpoint", &format!("http://{otlp}")])
        .env("NATS_URL", p.nats.url())
        .env("DATABASE_URL", &p.db_url)
        .env("IMGCRAWL_BUCKET", p.bucket.path())
        .env("IMGCRAWL_ALLOW_LOOPBACK", "true")
        .env("IMGCRAWL_HOME", dir.join("home"))
        .env("RUST_LOG", "info,async_nats=warn,sqlx=warn");
    let log = dir.join(format!("{name}.log"));
    let proc = Proc::spawn(&mut cmd, &log).expect("spawn imgcrawl run");
    Worker { proc, port, log }
}

async fn get_status(url: &str) -> Option<u16> {
    let r = reqwest::get(url).await.ok()?;
    Some(r.status().as_u16())
}

/// A Prometheus instant query's first value.
async fn query(prom: &str, q: &str) -> Option<f64> {
    let url =
        reqwest::Url::parse_with_params(&format!("{prom}/api/v1/query"), &[("query", q)]).ok()?;
    let body = reqwest::get(url).await.ok()?.bytes().await.ok()?;
    let v: Value = serde_json::from_slice(&body).ok()?;
    v["data"]["result"].as_array()?.first()?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

fn start_prometheus(dir: &Path, workers: &[&Worker]) -> (Proc, String) {
    let port = free_port();
    let targets: Vec<String> = workers
        .iter()
        .map(|w| format!("\"127.0.0.1:{}\"", w.port))
        .collect();
    let rules = imgcrawl_tests::workspace_root()
        .join("infra/observability/prometheus/rules/imgcrawl.rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: imgcrawl-workers\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets.join(", ")
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn");
    let proc = Proc::spawn(&mut cmd, &dir.join("prometheus.log"))
        .expect("spawn prometheus (installed by infra/scripts/bootstrap.sh)");
    (proc, format!("http://127.0.0.1:{port}"))
}

fn span_id_of(e: &imgcrawl_tests::pipeline::RawEvent) -> TraceContext {
    let h = e.header("traceparent").expect("traceparent");
    TraceContext::parse(h).unwrap_or_else(|| panic!("malformed traceparent {h}"))
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sees_the_crawl_and_the_trace_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start_without_stages().await;
    let site = serve(sitegen::demo()).await;
    let (otlp, spans) = otlp_receiver().await;
    let mut workers = [
        spawn_worker(dir.path(), "fetch", &["crawl", "download"], &p, otlp),
        spawn_worker(dir.path(), "store", &["store"], &p, otlp),
        spawn_worker(dir.path(), "index", &["index"], &p, otlp),
    ];
    for w in &mut workers {
        let url = format!("http://127.0.0.1:{}/readyz", w.port);
        let ready = wait_until(Duration::from_secs(60), || {
            let url = url.clone();
            async move { get_status(&url).await == Some(200) }
        })
        .await;
        assert!(
            ready,
            "worker on {} not ready (exited: {:?}):\n{}",
            w.port,
            w.proc.exited(),
            imgcrawl_tests::process::log_tail(&w.log, 4000)
        );
        let health = format!("http://127.0.0.1:{}/healthz", w.port);
        assert_eq!(get_status(&health).await, Some(200));
    }
    let (mut prom_proc, prom) = start_prometheus(dir.path(), &workers.iter().collect::<Vec<_>>());
    let up = wait_until(Duration::from_secs(60), || {
        let prom = prom.clone();
        async move { query(&prom, "count(up{job=\"imgcrawl-workers\"} == 1)").await == Some(3.0) }
    })
    .await;
    assert!(
        up,
        "prometheus scrapes all three (exited: {:?}):\n{}",
        prom_proc.exited(),
        imgcrawl_tests::process::log_tail(&dir.path().join("prometheus.log"), 4000)
    );

    let job = p.request(&site.seed_url(), |_| {}).await;
    assert_eq!(p.wait_job(job, Duration::from_secs(120)).await, "completed");
    let db = p.db().await;
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from image_sources where job_id = $1 and status = 'stored'",
    )
    .bind(job)
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(stored > 0, "the demo stores images");

    // Prometheus: stored images summed over processes = images indexed = the database
    let want = stored as f64;
    let counted = wait_until(Duration::from_secs(30), || {
        let prom = prom.clone();
        async move {
            query(&prom, "sum(imgcrawl_images_stored_total)").await == Some(want)
                && query(&prom, "sum(imgcrawl_images_indexed_total)").await == Some(want)
        }
    })
    .await;
    assert!(
        counted,
        "stored {:?} and indexed {:?} in prometheus, {stored} stored in the database",
        query(&prom, "sum(imgcrawl_images_stored_total)").await,
        query(&prom, "sum(imgcrawl_images_indexed_total)").await
    );
    let everywhere = wait_until(Duration::from_secs(30), || {
        let prom = prom.clone();
        let q = "count(max_over_time(imgcrawl_images_stored_total[1m]))";
        async move { query(&prom, q).await == Some(3.0) }
    })
    .await;
    assert!(everywhere, "every process exports the counter");
    let caught_up = wait_until(Duration::from_secs(30), || {
        let prom = prom.clone();
        async move {
            query(&prom, "max(imgcrawl_index_lag_events)").await == Some(0.0)
                && query(&prom, "max(imgcrawl_index_lag_seconds)").await == Some(0.0)
                && query(&prom, "max(imgcrawl_index_checkpoint_sequence)")
                    .await
                    .is_some_and(|c| c > 0.0)
        }
    })
    .await;
    assert!(caught_up, "index lag returns to 0 at completion");
    for stage in ["crawl", "download", "store"] {
        // over the last minute: a scrape that timed out on a busy machine leaves a gap
        let q = format!(
            "sum(max_over_time(imgcrawl_deliveries_total{{stage=\"{stage}\",outcome=\"done\"}}[1m]))"
        );
        let counted = wait_until(Duration::from_secs(30), || {
            let (prom, q) = (prom.clone(), q.clone());
            async move { query(&prom, &q).await.is_some_and(|n| n > 0.0) }
        })
        .await;
        assert!(counted, "{stage} deliveries counted");
    }

    // traces: image.downloaded (its span) -> store delivery (child) -> image.stored
    let events = p.events().await;
    let job_trace = job.simple().to_string();
    let stored_events: Vec<_> = events
        .iter()
        .filter(|e| e.subject == "imgcrawl.image.stored")
        .collect();
    assert_eq!(stored_events.len() as i64, stored);
    let wanted: Vec<String> = stored_events
        .iter()
        .map(|e| span_id_of(e).span_hex())
        .collect();
    let exported = wait_until(Duration::from_secs(30), || {
        let got = spans.lock().unwrap();
        let all = wanted
            .iter()
            .all(|w| got.iter().any(|s| s["spanId"].as_str() == Some(w)));
        async move { all }
    })
    .await;
    assert!(exported, "every store delivery span reached the receiver");
    let got = spans.lock().unwrap().clone();
    for e in &stored_events {
        let ctx = span_id_of(e);
        assert_eq!(ctx.trace_hex(), job_trace, "one trace per job");
        let span = got
            .iter()
            .find(|s| s["spanId"].as_str() == Some(ctx.span_hex().as_str()))
            .unwrap();
        assert_eq!(span["traceId"], job_trace.as_str());
        assert_eq!(
            attribute(span, "consumer"),
            Some(&serde_json::json!({"stringValue": "store"}))
        );
        let seq: u64 = attribute(span, "seq").unwrap()["intValue"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let handled = events.iter().find(|d| d.seq == seq).unwrap();
        assert_eq!(handled.subject, "imgcrawl.image.downloaded");
        assert_eq!(
            span["parentSpanId"].as_str(),
            Some(span_id_of(handled).span_hex().as_str()),
            "the store delivery is a child of the download that published its event"
        );
    }

    // JSON logs: a delivery's lines carry its trace and job ids
    let log = std::fs::read_to_string(&workers[0].log).unwrap();
    let fetched: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "page fetched")
        .collect();
    assert!(!fetched.is_empty(), "page fetched lines in:\n{log}");
    for l in &fetched {
        assert_eq!(l["trace_id"], job_trace.as_str(), "{l}");
        assert_eq!(l["job_id"], job.to_string().as_str(), "{l}");
        assert_eq!(l["level"], "info");
        assert!(l["span_id"].as_str().is_some_and(|s| s.len() == 16), "{l}");
    }

    let ready_body = reqwest::get(format!("http://127.0.0.1:{}/readyz", workers[2].port))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let ready_body: Value = serde_json::from_slice(&ready_body).unwrap();
    assert_eq!(ready_body["status"], "ready");
    assert_eq!(ready_body["checks"]["nats"]["ok"], true);
    assert_eq!(ready_body["checks"]["projection/postgres"]["ok"], true);
    assert_eq!(ready_body["checks"]["postgres/postgres"]["ok"], true);
    for w in &mut workers {
        w.proc
            .terminate(libc::SIGTERM, Duration::from_secs(10))
            .await;
    }
    prom_proc.kill();
}

/// A rendered sample's value (the API runs in this test's process).
fn sample(name_and_labels: &str) -> Option<f64> {
    imgcrawl_telemetry::metrics::encode()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_counted_by_route_template_and_status() {
    let p = Pipeline::start_without_stages().await;
    let api = crate::api_common::ApiServer::for_pipeline(&p, |_| {}).await;
    // no index has run: the answer is an error; which one does not matter here
    let mut statuses = std::collections::BTreeSet::new();
    for id in [1, 2, 3] {
        let path = format!("/api/images/{id}");
        statuses.insert(
            api.call("GET", "", &path, crate::api_common::Auth::None, None, &[])
                .await
                .status,
        );
    }
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    let status = statuses.first().copied().unwrap();
    assert_eq!(api.get("/healthz", "/healthz").await.status, 200);
    let r = api.get("", "/no/such/path").await;
    assert_eq!(r.status, 404);
    let route = format!(
        r#"imgcrawl_api_requests_total{{method="GET",route="/api/images/{{id}}",status="{status}"}}"#
    );
    assert_eq!(
        sample(&route),
        Some(3.0),
        "{route} in\n{}",
        imgcrawl_telemetry::metrics::encode()
    );
    let health = r#"imgcrawl_api_requests_total{method="GET",route="/healthz",status="200"}"#;
    assert_eq!(sample(health), Some(1.0));
    let unmatched = r#"imgcrawl_api_requests_total{method="GET",route="unmatched",status="404"}"#;
    assert_eq!(sample(unmatched), Some(1.0));
    let latency =
        r#"imgcrawl_api_request_duration_seconds_count{method="GET",route="/api/images/{id}"}"#;
    assert_eq!(sample(latency), Some(3.0));
    let text = imgcrawl_telemetry::metrics::encode();
    assert!(
        !text.contains("/api/images/1"),
        "no concrete path is a label"
    );
}
