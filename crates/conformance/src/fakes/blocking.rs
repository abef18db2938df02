//! `BlockingExporter`: an exporter whose `export` blocks its thread, as a
//! synchronous vendor SDK call, a DNS lookup or a large compression can.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext, RetryPolicy,
    Signals, async_trait,
};

/// Blocks the calling thread (`std::thread::sleep`) for a set time in every
/// `export`, `flush` and `shutdown` call, then acknowledges. The hostile
/// neighbour of the `neighbour_blocks` scenario.
#[derive(Debug, Clone)]
pub struct BlockingExporter {
    name: String,
    block: Duration,
    calls: Arc<AtomicUsize>,
}

impl BlockingExporter {
    /// An exporter named `blocking-neighbour` that blocks `block` per call.
    pub fn new(block: Duration) -> Self {
        Self {
            name: "blocking-neighbour".into(),
            block,
            calls: Arc::default(),
        }
    }

    /// Renames it (names must be unique within one `Observability`).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// `export` calls that started.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }
}

#[async_trait]
impl Exporter for BlockingExporter {
    fn name(&self) -> &str {
        &self.name
    }
    fn signals(&self) -> Signals {
        Signals::ALL
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default().with_max_wait(Duration::from_millis(5))
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, _batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        self.calls.fetch_add(1, Ordering::AcqRel);
        std::thread::sleep(self.block);
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        std::thread::sleep(self.block);
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        std::thread::sleep(self.block);
        Ok(())
    }
}
