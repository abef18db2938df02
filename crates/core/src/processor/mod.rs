//! Processors: run once per event, in order, before events fan out to
//! exporters, so no exporter ever sees what a processor removed or redacted.

mod sensitive;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::event::{LogRecord, ObservabilityEvent};
use crate::span::ExportedSpan;

pub use sensitive::{RedactionStyle, SensitiveDataFilter};

/// What a processor decided about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on.
    Keep,
    /// Remove it (counted as dropped with reason `Filtered`).
    Drop,
}

/// A synchronous processor: cheap, no I/O. It may change or drop spans and logs.
/// A processor that panics drops the event (counted `ProcessorPanicked`), never the pipeline.
pub trait SpanProcessor: Send + Sync + Debug + 'static {
    /// A name, for logs.
    fn name(&self) -> &str;
    /// Inspects or changes a span (in `Started`, `Updated` and `Ended` events).
    fn process_span(&self, span: &mut ExportedSpan) -> Verdict;
    /// Inspects or changes a log record. Keeps it by default.
    fn process_log(&self, _log: &mut LogRecord) -> Verdict {
        Verdict::Keep
    }
}

/// An asynchronous processor (enrichment from a lookup, say), run on the
/// pipeline's worker side after the synchronous ones, once per batch of events.
#[async_trait]
pub trait AsyncProcessor: Send + Sync + Debug + 'static {
    /// A name, for logs.
    fn name(&self) -> &str;
    /// Changes events in place; remove an event by taking it out of the vector
    /// (the pipeline counts it as `Filtered`).
    async fn process(&self, events: &mut Vec<Arc<ObservabilityEvent>>);
}

/// Runs one sync processor on one event.
pub(crate) fn apply(p: &dyn SpanProcessor, event: &mut Arc<ObservabilityEvent>) -> Verdict {
    match Arc::make_mut(event) {
        ObservabilityEvent::Span { span, .. } => p.process_span(Arc::make_mut(span)),
        ObservabilityEvent::Log(log) => p.process_log(log),
        _ => Verdict::Keep,
    }
}
