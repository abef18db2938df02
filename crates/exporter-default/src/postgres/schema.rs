//! The PostgreSQL schema, versioned in code, migrated under an advisory lock so
//! that many processes starting at once migrate it once.

use tokio_postgres::Client;

use super::classify;
use crate::error::StorageError;

const V1: &str = "
CREATE TABLE aiobs_spans (
    trace_id BYTEA NOT NULL,
    span_id BIGINT NOT NULL,
    parent_span_id BIGINT,
    phase SMALLINT NOT NULL,
    name TEXT NOT NULL,
    span_type TEXT NOT NULL,
    status TEXT NOT NULL,
    is_root BOOLEAN NOT NULL,
    start_time TIMESTAMPTZ NOT NULL,
    end_time TIMESTAMPTZ,
    user_id TEXT,
    session_id TEXT,
    entity_type TEXT,
    entity_id TEXT,
    entity_name TEXT,
    tags JSONB,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cached_tokens BIGINT,
    data TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX aiobs_spans_start ON aiobs_spans (start_time);
CREATE INDEX aiobs_spans_roots ON aiobs_spans (start_time, trace_id, span_id) WHERE is_root;
CREATE INDEX aiobs_spans_root_user ON aiobs_spans (user_id, start_time) WHERE is_root;
CREATE INDEX aiobs_spans_root_session ON aiobs_spans (session_id, start_time) WHERE is_root;
CREATE INDEX aiobs_spans_errors ON aiobs_spans (trace_id) WHERE status = 'error';

CREATE TABLE aiobs_logs (
    record_id TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    level TEXT NOT NULL,
    trace_id BYTEA,
    span_id BIGINT,
    message TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (timestamp, record_id)
);
CREATE INDEX aiobs_logs_trace ON aiobs_logs (trace_id) WHERE trace_id IS NOT NULL;

CREATE TABLE aiobs_metrics (
    record_id TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    trace_id BYTEA,
    span_id BIGINT,
    data TEXT NOT NULL,
    PRIMARY KEY (timestamp, record_id)
);
CREATE INDEX aiobs_metrics_name ON aiobs_metrics (name, timestamp);

CREATE TABLE aiobs_scores (
    record_id TEXT PRIMARY KEY,
    trace_id BYTEA NOT NULL,
    span_id BIGINT,
    name TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX aiobs_scores_trace ON aiobs_scores (trace_id);

CREATE TABLE aiobs_feedback (
    record_id TEXT PRIMARY KEY,
    trace_id BYTEA NOT NULL,
    span_id BIGINT,
    key TEXT NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX aiobs_feedback_trace ON aiobs_feedback (trace_id);
";

/// Every migration, in order. Append; never edit a released one.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this code writes.
pub(crate) const LATEST: i32 = MIGRATIONS.len() as i32;

/// Creates the schema (if one is configured) and brings it up to [`LATEST`].
/// The connection's `search_path` must already point at the schema.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: Option<&str>,
    store: &str,
) -> Result<(), StorageError> {
    let tx = client.transaction().await.map_err(classify)?;
    let lock_key = format!("aiobs-migrate:{}", schema.unwrap_or(""));
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
        .await
        .map_err(classify)?;
    if let Some(s) = schema {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)))
            .await
            .map_err(classify)?;
    }
    tx.batch_execute("CREATE TABLE IF NOT EXISTS aiobs_schema (version INTEGER NOT NULL)")
        .await
        .map_err(classify)?;
    let found: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM aiobs_schema", &[])
        .await
        .map_err(classify)?
        .get(0);
    if found > LATEST {
        return Err(StorageError::schema_too_new(
            found.into(),
            LATEST.into(),
            store,
        ));
    }
    if found < LATEST {
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.batch_execute(sql).await.map_err(|e| {
                classify(e).context(format!("migrating {store} to schema version {}", i + 1))
            })?;
        }
        tx.execute("DELETE FROM aiobs_schema", &[])
            .await
            .map_err(classify)?;
        tx.execute("INSERT INTO aiobs_schema (version) VALUES ($1)", &[&LATEST])
            .await
            .map_err(classify)?;
    }
    tx.commit().await.map_err(classify)
}

/// A schema name as a quoted identifier. Names are checked when configured
/// (letters, digits, `_`), so quoting is belt and braces.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
