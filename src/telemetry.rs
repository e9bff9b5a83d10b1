//! OpenTelemetry traces over OTLP/HTTP: a span per webhook request and a span per delivery
//! attempt, the attempt a child of the request even though it runs later from the queue (the
//! request's W3C `traceparent` is stored with the job), and the attempt's own context sent to
//! the upstream as `traceparent` so the consumer's trace continues from it.
//!
//! The OpenTelemetry project's own crates (`opentelemetry`, `_sdk`, `-otlp`) build and export
//! the spans; hookgate calls their API directly instead of bridging `tracing`, so with
//! telemetry off (`None`) no span is built, no header parsed and no exporter runs. The exporter
//! sends through hyper (already the gateway's HTTP stack) rather than the crate's reqwest
//! client, so no second HTTP and TLS stack is compiled in.
//!
//! Export never blocks the request path: finished spans go to a bounded queue
//! (`telemetry.max_queued_spans`, past it they are dropped) that a batch thread sends every
//! `telemetry.export_interval`; shutdown flushes it within a deadline.

mod collector;
mod span;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

pub use span::TraceSpan;

use crate::config::TelemetryConfig;

/// One export request may take this long before the batch is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spans per export request at most (the SDK's default).
const MAX_BATCH: usize = 512;

/// Shutdown waits this long at most for the last spans to reach the collector.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the trace pipeline when the config asks for one.
pub fn start(cfg: Option<&TelemetryConfig>) -> Result<Option<Arc<Telemetry>>, TelemetryError> {
    cfg.map(|c| Telemetry::start(c).map(Arc::new)).transpose()
}

/// The exporter could not be built from a validated config.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(#[from] opentelemetry_otlp::ExporterBuildError);

/// The running trace pipeline.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

impl Telemetry {
    /// Starts the exporter. Must run inside the tokio runtime, which carries its requests.
    pub fn start(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(collector::Collector::new(EXPORT_TIMEOUT))
            .with_endpoint(cfg.endpoint.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .build()?;
        let batch = BatchConfigBuilder::default()
            .with_max_queue_size(cfg.max_queued_spans)
            .with_max_export_batch_size(MAX_BATCH.min(cfg.max_queued_spans))
            .with_scheduled_delay(cfg.export_interval)
            .build();
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch)
            .build();
        let resource = Resource::builder()
            .with_service_name(cfg.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("hookgate");
        tracing::info!(endpoint = %cfg.endpoint, "exporting traces over OTLP/HTTP");
        Ok(Telemetry { provider, tracer })
    }

    /// Sends the spans still queued, waiting at most `within`, and stops the exporter.
    pub async fn shutdown(&self, within: Duration) {
        let provider = self.provider.clone();
        // The SDK's shutdown blocks its caller while the batch thread exports.
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(within));
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "telemetry: spans not flushed at shutdown"),
            Err(e) => tracing::warn!(error = %e, "telemetry: shutdown task failed"),
        }
    }
}
