//! W3C trace context (`traceparent`) and the context of the delivery a task handles.
//!
//! Every event carries a `traceparent`. The worker loop parses the one of each
//! delivery, starts a child span ([`TraceContext::child`]) and runs the handler inside
//! it ([`scope`]); every event the handler publishes then carries that span as its
//! parent ([`current`], read by the publisher). A crawl is thus one trace across
//! processes: its trace id is the job id (the request is published with it), and each
//! delivery's span points at the span that published its event.

use std::future::Future;

/// A W3C trace context: trace id, span id, sampled flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace (16 bytes, never all zero).
    pub trace_id: [u8; 16],
    /// The span (8 bytes, never all zero).
    pub span_id: [u8; 8],
    /// The `sampled` flag.
    pub sampled: bool,
}

tokio::task_local! {
    static CURRENT: TraceContext;
}

impl TraceContext {
    /// Parses a `traceparent` header (version 00; later versions by their first four
    /// fields, as the spec asks). None if it is not one.
    pub fn parse(header: &str) -> Option<TraceContext> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || !is_hex(version) {
            return None;
        }
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(is_hex(trace) && is_hex(span) && is_hex(flags)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(span, &mut span_id).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace with this id (a new root span).
    pub fn root(trace_id: [u8; 16]) -> TraceContext {
        TraceContext {
            trace_id: if trace_id == [0; 16] {
                random_trace()
            } else {
                trace_id
            },
            span_id: random_span(),
            sampled: true,
        }
    }

    /// A child span in the same trace.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            span_id: random_span(),
            ..*self
        }
    }

    /// The `traceparent` header value.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_hex(),
            self.span_hex(),
            u8::from(self.sampled)
        )
    }

    /// The trace id in lowercase hex (32 characters).
    pub fn trace_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// The span id in lowercase hex (16 characters).
    pub fn span_hex(&self) -> String {
        hex::encode(self.span_id)
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_span() -> [u8; 8] {
    loop {
        let b = uuid::Uuid::new_v4().into_bytes();
        let mut s = [0u8; 8];
        s.copy_from_slice(&b[8..]);
        if s != [0; 8] {
            return s;
        }
    }
}

fn random_trace() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// The context of the delivery this task is handling, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `f` with `ctx` as the current context.
pub async fn scope<F: Future>(ctx: TraceContext, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_spec_example_parses_and_prints_back() {
        let c = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(c.trace_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.span_hex(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.header(), EXAMPLE);
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-xyz92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // a later version may append fields
        assert!(TraceContext::parse(&format!("01{}-what", &EXAMPLE[2..])).is_some());
    }

    #[test]
    fn a_child_keeps_the_trace_with_a_new_span() {
        let p = TraceContext::parse(EXAMPLE).unwrap();
        let c = p.child();
        assert_eq!(c.trace_id, p.trace_id);
        assert_ne!(c.span_id, p.span_id);
        assert_ne!(TraceContext::root([0; 16]).trace_id, [0; 16]);
    }

    #[tokio::test]
    async fn the_current_context_is_the_scope_s() {
        assert_eq!(current(), None);
        let c = TraceContext::parse(EXAMPLE).unwrap();
        let seen = scope(c, async { current() }).await;
        assert_eq!(seen, Some(c));
        assert_eq!(current(), None);
    }
}
