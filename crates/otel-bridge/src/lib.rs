//! # aiobs-otel-bridge
//!
//! aiobs and OpenTelemetry, both ways:
//!
//! - [`OtelExporter`] sends aiobs traces to any OTLP backend (a collector,
//!   Jaeger, Tempo, Honeycomb, Datadog, Phoenix, Langfuse...) with the GenAI
//!   semantic conventions, through `opentelemetry-otlp` called straight from
//!   the pipeline's worker: no `BatchSpanProcessor` that drops spans when its
//!   queue fills while `force_flush` says `Ok`. When `flush` returns, every
//!   span was acknowledged by the backend or the report says why not.
//! - GenAI metrics (`gen_ai.client.token.usage`, `gen_ai.client.operation.duration`)
//!   over OTLP metrics, when enabled ([`OtelExporterBuilder::genai_metrics`]).
//! - [`OtelBridge`] carries trace context: aiobs spans continue the current
//!   OpenTelemetry context, and an aiobs span becomes an OpenTelemetry
//!   context for OpenTelemetry-instrumented libraries.
//! - [`OtelProviderExporter`] also records aiobs spans into an
//!   `SdkTracerProvider` of the application's own.
//!
//! ```no_run
//! use std::time::Duration;
//! use aiobs_core::{ModelAttributes, Observability, SpanOptions, SpanType, TracingOptions, Usage};
//! use aiobs_otel_bridge::OtelExporter;
//!
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=weather-agent
//! let obs = Observability::builder()
//!     .exporter(OtelExporter::builder().from_env().capture_content(true).build()?)
//!     .build()?;
//!
//! let run = obs.start_span(
//!     SpanOptions::new("weather-agent", SpanType::AgentRun)
//!         .tracing(TracingOptions::new().user_id("user-123").session_id("session-abc")),
//! );
//! let mut llm = run.child(
//!     SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
//!         .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
//!         .input("What is the weather in Paris?"),
//! );
//! llm.set_usage(Usage::new(120, 30).with_cache_read(100)); // input includes cached tokens
//! llm.end_with_output("18°C and sunny.");
//! drop(run);
//!
//! // Sent as `invoke_agent weather-agent` (INTERNAL) and `chat gpt-4o-mini` (CLIENT)
//! // with gen_ai.usage.input_tokens=120, gen_ai.usage.cache_read.input_tokens=100, ...
//! let report = obs.flush_blocking(Duration::from_secs(10));
//! assert!(report.is_success(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The mapping (one table, `aiobs_core::semconv`, shared with the Sentry
//! exporter and the `tracing` layer) and the configuration are in
//! `docs/exporters.md`, section OpenTelemetry.
//!
//! ## Layout
//! `config.rs` (builder, `OTEL_*` variables), `mapping/` (aiobs span →
//! `SpanData`), `transport.rs` (the HTTP client `opentelemetry-otlp` sends
//! through: aiobs-http's, so answers are classified once, for the whole
//! workspace), `exporter.rs`, `offload.rs` (what runs off the pipeline's
//! worker), `metrics.rs`, `bridge.rs` (context), `provider.rs` (recording
//! into a provider). The OTLP encoding itself is
//! `opentelemetry-otlp`'s: there is no `encode.rs`.
//!
//! ## Feature flags
//! None.

#![forbid(unsafe_code)]

mod bridge;
mod config;
mod exporter;
mod mapping;
mod metrics;
mod offload;
mod provider;
mod transport;

pub use bridge::{OtelBridge, parent_of};
pub use config::{
    DEFAULT_ENDPOINT, DEFAULT_TIMEOUT, ENV_COMPRESSION, ENV_ENDPOINT, ENV_HEADERS,
    ENV_METRICS_ENDPOINT, ENV_PROTOCOL, ENV_RESOURCE_ATTRIBUTES, ENV_SERVICE_NAME, ENV_TIMEOUT,
    ENV_TRACES_COMPRESSION, ENV_TRACES_ENDPOINT, ENV_TRACES_HEADERS, ENV_TRACES_PROTOCOL,
    ENV_TRACES_TIMEOUT, ENV_VARS, OtelBuildError, OtelExporterBuilder, OtlpCompression,
    OtlpProtocol,
};
pub use exporter::{NAME, OtelExporter};
pub use provider::{BridgeIdGenerator, OtelProviderExporter};

/// The conventions table this crate writes (re-exported from `aiobs-core`).
pub use aiobs_core::semconv;
