//! `InMemoryExporter`: keeps every event it receives, for tests and examples.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::event::{ObservabilityEvent, Signals, SpanEventKind};
use crate::exporter::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext, RetryPolicy,
};
use crate::id::TraceId;
use crate::span::ExportedSpan;

/// Keeps every event it receives, in order, also after shutdown. Clones share
/// the same records, so keep one clone to inspect after handing one to the builder.
#[derive(Debug, Clone)]
pub struct InMemoryExporter {
    name: String,
    signals: Signals,
    policy: BatchPolicy,
    records: Arc<Mutex<Vec<Arc<ObservabilityEvent>>>>,
    shutdowns: Arc<Mutex<u32>>,
}

impl Default for InMemoryExporter {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryExporter {
    /// An exporter named `memory` that subscribes to every signal.
    pub fn new() -> Self {
        Self {
            name: "memory".into(),
            signals: Signals::ALL,
            policy: BatchPolicy::default().with_max_wait(Duration::from_millis(100)),
            records: Arc::default(),
            shutdowns: Arc::default(),
        }
    }
    /// Renames it (names must be unique within one `Observability`).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Subscribes to these signals only.
    #[must_use]
    pub fn with_signals(mut self, signals: Signals) -> Self {
        self.signals = signals;
        self
    }
    /// Uses this batch policy.
    #[must_use]
    pub fn with_batch_policy(mut self, policy: BatchPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Every event received.
    pub fn events(&self) -> Vec<Arc<ObservabilityEvent>> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
    /// The spans of every `Ended` event.
    pub fn ended_spans(&self) -> Vec<Arc<ExportedSpan>> {
        self.events()
            .iter()
            .filter_map(|e| match &**e {
                ObservabilityEvent::Span {
                    kind: SpanEventKind::Ended,
                    span,
                } => Some(span.clone()),
                _ => None,
            })
            .collect()
    }
    /// The ended spans of one trace.
    pub fn trace(&self, trace_id: TraceId) -> Vec<Arc<ExportedSpan>> {
        self.ended_spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
    /// How many times `shutdown` was called.
    pub fn shutdown_count(&self) -> u32 {
        self.shutdowns.lock().map(|n| *n).unwrap_or(0)
    }
    /// Forgets every record.
    pub fn clear(&self) {
        if let Ok(mut r) = self.records.lock() {
            r.clear();
        }
    }
}

#[async_trait]
impl Exporter for InMemoryExporter {
    fn name(&self) -> &str {
        &self.name
    }
    fn signals(&self) -> Signals {
        self.signals
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.policy
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut r = self
            .records
            .lock()
            .map_err(|_| ExportError::permanent("in-memory store poisoned"))?;
        r.extend(batch.iter().cloned());
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Nothing buffered here: every export is stored before it returns.
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        if let Ok(mut n) = self.shutdowns.lock() {
            *n += 1;
        }
        Ok(())
    }
}
