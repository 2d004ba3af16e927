//! Every metric imgcrawl exports, in one registry per process.
//!
//! The families are created once ([`metrics`]) and updated where things happen: the
//! worker loop (`imgcrawl-bus`), the fetcher, the stages, the HA watcher and the API.
//! A process exports all of them; families of parts it does not run simply have no
//! series. Names and meanings are listed in `docs/observability.md`.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::labels;

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A histogram family with its bucket constructor.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A gauge holding a float.
pub type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds() -> Histogram {
    // 1 ms .. 65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn waits() -> Histogram {
    // 10 ms .. 82 s
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

fn sizes() -> Histogram {
    // 1 .. 8192 events
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// A registry that remembers the exposed name of everything registered (families
/// without series are not rendered, but they exist and are documented).
#[derive(Default)]
struct Reg {
    registry: Registry,
    names: Vec<String>,
}

impl Reg {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.names.push(exposed(name, None, &metric));
        self.registry.register(name, help, metric);
    }

    fn register_with_unit(&mut self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        self.names.push(exposed(name, Some(&unit), &metric));
        self.registry.register_with_unit(name, help, unit, metric);
    }
}

/// The name a metric is rendered under: with its unit, and `_total` on counters.
fn exposed(name: &str, unit: Option<&Unit>, metric: &impl Metric) -> String {
    let mut n = name.to_string();
    if let Some(u) = unit {
        n = format!("{n}_{}", u.as_str());
    }
    if matches!(metric.metric_type(), MetricType::Counter) {
        n.push_str("_total");
    }
    n
}

/// The process's metric families.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    names: Vec<String>,
    /// Deliveries handled by a stage's worker loop, by outcome.
    pub deliveries: Family<labels::StageOutcome, Counter>,
    /// How long handling one delivery took (decode to ack), by stage.
    pub delivery_duration: Histograms<labels::Stage>,
    /// Deliveries being handled right now, by stage.
    pub in_flight: Family<labels::Stage, Gauge>,
    /// Dead letters published, by stage.
    pub dead_letters: Family<labels::Stage, Counter>,
    /// Messages of a consumer not yet delivered (the server's `num_pending`).
    pub consumer_pending: Family<labels::Consumer, Gauge>,
    /// Messages of a consumer delivered and not yet acknowledged.
    pub consumer_ack_pending: Family<labels::Consumer, Gauge>,
    /// HTTP requests of the fetching stages (pages, images, redirect hops) by status
    /// class; `error` when no response came.
    pub fetches: Family<labels::StatusClass, Counter>,
    /// Body bytes read by fetches.
    pub fetched_bytes: Counter,
    /// Time a request waited for its host's politeness slot.
    pub politeness_wait: Histogram,
    /// Pages fetched by the crawl stage (published `page.fetched`).
    pub pages_fetched: Counter,
    /// Pages that failed (published `page.failed`).
    pub pages_failed: Counter,
    /// Images downloaded and validated (published `image.downloaded`).
    pub images_downloaded: Counter,
    /// Downloaded images whose bytes were already in the blob store.
    pub images_deduplicated: Counter,
    /// Images rejected, by reason (published `image.rejected`).
    pub images_rejected: Family<labels::Reason, Counter>,
    /// Images stored in the bucket (published `image.stored`).
    pub images_stored: Counter,
    /// Stored images whose object was already in the bucket (no bytes written).
    pub objects_deduplicated: Counter,
    /// Events per committed index batch.
    pub index_batch_size: Histograms<labels::Projection>,
    /// How long an index batch's transaction took (apply and commit).
    pub index_commit_duration: Histograms<labels::Projection>,
    /// Events applied by the index (above the checkpoint).
    pub index_events_applied: Family<labels::Projection, Counter>,
    /// The projection's checkpoint: the last stream sequence applied.
    pub index_checkpoint: Family<labels::Projection, Gauge>,
    /// Index lag in stream sequences (see `imgcrawl_readmodel::lag`).
    pub index_lag_events: Family<labels::Projection, Gauge>,
    /// Index lag in seconds: the age of the oldest event waiting.
    pub index_lag_seconds: Family<labels::Projection, FloatGauge>,
    /// Image sources made queryable (announced in `images.indexed`).
    pub images_indexed: Family<labels::Projection, Counter>,
    /// Jobs in the projection by status (`running`, `stopping`, `completed`,
    /// `stopped`), measured with the lag.
    pub jobs: Family<labels::JobStatus, Gauge>,
    /// HA: 1 when the node's last checks say it is healthy, else 0.
    pub ha_node_up: Family<labels::Node, Gauge>,
    /// HA: failed checks of the node in a row (down at `failures_before_down`).
    pub ha_node_check_failures: Family<labels::Node, Gauge>,
    /// HA: 1 for the node the pointer names primary, else 0.
    pub ha_node_primary: Family<labels::Node, Gauge>,
    /// HA: the node's checkpoint lag behind the stream, in seconds.
    pub ha_node_lag_seconds: Family<labels::Node, FloatGauge>,
    /// HA: the pointer's fencing epoch.
    pub ha_epoch: Gauge,
    /// HA: 1 while this watcher holds the lease (acts), else 0.
    pub ha_leader: Gauge,
    /// HA: failovers this watcher performed.
    pub ha_failovers: Counter,
    /// HA: health-check rounds completed.
    pub ha_rounds: Counter,
    /// API requests by method, route template and status.
    pub api_requests: Family<labels::Request, Counter>,
    /// API request latency by method and route template.
    pub api_request_duration: Histograms<labels::Route>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Reg::default();
        let m = Metrics {
            deliveries: Family::default(),
            delivery_duration: Family::new_with_constructor(seconds),
            in_flight: Family::default(),
            dead_letters: Family::default(),
            consumer_pending: Family::default(),
            consumer_ack_pending: Family::default(),
            fetches: Family::default(),
            fetched_bytes: Counter::default(),
            politeness_wait: waits(),
            pages_fetched: Counter::default(),
            pages_failed: Counter::default(),
            images_downloaded: Counter::default(),
            images_deduplicated: Counter::default(),
            images_rejected: Family::default(),
            images_stored: Counter::default(),
            objects_deduplicated: Counter::default(),
            index_batch_size: Family::new_with_constructor(sizes),
            index_commit_duration: Family::new_with_constructor(seconds),
            index_events_applied: Family::default(),
            index_checkpoint: Family::default(),
            index_lag_events: Family::default(),
            index_lag_seconds: Family::default(),
            images_indexed: Family::default(),
            jobs: Family::default(),
            ha_node_up: Family::default(),
            ha_node_check_failures: Family::default(),
            ha_node_primary: Family::default(),
            ha_node_lag_seconds: Family::default(),
            ha_epoch: Gauge::default(),
            ha_leader: Gauge::default(),
            ha_failovers: Counter::default(),
            ha_rounds: Counter::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(seconds),
            registry: Registry::default(),
            names: Vec::new(),
        };
        let s = Unit::Seconds;
        r.register(
            "imgcrawl_deliveries",
            "Deliveries handled by a stage, by outcome (done, retried, poisoned)",
            m.deliveries.clone(),
        );
        r.register_with_unit(
            "imgcrawl_delivery_duration",
            "Time to handle one delivery, by stage",
            s.clone(),
            m.delivery_duration.clone(),
        );
        r.register(
            "imgcrawl_deliveries_in_flight",
            "Deliveries being handled now, by stage",
            m.in_flight.clone(),
        );
        r.register(
            "imgcrawl_dead_letters",
            "Dead letters published, by stage",
            m.dead_letters.clone(),
        );
        r.register(
            "imgcrawl_consumer_pending_messages",
            "Messages of a durable consumer not yet delivered",
            m.consumer_pending.clone(),
        );
        r.register(
            "imgcrawl_consumer_ack_pending_messages",
            "Messages of a durable consumer delivered and not yet acknowledged",
            m.consumer_ack_pending.clone(),
        );
        r.register(
            "imgcrawl_fetches",
            "HTTP requests of the fetching stages by status class (error: no response)",
            m.fetches.clone(),
        );
        r.register_with_unit(
            "imgcrawl_fetched",
            "Body bytes read by HTTP fetches",
            Unit::Bytes,
            m.fetched_bytes.clone(),
        );
        r.register_with_unit(
            "imgcrawl_politeness_wait",
            "Time a request waited for its host's politeness slot",
            s.clone(),
            m.politeness_wait.clone(),
        );
        r.register(
            "imgcrawl_pages_fetched",
            "Pages fetched (page.fetched published)",
            m.pages_fetched.clone(),
        );
        r.register(
            "imgcrawl_pages_failed",
            "Pages that failed (page.failed published)",
            m.pages_failed.clone(),
        );
        r.register(
            "imgcrawl_images_downloaded",
            "Images downloaded and validated (image.downloaded published)",
            m.images_downloaded.clone(),
        );
        r.register(
            "imgcrawl_images_deduplicated",
            "Downloaded images whose bytes were already in the blob store",
            m.images_deduplicated.clone(),
        );
        r.register(
            "imgcrawl_images_rejected",
            "Images rejected, by reason (image.rejected published)",
            m.images_rejected.clone(),
        );
        r.register(
            "imgcrawl_images_stored",
            "Images stored in the bucket (image.stored published)",
            m.images_stored.clone(),
        );
        r.register(
            "imgcrawl_objects_deduplicated",
            "Stored images whose object was already in the bucket",
            m.objects_deduplicated.clone(),
        );
        r.register(
            "imgcrawl_index_batch_events",
            "Events per committed index batch",
            m.index_batch_size.clone(),
        );
        r.register_with_unit(
            "imgcrawl_index_commit_duration",
            "Time of an index batch's transaction",
            s.clone(),
            m.index_commit_duration.clone(),
        );
        r.register(
            "imgcrawl_index_events_applied",
            "Events applied by the index",
            m.index_events_applied.clone(),
        );
        r.register(
            "imgcrawl_index_checkpoint_sequence",
            "The projection's checkpoint (last stream sequence applied)",
            m.index_checkpoint.clone(),
        );
        r.register(
            "imgcrawl_index_lag_events",
            "Index lag in stream sequences",
            m.index_lag_events.clone(),
        );
        r.register_with_unit(
            "imgcrawl_index_lag",
            "Index lag: age of the oldest event waiting",
            s.clone(),
            m.index_lag_seconds.clone(),
        );
        r.register(
            "imgcrawl_images_indexed",
            "Image sources made queryable (announced in images.indexed)",
            m.images_indexed.clone(),
        );
        r.register(
            "imgcrawl_jobs",
            "Jobs in the projection by status",
            m.jobs.clone(),
        );
        r.register(
            "imgcrawl_ha_node_check_failures",
            "Failed checks of the PostgreSQL node in a row",
            m.ha_node_check_failures.clone(),
        );
        r.register(
            "imgcrawl_ha_node_up",
            "1 when the PostgreSQL node is healthy, else 0",
            m.ha_node_up.clone(),
        );
        r.register(
            "imgcrawl_ha_node_primary",
            "1 for the node the HA pointer names primary, else 0",
            m.ha_node_primary.clone(),
        );
        r.register_with_unit(
            "imgcrawl_ha_node_lag",
            "The node's projection lag behind the stream",
            s.clone(),
            m.ha_node_lag_seconds.clone(),
        );
        r.register(
            "imgcrawl_ha_epoch",
            "The HA pointer's fencing epoch",
            m.ha_epoch.clone(),
        );
        r.register(
            "imgcrawl_ha_leader",
            "1 while this watcher holds the lease, else 0",
            m.ha_leader.clone(),
        );
        r.register(
            "imgcrawl_ha_failovers",
            "Failovers performed by this watcher",
            m.ha_failovers.clone(),
        );
        r.register(
            "imgcrawl_ha_rounds",
            "Health-check rounds completed",
            m.ha_rounds.clone(),
        );
        r.register(
            "imgcrawl_api_requests",
            "API requests by method, route template and status",
            m.api_requests.clone(),
        );
        r.register_with_unit(
            "imgcrawl_api_request_duration",
            "API request latency by method and route template",
            s,
            m.api_request_duration.clone(),
        );
        Metrics {
            registry: r.registry,
            names: r.names,
            ..m
        }
    }

    /// The registry, for encoding.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, metrics().registry());
    out
}

/// The name of every metric family, as rendered (families without series yet are not
/// rendered at all).
pub fn names() -> &'static [String] {
    &metrics().names
}

/// A stage label.
pub fn stage(name: &str) -> labels::Stage {
    labels::Stage {
        stage: name.to_string(),
    }
}

/// A projection label.
pub fn projection(name: &str) -> labels::Projection {
    labels::Projection {
        projection: name.to_string(),
    }
}

/// The status class of an HTTP status (`2xx`...), for [`Metrics::fetches`].
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let names = names();
        assert!(names.len() >= 30, "{names:?}");
        let mut unique = names.to_vec();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "no name twice");
        for n in names {
            assert!(n.starts_with("imgcrawl_"), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        let text = encode();
        for counter in text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter(|l| l.ends_with(" counter"))
        {
            assert!(
                counter.split(' ').next().unwrap().ends_with("_total"),
                "{counter}"
            );
        }
        for rendered in text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
        {
            assert!(
                names.iter().any(|n| n == rendered),
                "{rendered} not in names()"
            );
        }
        assert!(names.contains(&"imgcrawl_delivery_duration_seconds".to_string()));
        assert!(names.contains(&"imgcrawl_fetched_bytes_total".to_string()));
    }

    #[test]
    fn series_appear_with_their_labels() {
        let m = metrics();
        m.deliveries
            .get_or_create(&labels::StageOutcome {
                stage: "unit-test".into(),
                outcome: "done",
            })
            .inc();
        m.delivery_duration
            .get_or_create(&stage("unit-test"))
            .observe(0.003);
        let text = encode();
        assert!(
            text.contains(r#"imgcrawl_deliveries_total{stage="unit-test",outcome="done"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"imgcrawl_delivery_duration_seconds_bucket{le="0.004",stage="unit-test"} 1"#
            ) || text.contains(
                r#"imgcrawl_delivery_duration_seconds_bucket{stage="unit-test",le="0.004"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn every_metric_is_documented() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/observability.md"
        ))
        .expect("docs/observability.md");
        let missing: Vec<&String> = names()
            .iter()
            .filter(|n| !doc.contains(&format!("`{n}`")))
            .collect();
        assert!(missing.is_empty(), "undocumented metrics: {missing:?}");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(42), "other");
    }
}
