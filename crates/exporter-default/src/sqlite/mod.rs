//! The embedded SQLite backend.

mod read;
mod schema;
mod thread;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiobs_core::{TraceId, async_trait};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::batch::{WriteBatch, WriteOutcome};
use crate::error::{StorageError, StorageErrorKind};
use crate::query::{PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord};
use crate::row::micros;
use crate::storage::{Storage, Strategy, StrategySupport};
use thread::ConnectionThread;

/// The schema version this build of aiobs writes to SQLite.
pub const SQLITE_SCHEMA_VERSION: i64 = schema::LATEST;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    File(PathBuf),
    Memory,
}

/// How to open a [`SqliteStorage`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SqliteConfig {
    location: Location,
    busy_timeout: Duration,
    max_size_bytes: Option<u64>,
    cache_size_kib: u32,
    read_only: bool,
}

impl SqliteConfig {
    /// A database file (created if missing, with its directory's permissions).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::at(Location::File(path.into()))
    }

    /// A private in-memory database, gone when the storage is dropped.
    pub fn in_memory() -> Self {
        Self::at(Location::Memory)
    }

    fn at(location: Location) -> Self {
        Self {
            location,
            busy_timeout: Duration::from_secs(5),
            max_size_bytes: None,
            cache_size_kib: 16 * 1024,
            read_only: false,
        }
    }

    /// How long a write waits for another writer's lock before failing with
    /// a transient [`StorageErrorKind::Busy`] error (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Caps the database size: writes beyond it fail with a transient
    /// [`StorageErrorKind::DiskFull`] error, as on a full disk (default: no cap).
    pub fn max_size_bytes(mut self, bytes: u64) -> Self {
        self.max_size_bytes = Some(bytes);
        self
    }

    /// Page cache per connection, in KiB (default 16 MiB).
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib.max(64);
        self
    }

    /// Opens the file read-only: queries work, writes fail with
    /// [`StorageErrorKind::ReadOnly`]. The schema must be current.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    fn describe(&self) -> String {
        match &self.location {
            Location::File(p) => format!("SQLite database {}", p.display()),
            Location::Memory => "in-memory SQLite database".into(),
        }
    }

    fn connect(&self) -> Result<Connection, StorageError> {
        let opened = match &self.location {
            Location::Memory => Connection::open_in_memory(),
            Location::File(path) => {
                let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
                flags |= if self.read_only {
                    OpenFlags::SQLITE_OPEN_READ_ONLY
                } else {
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
                };
                Connection::open_with_flags(path, flags)
            }
        };
        let conn =
            opened.map_err(|e| classify(e).context(format!("cannot open {}", self.describe())))?;
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(self.busy_timeout)?;
            if !self.read_only && matches!(self.location, Location::File(_)) {
                // WAL: readers never block the writer, and commits need no fsync of the database file.
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| {
                    r.get::<_, String>(0)
                })?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
            }
            conn.pragma_update(None, "cache_size", -i64::from(self.cache_size_kib))?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            if let Some(max) = self.max_size_bytes {
                let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
                let pages = (max as i64 / page.max(512)).max(1);
                conn.pragma_update_and_check(None, "max_page_count", pages, |r| {
                    r.get::<_, i64>(0)
                })?;
            }
            conn.set_prepared_statement_cache_capacity(64);
            Ok(())
        };
        setup().map_err(|e| classify(e).context(format!("cannot set up {}", self.describe())))?;
        Ok(conn)
    }
}

/// Spans, logs, metrics, scores and feedback in SQLite: a file (WAL mode, many
/// processes may share it) or memory.
///
/// Every write runs on a dedicated connection thread, never on the async
/// executor; queries on a file run on a second connection, so they neither
/// wait for nor block the writer.
///
/// ```
/// use aiobs_exporter_default::{SqliteStorage, Storage, TraceFilter, PageRequest};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("aiobs-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let store = SqliteStorage::open(dir.join("traces.db"))?;
/// let page = store.list_traces(&TraceFilter::new(), &PageRequest::first(20)).await?;
/// assert!(page.traces.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SqliteStorage {
    describe: String,
    writer: ConnectionThread,
    /// `None` for in-memory databases, whose data only the writer's connection sees.
    reader: Option<ConnectionThread>,
}

impl SqliteStorage {
    /// Opens (creating if needed) a database file and migrates its schema.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Self::open_with(SqliteConfig::file(path.as_ref()))
    }

    /// A private in-memory database.
    pub fn in_memory() -> Result<Self, StorageError> {
        Self::open_with(SqliteConfig::in_memory())
    }

    /// Opens with explicit settings. Blocks while it opens and migrates (a
    /// few milliseconds; longer if another process holds the write lock).
    pub fn open_with(config: SqliteConfig) -> Result<Self, StorageError> {
        let describe = config.describe();
        let mut conn = config.connect()?;
        if config.read_only {
            schema::check(&conn, &describe)?;
        } else {
            schema::migrate(&mut conn, &describe)?;
        }
        let reader = match (&config.location, config.read_only) {
            (Location::File(_), false) => {
                let r = config.connect()?;
                r.pragma_update(None, "query_only", true)
                    .map_err(classify)?;
                Some(ConnectionThread::spawn("reader", r)?)
            }
            _ => None,
        };
        Ok(Self {
            writer: ConnectionThread::spawn("writer", conn)?,
            reader,
            describe,
        })
    }

    fn reader(&self) -> &ConnectionThread {
        self.reader.as_ref().unwrap_or(&self.writer)
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn strategies(&self) -> StrategySupport {
        StrategySupport::all(Strategy::BatchWithUpdates)
    }

    async fn init(&self) -> Result<(), StorageError> {
        // Opened and migrated in `open`; a newer aiobs may have migrated the
        // file since, which this build must not write to.
        let describe = self.describe.clone();
        self.writer.call(move |c| schema::check(c, &describe)).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StorageError> {
        self.writer
            .call(move |c| write::write_batch(c, &batch))
            .await
    }

    async fn flush(&self) -> Result<(), StorageError> {
        // Jobs run in order: when this no-op runs, every earlier write has committed.
        self.writer.call(|_| Ok(())).await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceRecord>, StorageError> {
        self.reader()
            .call(move |c| read::get_trace(c, trace_id))
            .await
    }

    async fn list_traces(
        &self,
        filter: &TraceFilter,
        page: &PageRequest,
    ) -> Result<TracePage, StorageError> {
        let (filter, page) = (filter.clone(), page.clone());
        self.reader()
            .call(move |c| read::list_traces(c, &filter, &page))
            .await
    }

    async fn delete_older_than(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<RetentionReport, StorageError> {
        let cutoff = micros(cutoff);
        self.writer
            .call(move |c| read::delete_older_than(c, cutoff))
            .await
    }
}

impl std::fmt::Display for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Classifies a SQLite error: locks and full disks are worth retrying;
/// read-only files, corruption and SQL errors are not.
pub(crate) fn classify(e: rusqlite::Error) -> StorageError {
    let kind = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageErrorKind::Busy,
        Some(ErrorCode::DiskFull) => StorageErrorKind::DiskFull,
        Some(ErrorCode::SystemIoFailure | ErrorCode::OutOfMemory) => StorageErrorKind::Unavailable,
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => StorageErrorKind::ReadOnly,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StorageErrorKind::Corrupt,
        _ => StorageErrorKind::Other,
    };
    StorageError::new(kind, e.to_string()).with_source(e)
}
