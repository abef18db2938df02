//! `DefaultExporter`: the pipeline's events into a [`Storage`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ItemRejection, RetryPolicy, Signal, Signals, async_trait,
};

use crate::batch::{BatchItem, WriteBatch};
use crate::error::StorageError;
use crate::storage::{Storage, Strategy};

/// Why a [`DefaultExporter`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The storage does not support the requested strategy.
    #[error(
        "the {storage} storage does not support the {strategy} strategy (it supports: {supported})"
    )]
    UnsupportedStrategy {
        /// The storage kind.
        storage: String,
        /// The requested strategy.
        strategy: Strategy,
        /// What it supports.
        supported: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Persists spans, logs, metrics, scores and feedback through a [`Storage`]
/// (SQLite or PostgreSQL), with the strategy of your choice.
///
/// The pipeline worker batches (default: 1000 events, 5 s, queue of 10 000)
/// and retries transient failures (default: 4 retries from 500 ms, doubling);
/// this exporter writes each batch in one transaction and classifies errors
/// (a locked or full database is transient, a read-only one permanent, a
/// schema from a newer aiobs disables the exporter). `export` returns only
/// after the commit, so a returned `flush` means the events are in the store.
#[derive(Debug, Clone)]
pub struct DefaultExporter {
    name: String,
    storage: Arc<dyn Storage>,
    strategy: Strategy,
    batch: BatchPolicy,
    retry: RetryPolicy,
}

impl DefaultExporter {
    /// Starts configuring an exporter over `storage`.
    pub fn builder(storage: impl Storage) -> DefaultExporterBuilder {
        Self::builder_shared(Arc::new(storage))
    }

    /// Starts configuring an exporter over a storage you keep a handle to
    /// (to query it later).
    pub fn builder_shared(storage: Arc<dyn Storage>) -> DefaultExporterBuilder {
        DefaultExporterBuilder {
            name: None,
            storage,
            strategy: Strategy::Auto,
            batch: None,
            retry: RetryPolicy::default(),
        }
    }

    /// An exporter with the default settings, over the store named by
    /// `AIOBS_DATABASE_URL` (`sqlite://path`, `sqlite::memory:`,
    /// `postgres://...`), or `./aiobs.db` when it is unset.
    pub fn from_env() -> Result<Self, ConfigError> {
        let storage = crate::open::open_from_env()?;
        Self::builder_shared(storage).build()
    }

    /// The storage, to query what was written.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The strategy in use (never `Auto`).
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Maps a storage's per-item refusals back to the events of the batch.
    fn rejections(
        items: &[Option<BatchItem>],
        rejected: Vec<crate::batch::RejectedItem>,
    ) -> Vec<ItemRejection> {
        let mut out = Vec::new();
        for r in rejected {
            for (index, item) in items.iter().enumerate() {
                if *item == Some(r.item) {
                    out.push(ItemRejection {
                        index,
                        class: ErrorClass::Permanent,
                        message: r.reason.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Configures a [`DefaultExporter`].
#[derive(Debug)]
#[must_use]
pub struct DefaultExporterBuilder {
    name: Option<String>,
    storage: Arc<dyn Storage>,
    strategy: Strategy,
    batch: Option<BatchPolicy>,
    retry: RetryPolicy,
}

impl DefaultExporterBuilder {
    /// The exporter's name in stats and reports (default: the storage kind,
    /// `sqlite` or `postgres`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The write strategy (default [`Strategy::Auto`]: the storage's preferred one).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Batching (default [`BatchPolicy::default`]; with [`Strategy::Realtime`],
    /// `max_wait` is forced to zero).
    pub fn batch_policy(mut self, policy: BatchPolicy) -> Self {
        self.batch = Some(policy);
        self
    }

    /// Retries (default [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Resolves the strategy against what the storage supports.
    pub fn build(self) -> Result<DefaultExporter, ConfigError> {
        let support = self.storage.strategies();
        let strategy = match self.strategy {
            Strategy::Auto => support.preferred,
            s => s,
        };
        if !support.supported.contains(&strategy) {
            return Err(ConfigError::UnsupportedStrategy {
                storage: self.storage.kind().to_owned(),
                strategy,
                supported: support
                    .supported
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut batch = self.batch.unwrap_or_default();
        if strategy == Strategy::Realtime {
            batch = batch.with_max_wait(Duration::ZERO);
        }
        Ok(DefaultExporter {
            name: self.name.unwrap_or_else(|| self.storage.kind().to_owned()),
            storage: self.storage,
            strategy,
            batch,
            retry: self.retry,
        })
    }
}

/// Waits for `fut` until `deadline`, as a transient error past it.
async fn until<T>(
    deadline: Instant,
    fut: impl std::future::Future<Output = Result<T, StorageError>>,
) -> Result<T, ExportError> {
    match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), fut).await {
        Ok(r) => r.map_err(ExportError::from),
        Err(_) => Err(ExportError::transient(
            "the store did not finish its pending writes before the deadline",
        )),
    }
}

#[async_trait]
impl Exporter for DefaultExporter {
    fn name(&self) -> &str {
        &self.name
    }

    fn signals(&self) -> Signals {
        let records = [Signal::Log, Signal::Metric, Signal::Score, Signal::Feedback];
        let spans = match self.strategy {
            Strategy::InsertOnly => Signals::ENDED_SPANS,
            _ => Signals::ALL_SPANS,
        };
        records.into_iter().fold(spans, Signals::with)
    }

    fn batch_policy(&self) -> BatchPolicy {
        self.batch
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        self.storage.init().await.map_err(ExportError::from)
    }

    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut write = WriteBatch::new();
        // Which write item each event went into (several span events may share one).
        let items: Vec<Option<BatchItem>> =
            batch.iter().map(|e| write.push_event(e.clone())).collect();
        let outcome = self.storage.write(write).await?;
        let mut rejected = Self::rejections(&items, outcome.rejected);
        for (index, item) in items.iter().enumerate() {
            if item.is_none() {
                rejected.push(ItemRejection {
                    index,
                    class: ErrorClass::Permanent,
                    message: format!(
                        "{} does not store events of this kind ({})",
                        self.name,
                        batch[index].identity()
                    ),
                });
            }
        }
        Ok(if rejected.is_empty() {
            ExportOutcome::all_delivered()
        } else {
            ExportOutcome::partial(rejected)
        })
    }

    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        // Every export returned after its commit; this also waits for a write
        // an abandoned (timed-out) export left running.
        until(deadline, self.storage.flush()).await
    }

    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        // The storage stays usable for queries by whoever else holds it; its
        // connections close when the last handle is dropped.
        until(deadline, self.storage.flush()).await
    }
}
