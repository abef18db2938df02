//! # aiobs-exporter-langfuse
//!
//! Sends aiobs traces to [Langfuse](https://langfuse.com): agent runs, tool
//! calls and workflow steps become typed observations, model calls become
//! generations with model, parameters, token usage (cached and reasoning
//! tokens included), cost and prompt links; scores and feedback become scores.
//!
//! ```no_run
//! use std::time::Duration;
//! use aiobs_core::{ModelAttributes, Observability, SpanOptions, SpanType, TracingOptions, Usage};
//! use aiobs_exporter_langfuse::LangfuseExporter;
//!
//! // LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_BASE_URL (or LANGFUSE_HOST).
//! let langfuse = LangfuseExporter::from_env()?;
//! let obs = Observability::builder().exporter(langfuse).build()?;
//!
//! let run = obs.start_span(
//!     SpanOptions::new("weather-agent", SpanType::AgentRun)
//!         .input(serde_json::json!({"question": "What is the weather in Paris?"}))
//!         .tracing(TracingOptions::new().user_id("user-123").session_id("session-abc")),
//! );
//! let mut llm = run.child(
//!     SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
//!         .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
//!         // Links the generation to the Langfuse prompt "weather", version 3.
//!         .metadata("langfuse", serde_json::json!({"prompt": {"name": "weather", "version": 3}})),
//! );
//! llm.set_usage(Usage::new(120, 30).with_cache_read(100));
//! llm.end();
//! drop(run);
//!
//! let report = obs.flush_blocking(Duration::from_secs(10));
//! assert!(report.is_success(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Transports
//! [`LangfuseTransport::Otlp`] (the default) sends OTLP protobuf, gzip, to
//! `/api/public/otel/v1/traces` with the `langfuse.*` attributes current
//! Langfuse SDKs set, and scores to `/api/public/scores`: what current servers
//! prefer. [`LangfuseTransport::Ingestion`] sends the legacy
//! `/api/public/ingestion` batch, for older self-hosted servers; its 207
//! answers are read per event, so only the refused items are retried or counted.
//! The mapping is the same for both; `docs/exporters.md` has the table.
//!
//! ## What the exporter needs
//! Only `Ended` span events (plus scores and feedback): each carries the
//! complete span, so output is correct after durable replay, when a span
//! ended without a start in this process, or when a child ends before its
//! parent. Nothing is buffered here: `export` returns once Langfuse answered,
//! and the pipeline worker retries (429/503 honour `Retry-After`), counts
//! permanent failures, and disables the exporter with one clear error when the
//! keys are refused (401/403).
//!
//! ## What Langfuse shows
//! - Usage as Langfuse's exclusive buckets (`input` without the cached
//!   tokens, `output` without the reasoning ones; [`aiobs_core::Usage::exclusive`]),
//!   on the spans that carry billable usage only
//!   ([`aiobs_core::ExportedSpan::billable_usage`]): a step inside a generation
//!   is a plain span with its usage as metadata, never billed twice.
//! - The trace's name, input and output come only from the span that began
//!   the trace ([`aiobs_core::ExportedSpan::is_trace_root`]); a service that
//!   continues an upstream trace never renames it.
//! - Trace metadata (`TracingOptions::metadata`) is trace metadata on every
//!   span, as the official SDK propagates it, and not repeated as
//!   observation metadata.
//!
//! ## Per-span settings: `metadata.langfuse`
//! `prompt = {name, version}` links a generation to a managed prompt;
//! `traceName`, `release`, `version`, `public`, `userId`, `sessionId` and
//! `tags` set trace-level fields. These keys never show up as metadata.
//!
//! ## Feature flags
//! None.

mod config;
mod encode;
mod exporter;
mod mapping;

pub use config::{
    DEFAULT_BASE_URL, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_REQUEST_BYTES, DeliveryMode, ENV_VARS,
    LangfuseBuildError, LangfuseExporterBuilder, LangfuseTransport,
};
pub use exporter::{LangfuseExporter, NAME};
