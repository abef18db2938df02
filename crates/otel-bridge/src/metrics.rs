//! GenAI client metrics: `gen_ai.client.token.usage` and
//! `gen_ai.client.operation.duration` histograms from ended model spans,
//! exported over OTLP metrics.
//!
//! The SDK aggregates (an `SdkMeterProvider` with a `ManualReader`: no
//! timer, no background thread). Spans are recorded once, when their export
//! was acknowledged; the histograms are cumulative and sent on the flush
//! that follows new recordings, from the pipeline's worker, through the same
//! classified transport as the spans — so a failed metrics export is
//! reported by that flush, and the next one sends the totals again (nothing
//! recorded is lost to a failed request).
//!
//! Buckets are the ones the conventions advise: powers of 4 up to 4^13
//! tokens, and 0.01 s doubling up to 81.92 s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use aiobs_core::semconv::{self, Operation};
use aiobs_core::{ExportError, ExportedSpan};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};

use crate::config::{OtelBuildError, Resolved};
use crate::transport::{self, OtlpTransport};

/// `gen_ai.client.token.usage` buckets (tokens).
const TOKEN_BUCKETS: [f64; 14] = [
    1.0,
    4.0,
    16.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];
/// `gen_ai.client.operation.duration` buckets (seconds).
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The instruments, once the resource is known (at `init`).
struct Instruments {
    provider: SdkMeterProvider,
    tokens: Histogram<u64>,
    duration: Histogram<f64>,
}

pub(crate) struct GenAiMetrics {
    exporter: opentelemetry_otlp::MetricExporter,
    reader: Arc<ManualReader>,
    instruments: OnceLock<Instruments>,
    /// Something was recorded since the last acknowledged export.
    dirty: AtomicBool,
    /// One export at a time (flushes of several callers meet here).
    exporting: tokio::sync::Mutex<()>,
    url: String,
}

impl GenAiMetrics {
    pub(crate) fn new(cfg: &Resolved, transport: OtlpTransport) -> Result<Self, OtelBuildError> {
        // Compression is the transport's (see `OtlpTransport`).
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(transport)
            .with_endpoint(cfg.metrics_url.clone())
            .with_protocol(cfg.otlp_protocol())
            .with_timeout(cfg.timeout)
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .with_temporality(Temporality::Cumulative)
            .build()
            .map_err(|e| OtelBuildError::Exporter(e.to_string()))?;
        Ok(Self {
            exporter,
            reader: Arc::new(
                ManualReader::builder()
                    .with_temporality(Temporality::Cumulative)
                    .build(),
            ),
            instruments: OnceLock::new(),
            dirty: AtomicBool::new(false),
            exporting: tokio::sync::Mutex::new(()),
            url: cfg.metrics_url.clone(),
        })
    }

    /// Creates the instruments with the pipeline's resource (first call wins).
    pub(crate) fn start(&self, resource: Resource) {
        self.instruments.get_or_init(|| {
            let provider = SdkMeterProvider::builder()
                .with_reader(SharedReader(self.reader.clone()))
                .with_resource(resource)
                .build();
            let meter = provider.meter_with_scope(
                opentelemetry::InstrumentationScope::builder("aiobs")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .with_schema_url(semconv::SCHEMA_URL)
                    .build(),
            );
            let tokens = meter
                .u64_histogram(semconv::GEN_AI_CLIENT_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build();
            let duration = meter
                .f64_histogram(semconv::GEN_AI_CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build();
            Instruments {
                provider,
                tokens,
                duration,
            }
        });
    }

    /// Records one acknowledged span, if it is a client operation not nested
    /// in another model call (a step inside its generation would count the
    /// generation's tokens and time twice: `ExportedSpan::billable_usage`).
    pub(crate) fn record(&self, span: &ExportedSpan) {
        let Some(i) = self.instruments.get() else {
            return;
        };
        let Some(op) = Operation::of(span).filter(|op| op.is_client_call()) else {
            return;
        };
        if span.has_model_ancestor() {
            return;
        }
        let attrs = attributes(span, op);
        if let Some(d) = span.duration() {
            let mut with_error = attrs.clone();
            if let Some(e) = &span.error {
                with_error.push(KeyValue::new(
                    semconv::ERROR_TYPE,
                    e.kind
                        .clone()
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| "_OTHER".into()),
                ));
            }
            i.duration.record(d.as_secs_f64(), &with_error);
        }
        if let Some(u) = span.billable_usage() {
            for (kind, n) in [("input", u.input_tokens), ("output", u.output_tokens)] {
                let mut a = attrs.clone();
                a.push(KeyValue::new(semconv::GEN_AI_TOKEN_TYPE, kind));
                i.tokens.record(n, &a);
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Sends the cumulative histograms if anything was recorded since the
    /// last acknowledged export.
    pub(crate) async fn export(&self, deadline: Instant) -> Result<(), ExportError> {
        let _one_at_a_time = self.exporting.lock().await;
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let mut rm = ResourceMetrics::default();
        if let Err(e) = self.reader.collect(&mut rm) {
            self.dirty.store(true, Ordering::Release);
            return Err(ExportError::permanent(format!(
                "collecting the GenAI metrics failed: {e}"
            )));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let sent =
            tokio::time::timeout(left, transport::with_answers(self.exporter.export(&rm))).await;
        let result = match sent {
            Err(_) => Err(ExportError::transient(format!(
                "GenAI metrics export to {} did not finish before the deadline",
                self.url
            ))),
            Ok((_, mut answers)) if !answers.is_empty() => match answers.pop() {
                Some(Err(e)) => Err(ExportError::from(e)),
                _ => Ok(()),
            },
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(e), _)) => Err(ExportError::permanent(format!(
                "GenAI metrics export to {} failed: {e}",
                self.url
            ))),
        };
        if result.is_err() {
            // Cumulative: the next flush sends the totals again.
            self.dirty.store(true, Ordering::Release);
        }
        result.map_err(|e| ExportError::new(e.class, format!("GenAI metrics: {}", e.message)))
    }

    pub(crate) fn shutdown(&self) {
        if let Some(i) = self.instruments.get() {
            let _best_effort = i.provider.shutdown_with_timeout(Duration::from_millis(100));
        }
        let _closed = self
            .exporter
            .shutdown_with_timeout(Duration::from_millis(100));
    }
}

/// The metric attributes of a model call.
fn attributes(span: &ExportedSpan, op: Operation) -> Vec<KeyValue> {
    let mut a = vec![KeyValue::new(semconv::GEN_AI_OPERATION_NAME, op.as_str())];
    if let Some(m) = span.attributes.model() {
        if let Some(p) = &m.provider {
            a.push(KeyValue::new(semconv::GEN_AI_PROVIDER_NAME, p.to_string()));
        }
        if let Some(model) = &m.model {
            a.push(KeyValue::new(
                semconv::GEN_AI_REQUEST_MODEL,
                model.to_string(),
            ));
        }
        if let Some(r) = &m.response_model {
            a.push(KeyValue::new(semconv::GEN_AI_RESPONSE_MODEL, r.clone()));
        }
    }
    a
}

/// A `ManualReader` the meter provider and this module share (the SDK takes
/// its readers by value).
#[derive(Debug)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}
