//! # aiobs-core
//!
//! The foundation of aiobs: the span model, the event pipeline with a
//! truthful `flush`, the exporter traits, processors, sampling and delivery
//! accounting. No HTTP, no database: exporters live in their own crates.
//!
//! ```
//! use std::time::Duration;
//! use aiobs_core::{InMemoryExporter, ModelAttributes, Observability, SpanOptions, SpanType, Usage};
//!
//! let memory = InMemoryExporter::new();
//! let obs = Observability::builder().exporter(memory.clone()).build()?;
//! let run = obs.start_span(SpanOptions::new("support-agent", SpanType::AgentRun));
//! let mut llm = run.child(
//!     SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
//!         .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
//! );
//! llm.set_usage(Usage::new(120, 30).with_cache_read(100));
//! llm.end();
//! drop(run); // ended by RAII (counted in stats as ended by drop)
//! let report = obs.flush_blocking(Duration::from_secs(5));
//! assert!(report.is_success(), "{report}");
//! assert_eq!(memory.ended_spans().len(), 2);
//! # Ok::<(), aiobs_core::BuildError>(())
//! ```
//!
//! The data flow (see `docs/architecture.md`): spans end → the sharded
//! ingress queue → processors, once per event → one bounded queue per exporter
//! → that exporter's worker, which batches, retries and accounts. `flush` is a
//! barrier that travels the same path behind the events emitted before it.
//!
//! In async code, end with `obs.shutdown(timeout).await` rather than a guard
//! when the pipeline runs on your `current_thread` runtime
//! ([`RuntimeMode::Handle`]): a guard dropped on that runtime's own thread
//! cannot wait for the pipeline it would block, so it returns at once and its
//! report says why (see [`Observability::guard`]).
//!
//! ```
//! # use std::time::Duration;
//! # use aiobs_core::{InMemoryExporter, Observability, RuntimeMode};
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let obs = Observability::builder()
//!         .exporter(InMemoryExporter::new())
//!         .runtime(RuntimeMode::Handle(tokio::runtime::Handle::current()))
//!         .build()
//!         .unwrap();
//!     // ... the application ...
//!     let report = obs.shutdown(Duration::from_secs(5)).await;
//!     assert!(report.is_success(), "{report}");
//! }
//! ```
//!
//! ## Feature flags
//! None: this crate is always the same. Exporters are chosen with the `aiobs`
//! facade's features.

mod bus;
mod clock;
pub mod event;
pub mod exporter;
pub mod id;
mod memory;
mod observability;
pub mod payload;
pub mod processor;
pub mod sampling;
pub mod semconv;
pub mod span;
pub mod stats;
pub mod tracking;

pub use bus::{OverflowPolicy, RuntimeMode};
pub use event::{
    FeedbackRecord, LogLevel, LogRecord, MetricKind, MetricRecord, ObservabilityEvent, ScoreRecord,
    Signal, Signals, SpanEventKind,
};
pub use exporter::{
    BatchPolicy, Custody, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter,
    ExporterContext, ItemRejection, MAX_RUNNING_BLOCKING_CALLS, RetryPolicy,
};
pub use id::{IdError, SpanId, TraceId, TraceParent};
pub use memory::InMemoryExporter;
pub use observability::{
    BuildError, DEFAULT_TRACE_LEDGER_CAPACITY, Observability, ObservabilityBuilder,
    ObservabilityGuard, SpanFilter,
};
pub use payload::SerializationLimits;
pub use processor::{AsyncProcessor, RedactionStyle, SensitiveDataFilter, SpanProcessor, Verdict};
pub use sampling::{Sampler, SamplingInput};
pub use span::{
    AgentAttributes, Ancestor, Cost, EntityInfo, ExclusiveUsage, ExportedSpan, InputTokenDetails,
    ModelAttributes, OutputTokenDetails, Span, SpanAttributes, SpanError, SpanOptions, SpanStatus,
    SpanType, ToolAttributes, TraceContext, TracingOptions, Usage, WorkflowAttributes,
};
pub use stats::{
    Coverage, DropReason, DroppedEvents, ExporterFlushReport, ExporterStats, FlushReport,
    FlushScope, PipelineStats, Stats,
};
pub use tracking::{Release, TrackedEvent, Tracking, TrackingExporter, TrackingLimits};

/// Re-exported so exporter crates implement the traits with the same macro version.
pub use async_trait::async_trait;
