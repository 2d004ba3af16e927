//! The pipeline's JetStream topology, declared in code and created idempotently.
//!
//! | thing | name | shape |
//! |---|---|---|
//! | event stream | `IMGCRAWL` on `imgcrawl.>` | limits retention (replayable), file storage |
//! | blob store | `imgcrawl-blobs` | object store, object name = hex SHA-256, 128 KiB chunks |
//! | seen-set | `imgcrawl-seen` | KV, history 1, "first create wins" |
//! | jobs | `imgcrawl-jobs` | KV, resolved job specs and run state |
//!
//! Durable consumers are created (or updated) from a [`ConsumerSpec`] and their config
//! is read back: if the server dropped `filter_subjects` (nats-server 2.9 does) we fail
//! loudly instead of silently consuming the wrong subjects.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use imgcrawl_events::SUBJECT_PREFIX;

use crate::{BusConfig, BusError};

/// Handles to the buckets [`ensure`] created or found.
pub struct Topology {
    /// The blob store.
    pub blobs: object_store::ObjectStore,
    /// The seen-set bucket.
    pub seen: kv::Store,
    /// The jobs bucket.
    pub jobs: kv::Store,
}

fn topo<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> BusError + '_ {
    move |e| BusError::Topology(format!("{what}: {e}"))
}

/// The event stream's configuration.
pub fn stream_config(cfg: &BusConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        description: Some("imgcrawl events: the source of truth".into()),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: cfg.replicas,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates or updates the stream and the buckets; safe to call from every process.
pub async fn ensure(js: &jetstream::Context, cfg: &BusConfig) -> Result<Topology, BusError> {
    js.create_or_update_stream(stream_config(cfg))
        .await
        .map_err(topo("create stream"))?;
    let blobs = match js.get_object_store(&cfg.blob_bucket).await {
        Ok(b) => b,
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: cfg.blob_bucket.clone(),
                description: Some("image bytes by sha256".into()),
                storage: stream::StorageType::File,
                num_replicas: cfg.replicas,
                ..Default::default()
            })
            .await
            .map_err(topo("create blob store"))?,
    };
    let seen = js
        .create_or_update_key_value(kv::Config {
            bucket: cfg.seen_bucket.clone(),
            description: "urls seen per job: first create wins".into(),
            history: 1,
            max_age: Duration::from_secs(cfg.seen_max_age_secs),
            storage: stream::StorageType::File,
            num_replicas: cfg.replicas,
            ..Default::default()
        })
        .await
        .map_err(topo("create seen-set"))?;
    let jobs = js
        .create_or_update_key_value(kv::Config {
            bucket: cfg.jobs_bucket.clone(),
            description: "resolved job specs and run state".into(),
            history: 5,
            storage: stream::StorageType::File,
            num_replicas: cfg.replicas,
            ..Default::default()
        })
        .await
        .map_err(topo("create jobs bucket"))?;
    Ok(Topology { blobs, seen, jobs })
}

/// A durable pull consumer on the event stream.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, e.g. `download`.
    pub durable: String,
    /// Subjects it consumes.
    pub filter_subjects: Vec<String>,
    /// How long the server waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// Deliveries before the worker gives up and dead-letters.
    pub max_deliver: i64,
    /// Unacked messages the server allows in flight.
    pub max_ack_pending: i64,
    /// `All` for ordered batch consumers (acking the last acks the batch).
    pub ack_all: bool,
}

impl ConsumerSpec {
    /// A spec with the usual defaults for a stage consuming `subjects`.
    pub fn new(durable: impl Into<String>, subjects: impl IntoIterator<Item = String>) -> Self {
        ConsumerSpec {
            durable: durable.into(),
            filter_subjects: subjects.into_iter().collect(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 8,
            max_ack_pending: 4096,
            ack_all: false,
        }
    }
}

/// Creates or updates a durable consumer and verifies the server kept its settings.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    stream_name: &str,
    spec: &ConsumerSpec,
) -> Result<consumer::PullConsumer, BusError> {
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(topo("get stream"))?;
    let mut filters = spec.filter_subjects.clone();
    let (filter_subject, filter_subjects) = if filters.len() == 1 {
        (filters.remove(0), Vec::new())
    } else {
        (String::new(), filters)
    };
    let config = consumer::pull::Config {
        durable_name: Some(spec.durable.clone()),
        description: Some(format!("imgcrawl stage {}", spec.durable)),
        deliver_policy: consumer::DeliverPolicy::All,
        ack_policy: if spec.ack_all {
            consumer::AckPolicy::All
        } else {
            consumer::AckPolicy::Explicit
        },
        ack_wait: spec.ack_wait,
        max_deliver: spec.max_deliver,
        max_ack_pending: spec.max_ack_pending,
        filter_subject,
        filter_subjects,
        ..Default::default()
    };
    let mut c: consumer::PullConsumer = stream
        .create_consumer(config)
        .await
        .map_err(topo("create consumer"))?;
    let info = c.info().await.map_err(topo("consumer info"))?;
    let mut got: Vec<String> = info.config.filter_subjects.clone();
    if !info.config.filter_subject.is_empty() {
        got.push(info.config.filter_subject.clone());
    }
    got.sort();
    let mut wanted = spec.filter_subjects.clone();
    wanted.sort();
    if got != wanted {
        return Err(BusError::ConsumerMismatch {
            consumer: spec.durable.clone(),
            field: "filter_subjects",
            wanted: wanted.join(","),
            got: got.join(","),
        });
    }
    if info.config.max_deliver != spec.max_deliver || info.config.ack_wait != spec.ack_wait {
        return Err(BusError::ConsumerMismatch {
            consumer: spec.durable.clone(),
            field: "max_deliver/ack_wait",
            wanted: format!("{}/{:?}", spec.max_deliver, spec.ack_wait),
            got: format!("{}/{:?}", info.config.max_deliver, info.config.ack_wait),
        });
    }
    Ok(c)
}
