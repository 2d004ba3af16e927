//! Optional export of delivery spans over OTLP/HTTP, JSON encoding (`POST
//! <endpoint>/v1/traces`), to any OpenTelemetry collector, Jaeger or Tempo.
//!
//! Off unless `[telemetry] otlp_endpoint` (or `IMGCRAWL_OTLP_ENDPOINT`) is set. Only
//! spans that carry a trace context (`trace_id` and `span_id` fields: the worker loop's
//! `delivery` spans) are exported, with their other fields as attributes. Spans are
//! queued without blocking (a full queue drops and counts them) and posted in batches
//! by a background task; an unreachable collector costs log lines, never the pipeline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::json::SpanFields;
use crate::TelemetryError;

/// Spans queued for export at most.
const QUEUE: usize = 8192;
/// Spans per request at most.
const BATCH: usize = 512;
/// How often a partial batch is sent.
const EVERY: Duration = Duration::from_secs(1);

/// The tracing layer that queues finished delivery spans for export.
#[derive(Debug, Clone)]
pub struct OtlpLayer {
    tx: mpsc::Sender<Value>,
}

/// When a span started.
struct Started(SystemTime);

impl OtlpLayer {
    /// Starts the exporter task (on the current tokio runtime) posting to
    /// `<endpoint>/v1/traces` as `service`.
    pub fn spawn(endpoint: &str, service: &str) -> Result<OtlpLayer, TelemetryError> {
        let base = endpoint.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TelemetryError::Otlp(format!(
                "endpoint {endpoint:?} is not an http(s) url"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let url = format!("{base}/v1/traces");
        tokio::spawn(export(client, url, service.to_string(), rx));
        Ok(OtlpLayer { tx })
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
        .to_string()
}

/// An attribute in OTLP's JSON shape.
fn attribute(key: &str, v: &Value) -> Value {
    let value = match v {
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n.as_f64() }),
        Value::String(s) => json!({ "stringValue": s }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": value })
}

/// The OTLP span for a closed span's fields, if it carries a trace context.
fn otlp_span(name: &str, fields: &SpanFields, start: SystemTime, end: SystemTime) -> Option<Value> {
    let trace = fields.get("trace_id")?.as_str()?;
    let span = fields.get("span_id")?.as_str()?;
    let parent = fields
        .get("parent_span_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let attributes: Vec<Value> = fields
        .iter()
        .filter(|(k, _)| !matches!(*k, "trace_id" | "span_id" | "parent_span_id"))
        .map(|(k, v)| attribute(k, v))
        .collect();
    let stage = fields.get("consumer").and_then(Value::as_str);
    Some(json!({
        "traceId": trace,
        "spanId": span,
        "parentSpanId": parent,
        "name": stage.map_or(name.to_string(), |s| format!("{name} {s}")),
        "kind": 5, // SPAN_KIND_CONSUMER
        "startTimeUnixNano": nanos(start),
        "endTimeUnixNano": nanos(end),
        "attributes": attributes,
    }))
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Started(SystemTime::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ext = span.extensions();
        let (Some(fields), Some(Started(start))) = (ext.get::<SpanFields>(), ext.get::<Started>())
        else {
            return;
        };
        if let Some(s) = otlp_span(span.name(), fields, *start, SystemTime::now()) {
            // A full queue drops the span: export must never slow the pipeline.
            let _ = self.tx.try_send(s);
        }
    }
}

/// Posts queued spans in batches until every sender is gone.
async fn export(
    client: reqwest::Client,
    url: String,
    service: String,
    mut rx: mpsc::Receiver<Value>,
) {
    let resource = json!({ "attributes": [attribute("service.name", &Value::from(service))] });
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let open = tokio::select! {
            got = rx.recv_many(&mut batch, BATCH) => got > 0,
            _ = tokio::time::sleep(EVERY), if !batch.is_empty() => true,
        };
        if !batch.is_empty() && (batch.len() >= BATCH || !open || rx.is_empty()) {
            let body = json!({ "resourceSpans": [{
                "resource": resource,
                "scopeSpans": [{ "scope": { "name": "imgcrawl" }, "spans": std::mem::take(&mut batch) }],
            }]});
            let sent = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::debug!(status = %r.status(), "otlp export refused"),
                Err(e) => tracing::debug!(error = %e, "otlp export failed"),
            }
        }
        if !open {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_span_becomes_an_otlp_span() {
        let mut f = SpanFields::default();
        f.set("trace_id", Value::from("4bf92f3577b34da6a3ce929d0e0e4736"));
        f.set("span_id", Value::from("00f067aa0ba902b7"));
        f.set("parent_span_id", Value::from("b7ad6b7169203331"));
        f.set("consumer", Value::from("download"));
        f.set("seq", Value::from(7u64));
        let t = UNIX_EPOCH + Duration::from_secs(1);
        let s = otlp_span("delivery", &f, t, t + Duration::from_millis(5)).unwrap();
        assert_eq!(s["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s["parentSpanId"], "b7ad6b7169203331");
        assert_eq!(s["name"], "delivery download");
        assert_eq!(s["startTimeUnixNano"], "1000000000");
        assert_eq!(s["endTimeUnixNano"], "1005000000");
        let attrs = s["attributes"].as_array().unwrap();
        assert!(attrs.contains(&json!({"key": "seq", "value": {"intValue": "7"}})));
        assert_eq!(attrs.len(), 2);
        let f = SpanFields::default();
        assert!(
            otlp_span("delivery", &f, t, t).is_none(),
            "no trace context, no export"
        );
    }
}
