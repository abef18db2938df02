//! The `Storage` trait every backend implements, and the write strategies.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use aiobs_core::{TraceId, async_trait};
use chrono::{DateTime, Utc};

use crate::batch::{WriteBatch, WriteOutcome};
use crate::error::StorageError;
use crate::query::{PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord};

/// How the [`DefaultExporter`](crate::DefaultExporter) writes spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Strategy {
    /// The storage's preferred strategy.
    #[default]
    Auto,
    /// Every event is written as soon as it arrives (no waiting for a batch to
    /// fill): running spans are visible at once, at the cost of one
    /// transaction per event when traffic is light.
    Realtime,
    /// Span starts, updates and ends are batched; a start and end in the same
    /// batch are written once. Running spans are visible after one batch.
    BatchWithUpdates,
    /// Only ended spans are written, batched: the fewest writes, but running
    /// spans are invisible until they end.
    InsertOnly,
}

impl Strategy {
    /// The kebab-case name (`batch-with-updates`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Realtime => "realtime",
            Self::BatchWithUpdates => "batch-with-updates",
            Self::InsertOnly => "insert-only",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "auto" => Ok(Self::Auto),
            "realtime" => Ok(Self::Realtime),
            "batch-with-updates" => Ok(Self::BatchWithUpdates),
            "insert-only" => Ok(Self::InsertOnly),
            other => Err(format!(
                "unknown strategy {other:?}: expected realtime, batch-with-updates, insert-only or auto"
            )),
        }
    }
}

/// The strategies a storage supports, and the one it prefers (what
/// [`Strategy::Auto`] resolves to).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StrategySupport {
    /// Supported strategies (never `Auto`).
    pub supported: Vec<Strategy>,
    /// The preferred one, among `supported`.
    pub preferred: Strategy,
}

impl StrategySupport {
    /// Every strategy, preferring `preferred`.
    pub fn all(preferred: Strategy) -> Self {
        Self {
            supported: vec![
                Strategy::Realtime,
                Strategy::BatchWithUpdates,
                Strategy::InsertOnly,
            ],
            preferred,
        }
    }
}

/// A store for spans, logs, metrics, scores and feedback, with a query API
/// and retention. SQLite and PostgreSQL implement it; so can anyone.
///
/// Contracts every implementation keeps (the shared storage test suite checks them):
/// - [`write`](Storage::write) commits the whole batch in one transaction and
///   returns only after the commit, or fails having written nothing.
/// - Per span, the most advanced state wins (see [`SpanWrite`](crate::SpanWrite)):
///   an update never precedes its create, and an end event alone creates the span.
/// - Writing the same batch twice stores nothing twice (ids are idempotency keys).
/// - Errors are classified ([`StorageError::kind`]) so callers know whether to retry.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// A short name for the backend (`sqlite`, `postgres`): the exporter's default name.
    fn kind(&self) -> &'static str;

    /// The write strategies this storage supports and prefers.
    fn strategies(&self) -> StrategySupport;

    /// Connects and brings the schema up to date. Idempotent; other methods
    /// call it as needed. Fails with [`StorageErrorKind::SchemaTooNew`](crate::StorageErrorKind::SchemaTooNew)
    /// when the store was written by a newer aiobs.
    async fn init(&self) -> Result<(), StorageError>;

    /// Creates or updates the batch's spans and inserts its records, in one transaction.
    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StorageError>;

    /// Returns once every write started before the call has finished (one that
    /// an abandoned caller left running included).
    async fn flush(&self) -> Result<(), StorageError>;

    /// Everything stored for one trace; `None` when nothing is.
    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceRecord>, StorageError>;

    /// One page of traces matching `filter`, newest first.
    async fn list_traces(
        &self,
        filter: &TraceFilter,
        page: &PageRequest,
    ) -> Result<TracePage, StorageError>;

    /// Retention: removes what is older than `cutoff` (see [`RetentionReport`]).
    async fn delete_older_than(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<RetentionReport, StorageError>;
}

macro_rules! forward_storage {
    ($ty:ty) => {
        #[async_trait]
        impl<S: Storage + ?Sized> Storage for $ty {
            fn kind(&self) -> &'static str {
                (**self).kind()
            }
            fn strategies(&self) -> StrategySupport {
                (**self).strategies()
            }
            async fn init(&self) -> Result<(), StorageError> {
                (**self).init().await
            }
            async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StorageError> {
                (**self).write(batch).await
            }
            async fn flush(&self) -> Result<(), StorageError> {
                (**self).flush().await
            }
            async fn get_trace(
                &self,
                trace_id: TraceId,
            ) -> Result<Option<TraceRecord>, StorageError> {
                (**self).get_trace(trace_id).await
            }
            async fn list_traces(
                &self,
                filter: &TraceFilter,
                page: &PageRequest,
            ) -> Result<TracePage, StorageError> {
                (**self).list_traces(filter, page).await
            }
            async fn delete_older_than(
                &self,
                cutoff: DateTime<Utc>,
            ) -> Result<RetentionReport, StorageError> {
                (**self).delete_older_than(cutoff).await
            }
        }
    };
}

// Wrappers forward every method, `flush` included.
forward_storage!(Arc<S>);
forward_storage!(Box<S>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for s in [
            Strategy::Auto,
            Strategy::Realtime,
            Strategy::BatchWithUpdates,
            Strategy::InsertOnly,
        ] {
            assert_eq!(s.as_str().parse::<Strategy>().unwrap(), s);
        }
        assert_eq!(
            "batch_with_updates".parse::<Strategy>().unwrap(),
            Strategy::BatchWithUpdates
        );
        assert!("sometimes".parse::<Strategy>().is_err());
    }
}
