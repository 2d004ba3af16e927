//! What one delivery span costs, by log format and filter: a span shaped like the
//! worker's (`imgcrawl_bus::worker`), ten fields, three recorded later, its future
//! polled five times. Prints the median of seven rounds of 200,000 spans.
//!
//! ```sh
//! cargo run --release -p imgcrawl-telemetry --example span_cost              # text
//! IMGCRAWL_LOG_FORMAT=json cargo run --release -p imgcrawl-telemetry --example span_cost
//! RUST_LOG=info,span_cost=warn cargo run ...                                 # span off
//! ```

use std::time::Instant;

use imgcrawl_telemetry::{LogFormat, TraceContext};
use tracing::{field, Instrument};

fn main() {
    let format = match std::env::var("IMGCRAWL_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    imgcrawl_telemetry::logs::init(format, "info", None).expect("subscriber");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let n = 200_000u64;
    let mut rounds = Vec::new();
    for _ in 0..7 {
        rt.block_on(async {
            let t = Instant::now();
            for seq in 0..n {
                let ctx = TraceContext::root([7; 16]);
                let span = tracing::info_span!(
                    "delivery",
                    consumer = %"download",
                    subject = %"imgcrawl.image.discovered",
                    seq,
                    delivered = 1u64,
                    job_id = field::Empty,
                    trace_id = %ctx.trace_hex(),
                    span_id = %ctx.span_hex(),
                    parent_span_id = field::Empty,
                    outcome = field::Empty,
                );
                span.record("parent_span_id", ctx.span_hex());
                span.record(
                    "job_id",
                    field::display("0190aaaa-bbbb-cccc-dddd-eeeeffff0000"),
                );
                let work = async {
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    "done"
                };
                let outcome = work.instrument(span.clone()).await;
                span.record("outcome", outcome);
            }
            rounds.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        });
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "format {format:?}, RUST_LOG {:?}: {:.2} µs per delivery span (median of 7)",
        std::env::var("RUST_LOG").unwrap_or_default(),
        rounds[3]
    );
}
