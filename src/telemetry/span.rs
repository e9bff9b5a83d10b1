//! Spans and their W3C trace context (`traceparent`), as the gateway starts and ends them.

use http::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use super::Telemetry;

const TRACEPARENT: &str = "traceparent";

/// A span in progress; ended (and queued for export) by `end`, or when dropped.
pub struct TraceSpan(opentelemetry_sdk::trace::Span);

impl Telemetry {
    /// The span of one webhook request: a child of the sender's `traceparent` when it sent a
    /// valid one, else a new trace.
    pub fn ingest_span(&self, headers: &HeaderMap) -> TraceSpan {
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        self.begin("webhook", SpanKind::Server, &parent)
    }

    /// The span of one delivery attempt: a child of the request's span, from the `traceparent`
    /// stored with the job (a new trace for a job queued without one).
    pub fn attempt_span(&self, stored: Option<&str>) -> TraceSpan {
        let parent = match stored {
            Some(tp) => TraceContextPropagator::new().extract(&Stored(tp)),
            None => Context::new(),
        };
        self.begin("delivery attempt", SpanKind::Client, &parent)
    }

    fn begin(&self, name: &'static str, kind: SpanKind, parent: &Context) -> TraceSpan {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .start_with_context(&self.tracer, parent);
        TraceSpan(span)
    }
}

impl TraceSpan {
    /// This span's context as a W3C `traceparent` value (what a job stores).
    pub fn traceparent(&self) -> Option<String> {
        let mut headers = HeaderMap::new();
        self.inject(&mut headers);
        let value = headers.get(TRACEPARENT)?.to_str().ok()?;
        Some(value.to_owned())
    }

    /// Sets `traceparent` (replacing a sender's) so the receiver's trace continues from here.
    pub fn inject(&self, headers: &mut HeaderMap) {
        let cx = Context::new().with_remote_span_context(self.0.span_context().clone());
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }

    /// Records `attributes`, marks the span failed with `error` when given, and ends it.
    pub fn end(mut self, attributes: Vec<KeyValue>, error: Option<String>) {
        self.0.set_attributes(attributes);
        if let Some(e) = error {
            self.0.set_status(Status::error(e));
        }
        self.0.end();
    }
}

/// A stored `traceparent` read back as if it were a header.
struct Stored<'a>(&'a str);

impl Extractor for Stored<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}
