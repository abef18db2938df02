//! The SQLite schema, versioned in code: migration `i` brings version `i` to `i + 1`.
//!
//! Spans live in a rowid table: the rowid grows with insertion time, so rows
//! append at the end of the table; trace and span ids are a 16-byte blob and
//! an integer under one unique index (the upsert key). Indexes serve the
//! queries: roots by time (partial: roots only), roots by user and session,
//! failing spans by trace, and all spans by start time (retention).

use rusqlite::{Connection, TransactionBehavior};

use super::classify;
use crate::error::{StorageError, StorageErrorKind};

const V1: &str = "
CREATE TABLE aiobs_spans (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id INTEGER NOT NULL,
    parent_span_id INTEGER,
    phase INTEGER NOT NULL,
    name TEXT NOT NULL,
    span_type TEXT NOT NULL,
    status TEXT NOT NULL,
    is_root INTEGER NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER,
    user_id TEXT,
    session_id TEXT,
    entity_type TEXT,
    entity_id TEXT,
    entity_name TEXT,
    tags TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cached_tokens INTEGER,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX aiobs_spans_key ON aiobs_spans (trace_id, span_id);
CREATE INDEX aiobs_spans_start ON aiobs_spans (start_time);
CREATE INDEX aiobs_spans_roots ON aiobs_spans (start_time, trace_id, span_id) WHERE is_root = 1;
CREATE INDEX aiobs_spans_root_user ON aiobs_spans (user_id, start_time) WHERE is_root = 1;
CREATE INDEX aiobs_spans_root_session ON aiobs_spans (session_id, start_time) WHERE is_root = 1;
CREATE INDEX aiobs_spans_errors ON aiobs_spans (trace_id) WHERE status = 'error';

CREATE TABLE aiobs_logs (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    level TEXT NOT NULL,
    trace_id BLOB,
    span_id INTEGER,
    message TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX aiobs_logs_key ON aiobs_logs (timestamp, record_id);
CREATE INDEX aiobs_logs_trace ON aiobs_logs (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE aiobs_metrics (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    value REAL,
    trace_id BLOB,
    span_id INTEGER,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX aiobs_metrics_key ON aiobs_metrics (timestamp, record_id);
CREATE INDEX aiobs_metrics_name ON aiobs_metrics (name, timestamp);

CREATE TABLE aiobs_scores (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    trace_id BLOB NOT NULL,
    span_id INTEGER,
    name TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX aiobs_scores_trace ON aiobs_scores (trace_id);

CREATE TABLE aiobs_feedback (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    trace_id BLOB NOT NULL,
    span_id INTEGER,
    key TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX aiobs_feedback_trace ON aiobs_feedback (trace_id);
";

/// Every migration, in order. Append; never edit a released one.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this code writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

fn stored_version(conn: &Connection) -> Result<i64, StorageError> {
    let has_table: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'aiobs_schema')",
            [],
            |r| r.get(0),
        )
        .map_err(classify)?;
    if !has_table {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM aiobs_schema",
        [],
        |r| r.get(0),
    )
    .map_err(classify)
}

/// Brings the schema up to [`LATEST`], in one immediate transaction so that
/// processes opening the same file at once migrate it once.
pub(crate) fn migrate(conn: &mut Connection, store: &str) -> Result<(), StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let found = stored_version(&tx)?;
    if found > LATEST {
        return Err(StorageError::schema_too_new(found, LATEST, store));
    }
    if found == LATEST {
        return Ok(()); // dropping the transaction ends it; nothing was written
    }
    tx.execute_batch("CREATE TABLE IF NOT EXISTS aiobs_schema (version INTEGER NOT NULL)")
        .map_err(classify)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(|e| {
            classify(e).context(format!("migrating {store} to schema version {}", i + 1))
        })?;
    }
    tx.execute("DELETE FROM aiobs_schema", [])
        .map_err(classify)?;
    tx.execute("INSERT INTO aiobs_schema (version) VALUES (?1)", [LATEST])
        .map_err(classify)?;
    tx.commit().map_err(classify)
}

/// For read-only connections: the schema must already be the one this code reads.
pub(crate) fn check(conn: &Connection, store: &str) -> Result<(), StorageError> {
    let found = stored_version(conn)?;
    match found {
        f if f > LATEST => Err(StorageError::schema_too_new(f, LATEST, store)),
        f if f < LATEST => Err(StorageError::new(
            StorageErrorKind::ReadOnly,
            format!(
                "{store} has aiobs schema version {f}, this aiobs reads version {LATEST}; \
                 open it once read-write to migrate it"
            ),
        )),
        _ => Ok(()),
    }
}
