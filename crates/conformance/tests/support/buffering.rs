//! An exporter that buffers like a vendor SDK (delivering on flush), and two
//! broken ways to hold it: a flush that does not drain, and a wrapper that
//! does not forward flush.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aiobs_conformance::{DeliveredItem, Destination, Harness, HarnessError, in_memory_items};
use aiobs_core::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    InMemoryExporter, ObservabilityEvent, RetryPolicy, Signals, async_trait,
};

/// Accepts batches into its own queue; `flush` (if `drain_on_flush`) and
/// `shutdown` hand the queue to the destination (an in-memory store).
#[derive(Debug)]
pub struct BufferingExporter {
    queue: Mutex<Vec<Arc<ObservabilityEvent>>>,
    destination: InMemoryExporter,
    drain_on_flush: bool,
}

impl BufferingExporter {
    pub fn new(destination: InMemoryExporter, drain_on_flush: bool) -> Self {
        Self {
            queue: Mutex::default(),
            destination,
            drain_on_flush,
        }
    }

    async fn drain(&self) -> Result<(), ExportError> {
        let queued = std::mem::take(&mut *self.queue.lock().unwrap());
        if queued.is_empty() {
            return Ok(());
        }
        self.destination.export(&queued).await.map(|_| ())
    }
}

#[async_trait]
impl Exporter for BufferingExporter {
    fn name(&self) -> &str {
        "buffering"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        self.queue.lock().unwrap().extend(batch.iter().cloned());
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        if self.drain_on_flush {
            self.drain().await
        } else {
            // BUG (deliberate): says Ok while events still wait in the queue.
            Ok(())
        }
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        self.drain().await
    }
}

/// A `Box`-like wrapper that forwards everything except `flush`: the
/// sentry-rust `Arc<Transport>` bug.
#[derive(Debug)]
pub struct NoFlushForwarding<E>(pub E);

#[async_trait]
impl<E: Exporter> Exporter for NoFlushForwarding<E> {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn signals(&self) -> Signals {
        self.0.signals()
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.0.batch_policy()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.0.retry_policy()
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        self.0.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        self.0.export(batch).await
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // BUG (deliberate): the "default body" that does nothing.
        Ok(())
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        self.0.shutdown(deadline).await
    }
}

fn store(dest: &Destination) -> InMemoryExporter {
    dest.shared(InMemoryExporter::new)
}

fn probe(dest: &Destination) -> Result<Vec<DeliveredItem>, HarnessError> {
    Ok(in_memory_items(&store(dest)))
}

/// A correct buffering exporter.
pub fn buffering() -> Harness {
    Harness::local(|dest| BufferingExporter::new(store(dest), true))
        .probe(probe)
        .named("BufferingExporter")
}

/// A buffering exporter whose flush returns Ok without draining.
pub fn lazy_flush() -> Harness {
    Harness::local(|dest| BufferingExporter::new(store(dest), false))
        .probe(probe)
        .named("BufferingExporter with a flush that does not drain")
}

/// The correct buffering exporter behind a wrapper that does not forward flush.
pub fn flush_not_forwarded() -> Harness {
    Harness::local(|dest| NoFlushForwarding(BufferingExporter::new(store(dest), true)))
        .probe(probe)
        .named("BufferingExporter behind a wrapper that does not forward flush")
}
