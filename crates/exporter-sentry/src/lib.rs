//! # aiobs-exporter-sentry
//!
//! Sends aiobs traces to [Sentry](https://sentry.io) for its AI Agents
//! monitoring: each root span becomes a transaction (`gen_ai.invoke_agent`,
//! …) with its children (`gen_ai.chat` with model and token usage,
//! `gen_ai.execute_tool` with arguments and result, …) in `spans[]`, and each
//! failed span a separate error event linked to it, carrying the
//! application's own stack.
//!
//! ```no_run
//! use std::time::Duration;
//! use aiobs_core::{ModelAttributes, Observability, SpanOptions, SpanType, TracingOptions, Usage};
//! use aiobs_exporter_sentry::SentryExporter;
//!
//! // SENTRY_DSN, and optionally SENTRY_ENVIRONMENT and SENTRY_RELEASE.
//! let sentry = SentryExporter::from_env()?;
//! let obs = Observability::builder().exporter(sentry).build()?;
//!
//! let run = obs.start_span(
//!     SpanOptions::new("weather-agent", SpanType::AgentRun)
//!         .tracing(TracingOptions::new().user_id("user-123").session_id("session-abc")),
//! );
//! let mut llm = run.child(
//!     SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
//!         .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
//! );
//! llm.set_usage(Usage::new(120, 30).with_cache_read(100));
//! llm.end();
//! drop(run); // the root ends: its transaction goes with the chat span inside
//!
//! let report = obs.flush_blocking(Duration::from_secs(10));
//! assert!(report.is_success(), "{report}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Your own Sentry client is left alone
//! The exporter never uses a `sentry::Client` or the process-wide `Hub`: it
//! builds events with the `sentry` crate's protocol types, serialises them
//! with its envelope code, honours rate limits with its `RateLimiter`, and
//! sends them itself over aiobs' HTTP layer, so `export` returns only once
//! Sentry answered each envelope (and says which were refused). An
//! application that calls `sentry::init` keeps its client, scope and settings.
//!
//! ## What Sentry shows
//! - A root span ends with its children gathered: one transaction, the
//!   root in `contexts.trace`, its children in `spans[]`.
//! - A child whose root has not ended when `flush` is called (still running,
//!   or it ends in another process after a durable replay), a child that ends
//!   after its root was sent, or children past the hold bounds: a transaction
//!   of their own, headed by the child (tagged `aiobs.segment: detached:<why>`),
//!   whose `parent_span_id` is the parent span: the trace view nests it under
//!   that span, as for a downstream service.
//! - A failed span: its status is `internal_error` and an error event
//!   (`exception` from the span's error) links to it through `contexts.trace`.
//!
//! `docs/exporters.md` has the field-by-field mapping tables.
//!
//! ## Rate limits and sizes
//! `429` with `Retry-After` and `X-Sentry-Rate-Limits` (per category, on any
//! answer) are recorded by the `sentry` crate's `RateLimiter`: nothing is sent
//! for a limited category until the limit passes; the items are reported
//! throttled, and the pipeline retries after the wait (or counts them). A
//! payload over Relay's 1 MiB limit has its longest data values truncated
//! with a marker; a `413` splits a transaction's children over two envelopes.
//!
//! ## Feature flags
//! None.

mod config;
mod encode;
mod exporter;
mod mapping;

pub use config::{DEFAULT_MAX_EVENT_BYTES, ENV_VARS, SentryBuildError, SentryExporterBuilder};
pub use exporter::{NAME, SentryExporter};
