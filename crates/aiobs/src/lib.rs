//! # aiobs
//!
//! Observability for AI agents: agent runs, model generations with token
//! usage, tool calls and workflow steps recorded as spans (plus logs, metrics,
//! scores and feedback), carried to an embedded store or a vendor with one
//! promise: **when [`Observability::flush`] returns, every event emitted before
//! it was acknowledged by its destination, or the returned [`FlushReport`] says
//! it failed and why.** Nothing is lost silently.
//!
//! ```
//! use std::time::Duration;
//! use aiobs::{InMemoryExporter, ModelAttributes, Observability, SpanOptions, SpanType, Usage};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let memory = InMemoryExporter::new();
//! let obs = Observability::builder().exporter(memory.clone()).build()?;
//! let _guard = obs.guard(Duration::from_secs(5)); // flushes and shuts down on drop
//!
//! let mut run = obs.start_span(SpanOptions::new("support agent", SpanType::AgentRun).input("Where is my order?"));
//! let mut llm = run.child(
//!     SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
//!         .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
//! );
//! llm.set_usage(Usage::new(120, 30).with_cache_read(100));
//! llm.end_with_output("It ships tomorrow.");
//! run.end_with_output("It ships tomorrow.");
//!
//! let report = obs.flush_blocking(Duration::from_secs(5));
//! assert!(report.is_success(), "{report}");
//! assert_eq!(memory.ended_spans().len(), 2);
//! # Ok(()) }
//! ```
//!
//! Everything from [`aiobs_core`] is re-exported here; the exporters live
//! under [`exporters`], one module per destination, each behind its Cargo
//! feature:
//!
//! ```
//! # #[cfg(feature = "sqlite")] {
//! use aiobs::exporters::default::{DefaultExporter, SqliteStorage};
//! # }
//! ```
//!
//! ## Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `sqlite` (default) | `exporters::default`: the `DefaultExporter`, the embedded SQLite store and its query API |
//! | `postgres` | the PostgreSQL backend of `exporters::default` |
//! | `cloud` | `exporters::cloud`: gzip JSON batches to an HTTP ingest endpoint |
//! | `langfuse` | `exporters::langfuse`: Langfuse (OTLP or ingestion API) |
//! | `otel` | `exporters::otel`: any OTLP backend with the GenAI semantic conventions, GenAI metrics, trace context both ways |
//! | `sentry` | `exporters::sentry`: Sentry AI Agents transactions and linked error events |
//! | `full` | all of the above |
//!
//! With no exporter feature the crate still compiles and runs: events are
//! counted as dropped with reason `no_exporter`, and a warning says so once.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use aiobs_core::*;

/// The exporters: one module per destination, each behind its Cargo feature.
pub mod exporters {
    /// The default exporter: the embedded SQLite store (feature `sqlite`)
    /// and PostgreSQL (feature `postgres`), with their query API.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
    pub use aiobs_exporter_default as default;

    /// The HTTP ingest exporter (feature `cloud`).
    #[cfg(feature = "cloud")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cloud")))]
    pub use aiobs_exporter_cloud as cloud;

    /// The Langfuse exporter (feature `langfuse`).
    #[cfg(feature = "langfuse")]
    #[cfg_attr(docsrs, doc(cfg(feature = "langfuse")))]
    pub use aiobs_exporter_langfuse as langfuse;

    /// The Sentry exporter (feature `sentry`): `aiobs::exporters::sentry::SentryExporter`.
    #[cfg(feature = "sentry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sentry")))]
    pub use aiobs_exporter_sentry as sentry;
    /// OpenTelemetry: `OtelExporter` (any OTLP/HTTP backend, GenAI semantic
    /// conventions and metrics), `OtelBridge` (trace context both ways) and
    /// `OtelProviderExporter` (recording into your own `SdkTracerProvider`).
    #[cfg(feature = "otel")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
    pub use aiobs_otel_bridge as otel;
}
