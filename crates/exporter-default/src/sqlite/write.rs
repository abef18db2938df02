//! One batch, one immediate transaction, cached prepared statements.

use rusqlite::{Connection, TransactionBehavior, params};

use super::classify;
use crate::batch::{BatchItem, RejectedItem, WriteBatch, WriteOutcome};
use crate::error::StorageError;
use crate::row::{SpanColumns, level_str, metric_json, metric_kind_str, micros, span_to_i64};

/// Keeps, per span, the most advanced state (`phase`): a late `Started` never
/// overwrites an `Ended` row, and an `Ended` without a stored start creates it.
const UPSERT_SPAN: &str = "
INSERT INTO aiobs_spans (trace_id, span_id, parent_span_id, phase, name, span_type, status,
    is_root, start_time, end_time, user_id, session_id, entity_type, entity_id, entity_name,
    tags, input_tokens, output_tokens, cached_tokens, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)
ON CONFLICT (trace_id, span_id) DO UPDATE SET
    parent_span_id = excluded.parent_span_id, phase = excluded.phase, name = excluded.name,
    span_type = excluded.span_type, status = excluded.status, is_root = excluded.is_root,
    start_time = excluded.start_time, end_time = excluded.end_time, user_id = excluded.user_id,
    session_id = excluded.session_id, entity_type = excluded.entity_type,
    entity_id = excluded.entity_id, entity_name = excluded.entity_name, tags = excluded.tags,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    cached_tokens = excluded.cached_tokens, data = excluded.data
WHERE excluded.phase >= aiobs_spans.phase";

const INSERT_LOG: &str = "
INSERT INTO aiobs_logs (record_id, timestamp, level, trace_id, span_id, message, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (timestamp, record_id) DO NOTHING";

const INSERT_METRIC: &str = "
INSERT INTO aiobs_metrics (record_id, timestamp, name, kind, value, trace_id, span_id, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (timestamp, record_id) DO NOTHING";

const UPSERT_SCORE: &str = "
INSERT INTO aiobs_scores (record_id, trace_id, span_id, name, timestamp, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (record_id) DO UPDATE SET trace_id = excluded.trace_id, span_id = excluded.span_id,
    name = excluded.name, timestamp = excluded.timestamp, data = excluded.data";

const UPSERT_FEEDBACK: &str = "
INSERT INTO aiobs_feedback (record_id, trace_id, span_id, key, timestamp, data)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (record_id) DO UPDATE SET trace_id = excluded.trace_id, span_id = excluded.span_id,
    key = excluded.key, timestamp = excluded.timestamp, data = excluded.data";

/// Serialises `value` into `buf` (reused between rows), or says why it cannot.
fn json<'b, T: serde::Serialize + ?Sized>(
    buf: &'b mut Vec<u8>,
    value: &T,
) -> Result<&'b str, String> {
    buf.clear();
    serde_json::to_writer(&mut *buf, value).map_err(|e| format!("cannot serialise: {e}"))?;
    std::str::from_utf8(buf).map_err(|e| format!("serialised JSON is not UTF-8: {e}"))
}

pub(crate) fn write_batch(
    conn: &mut Connection,
    batch: &WriteBatch,
) -> Result<WriteOutcome, StorageError> {
    let mut out = WriteOutcome::default();
    if batch.is_empty() {
        return Ok(out);
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let mut buf = Vec::with_capacity(2048);
    if !batch.spans().is_empty() {
        let mut stmt = tx.prepare_cached(UPSERT_SPAN).map_err(classify)?;
        for (i, w) in batch.spans().iter().enumerate() {
            let data = match json(&mut buf, &*w.span) {
                Ok(d) => d,
                Err(reason) => {
                    out.rejected.push(RejectedItem {
                        item: BatchItem::Span(i),
                        reason,
                    });
                    continue;
                }
            };
            let c = SpanColumns::of(w);
            stmt.execute(params![
                &c.trace_id[..],
                c.span_id,
                c.parent_span_id,
                c.phase,
                c.name,
                c.span_type,
                c.status,
                c.is_root,
                micros(c.start_time),
                c.end_time.map(micros),
                c.user_id,
                c.session_id,
                c.entity_type,
                c.entity_id,
                c.entity_name,
                c.tags,
                c.input_tokens,
                c.output_tokens,
                c.cached_tokens,
                data,
            ])
            .map_err(classify)?;
        }
    }
    let mut logs = None;
    for (i, l) in batch.logs().enumerate() {
        let stmt = match &mut logs {
            Some(s) => s,
            None => logs.insert(tx.prepare_cached(INSERT_LOG).map_err(classify)?),
        };
        let data = match json(&mut buf, l) {
            Ok(d) => d,
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Log(i),
                    reason,
                });
                continue;
            }
        };
        stmt.execute(params![
            l.id,
            micros(l.timestamp),
            level_str(l.level),
            l.trace_id.map(|t| t.to_bytes().to_vec()),
            l.span_id.map(span_to_i64),
            l.message,
            data,
        ])
        .map_err(classify)?;
    }
    let mut metrics = None;
    for (i, m) in batch.metrics().enumerate() {
        let stmt = match &mut metrics {
            Some(s) => s,
            None => metrics.insert(tx.prepare_cached(INSERT_METRIC).map_err(classify)?),
        };
        let data = match metric_json(m) {
            Ok(d) => d,
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Metric(i),
                    reason,
                });
                continue;
            }
        };
        stmt.execute(params![
            m.id,
            micros(m.timestamp),
            m.name,
            metric_kind_str(m.kind),
            m.value,
            m.trace_id.map(|t| t.to_bytes().to_vec()),
            m.span_id.map(span_to_i64),
            data,
        ])
        .map_err(classify)?;
    }
    let mut scores = None;
    for (i, s) in batch.scores().enumerate() {
        let stmt = match &mut scores {
            Some(st) => st,
            None => scores.insert(tx.prepare_cached(UPSERT_SCORE).map_err(classify)?),
        };
        let data = match json(&mut buf, s) {
            Ok(d) => d,
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Score(i),
                    reason,
                });
                continue;
            }
        };
        stmt.execute(params![
            s.id,
            &s.trace_id.to_bytes()[..],
            s.span_id.map(span_to_i64),
            s.name,
            micros(s.timestamp),
            data,
        ])
        .map_err(classify)?;
    }
    let mut feedback = None;
    for (i, f) in batch.feedback().enumerate() {
        let stmt = match &mut feedback {
            Some(st) => st,
            None => feedback.insert(tx.prepare_cached(UPSERT_FEEDBACK).map_err(classify)?),
        };
        let data = match json(&mut buf, f) {
            Ok(d) => d,
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Feedback(i),
                    reason,
                });
                continue;
            }
        };
        stmt.execute(params![
            f.id,
            &f.trace_id.to_bytes()[..],
            f.span_id.map(span_to_i64),
            f.key,
            micros(f.timestamp),
            data,
        ])
        .map_err(classify)?;
    }
    drop((logs, metrics, scores, feedback));
    tx.commit().map_err(classify)?;
    Ok(out)
}
