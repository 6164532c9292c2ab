//! One record's journey is one trace: W3C trace context carried between actors (as an
//! OpenTelemetry [`Context`] in messages), through PostgreSQL (`runs.trace_parent`) and
//! through Kafka (a `traceparent` record header).
//!
//! Spans are per run and per batch, never per record, and follow OpenTelemetry's
//! semantic conventions (messaging.* for Kafka, db.* for PostgreSQL and Cassandra). Each
//! carries `tributary.stage` (fetch, stage, publish, consume, transform, write) so the
//! stages can be found whatever the span names. With tracing off no span is exported and
//! every context is invalid: nothing is written to PostgreSQL or Kafka headers and no
//! downstream span is started, so the cost is a header lookup per record.

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The Kafka header (and carrier key) of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The context of `span`, when it belongs to a real (exported or sampled-out) trace.
pub fn context_of(span: &tracing::Span) -> Option<Context> {
    let cx = span.context();
    cx.span().span_context().is_valid().then_some(cx)
}

/// The `traceparent` value of `span`, or `None` with tracing off.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = context_of(span)?;
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The remote context a `traceparent` value names, or `None` when it is malformed.
pub fn parse(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of `parent`. A span whose parent cannot be set (its subscriber
/// has no OpenTelemetry layer) just stays a root: traces are an aid, never a failure.
pub fn set_parent(span: &tracing::Span, parent: &Context) {
    let _ = span.set_parent(parent.clone());
}

/// Marks spans as failed (OpenTelemetry status ERROR): their work did not complete.
pub fn mark_failed(spans: &[tracing::Span]) {
    for span in spans {
        span.record("otel.status_code", "ERROR");
    }
}

/// Distinct values in first-seen order: the traces a batch's records belong to.
pub fn distinct<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values.into_iter().flatten() {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse(value).expect("valid");
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        assert_eq!(carrier[TRACEPARENT], value);
    }

    #[test]
    fn malformed_values_are_ignored() {
        assert!(parse("").is_none());
        assert!(parse("00-zz-00f067aa0ba902b7-01").is_none());
    }

    #[test]
    fn without_an_opentelemetry_layer_there_is_no_context() {
        let span = tracing::info_span!("no layer");
        assert!(traceparent(&span).is_none());
    }

    #[test]
    fn distinct_keeps_first_seen_order() {
        let values = [Some("b"), None, Some("a"), Some("b")];
        assert_eq!(distinct(values), ["b", "a"]);
    }
}
