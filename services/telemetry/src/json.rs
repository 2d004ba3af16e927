//! JSON log lines with stable field names, and the span fields they draw on.
//!
//! One object per line:
//!
//! | field | what |
//! |---|---|
//! | `timestamp` | RFC 3339, UTC, milliseconds |
//! | `level` | `error`, `warn`, `info`, `debug`, `trace` |
//! | `target` | the module that logged |
//! | `message` | the message |
//! | `fields` | the event's other fields |
//! | `span` | the innermost span's name, if any |
//! | `span_fields` | the fields of the enclosing spans (innermost wins) |
//! | `trace_id`, `span_id`, `job_id` | from the enclosing spans: every line logged while a delivery is handled has them |
//!
//! [`SpanFieldsLayer`] keeps each span's fields (as JSON) in the span's extensions;
//! [`JsonLines`] formats an event with them. The OTLP exporter reads the same
//! extensions.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span's fields, as JSON values, in the order they were first set. A short list
/// keyed by the fields' static names: a delivery span has about ten, and building a
/// map with owned keys for each of them cost a few microseconds per delivery.
#[derive(Debug, Clone, Default)]
pub struct SpanFields(Vec<(&'static str, Value)>);

impl SpanFields {
    /// The value of field `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Every field, in the order first set.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Sets field `name` (a later value replaces an earlier one).
    pub fn set(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Where a visitor puts what it collects.
trait Sink {
    fn put(&mut self, name: &'static str, value: Value);
}

impl Sink for Map<String, Value> {
    fn put(&mut self, name: &'static str, value: Value) {
        self.insert(name.into(), value);
    }
}

impl Sink for SpanFields {
    fn put(&mut self, name: &'static str, value: Value) {
        self.set(name, value);
    }
}

/// Collects fields into a [`Sink`].
struct Collect<'a, T: Sink>(&'a mut T);

impl<T: Sink> Visit for Collect<'_, T> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field.name(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.put(field.name(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.put(field.name(), Value::from(format!("{value:?}")));
    }
}

/// Keeps every span's fields in its extensions (for [`JsonLines`] and the OTLP
/// exporter).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFieldsLayer;

impl<S> Layer<S> for SpanFieldsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields(Vec::with_capacity(attrs.metadata().fields().len()));
        attrs.record(&mut Collect(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut Collect(fields));
        }
    }
}

/// Field formatting that writes nothing: the fmt layer formats every new span's
/// fields into text for its own formatter, which JSON lines never read (they take
/// them from [`SpanFieldsLayer`]), so JSON mode skips that work per span.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSpanText;

impl<'w> FormatFields<'w> for NoSpanText {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'w>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// The JSON line formatter.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

/// The correlation fields lifted to the top of a line: (line field, span field names).
const LIFTED: [(&str, &[&str]); 3] = [
    ("trace_id", &["trace_id"]),
    ("span_id", &["span_id"]),
    ("job_id", &["job_id", "job"]),
];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert(
            "level".into(),
            Value::from(meta.level().as_str().to_ascii_lowercase()),
        );
        line.insert("target".into(), Value::from(meta.target()));
        let message = fields.remove("message").unwrap_or(Value::from(""));
        line.insert("message".into(), message);
        let mut spans = Map::new();
        if let Some(scope) = ctx.event_scope() {
            let mut innermost = None;
            for span in scope.from_root() {
                innermost = Some(span.name());
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    spans.extend(f.iter().map(|(k, v)| (k.to_string(), v.clone())));
                }
            }
            if let Some(name) = innermost {
                line.insert("span".into(), Value::from(name));
            }
        }
        for (to, from) in LIFTED {
            if let Some(v) = from.iter().find_map(|k| spans.get(*k)) {
                line.insert(to.into(), v.clone());
            }
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        if !spans.is_empty() {
            line.insert("span_fields".into(), Value::Object(spans));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_the_delivery_s_trace_and_job() {
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry().with(SpanFieldsLayer).with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, || {
            let delivery = tracing::info_span!(
                "delivery",
                consumer = "download",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                span_id = "00f067aa0ba902b7",
                job = tracing::field::Empty,
            );
            let _d = delivery.enter();
            delivery.record("job", "0190-job");
            let inner = tracing::info_span!("handle", seq = 7u64);
            let _i = inner.enter();
            tracing::warn!(status = 404u64, "gave up");
        });
        tracing::subscriber::with_default(
            tracing_subscriber::registry().with(SpanFieldsLayer).with(
                tracing_subscriber::fmt::layer()
                    .event_format(JsonLines)
                    .with_writer({
                        let w = buf.clone();
                        move || w.clone()
                    }),
            ),
            || tracing::info!("outside"),
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let l = &lines[0];
        assert_eq!(l["level"], "warn");
        assert_eq!(l["message"], "gave up");
        assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(l["span_id"], "00f067aa0ba902b7");
        assert_eq!(l["job_id"], "0190-job");
        assert_eq!(l["span"], "handle");
        assert_eq!(l["fields"]["status"], 404);
        assert_eq!(l["span_fields"]["seq"], 7);
        assert_eq!(l["span_fields"]["consumer"], "download");
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
        let o = &lines[1];
        assert_eq!(o["message"], "outside");
        assert!(o.get("trace_id").is_none() && o.get("span").is_none());
    }
}
