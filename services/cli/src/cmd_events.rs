//! `imgcrawl events`: view and follow the event stream (the source of truth) without
//! extra tools, filtered by subject, job or sequence range, as readable lines or JSON.
//!
//! Reads with an ephemeral consumer that acks nothing and changes nothing: it is
//! removed by the server when the command exits.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use async_nats::jetstream::consumer::{self, pull, DeliverPolicy};
use clap::Args;
use futures::StreamExt;
use imgcrawl_bus::worker::to_chrono;
use imgcrawl_events::{EventKind, HEADER_EVENT, HEADER_MSG_ID, SUBJECT_PREFIX};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::settings::Settings;

/// Arguments of `imgcrawl events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only these subjects (repeatable), with or without the `imgcrawl.` prefix and with
    /// NATS wildcards: `image.downloaded`, `page.*`, `dlq.>`.
    #[arg(long = "subject", short = 's')]
    pub subjects: Vec<String>,
    /// Only the events of this job.
    #[arg(long)]
    pub job: Option<Uuid>,
    /// Start at this stream sequence (default: the first).
    #[arg(long, conflicts_with = "last")]
    pub from_seq: Option<u64>,
    /// Stop after this stream sequence.
    #[arg(long)]
    pub to_seq: Option<u64>,
    /// Start this many events before the end of the stream (before filtering).
    #[arg(long)]
    pub last: Option<u64>,
    /// Print at most this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keep following new events (until Ctrl-C) instead of stopping at the end.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One JSON object per line: seq, time, subject, event, msg_id, job_id, headers, data.
    #[arg(long)]
    pub json: bool,
}

/// The full subject for a user's filter.
fn full_subject(s: &str) -> String {
    let s = s.trim().trim_start_matches('.');
    if s == SUBJECT_PREFIX || s.starts_with(&format!("{SUBJECT_PREFIX}.")) {
        s.to_string()
    } else {
        format!("{SUBJECT_PREFIX}.{s}")
    }
}

/// Where to start: `--from-seq`, `--last`, or the beginning.
fn start(args: &EventsArgs, last_seq: u64) -> u64 {
    match (args.from_seq, args.last) {
        (Some(s), _) => s.max(1),
        (None, Some(n)) => last_seq.saturating_sub(n).saturating_add(1).max(1),
        (None, None) => 1,
    }
}

/// Runs `imgcrawl events`.
pub async fn events(settings: &Settings, args: EventsArgs) -> Result<()> {
    if let (Some(a), Some(b)) = (args.from_seq, args.to_seq) {
        if a > b {
            bail!("--from-seq {a} is after --to-seq {b}");
        }
    }
    let bus = settings.connect_bus("imgcrawl-events").await?;
    let stream = bus.js.get_stream(&bus.config.stream).await?;
    let last_seq = stream.cached_info().state.last_sequence;
    let from = start(&args, last_seq);
    // a routed kind's name takes its partitions' subjects too
    let subjects: Vec<String> = args
        .subjects
        .iter()
        .map(|s| full_subject(s))
        .flat_map(|s| match EventKind::from_subject(&s) {
            Some(k) if k.subject() == s => k.filters(),
            _ => vec![s],
        })
        .collect();
    let (filter_subject, filter_subjects) = match subjects.len() {
        0 => (String::new(), Vec::new()),
        1 => (subjects[0].clone(), Vec::new()),
        _ => (String::new(), subjects),
    };
    let mut reader: consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ack_policy: consumer::AckPolicy::None,
            filter_subject,
            filter_subjects,
            inactive_threshold: Duration::from_secs(30),
            description: Some("imgcrawl events (read-only viewer)".into()),
            ..Default::default()
        })
        .await
        .context("create a reader on the stream")?;
    let pending = reader.info().await?.num_pending;
    if pending == 0 && !args.follow {
        return Ok(());
    }
    let mut messages = reader.messages().await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    crate::signals::cancel_on_signal(shutdown.clone());
    let mut printed = 0u64;
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            m = messages.next() => m,
        };
        let Some(msg) = next else { break };
        let msg = msg.context("read the stream")?;
        let info = msg
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        let (seq, left) = (info.stream_sequence, info.pending);
        let time = to_chrono(info.published);
        if args.to_seq.is_some_and(|to| seq > to) {
            break;
        }
        let headers: serde_json::Map<String, Value> = msg
            .headers
            .iter()
            .flat_map(|m| m.iter())
            .filter_map(|(k, v)| Some((k.to_string(), Value::from(v.first()?.as_str()))))
            .collect();
        let header = |h: &str| headers.get(h).cloned().unwrap_or(Value::Null);
        let data: Value = serde_json::from_slice(&msg.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&msg.payload).into_owned()));
        let job = data
            .get("job_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let wanted = args
            .job
            .is_none_or(|j| job.as_deref() == Some(j.to_string().as_str()));
        if wanted {
            let line = if args.json {
                json!({
                    "seq": seq,
                    "time": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "subject": msg.subject.as_str(),
                    "event": header(HEADER_EVENT),
                    "msg_id": header(HEADER_MSG_ID),
                    "job_id": job,
                    "headers": headers,
                    "data": data,
                })
                .to_string()
            } else {
                readable(seq, time, msg.subject.as_str(), job.as_deref(), &data)
            };
            println!("{line}");
            printed += 1;
            if args.limit.is_some_and(|l| printed >= l) {
                break;
            }
        }
        if !args.follow && (left == 0 || args.to_seq == Some(seq)) {
            break;
        }
    }
    Ok(())
}

/// The fields a readable line shows, in this order, when the event has them.
const SHOWN: [&str; 14] = [
    "url", "urls", "page_url", "status", "sha256", "bytes", "format", "width", "height", "key",
    "reason", "error", "primary", "stage",
];

/// One readable line: sequence, time, subject, short job id, the telling fields.
fn readable(
    seq: u64,
    time: chrono::DateTime<chrono::Utc>,
    subject: &str,
    job: Option<&str>,
    data: &Value,
) -> String {
    let short = subject
        .strip_prefix(SUBJECT_PREFIX)
        .map_or(subject, |s| s.trim_start_matches('.'));
    let job = job.map_or(String::from("-"), |j| j.chars().take(8).collect());
    let mut fields = Vec::new();
    for key in SHOWN {
        let Some(v) = data.get(key) else { continue };
        let text = match v {
            Value::Null => continue,
            Value::String(s) if key == "sha256" => s.chars().take(12).collect(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let text = if text.chars().count() > 100 {
            format!("{}…", text.chars().take(99).collect::<String>())
        } else {
            text
        };
        fields.push(format!("{key}={text}"));
    }
    if let Value::String(raw) = data {
        fields.push(format!(
            "(not json) {}",
            raw.chars().take(100).collect::<String>()
        ));
    }
    format!(
        "{seq:>8}  {}  {short:<17} job {job:<8}  {}",
        time.format("%Y-%m-%d %H:%M:%S%.3f"),
        fields.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn subjects_take_the_prefix_once() {
        assert_eq!(
            full_subject("image.downloaded"),
            "imgcrawl.image.downloaded"
        );
        assert_eq!(full_subject("imgcrawl.page.>"), "imgcrawl.page.>");
        assert_eq!(full_subject("dlq.>"), "imgcrawl.dlq.>");
        assert_eq!(full_subject("imgcrawl"), "imgcrawl");
    }

    #[test]
    fn starts_are_clamped_to_the_stream() {
        let args = |from, last| EventsArgs {
            subjects: vec![],
            job: None,
            from_seq: from,
            to_seq: None,
            last,
            limit: None,
            follow: false,
            json: false,
        };
        assert_eq!(start(&args(None, None), 50), 1);
        assert_eq!(start(&args(Some(0), None), 50), 1);
        assert_eq!(start(&args(Some(7), None), 50), 7);
        assert_eq!(start(&args(None, Some(10)), 50), 41);
        assert_eq!(start(&args(None, Some(100)), 50), 1);
    }

    #[test]
    fn a_readable_line_shows_the_telling_fields() {
        let t = chrono::Utc.timestamp_opt(1_767_225_600, 0).unwrap();
        let data = json!({"job_id": "0b5e1f2a-0000-0000-0000-000000000000",
            "url": "http://a.test/x.png", "sha256": "abcdef0123456789abcdef", "bytes": 42});
        let line = readable(
            7,
            t,
            "imgcrawl.image.downloaded",
            Some("0b5e1f2a-0000"),
            &data,
        );
        assert!(line.contains("image.downloaded"), "{line}");
        assert!(line.contains("job 0b5e1f2a"), "{line}");
        assert!(
            line.contains("url=http://a.test/x.png sha256=abcdef012345 bytes=42"),
            "{line}"
        );
        assert!(
            line.starts_with("       7  2026-01-01 00:00:00.000"),
            "{line}"
        );
        let raw = readable(
            8,
            t,
            "imgcrawl.dlq.crawl",
            None,
            &Value::String("{oops".into()),
        );
        assert!(
            raw.contains("(not json) {oops") && raw.contains("job -"),
            "{raw}"
        );
    }
}
