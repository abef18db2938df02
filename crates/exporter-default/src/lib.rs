//! # aiobs-exporter-default
//!
//! The exporter that needs no vendor account: spans, logs, metrics, scores and
//! feedback go to an embedded SQLite file or to a PostgreSQL server shared by
//! many processes, and a query API reads them back (get a trace, list traces
//! with filters and pagination, retention).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use aiobs_core::{Observability, SpanOptions, SpanType};
//! use aiobs_exporter_default::{DefaultExporter, SqliteStorage, Storage};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store: Arc<dyn Storage> = Arc::new(SqliteStorage::in_memory()?); // or SqliteStorage::open("aiobs.db")
//! let exporter = DefaultExporter::builder_shared(store.clone()).build()?;
//! let obs = Observability::builder().exporter(exporter).build()?;
//!
//! let mut run = obs.start_span(SpanOptions::new("support-agent", SpanType::AgentRun));
//! let trace_id = run.trace_id();
//! run.end_with_output("done");
//!
//! let report = obs.flush(Duration::from_secs(5)).await;
//! assert!(report.is_success(), "{report}");
//! let trace = store.get_trace(trace_id).await?.expect("stored");
//! assert_eq!(trace.spans[0].name, "support-agent");
//! # Ok(()) }
//! ```
//!
//! - [`Storage`]: the backend trait; [`SqliteStorage`] and [`PostgresStorage`]
//!   implement it and pass one shared test suite.
//! - [`DefaultExporter`]: the core `Exporter` over any `Storage`, with the
//!   strategies `realtime`, `batch-with-updates`, `insert-only` and `auto`.
//! - [`open`] / [`DatabaseUrl`]: a store from `sqlite://…`, `sqlite::memory:`
//!   or `postgres://…` (what `AIOBS_DATABASE_URL` holds).
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | [`SqliteStorage`] (rusqlite with SQLite compiled in) |
//! | `postgres` | yes | [`PostgresStorage`] (tokio-postgres) |

mod batch;
mod error;
mod exporter;
mod open;
mod query;
mod row;
mod storage;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use batch::{BatchItem, RejectedItem, SpanWrite, WriteBatch, WriteOutcome};
pub use error::{StorageError, StorageErrorKind};
pub use exporter::{ConfigError, DefaultExporter, DefaultExporterBuilder};
pub use open::{DATABASE_URL_ENV, DEFAULT_DATABASE, DatabaseUrl, database_url_from_env, open};
pub use query::{
    Cursor, PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord, TraceStatus,
    TraceSummary, UsageTotals,
};
pub use storage::{Storage, Strategy, StrategySupport};

#[cfg(feature = "postgres")]
pub use postgres::{POSTGRES_SCHEMA_VERSION, PostgresConfig, PostgresStorage};
#[cfg(feature = "sqlite")]
pub use sqlite::{SQLITE_SCHEMA_VERSION, SqliteConfig, SqliteStorage};
