//! Queries and retention on PostgreSQL.

use std::collections::HashMap;

use aiobs_core::{EntityInfo, SpanType, TraceId};
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};

use super::classify;
use crate::error::StorageError;
use crate::query::{
    HAS_ERROR, PageRequest, RetentionReport, TraceFilter, TracePage, TraceRecord, TraceStatus,
    TraceSummary, UsageTotals, cost_sql, first_root_sql, like_pattern, model_types_sql,
};
use crate::row::{
    from_micros, parse_json, span_from_i64, span_to_i64, trace_from_bytes, without_nul,
};

async fn data_rows<T: serde::de::DeserializeOwned, C: GenericClient>(
    client: &C,
    what: &str,
    sql: &str,
    key: &[u8],
) -> Result<Vec<T>, StorageError> {
    let rows = client.query(sql, &[&key]).await.map_err(classify)?;
    rows.iter()
        .map(|r| parse_json(what, r.get::<_, &str>(0)))
        .collect()
}

pub(crate) async fn get_trace(
    client: &mut Client,
    trace_id: TraceId,
) -> Result<Option<TraceRecord>, StorageError> {
    // One repeatable-read transaction: a consistent snapshot of the trace.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(classify)?;
    let key = trace_id.to_bytes();
    let spans = data_rows(
        &tx,
        "span",
        "SELECT data FROM aiobs_spans WHERE trace_id = $1 ORDER BY start_time, span_id",
        &key,
    )
    .await?;
    let logs = data_rows(
        &tx,
        "log",
        "SELECT data FROM aiobs_logs WHERE trace_id = $1 ORDER BY timestamp, record_id",
        &key,
    )
    .await?;
    let scores = data_rows(
        &tx,
        "score",
        "SELECT data FROM aiobs_scores WHERE trace_id = $1 ORDER BY timestamp, record_id",
        &key,
    )
    .await?;
    let feedback = data_rows(
        &tx,
        "feedback",
        "SELECT data FROM aiobs_feedback WHERE trace_id = $1 ORDER BY timestamp, record_id",
        &key,
    )
    .await?;
    tx.commit().await.map_err(classify)?;
    Ok(TraceRecord::assemble(
        trace_id, spans, logs, scores, feedback,
    ))
}

type Param = Box<dyn ToSql + Sync + Send>;

/// Builds the SQL of one page of root rows, numbering placeholders as it goes.
struct PageQuery {
    sql: String,
    args: Vec<Param>,
}

impl PageQuery {
    fn arg(&mut self, v: Param) -> String {
        self.args.push(v);
        format!("${}", self.args.len())
    }
    fn and(&mut self, cond: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(cond);
    }
    fn and_value(&mut self, template: &str, v: Param) {
        let p = self.arg(v);
        self.and(&template.replace('?', &p));
    }
    fn any_span(&mut self, column_cond: &str, v: Param) {
        let p = self.arg(v);
        self.and(&format!(
            "EXISTS (SELECT 1 FROM aiobs_spans e WHERE e.trace_id = r.trace_id AND e.{})",
            column_cond.replace('?', &p)
        ));
    }
}

fn text(s: &str) -> Param {
    Box::new(without_nul(s).into_owned())
}

fn page_query(filter: &TraceFilter, page: &PageRequest) -> Result<PageQuery, StorageError> {
    let mut q = PageQuery {
        sql: String::from(
            "SELECT r.trace_id, r.span_id, r.name, r.span_type, r.start_time, r.end_time, r.user_id, \
             r.session_id, r.tags::text, r.entity_type, r.entity_id, r.entity_name \
             FROM aiobs_spans r WHERE r.is_root AND ",
        ),
        args: Vec::new(),
    };
    q.sql.push_str(&first_root_sql("o.is_root"));
    if let Some(t) = filter.started_after {
        q.and_value("r.start_time >= ?", Box::new(t));
    }
    if let Some(t) = filter.started_before {
        q.and_value("r.start_time < ?", Box::new(t));
    }
    if let Some(n) = &filter.root_name {
        q.and_value("r.name = ?", text(n));
    }
    if let Some(t) = filter.trace_id {
        q.and_value("r.trace_id = ?", Box::new(t.to_bytes().to_vec()));
    }
    if let Some(u) = &filter.user_id {
        q.and_value("r.user_id = ?", text(u));
    }
    if let Some(s) = &filter.session_id {
        q.and_value("r.session_id = ?", text(s));
    }
    if let Some(t) = filter.span_type {
        q.any_span("span_type = ?", Box::new(t.as_str()));
    }
    if let Some(id) = &filter.entity_id {
        q.any_span("entity_id = ?", text(id));
    }
    if let Some(n) = &filter.entity_name {
        q.any_span("entity_name = ?", text(n));
    }
    if let Some(t) = &filter.name_contains {
        q.any_span("name ILIKE ? ESCAPE '\\'", text(&like_pattern(t)));
    }
    if !filter.tags.is_empty() {
        let clean: Vec<String> = filter
            .tags
            .iter()
            .map(|t| without_nul(t).into_owned())
            .collect();
        let json = serde_json::to_string(&clean).unwrap_or_else(|_| "[]".into());
        q.and_value("r.tags @> (?::text)::jsonb", Box::new(json));
    }
    match filter.status {
        Some(TraceStatus::Error) => q.and(HAS_ERROR),
        Some(TraceStatus::Ok) => q.and(&format!("r.end_time IS NOT NULL AND NOT {HAS_ERROR}")),
        Some(TraceStatus::Running) => q.and(&format!("r.end_time IS NULL AND NOT {HAS_ERROR}")),
        None => {}
    }
    if let Some(c) = &page.cursor {
        let start = from_micros(c.start_us)
            .map_err(|_| StorageError::invalid("page cursor time out of range"))?;
        let start = q.arg(Box::new(start));
        let trace = q.arg(Box::new(c.trace_id.to_bytes().to_vec()));
        let span = q.arg(Box::new(span_to_i64(c.span_id)));
        q.and(&format!(
            "(r.start_time, r.trace_id, r.span_id) < ({start}, {trace}, {span})"
        ));
    }
    let limit = q.arg(Box::new(page.effective_limit() as i64 + 1));
    q.sql.push_str(&format!(
        " ORDER BY r.start_time DESC, r.trace_id DESC, r.span_id DESC LIMIT {limit}"
    ));
    Ok(q)
}

struct Aggregates {
    spans: u64,
    errors: u64,
    usage: UsageTotals,
}

async fn aggregates<C: GenericClient>(
    client: &C,
    traces: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, Aggregates>, StorageError> {
    if traces.is_empty() {
        return Ok(HashMap::new());
    }
    let models = model_types_sql();
    let top = format!("(p.span_type IS NULL OR p.span_type NOT IN ({models}))");
    // Only spans with usage (a non-null token count) have their JSON read.
    let cost = cost_sql(|f| format!("(s.data::jsonb #>> '{{attributes,usage,cost,{f}}}')::float8"));
    let sql = format!(
        "SELECT s.trace_id, COUNT(*), COUNT(*) FILTER (WHERE s.status = 'error'), \
         COALESCE(SUM(s.input_tokens) FILTER (WHERE {top}), 0)::int8, \
         COALESCE(SUM(s.output_tokens) FILTER (WHERE {top}), 0)::int8, \
         COALESCE(SUM(s.cached_tokens) FILTER (WHERE {top}), 0)::int8, \
         SUM(CASE WHEN {top} AND s.input_tokens IS NOT NULL THEN {cost} END) \
         FROM aiobs_spans s LEFT JOIN aiobs_spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id \
         WHERE s.trace_id = ANY($1::bytea[]) GROUP BY s.trace_id"
    );
    let rows = client.query(&sql, &[&traces]).await.map_err(classify)?;
    let n = |v: i64| v.max(0) as u64;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, Vec<u8>>(0),
                Aggregates {
                    spans: n(r.get(1)),
                    errors: n(r.get(2)),
                    usage: UsageTotals {
                        input_tokens: n(r.get(3)),
                        output_tokens: n(r.get(4)),
                        cached_input_tokens: n(r.get(5)),
                        cost_usd: r.get(6),
                    },
                },
            )
        })
        .collect())
}

pub(crate) async fn list_traces(
    client: &mut Client,
    filter: &TraceFilter,
    page: &PageRequest,
) -> Result<TracePage, StorageError> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(classify)?;
    let q = page_query(filter, page)?;
    let args: Vec<&(dyn ToSql + Sync)> =
        q.args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
    let rows = tx.query(&q.sql, &args).await.map_err(classify)?;
    let mut roots = Vec::with_capacity(rows.len());
    for r in &rows {
        let key: Vec<u8> = r.get(0);
        let end: Option<DateTime<Utc>> = r.get(5);
        let tags: Option<&str> = r.get(8);
        let entity_type: Option<String> = r.get(9);
        let entity_id: Option<String> = r.get(10);
        let summary = TraceSummary {
            trace_id: trace_from_bytes(&key)?,
            root_span_id: span_from_i64(r.get(1))?,
            name: r.get(2),
            span_type: SpanType::parse(r.get(3)).unwrap_or(SpanType::Generic),
            status: if end.is_some() {
                TraceStatus::Ok
            } else {
                TraceStatus::Running
            },
            start_time: r.get(4),
            end_time: end,
            span_count: 0,
            error_count: 0,
            user_id: r.get(6),
            session_id: r.get(7),
            tags: match tags {
                Some(t) => parse_json("tags", t)?,
                None => Vec::new(),
            },
            entity: match (entity_type, entity_id) {
                (Some(entity_type), Some(id)) => Some(EntityInfo {
                    entity_type,
                    id,
                    name: r.get(11),
                }),
                _ => None,
            },
            usage: UsageTotals::default(),
        };
        roots.push((key, summary));
    }
    let keys: Vec<Vec<u8>> = roots.iter().map(|(k, _)| k.clone()).collect();
    let mut agg = aggregates(&tx, &keys).await?;
    tx.commit().await.map_err(classify)?;
    let traces = roots
        .into_iter()
        .map(|(key, mut summary)| {
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

pub(crate) async fn delete_older_than(
    client: &mut Client,
    cutoff: DateTime<Utc>,
) -> Result<RetentionReport, StorageError> {
    let tx = client.transaction().await.map_err(classify)?;
    tx.execute(
        "CREATE TEMP TABLE aiobs_doomed ON COMMIT DROP AS \
         SELECT DISTINCT o.trace_id FROM aiobs_spans o WHERE o.start_time < $1 \
         AND NOT EXISTS (SELECT 1 FROM aiobs_spans n WHERE n.trace_id = o.trace_id AND n.start_time >= $1)",
        &[&cutoff],
    )
    .await
    .map_err(classify)?;
    let traces: i64 = tx
        .query_one("SELECT COUNT(*) FROM aiobs_doomed", &[])
        .await
        .map_err(classify)?
        .get(0);
    let doomed = "SELECT trace_id FROM pg_temp.aiobs_doomed";
    let spans = tx
        .execute(
            &format!("DELETE FROM aiobs_spans WHERE trace_id IN ({doomed})"),
            &[],
        )
        .await
        .map_err(classify)?;
    let logs = tx
        .execute(
            &format!("DELETE FROM aiobs_logs WHERE timestamp < $1 OR trace_id IN ({doomed})"),
            &[&cutoff],
        )
        .await
        .map_err(classify)?;
    let metrics = tx
        .execute("DELETE FROM aiobs_metrics WHERE timestamp < $1", &[&cutoff])
        .await
        .map_err(classify)?;
    let orphan = |table: &str| {
        format!(
            "DELETE FROM {table} t WHERE t.trace_id IN ({doomed}) OR (t.timestamp < $1 AND NOT EXISTS \
             (SELECT 1 FROM aiobs_spans s WHERE s.trace_id = t.trace_id))"
        )
    };
    let scores = tx
        .execute(&orphan("aiobs_scores"), &[&cutoff])
        .await
        .map_err(classify)?;
    let feedback = tx
        .execute(&orphan("aiobs_feedback"), &[&cutoff])
        .await
        .map_err(classify)?;
    tx.commit().await.map_err(classify)?;
    Ok(RetentionReport {
        traces: traces.max(0) as u64,
        spans,
        logs,
        metrics,
        scores,
        feedback,
    })
}
