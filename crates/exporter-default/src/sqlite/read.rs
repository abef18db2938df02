//! Queries and retention on SQLite.

use std::collections::HashMap;

use aiobs_core::{EntityInfo, SpanType, TraceId};
use rusqlite::types::Value;
use rusqlite::{Connection, TransactionBehavior, params_from_iter};

use super::classify;
use crate::error::StorageError;
use crate::query::{
    HAS_ERROR, PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord, TraceStatus,
    TraceSummary, UsageTotals, cost_sql, first_root_sql, like_pattern, model_types_sql,
};
use crate::row::{from_micros, micros, parse_json, span_from_i64, trace_from_bytes};

fn data_rows<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    what: &str,
    sql: &str,
    key: &[u8],
) -> Result<Vec<T>, StorageError> {
    let mut stmt = conn.prepare_cached(sql).map_err(classify)?;
    let mut rows = stmt.query([key]).map_err(classify)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(classify)? {
        let text: String = row.get(0).map_err(classify)?;
        out.push(parse_json(what, &text)?);
    }
    Ok(out)
}

pub(crate) fn get_trace(
    conn: &mut Connection,
    trace_id: TraceId,
) -> Result<Option<TraceRecord>, StorageError> {
    // One read transaction: a consistent snapshot of the trace.
    let tx = conn.transaction().map_err(classify)?;
    let key = trace_id.to_bytes();
    let spans = data_rows(
        &tx,
        "span",
        "SELECT data FROM aiobs_spans WHERE trace_id = ?1 ORDER BY start_time, id",
        &key,
    )?;
    let logs = data_rows(
        &tx,
        "log",
        "SELECT data FROM aiobs_logs WHERE trace_id = ?1 ORDER BY timestamp, id",
        &key,
    )?;
    let scores = data_rows(
        &tx,
        "score",
        "SELECT data FROM aiobs_scores WHERE trace_id = ?1 ORDER BY timestamp, id",
        &key,
    )?;
    let feedback = data_rows(
        &tx,
        "feedback",
        "SELECT data FROM aiobs_feedback WHERE trace_id = ?1 ORDER BY timestamp, id",
        &key,
    )?;
    Ok(TraceRecord::assemble(
        trace_id, spans, logs, scores, feedback,
    ))
}

fn any_span(column: &str) -> String {
    format!("EXISTS (SELECT 1 FROM aiobs_spans e WHERE e.trace_id = r.trace_id AND e.{column})")
}

/// The root rows matching `filter`, one page plus one (to know whether more follow).
fn page_sql(filter: &TraceFilter, page: &PageRequest) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT r.trace_id, r.span_id, r.name, r.span_type, r.start_time, r.end_time, r.user_id, \
         r.session_id, r.tags, r.entity_type, r.entity_id, r.entity_name \
         FROM aiobs_spans r WHERE r.is_root = 1 AND ",
    );
    sql.push_str(&first_root_sql("o.is_root = 1"));
    let mut args = Vec::new();
    let mut and = |cond: &str, v: Option<Value>| {
        sql.push_str(" AND ");
        sql.push_str(cond);
        args.extend(v);
    };
    if let Some(t) = filter.started_after {
        and("r.start_time >= ?", Some(Value::Integer(micros(t))));
    }
    if let Some(t) = filter.started_before {
        and("r.start_time < ?", Some(Value::Integer(micros(t))));
    }
    if let Some(n) = &filter.root_name {
        and("r.name = ?", Some(Value::Text(n.clone())));
    }
    if let Some(t) = filter.trace_id {
        and("r.trace_id = ?", Some(Value::Blob(t.to_bytes().to_vec())));
    }
    if let Some(u) = &filter.user_id {
        and("r.user_id = ?", Some(Value::Text(u.clone())));
    }
    if let Some(s) = &filter.session_id {
        and("r.session_id = ?", Some(Value::Text(s.clone())));
    }
    if let Some(t) = filter.span_type {
        and(
            &any_span("span_type = ?"),
            Some(Value::Text(t.as_str().into())),
        );
    }
    if let Some(id) = &filter.entity_id {
        and(&any_span("entity_id = ?"), Some(Value::Text(id.clone())));
    }
    if let Some(n) = &filter.entity_name {
        and(&any_span("entity_name = ?"), Some(Value::Text(n.clone())));
    }
    if let Some(text) = &filter.name_contains {
        and(
            &any_span("name LIKE ? ESCAPE '\\'"),
            Some(Value::Text(like_pattern(text))),
        );
    }
    for tag in &filter.tags {
        and(
            "EXISTS (SELECT 1 FROM json_each(r.tags) WHERE json_each.value = ?)",
            Some(Value::Text(tag.clone())),
        );
    }
    match filter.status {
        Some(TraceStatus::Error) => and(HAS_ERROR, None),
        Some(TraceStatus::Ok) => and(&format!("r.end_time IS NOT NULL AND NOT {HAS_ERROR}"), None),
        Some(TraceStatus::Running) => and(&format!("r.end_time IS NULL AND NOT {HAS_ERROR}"), None),
        None => {}
    }
    if let Some(c) = &page.cursor {
        and("(r.start_time, r.trace_id, r.span_id) < (?, ?, ?)", None);
        args.push(Value::Integer(c.start_us));
        args.push(Value::Blob(c.trace_id.to_bytes().to_vec()));
        args.push(Value::Integer(crate::row::span_to_i64(c.span_id)));
    }
    sql.push_str(" ORDER BY r.start_time DESC, r.trace_id DESC, r.span_id DESC LIMIT ?");
    args.push(Value::Integer(page.effective_limit() as i64 + 1));
    (sql, args)
}

struct Aggregates {
    spans: u64,
    errors: u64,
    usage: UsageTotals,
}

/// Span counts, errors and top-level model usage of the listed traces.
fn aggregates(
    conn: &Connection,
    traces: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, Aggregates>, StorageError> {
    if traces.is_empty() {
        return Ok(HashMap::new());
    }
    let marks = vec!["?"; traces.len()].join(", ");
    let models = model_types_sql();
    let top = format!("(p.span_type IS NULL OR p.span_type NOT IN ({models}))");
    // Only spans with usage (a non-null token count) have their JSON read.
    let cost = cost_sql(|f| format!("json_extract(s.data, '$.attributes.usage.cost.{f}')"));
    let sql = format!(
        "SELECT s.trace_id, COUNT(*), SUM(s.status = 'error'), \
         SUM(CASE WHEN {top} THEN s.input_tokens END), SUM(CASE WHEN {top} THEN s.output_tokens END), \
         SUM(CASE WHEN {top} THEN s.cached_tokens END), \
         SUM(CASE WHEN {top} AND s.input_tokens IS NOT NULL THEN {cost} END) \
         FROM aiobs_spans s LEFT JOIN aiobs_spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id \
         WHERE s.trace_id IN ({marks}) GROUP BY s.trace_id"
    );
    let mut stmt = conn.prepare(&sql).map_err(classify)?;
    let mut rows = stmt
        .query(params_from_iter(traces.iter()))
        .map_err(classify)?;
    let mut out = HashMap::new();
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    while let Some(row) = rows.next().map_err(classify)? {
        let key: Vec<u8> = row.get(0).map_err(classify)?;
        out.insert(
            key,
            Aggregates {
                spans: n(row.get(1).map_err(classify)?),
                errors: n(row.get(2).map_err(classify)?),
                usage: UsageTotals {
                    input_tokens: n(row.get(3).map_err(classify)?),
                    output_tokens: n(row.get(4).map_err(classify)?),
                    cached_input_tokens: n(row.get(5).map_err(classify)?),
                    cost_usd: row.get(6).map_err(classify)?,
                },
            },
        );
    }
    Ok(out)
}

pub(crate) fn list_traces(
    conn: &mut Connection,
    filter: &TraceFilter,
    page: &PageRequest,
) -> Result<TracePage, StorageError> {
    let tx = conn.transaction().map_err(classify)?;
    let (sql, args) = page_sql(filter, page);
    struct Root {
        key: Vec<u8>,
        summary: TraceSummary,
    }
    let mut roots = Vec::new();
    {
        let mut stmt = tx.prepare_cached(&sql).map_err(classify)?;
        let mut rows = stmt.query(params_from_iter(args)).map_err(classify)?;
        while let Some(r) = rows.next().map_err(classify)? {
            let key: Vec<u8> = r.get(0).map_err(classify)?;
            let span_type: String = r.get(3).map_err(classify)?;
            let tags: Option<String> = r.get(8).map_err(classify)?;
            let entity_type: Option<String> = r.get(9).map_err(classify)?;
            let entity_id: Option<String> = r.get(10).map_err(classify)?;
            let end: Option<i64> = r.get(5).map_err(classify)?;
            let summary = TraceSummary {
                trace_id: trace_from_bytes(&key)?,
                root_span_id: span_from_i64(r.get(1).map_err(classify)?)?,
                name: r.get(2).map_err(classify)?,
                span_type: SpanType::parse(&span_type).unwrap_or(SpanType::Generic),
                status: if end.is_some() {
                    TraceStatus::Ok
                } else {
                    TraceStatus::Running
                },
                start_time: from_micros(r.get(4).map_err(classify)?)?,
                end_time: end.map(from_micros).transpose()?,
                span_count: 0,
                error_count: 0,
                user_id: r.get(6).map_err(classify)?,
                session_id: r.get(7).map_err(classify)?,
                tags: match tags {
                    Some(t) => parse_json("tags", &t)?,
                    None => Vec::new(),
                },
                entity: match (entity_type, entity_id) {
                    (Some(entity_type), Some(id)) => Some(EntityInfo {
                        entity_type,
                        id,
                        name: r.get(11).map_err(classify)?,
                    }),
                    _ => None,
                },
                usage: UsageTotals::default(),
            };
            roots.push(Root { key, summary });
        }
    }
    let keys: Vec<Vec<u8>> = roots.iter().map(|r| r.key.clone()).collect();
    let mut agg = aggregates(&tx, &keys)?;
    let traces = roots
        .into_iter()
        .map(|Root { key, mut summary }| {
            if let Some(a) = agg.remove(&key) {
                summary.span_count = a.spans;
                summary.error_count = a.errors;
                summary.usage = a.usage;
                if a.errors > 0 {
                    summary.status = TraceStatus::Error;
                }
            }
            summary
        })
        .collect();
    Ok(TracePage::from_rows(traces, page.effective_limit()))
}

pub(crate) fn delete_older_than(
    conn: &mut Connection,
    cutoff: i64,
) -> Result<RetentionReport, StorageError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS aiobs_doomed (trace_id BLOB PRIMARY KEY); DELETE FROM aiobs_doomed;",
    )
    .map_err(classify)?;
    let run = |sql: &str| -> Result<u64, StorageError> {
        tx.execute(sql, [cutoff])
            .map(|n| n as u64)
            .map_err(classify)
    };
    let traces = run(
        "INSERT OR IGNORE INTO aiobs_doomed SELECT o.trace_id FROM aiobs_spans o WHERE o.start_time < ?1 \
         AND NOT EXISTS (SELECT 1 FROM aiobs_spans n WHERE n.trace_id = o.trace_id AND n.start_time >= ?1)",
    )?;
    let doomed = "SELECT trace_id FROM aiobs_doomed";
    let spans = tx
        .execute(
            &format!("DELETE FROM aiobs_spans WHERE trace_id IN ({doomed})"),
            [],
        )
        .map_err(classify)? as u64;
    let logs = run(&format!(
        "DELETE FROM aiobs_logs WHERE timestamp < ?1 OR trace_id IN ({doomed})"
    ))?;
    let metrics = run("DELETE FROM aiobs_metrics WHERE timestamp < ?1")?;
    let orphan = |table: &str| {
        format!(
            "DELETE FROM {table} WHERE trace_id IN ({doomed}) OR (timestamp < ?1 AND NOT EXISTS \
             (SELECT 1 FROM aiobs_spans s WHERE s.trace_id = {table}.trace_id))"
        )
    };
    let scores = run(&orphan("aiobs_scores"))?;
    let feedback = run(&orphan("aiobs_feedback"))?;
    tx.execute_batch("DELETE FROM aiobs_doomed")
        .map_err(classify)?;
    tx.commit().map_err(classify)?;
    Ok(RetentionReport {
        traces,
        spans,
        logs,
        metrics,
        scores,
        feedback,
    })
}
