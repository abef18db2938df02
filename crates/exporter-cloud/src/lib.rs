//! # aiobs-exporter-cloud
//!
//! Sends aiobs events to an HTTP JSON ingest endpoint — a self-hosted
//! collector or a SaaS — as gzip-compressed, versioned JSON envelopes with a
//! bearer token: ended spans to `{endpoint}/v1/spans`, and logs, metrics,
//! scores and feedback to `/v1/logs`, `/v1/metrics`, `/v1/scores`,
//! `/v1/feedback`. The schema is in `docs/exporters.md` ("Cloud").
//!
//! ```
//! use std::time::Duration;
//! use aiobs_core::{Observability, SpanOptions, SpanType};
//! use aiobs_exporter_cloud::CloudExporter;
//! # let ingest = aiobs_conformance::http::ScriptedHttpServer::start()?;
//! # let endpoint = ingest.url();
//!
//! // Or `CloudExporter::from_env()?` with AIOBS_CLOUD_ENDPOINT and AIOBS_CLOUD_TOKEN.
//! let exporter = CloudExporter::builder().endpoint(endpoint).token("secret").build()?;
//! let obs = Observability::builder().service_name("support").exporter(exporter).build()?;
//! obs.start_span(SpanOptions::new("agent run", SpanType::AgentRun)).end();
//! let report = obs.flush_blocking(Duration::from_secs(5));
//! assert!(report.is_success(), "{report}"); // the ingest answered 2xx
//! # assert_eq!(ingest.requests_to("/v1/spans").len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the pipeline does with the ingest's answers (through `aiobs-http`):
//! 429/503 are retried after `Retry-After`; 5xx, timeouts and resets with
//! backoff; 401/403 disable the exporter (logged once, every event counted
//! dropped with reason `exporter_disabled`); a 413 splits the request in
//! halves down to single items. Item ids are stable, so a retried request is
//! safe to ingest twice. A span larger than `max_body_bytes` is sent without
//! its input, output and metadata (marked `truncated`), and refused (counted
//! as a permanent failure) if still too large: it never blocks the queue.
//!
//! For serverless handlers choose the pipeline's inline mode
//! (`ObservabilityBuilder::inline()`) and call `flush_trace` (or `flush`)
//! before responding: the exporter has no timer and no buffer of its own, so
//! when the flush returns the request's spans have been acknowledged.
//!
//! ## Feature flags
//! None.

mod config;
mod encode;
mod exporter;
mod mapping;

/// The request body compression setting, from `aiobs-http`.
pub use aiobs_http::Compression;
pub use config::{CloudBuildError, CloudExporterBuilder, ENV_ENDPOINT, ENV_TOKEN};
pub use encode::SCHEMA_VERSION;
pub use exporter::CloudExporter;
