//! One batch, one transaction: each table gets a single `INSERT ... SELECT FROM
//! UNNEST(arrays)` statement (one round trip whatever the batch size), with an
//! upsert for spans, scores and feedback.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::classify;
use crate::batch::{BatchItem, RejectedItem, WriteBatch, WriteOutcome};
use crate::error::StorageError;
use crate::row::{SpanColumns, level_str, metric_json, metric_kind_str, span_to_i64, without_nul};

const UPSERT_SPANS: &str = "
INSERT INTO aiobs_spans (trace_id, span_id, parent_span_id, phase, name, span_type, status,
    is_root, start_time, end_time, user_id, session_id, entity_type, entity_id, entity_name,
    tags, input_tokens, output_tokens, cached_tokens, data)
SELECT t.trace_id, t.span_id, t.parent_span_id, t.phase, t.name, t.span_type, t.status,
    t.is_root, t.start_time, t.end_time, t.user_id, t.session_id, t.entity_type, t.entity_id,
    t.entity_name, t.tags::jsonb, t.input_tokens, t.output_tokens, t.cached_tokens, t.data
FROM UNNEST($1::bytea[], $2::int8[], $3::int8[], $4::int2[], $5::text[], $6::text[], $7::text[],
    $8::bool[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[], $13::text[],
    $14::text[], $15::text[], $16::text[], $17::int8[], $18::int8[], $19::int8[], $20::text[])
    AS t(trace_id, span_id, parent_span_id, phase, name, span_type, status, is_root, start_time,
    end_time, user_id, session_id, entity_type, entity_id, entity_name, tags, input_tokens,
    output_tokens, cached_tokens, data)
ON CONFLICT (trace_id, span_id) DO UPDATE SET
    parent_span_id = EXCLUDED.parent_span_id, phase = EXCLUDED.phase, name = EXCLUDED.name,
    span_type = EXCLUDED.span_type, status = EXCLUDED.status, is_root = EXCLUDED.is_root,
    start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time, user_id = EXCLUDED.user_id,
    session_id = EXCLUDED.session_id, entity_type = EXCLUDED.entity_type,
    entity_id = EXCLUDED.entity_id, entity_name = EXCLUDED.entity_name, tags = EXCLUDED.tags,
    input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
    cached_tokens = EXCLUDED.cached_tokens, data = EXCLUDED.data
WHERE aiobs_spans.phase <= EXCLUDED.phase";

const INSERT_LOGS: &str = "
INSERT INTO aiobs_logs (record_id, timestamp, level, trace_id, span_id, message, data)
SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::bytea[], $5::int8[], $6::text[], $7::text[])
ON CONFLICT (timestamp, record_id) DO NOTHING";

const INSERT_METRICS: &str = "
INSERT INTO aiobs_metrics (record_id, timestamp, name, kind, value, trace_id, span_id, data)
SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::float8[], $6::bytea[], $7::int8[], $8::text[])
ON CONFLICT (timestamp, record_id) DO NOTHING";

const UPSERT_SCORES: &str = "
INSERT INTO aiobs_scores (record_id, trace_id, span_id, name, timestamp, data)
SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[])
ON CONFLICT (record_id) DO UPDATE SET trace_id = EXCLUDED.trace_id, span_id = EXCLUDED.span_id,
    name = EXCLUDED.name, timestamp = EXCLUDED.timestamp, data = EXCLUDED.data";

const UPSERT_FEEDBACK: &str = "
INSERT INTO aiobs_feedback (record_id, trace_id, span_id, key, timestamp, data)
SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::int8[], $4::text[], $5::timestamptz[], $6::text[])
ON CONFLICT (record_id) DO UPDATE SET trace_id = EXCLUDED.trace_id, span_id = EXCLUDED.span_id,
    key = EXCLUDED.key, timestamp = EXCLUDED.timestamp, data = EXCLUDED.data";

/// The write statements, prepared once per connection.
pub(crate) struct Statements {
    spans: Statement,
    logs: Statement,
    metrics: Statement,
    scores: Statement,
    feedback: Statement,
}

impl Statements {
    pub(crate) async fn prepare(client: &Client) -> Result<Self, StorageError> {
        let p = |sql| async move { client.prepare(sql).await.map_err(classify) };
        Ok(Self {
            spans: p(UPSERT_SPANS).await?,
            logs: p(INSERT_LOGS).await?,
            metrics: p(INSERT_METRICS).await?,
            scores: p(UPSERT_SCORES).await?,
            feedback: p(UPSERT_FEEDBACK).await?,
        })
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("cannot serialise: {e}"))
}

fn text(s: &str) -> Cow<'_, str> {
    without_nul(s)
}

/// Borrows a column of `Cow`s as the `&str`s the driver binds.
fn strs<'a>(v: &'a [Cow<'a, str>]) -> Vec<&'a str> {
    v.iter().map(AsRef::as_ref).collect()
}

fn opt_strs<'a>(v: &'a [Option<Cow<'a, str>>]) -> Vec<Option<&'a str>> {
    v.iter().map(|s| s.as_deref()).collect()
}

/// Tags as JSON for a `jsonb` column, which cannot hold `\u0000`.
fn tags_json(c: &SpanColumns<'_>, tags: &[String]) -> Option<String> {
    let j = c.tags.as_ref()?;
    if !j.contains("\\u0000") {
        return Some(j.clone());
    }
    let clean: Vec<Cow<'_, str>> = tags.iter().map(|t| without_nul(t)).collect();
    serde_json::to_string(&clean).ok()
}

/// The share of a batch one transaction writes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part<'a> {
    /// Indexes into `batch.spans()`, sorted by key.
    pub(crate) spans: &'a [usize],
    /// Whether logs, metrics, scores and feedback are written too.
    pub(crate) records: bool,
}

async fn spans(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statement,
    batch: &WriteBatch,
    order: &[usize],
    out: &mut WriteOutcome,
) -> Result<(), StorageError> {
    let n = order.len();
    let mut trace_id = Vec::with_capacity(n);
    let mut span_id = Vec::with_capacity(n);
    let mut parent = Vec::with_capacity(n);
    let mut phase = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut span_type = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut is_root = Vec::with_capacity(n);
    let mut start: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    let mut end: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut user = Vec::with_capacity(n);
    let mut session = Vec::with_capacity(n);
    let mut entity_type = Vec::with_capacity(n);
    let mut entity_id = Vec::with_capacity(n);
    let mut entity_name = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut input = Vec::with_capacity(n);
    let mut output = Vec::with_capacity(n);
    let mut cached = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    for &i in order {
        let w = &batch.spans()[i];
        let d = match json(&*w.span) {
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
        trace_id.push(c.trace_id);
        span_id.push(c.span_id);
        parent.push(c.parent_span_id);
        phase.push(c.phase);
        tags.push(tags_json(&c, &w.span.tags));
        name.push(c.name);
        span_type.push(c.span_type);
        status.push(c.status);
        is_root.push(c.is_root);
        start.push(c.start_time);
        end.push(c.end_time);
        user.push(c.user_id);
        session.push(c.session_id);
        entity_type.push(c.entity_type);
        entity_id.push(c.entity_id);
        entity_name.push(c.entity_name);
        input.push(c.input_tokens);
        output.push(c.output_tokens);
        cached.push(c.cached_tokens);
        data.push(d);
    }
    if trace_id.is_empty() {
        return Ok(());
    }
    let trace_id: Vec<&[u8]> = trace_id.iter().map(|t| &t[..]).collect();
    let (name, user, session) = (strs(&name), opt_strs(&user), opt_strs(&session));
    let (entity_type, entity_id, entity_name) = (
        opt_strs(&entity_type),
        opt_strs(&entity_id),
        opt_strs(&entity_name),
    );
    let params: [&(dyn ToSql + Sync); 20] = [
        &trace_id,
        &span_id,
        &parent,
        &phase,
        &name,
        &span_type,
        &status,
        &is_root,
        &start,
        &end,
        &user,
        &session,
        &entity_type,
        &entity_id,
        &entity_name,
        &tags,
        &input,
        &output,
        &cached,
        &data,
    ];
    tx.execute(st, &params).await.map_err(classify)?;
    Ok(())
}

fn trace_bytes(t: Option<aiobs_core::TraceId>) -> Option<Vec<u8>> {
    t.map(|t| t.to_bytes().to_vec())
}

/// Writes `part` of `batch` in one transaction.
pub(crate) async fn write_batch(
    client: &mut Client,
    st: &Statements,
    batch: &WriteBatch,
    part: Part<'_>,
) -> Result<WriteOutcome, StorageError> {
    let mut out = WriteOutcome::default();
    let has_records = part.records
        && (batch.logs().next().is_some()
            || batch.metrics().next().is_some()
            || batch.scores().next().is_some()
            || batch.feedback().next().is_some());
    if part.spans.is_empty() && !has_records {
        return Ok(out);
    }
    let tx = client.transaction().await.map_err(classify)?;
    if !part.spans.is_empty() {
        spans(&tx, &st.spans, batch, part.spans, &mut out).await?;
    }
    if has_records {
        records(&tx, st, batch, &mut out).await?;
    }
    tx.commit().await.map_err(classify)?;
    Ok(out)
}

/// Logs, metrics, scores and feedback of `batch`.
async fn records(
    tx: &tokio_postgres::Transaction<'_>,
    st: &Statements,
    batch: &WriteBatch,
    out: &mut WriteOutcome,
) -> Result<(), StorageError> {
    let (mut id, mut ts, mut level, mut trace, mut span, mut msg, mut data) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, l) in batch.logs().enumerate() {
        match json(l) {
            Ok(d) => data.push(d),
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Log(i),
                    reason,
                });
                continue;
            }
        }
        id.push(text(&l.id));
        ts.push(l.timestamp);
        level.push(level_str(l.level));
        trace.push(trace_bytes(l.trace_id));
        span.push(l.span_id.map(span_to_i64));
        msg.push(text(&l.message));
    }
    if !id.is_empty() {
        let (id, msg) = (strs(&id), strs(&msg));
        tx.execute(&st.logs, &[&id, &ts, &level, &trace, &span, &msg, &data])
            .await
            .map_err(classify)?;
    }

    let (mut id, mut ts, mut name, mut kind, mut value, mut trace, mut span, mut data) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for (i, m) in batch.metrics().enumerate() {
        match metric_json(m) {
            Ok(d) => data.push(d),
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Metric(i),
                    reason,
                });
                continue;
            }
        }
        id.push(text(&m.id));
        ts.push(m.timestamp);
        name.push(text(&m.name));
        kind.push(metric_kind_str(m.kind));
        value.push(m.value);
        trace.push(trace_bytes(m.trace_id));
        span.push(m.span_id.map(span_to_i64));
    }
    if !id.is_empty() {
        let (id, name) = (strs(&id), strs(&name));
        tx.execute(
            &st.metrics,
            &[&id, &ts, &name, &kind, &value, &trace, &span, &data],
        )
        .await
        .map_err(classify)?;
    }

    // An upsert may touch each row once per statement: the last record of an id wins.
    let mut last: HashMap<&str, usize> = HashMap::new();
    let scores: Vec<_> = batch.scores().collect();
    for (i, s) in scores.iter().enumerate() {
        last.insert(&s.id, i);
    }
    let (mut id, mut trace, mut span, mut name, mut ts, mut data) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, s) in scores.iter().enumerate() {
        if last.get(s.id.as_str()) != Some(&i) {
            continue;
        }
        match json(s) {
            Ok(d) => data.push(d),
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Score(i),
                    reason,
                });
                continue;
            }
        }
        id.push(text(&s.id));
        trace.push(s.trace_id.to_bytes().to_vec());
        span.push(s.span_id.map(span_to_i64));
        name.push(text(&s.name));
        ts.push(s.timestamp);
    }
    if !id.is_empty() {
        let (id, name) = (strs(&id), strs(&name));
        tx.execute(&st.scores, &[&id, &trace, &span, &name, &ts, &data])
            .await
            .map_err(classify)?;
    }

    let mut last: HashMap<&str, usize> = HashMap::new();
    let feedback: Vec<_> = batch.feedback().collect();
    for (i, f) in feedback.iter().enumerate() {
        last.insert(&f.id, i);
    }
    let (mut id, mut trace, mut span, mut key, mut ts, mut data) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, f) in feedback.iter().enumerate() {
        if last.get(f.id.as_str()) != Some(&i) {
            continue;
        }
        match json(f) {
            Ok(d) => data.push(d),
            Err(reason) => {
                out.rejected.push(RejectedItem {
                    item: BatchItem::Feedback(i),
                    reason,
                });
                continue;
            }
        }
        id.push(text(&f.id));
        trace.push(f.trace_id.to_bytes().to_vec());
        span.push(f.span_id.map(span_to_i64));
        key.push(text(&f.key));
        ts.push(f.timestamp);
    }
    if !id.is_empty() {
        let (id, key) = (strs(&id), strs(&key));
        tx.execute(&st.feedback, &[&id, &trace, &span, &key, &ts, &data])
            .await
            .map_err(classify)?;
    }
    Ok(())
}
