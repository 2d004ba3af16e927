//! The whole pipeline for one test: a real nats-server, a real PostgreSQL database, a
//! bucket in a temp dir, and the four stages running in this process, each of which
//! can be killed (its task aborted: no drain, no acks) and started again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use imgcrawl_bus::{Bus, BusConfig};
use imgcrawl_events::{CrawlRequested, Event};
pub use imgcrawl_pipeline::{Stage, StagesConfig};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{wait_for, NatsServer, Postgres};

/// Every stage's config (the registry's [`StagesConfig`]), tuned for tests by
/// [`Pipeline::start_without_stages`]: loopback allowed, short ack waits so a killed
/// stage's messages come back quickly.
pub type Configs = StagesConfig;

/// One raw message of the stream.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// Headers (name, value).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub payload: bytes::Bytes,
}

impl RawEvent {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running pipeline.
pub struct Pipeline {
    /// The nats-server.
    pub nats: NatsServer,
    /// The PostgreSQL server.
    pub pg: Postgres,
    /// The index database URL.
    pub db_url: String,
    /// The bucket directory.
    pub bucket: tempfile::TempDir,
    /// A bus connection for the test's own use.
    pub bus: Bus,
    /// The stage configs.
    pub configs: Configs,
    shutdown: CancellationToken,
    tasks: HashMap<Stage, (CancellationToken, JoinHandle<Result<(), String>>)>,
}

impl Pipeline {
    /// Starts nats, PostgreSQL and every stage, and waits until the index has created
    /// its schema (so a reader's first query does not race the migrations).
    pub async fn start() -> Pipeline {
        let mut p = Pipeline::start_without_stages().await;
        for s in Stage::ALL {
            p.start_stage(s);
        }
        let db = p.db().await;
        let ready = wait_for(Duration::from_secs(60), || {
            let db = db.clone();
            async move {
                sqlx::query("select last_seq from projection_checkpoint limit 1")
                    .fetch_optional(&db)
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        assert!(
            ready.is_some(),
            "the index did not create its schema within 60 s"
        );
        p
    }

    /// Starts nats and PostgreSQL only.
    pub async fn start_without_stages() -> Pipeline {
        let nats = NatsServer::start().await;
        let pg = Postgres::start().await;
        let db_url = pg.fresh_db().await;
        let bucket = tempfile::tempdir().expect("bucket dir");
        let bus = Bus::connect(BusConfig::with_url(nats.url()))
            .await
            .expect("connect bus");
        let mut crawl = imgcrawl_crawl::Config::default();
        crawl.fetch.allow_loopback = true;
        crawl.ack_wait_secs = 3;
        crawl.http_retry_delay_ms = 100;
        let mut download = imgcrawl_download::Config::default();
        download.fetch.allow_loopback = true;
        download.ack_wait_secs = 3;
        let store = imgcrawl_store::Config {
            target: format!("file://{}", bucket.path().display()),
            ack_wait_secs: 3,
            ..Default::default()
        };
        let index = imgcrawl_index::Config {
            database_url: db_url.clone(),
            ..Default::default()
        };
        Pipeline {
            nats,
            pg,
            db_url,
            bucket,
            bus,
            configs: Configs {
                crawl,
                download,
                store,
                index,
                ..Default::default()
            },
            shutdown: CancellationToken::new(),
            tasks: HashMap::new(),
        }
    }

    /// Starts one stage (with the current configs).
    pub fn start_stage(&mut self, stage: Stage) {
        let token = self.shutdown.child_token();
        let (bus, t, c) = (self.bus.clone(), token.clone(), self.configs.clone());
        let handle = tokio::spawn(async move {
            let r = stage.run(bus, &c, &[], t).await.map_err(|e| e.detail);
            if let Err(e) = &r {
                eprintln!("stage {stage} failed: {e}");
            }
            r
        });
        self.tasks.insert(stage, (token, handle));
    }

    /// Kills a stage like `kill -9` would: its task is aborted mid-flight.
    pub async fn kill_stage(&mut self, stage: Stage) {
        if let Some((_, h)) = self.tasks.remove(&stage) {
            h.abort();
            let _ = h.await;
        }
    }

    /// Stops a stage gracefully (drain) and returns its result.
    pub async fn stop_stage(&mut self, stage: Stage) -> Result<(), String> {
        match self.tasks.remove(&stage) {
            Some((t, h)) => {
                t.cancel();
                h.await.map_err(|e| e.to_string())?
            }
            None => Ok(()),
        }
    }

    /// A pool on the index database.
    pub async fn db(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.db_url)
            .await
            .expect("connect index db")
    }

    /// Publishes a crawl request for `url` with a fresh job id and the given tweaks.
    pub async fn request(&self, url: &str, tweak: impl FnOnce(&mut CrawlRequested)) -> Uuid {
        let job = Uuid::now_v7();
        let mut req = CrawlRequested {
            job_id: Some(job),
            url: Some(url.to_string()),
            occurred_at: Some(Utc::now()),
            ..Default::default()
        };
        tweak(&mut req);
        self.bus
            .publisher()
            .publish(&Event::CrawlRequested(req))
            .await
            .expect("publish request");
        job
    }

    /// Waits until the index reports the job completed or stopped; returns the status.
    pub async fn wait_job(&self, job: Uuid, timeout: Duration) -> String {
        let db = self.db().await;
        let status = wait_for(timeout, || {
            let db = db.clone();
            async move {
                let s: Option<String> =
                    sqlx::query_scalar("select status from jobs where job_id = $1")
                        .bind(job)
                        .fetch_optional(&db)
                        .await
                        .ok()
                        .flatten();
                s.filter(|s| s == "completed" || s == "stopped")
            }
        })
        .await;
        status.unwrap_or_else(|| panic!("job {job} did not finish within {timeout:?}"))
    }

    /// The event stream.
    async fn stream(&self) -> jetstream::stream::Stream {
        self.bus
            .js
            .get_stream(&self.bus.config.stream)
            .await
            .expect("stream")
    }

    /// Waits until every stage's durable consumers (shared and per partition) have
    /// nothing pending and nothing unacknowledged (the stages have handled all there
    /// is), up to `timeout`; returns whether they did.
    pub async fn wait_drained(&self, timeout: Duration) -> bool {
        let stream = self.stream().await;
        crate::wait_until(timeout, || {
            let stream = stream.clone();
            async move {
                let Ok(names) = stream.consumer_names().try_collect::<Vec<String>>().await else {
                    return false;
                };
                let stages: Vec<&str> = Stage::ALL.into_iter().filter_map(Stage::consumer).collect();
                if !stages.iter().all(|s| names.iter().any(|n| n == s)) {
                    return false;
                }
                for name in names.iter().filter(|n| {
                    stages
                        .iter()
                        .any(|s| imgcrawl_bus::partitions::belongs_to(n, s))
                }) {
                    let Ok(info) = stream.consumer_info(name).await else {
                        return false;
                    };
                    if info.num_pending > 0 || info.num_ack_pending > 0 {
                        eprintln!(
                            "wait_drained: consumer {name}: {} pending, {} ack pending, {} redelivered",
                            info.num_pending, info.num_ack_pending, info.num_redelivered
                        );
                        return false;
                    }
                }
                true
            }
        })
        .await
    }

    /// Every message in the event stream, in order.
    pub async fn events(&self) -> Vec<RawEvent> {
        let stream = self.stream().await;
        let last = stream.get_info().await.expect("info").state.last_sequence;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
            .await
            .expect("ordered consumer");
        let mut msgs = consumer.messages().await.expect("messages");
        let mut out = Vec::new();
        while out.last().map(|e: &RawEvent| e.seq).unwrap_or(0) < last {
            let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
                .await
                .expect("stream read timed out")
                .expect("stream ended")
                .expect("message");
            let info = m.info().expect("info");
            let headers = m
                .headers
                .as_ref()
                .map(|h| {
                    h.iter()
                        .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            out.push(RawEvent {
                seq: info.stream_sequence,
                subject: m.subject.to_string(),
                headers,
                payload: m.payload.clone(),
            });
        }
        out
    }

    /// Shuts every stage down gracefully.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        for (_, (_, h)) in self.tasks.drain() {
            let _ = tokio::time::timeout(Duration::from_secs(15), h).await;
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for (_, (_, h)) in self.tasks.drain() {
            h.abort();
        }
    }
}

/// Serves a site on a free loopback port.
pub async fn serve(site: imgcrawl_sitegen::Site) -> imgcrawl_sitegen::SiteServer {
    imgcrawl_sitegen::serve(Arc::new(site), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve site")
}
