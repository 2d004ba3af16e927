//! The label sets of the metric families. Values come from small closed sets (stage
//! and consumer names, outcomes, status classes, reasons, route templates, node
//! names), never from URLs or hosts.

use prometheus_client::encoding::EncodeLabelSet;

/// A pipeline stage (`crawl`, `download`, `store`, `index`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Stage {
    /// The stage's name.
    pub stage: String,
}

/// A stage and what became of a delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageOutcome {
    /// The stage's name.
    pub stage: String,
    /// `done`, `retried` or `poisoned`.
    pub outcome: &'static str,
}

/// A durable consumer.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Consumer {
    /// The consumer's durable name.
    pub consumer: String,
}

/// An HTTP status class of a fetch (`2xx`... `5xx`, or `error`: no response).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusClass {
    /// The class.
    pub class: &'static str,
}

/// Why an image was rejected (the `image.rejected` reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The reason's name.
    pub reason: String,
}

/// A projection (its checkpoint row: one per database node in HA).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Projection {
    /// The checkpoint name.
    pub projection: String,
}

/// A PostgreSQL node of the HA set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Node {
    /// The node's name.
    pub node: String,
}

/// An API request: method, route template (never the concrete path) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    /// The HTTP method.
    pub method: String,
    /// The route template, e.g. `/api/images/{id}`; `unmatched` for unknown paths.
    pub route: String,
    /// The status code.
    pub status: u16,
}

/// An API route (for latency).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Route {
    /// The HTTP method.
    pub method: String,
    /// The route template.
    pub route: String,
}

/// A job status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobStatus {
    /// `running`, `stopping`, `completed` or `stopped`.
    pub status: String,
}
