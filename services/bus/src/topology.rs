//! The pipeline's JetStream topology, declared in code and created idempotently.
//!
//! | thing | name | shape |
//! |---|---|---|
//! | event stream | `IMGCRAWL` on `imgcrawl.>` | limits retention (replayable), file storage |
//! | blob store | `imgcrawl-blobs` | object store, object name = hex SHA-256, 128 KiB chunks |
//! | seen-set | `imgcrawl-seen` | KV, history 1, "first create wins" |
//! | jobs | `imgcrawl-jobs` | KV, resolved job specs and run state |
//! | partition leases | `imgcrawl-partitions` | KV: which replica works which partition ([`crate::ownership`]) |
//!
//! The stream's metadata records its id ([`crate::identity`]) and its partitioning
//! ([`crate::partitions`]), both written once when it is created.
//!
//! Durable consumers are created (or updated) from a [`ConsumerSpec`] and their config
//! is read back: if the server dropped `filter_subjects` (nats-server 2.9 does) we fail
//! loudly instead of silently consuming the wrong subjects.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use imgcrawl_events::SUBJECT_PREFIX;

use crate::partitions::Partitioning;
use crate::{identity, BusConfig, BusError};

/// Handles to the buckets [`ensure`] created or found.
pub struct Topology {
    /// The blob store.
    pub blobs: object_store::ObjectStore,
    /// The seen-set bucket.
    pub seen: kv::Store,
    /// The jobs bucket.
    pub jobs: kv::Store,
    /// How the stream splits work into partitions (from its metadata).
    pub partitioning: Partitioning,
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
        storage: cfg.storage.to_nats(),
        num_replicas: cfg.replicas,
        duplicate_window: Duration::from_secs(cfg.duplicate_window_secs),
        max_age: Duration::from_secs(cfg.max_age_secs),
        max_bytes: limit(cfg.max_bytes),
        allow_direct: true,
        ..Default::default()
    }
}

/// A byte limit for JetStream: 0 (unlimited) is -1 there.
pub fn limit(bytes: u64) -> i64 {
    match bytes {
        0 => -1,
        b => i64::try_from(b).unwrap_or(i64::MAX),
    }
}

/// The blob store's configuration.
pub fn blob_config(cfg: &BusConfig) -> object_store::Config {
    object_store::Config {
        bucket: cfg.blob_bucket.clone(),
        description: Some("image bytes by sha256".into()),
        storage: cfg.storage.to_nats(),
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// The seen-set bucket's configuration (storage and replicas are set by [`ensure_kv`]).
pub fn seen_config(cfg: &BusConfig) -> kv::Config {
    kv::Config {
        bucket: cfg.seen_bucket.clone(),
        description: "urls seen per job: first create wins".into(),
        history: 1,
        max_age: Duration::from_secs(cfg.seen_max_age_secs),
        ..Default::default()
    }
}

/// The jobs bucket's configuration (storage and replicas are set by [`ensure_kv`]).
pub fn jobs_config(cfg: &BusConfig) -> kv::Config {
    kv::Config {
        bucket: cfg.jobs_bucket.clone(),
        description: "resolved job specs and run state".into(),
        history: 5,
        ..Default::default()
    }
}

/// Creates what is missing (the stream, the buckets) and leaves what exists alone;
/// safe to call from every process.
///
/// A starting process never changes existing topology: an operator's R3 stream stays
/// R3 whatever this process's [`BusConfig`] says, and a weaker existing setting is
/// only logged as a warning. The one write to an existing stream is adopting an id for
/// a stream made by an earlier release ([`crate::identity`]).
pub async fn ensure(js: &jetstream::Context, cfg: &BusConfig) -> Result<Topology, BusError> {
    let info = ensure_stream(js, cfg).await?;
    let partitioning = Partitioning::from_metadata(&info.config.metadata, configured(cfg));
    ensure_advisory_stream(js, cfg).await?;
    let blobs = match js.get_object_store(&cfg.blob_bucket).await {
        Ok(b) => b,
        Err(_) => match js.create_object_store(blob_config(cfg)).await {
            Ok(b) => b,
            // another process created it meanwhile
            Err(e) => js
                .get_object_store(&cfg.blob_bucket)
                .await
                .map_err(|_| topo("create blob store")(e))?,
        },
    };
    let seen = ensure_kv(js, cfg, seen_config(cfg)).await?;
    let jobs = ensure_kv(js, cfg, jobs_config(cfg)).await?;
    Ok(Topology {
        blobs,
        seen,
        jobs,
        partitioning,
    })
}

/// The partitioning `cfg` asks for (what a stream this process creates records).
pub fn configured(cfg: &BusConfig) -> Partitioning {
    Partitioning::new(cfg.partitions, cfg.partition_by)
}

/// Makes sure the event stream exists and has an id; returns its info.
pub async fn ensure_stream(
    js: &jetstream::Context,
    cfg: &BusConfig,
) -> Result<stream::Info, BusError> {
    let info = match stream_info(js, &cfg.stream).await? {
        Some(info) => info,
        None => {
            let mut config = stream_config(cfg);
            config.metadata = identity::new_metadata();
            config.metadata.extend(configured(cfg).metadata());
            match js.create_stream(config).await {
                Ok(mut s) => s.info().await.map_err(topo("stream info"))?.clone(),
                // another process created it meanwhile (with its own id)
                Err(e) => stream_info(js, &cfg.stream)
                    .await?
                    .ok_or_else(|| topo("create stream")(e))?,
            }
        }
    };
    warn_if_weaker(
        "stream",
        &cfg.stream,
        info.config.num_replicas,
        cfg.replicas,
    );
    let Some(metadata) = identity::adoption(&info) else {
        return Ok(info);
    };
    let mut config = info.config.clone();
    config.metadata = metadata;
    let updated = js
        .update_stream(config)
        .await
        .map_err(topo("record the stream id"))?;
    tracing::info!(
        stream = %cfg.stream,
        id = updated.config.metadata.get(identity::STREAM_ID_KEY).map(String::as_str).unwrap_or(""),
        "adopted a stream id for a stream made by an earlier release"
    );
    Ok(updated)
}

/// Makes sure the stream capturing `MAX_DELIVERIES` advisories exists (see
/// [`crate::dlq::run_advisories`]); an existing one is left alone.
async fn ensure_advisory_stream(js: &jetstream::Context, cfg: &BusConfig) -> Result<(), BusError> {
    let name = crate::dlq::advisory_stream(&cfg.stream);
    if stream_info(js, &name).await?.is_some() {
        return Ok(());
    }
    let config = stream::Config {
        name: name.clone(),
        description: Some(
            "max-deliveries advisories of the event stream: dead-lettered later".into(),
        ),
        subjects: vec![crate::dlq::advisory_subject(&cfg.stream, "*")],
        retention: stream::RetentionPolicy::Limits,
        storage: cfg.storage.to_nats(),
        num_replicas: cfg.replicas,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    };
    if let Err(e) = js.create_stream(config).await {
        // another process created it meanwhile
        if stream_info(js, &name).await?.is_none() {
            return Err(topo("create advisory stream")(e));
        }
    }
    Ok(())
}

/// The stream's info, or none if it does not exist.
pub async fn stream_info(
    js: &jetstream::Context,
    name: &str,
) -> Result<Option<stream::Info>, BusError> {
    match js.get_stream(name).await {
        Ok(mut s) => Ok(Some(s.info().await.map_err(topo("stream info"))?.clone())),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(topo("get stream")(e)),
        },
    }
}

/// Opens a KV bucket, creating it with `config` (the configured storage and
/// replicas) only if it does not exist: an existing bucket is never updated.
pub async fn ensure_kv(
    js: &jetstream::Context,
    cfg: &BusConfig,
    config: kv::Config,
) -> Result<kv::Store, BusError> {
    let bucket = config.bucket.clone();
    if let Ok(store) = js.get_key_value(&bucket).await {
        if let Ok(mut s) = js.get_stream(format!("KV_{bucket}")).await {
            if let Ok(info) = s.info().await {
                warn_if_weaker("kv bucket", &bucket, info.config.num_replicas, cfg.replicas);
            }
        }
        return Ok(store);
    }
    let config = kv::Config {
        storage: cfg.storage.to_nats(),
        num_replicas: cfg.replicas,
        ..config
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // another process created it meanwhile
        Err(e) => js
            .get_key_value(&bucket)
            .await
            .map_err(|_| topo(&format!("create kv bucket {bucket}"))(e)),
    }
}

/// Logs a warning when existing topology has fewer replicas than configured.
fn warn_if_weaker(what: &str, name: &str, found: usize, wanted: usize) {
    if found < wanted {
        tracing::warn!(
            "{what} {name} has {found} replica(s) but the configuration asks for {wanted}; \
             existing topology is never changed at start: change it with an explicit operator command"
        );
    }
}

/// A durable pull consumer on the event stream.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Durable name, e.g. `download` (or `download-p7` for a partition's).
    pub durable: String,
    /// The stage it serves: the dead-letter subject and the metrics' `stage` label
    /// (the durable name, except for a partition's consumer).
    pub stage: String,
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
        let durable = durable.into();
        ConsumerSpec {
            stage: durable.clone(),
            durable,
            filter_subjects: subjects.into_iter().collect(),
            ack_wait: Duration::from_secs(60),
            max_deliver: 8,
            max_ack_pending: 4096,
            ack_all: false,
        }
    }

    /// The consumer of partition `p` of this spec's work: durable `<stage>-p<p>`, each
    /// subject narrowed to its partition's (see [`crate::partitions`]).
    pub fn partition(&self, p: u16) -> ConsumerSpec {
        ConsumerSpec {
            durable: crate::partitions::consumer_name(&self.stage, p),
            filter_subjects: self
                .filter_subjects
                .iter()
                .map(|s| format!("{s}.p{p}"))
                .collect(),
            ..self.clone()
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
        description: Some(format!("imgcrawl stage {}", spec.stage)),
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
