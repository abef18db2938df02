//! The PostgreSQL backend: one store shared by many application processes.

mod read;
mod schema;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aiobs_core::{TraceId, async_trait};
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use crate::batch::{WriteBatch, WriteOutcome};
use crate::error::{StorageError, StorageErrorKind};
use crate::open::DatabaseUrl;
use crate::query::{PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord};
use crate::storage::{Storage, Strategy, StrategySupport};

/// The schema version this build of aiobs writes to PostgreSQL.
pub const POSTGRES_SCHEMA_VERSION: i64 = schema::LATEST as i64;

/// How to reach a [`PostgresStorage`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PostgresConfig {
    url: String,
    schema: Option<String>,
    connect_timeout: Duration,
    writers: usize,
}

impl PostgresConfig {
    /// A connection string, `postgres://user:password@host:port/database?...`
    /// (anything `tokio-postgres` accepts, key=value form included).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            connect_timeout: Duration::from_secs(10),
            writers: 2,
        }
    }

    /// Keeps aiobs' tables in this schema (created if missing) instead of the
    /// connection's default. Letters, digits and `_` only.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// How long to wait for a connection (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Writer connections (default 2, at least 1). A large batch is split
    /// over them: each connection writes a contiguous range of the batch's
    /// spans, sorted by key, in a transaction of its own, so the server
    /// inserts on several cores while the next part is being encoded. The
    /// write succeeds only when every part has committed; if one fails, the
    /// whole batch is reported failed and may be retried, which is safe
    /// because every write is idempotent (spans keep their most advanced
    /// state, records are keyed by id).
    pub fn writers(mut self, n: usize) -> Self {
        self.writers = n.max(1);
        self
    }
}

/// Fewest spans worth a writer connection of their own: below it, the cost
/// of another transaction outweighs the parallelism.
const MIN_SPANS_PER_WRITER: usize = 128;

/// A connection with the write statements prepared on it (writer only).
struct Conn {
    client: Client,
    statements: Option<write::Statements>,
}

/// Spans, logs, metrics, scores and feedback in PostgreSQL.
///
/// Connects lazily: the first operation connects and migrates the schema
/// (under an advisory lock, so many processes may start at once). Writes use
/// [`PostgresConfig::writers`] connections (default 2), queries another; a
/// dropped connection fails the operation in progress with a transient error
/// and is replaced at the next one. Batches are written with one
/// `INSERT ... SELECT FROM UNNEST(...)` per table, spans upserted so the most
/// advanced state of each span wins; a large batch is split over the writer
/// connections (see [`PostgresConfig::writers`]).
///
/// The connections and all encoding work live on a thread of their own (a
/// small runtime), so neither the caller's executor nor the aiobs pipeline
/// thread does database work, and the storage works from any runtime.
pub struct PostgresStorage {
    inner: Arc<Inner>,
    io: IoThread,
}

/// A thread running a single-threaded runtime for the connections. Dropping
/// it stops the runtime, which closes the connections.
struct IoThread {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl IoThread {
    fn start() -> Result<Self, StorageError> {
        let failed = |e: std::io::Error| {
            StorageError::new(
                StorageErrorKind::Other,
                format!("could not start the PostgreSQL I/O thread: {e}"),
            )
            .with_source(e)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(failed)?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("aiobs-postgres".into())
            .spawn(move || {
                // Runs until the storage (holding `stop`) is dropped.
                let _dropped = rt.block_on(stopped);
            })
            .map_err(failed)?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }
}

struct Inner {
    config: PostgresConfig,
    pg: tokio_postgres::Config,
    describe: String,
    /// The writer connections; a write holds the lock until all its parts commit.
    writers: Mutex<Vec<Option<Conn>>>,
    reader: Mutex<Option<Conn>>,
    migrated: Mutex<bool>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("store", &self.inner.describe)
            .field("schema", &self.inner.config.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Checks the configuration; connects at the first operation.
    pub fn new(config: PostgresConfig) -> Result<Self, StorageError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
            StorageError::invalid(format!("malformed PostgreSQL connection string: {e}"))
        })?;
        pg.connect_timeout(config.connect_timeout);
        if pg.get_application_name().is_none() {
            pg.application_name("aiobs");
        }
        if let Some(s) = &config.schema {
            let ok = !s.is_empty()
                && s.len() <= 63
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(StorageError::invalid(format!(
                    "PostgreSQL schema name {s:?}: use letters, digits and _ (not first), at most 63"
                )));
            }
        }
        let mut describe = format!("PostgreSQL {}", DatabaseUrl::Postgres(config.url.clone()));
        if let Some(s) = &config.schema {
            describe.push_str(&format!(" (schema {s})"));
        }
        let writers = (0..config.writers).map(|_| None).collect();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                pg,
                describe,
                writers: Mutex::new(writers),
                reader: Mutex::new(None),
                migrated: Mutex::new(false),
            }),
            io: IoThread::start()?,
        })
    }

    /// Connects now (and migrates), rather than at the first operation.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StorageError> {
        let s = Self::new(config)?;
        s.init().await?;
        Ok(s)
    }

    /// Runs `op` on the I/O thread. If the caller stops waiting, the
    /// operation still runs to its end (a write commits or rolls back whole).
    async fn run<T, F>(&self, op: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, StorageError>> + Send + 'static,
    {
        match self.io.handle.spawn(op(self.inner.clone())).await {
            Ok(r) => r,
            Err(_) => Err(StorageError::new(
                StorageErrorKind::Closed,
                "the PostgreSQL I/O thread has stopped",
            )),
        }
    }
}

impl Inner {
    async fn open_connection(&self, writer: bool) -> Result<Conn, StorageError> {
        let (mut client, connection) = self
            .pg
            .connect(NoTls)
            .await
            .map_err(|e| classify(e).context(format!("cannot connect to {}", self.describe)))?;
        // The connection task does the I/O; it ends when the client is dropped or the socket closes.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target: "aiobs", error = %e, "PostgreSQL connection closed");
            }
        });
        if let Some(s) = &self.config.schema {
            client
                .batch_execute(&format!("SET search_path TO {}", schema::quote_ident(s)))
                .await
                .map_err(classify)?;
        }
        {
            let mut migrated = self.migrated.lock().await;
            if !*migrated {
                schema::migrate(&mut client, self.config.schema.as_deref(), &self.describe).await?;
                *migrated = true;
            }
        }
        let statements = if writer {
            Some(write::Statements::prepare(&client).await?)
        } else {
            None
        };
        Ok(Conn { client, statements })
    }

    /// Runs `op` on `slot`'s connection, connecting first if needed; a
    /// connection that failed is dropped so the next call reconnects.
    async fn on_slot<T>(
        &self,
        slot: &mut Option<Conn>,
        writer: bool,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            *slot = None;
        }
        let conn = match slot {
            Some(c) => c,
            None => slot.insert(self.open_connection(writer).await?),
        };
        let result = op(conn).await;
        if let Err(e) = &result
            && (conn.client.is_closed() || e.kind() == StorageErrorKind::Unavailable)
        {
            *slot = None;
        }
        result
    }

    /// Runs `op` on the first writer connection.
    async fn with_writer<T>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut writers = self.writers.lock().await;
        self.on_slot(&mut writers[0], true, op).await
    }

    /// Runs `op` on the reader connection.
    async fn with_reader<T>(
        &self,
        op: impl AsyncFnOnce(&mut Conn) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut reader = self.reader.lock().await;
        self.on_slot(&mut reader, false, op).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StorageError> {
        let mut writers = self.writers.lock().await;
        // Sorted by key: every transaction locks rows in the same order, so
        // concurrent writers (these parts, other processes) cannot deadlock.
        let mut order: Vec<usize> = (0..batch.spans().len()).collect();
        order.sort_by_key(|&i| {
            let s = &batch.spans()[i].span;
            (s.trace_id, s.span_id)
        });
        let parts = (order.len() / MIN_SPANS_PER_WRITER).clamp(1, writers.len());
        let per_part = order.len().div_ceil(parts).max(1);
        let mut chunks = order.chunks(per_part);
        let writes = writers.iter_mut().take(parts).enumerate().map(|(i, slot)| {
            let part = write::Part {
                spans: chunks.next().unwrap_or_default(),
                // Logs, metrics, scores and feedback go with the first part.
                records: i == 0,
            };
            let batch = &batch;
            self.on_slot(slot, true, async move |c: &mut Conn| match &c.statements {
                Some(st) => write::write_batch(&mut c.client, st, batch, part).await,
                None => Err(StorageError::new(
                    StorageErrorKind::Other,
                    "writer without statements",
                )),
            })
        });
        let mut out = WriteOutcome::default();
        let mut first_error = None;
        for result in futures_util::future::join_all(writes).await {
            match result {
                Ok(o) => out.rejected.extend(o.rejected),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(out),
            Some(e) if parts > 1 => Err(e.context(format!(
                "writing one of {parts} parts of a batch (the others may have committed; \
                 a retry rewrites them harmlessly)"
            ))),
            Some(e) => Err(e),
        }
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn strategies(&self) -> StrategySupport {
        StrategySupport::all(Strategy::BatchWithUpdates)
    }

    async fn init(&self) -> Result<(), StorageError> {
        self.run(|i| async move { i.with_writer(async |_| Ok(())).await })
            .await
    }

    async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome, StorageError> {
        self.run(|i| async move { i.write(batch).await }).await
    }

    async fn flush(&self) -> Result<(), StorageError> {
        // Writes hold the writers' lock until their commits return: taking it
        // waits for the one in progress, abandoned by its caller or not.
        self.run(|i| async move {
            drop(i.writers.lock().await);
            Ok(())
        })
        .await
    }

    async fn get_trace(&self, trace_id: TraceId) -> Result<Option<TraceRecord>, StorageError> {
        self.run(|i| async move {
            i.with_reader(async |c: &mut Conn| read::get_trace(&mut c.client, trace_id).await)
                .await
        })
        .await
    }

    async fn list_traces(
        &self,
        filter: &TraceFilter,
        page: &PageRequest,
    ) -> Result<TracePage, StorageError> {
        let (filter, page) = (filter.clone(), page.clone());
        self.run(|i| async move {
            i.with_reader(async |c: &mut Conn| {
                read::list_traces(&mut c.client, &filter, &page).await
            })
            .await
        })
        .await
    }

    async fn delete_older_than(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<RetentionReport, StorageError> {
        self.run(|i| async move {
            i.with_writer(async |c: &mut Conn| read::delete_older_than(&mut c.client, cutoff).await)
                .await
        })
        .await
    }
}

/// Classifies a PostgreSQL error by SQLSTATE: lost connections, lock and
/// serialisation conflicts and resource shortages are worth retrying.
pub(crate) fn classify(e: tokio_postgres::Error) -> StorageError {
    let kind = match e.code().map(|c| c.code()) {
        Some(c) if c.starts_with("08") => StorageErrorKind::Unavailable,
        Some("57P01" | "57P02" | "57P03") => StorageErrorKind::Unavailable,
        Some("40001" | "40P01" | "55P03" | "57014") => StorageErrorKind::Busy,
        Some("53100") => StorageErrorKind::DiskFull,
        Some(c) if c.starts_with("53") => StorageErrorKind::Busy,
        Some("25006") => StorageErrorKind::ReadOnly,
        Some(c) if c.starts_with("22") => StorageErrorKind::InvalidInput,
        Some("XX001" | "XX002") => StorageErrorKind::Corrupt,
        Some(_) => StorageErrorKind::Other,
        // No SQLSTATE: the socket, a timeout or a closed connection.
        None => StorageErrorKind::Unavailable,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    StorageError::new(kind, message).with_source(e)
}
