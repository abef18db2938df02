//! What the query API takes and returns: filters, pages, trace summaries and records.

// Used by the backends; a build with neither feature has only the types.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use aiobs_core::{
    EntityInfo, ExportedSpan, FeedbackRecord, LogRecord, ScoreRecord, SpanId, SpanStatus, SpanType,
    TraceId,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::StorageError;

/// The state of a whole trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TraceStatus {
    /// No span failed and the root has not ended yet.
    Running,
    /// The root ended and no span failed.
    Ok,
    /// At least one span of the trace ended (or is marked) with an error.
    Error,
}

impl TraceStatus {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for TraceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TraceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "running" => Ok(Self::Running),
            "ok" => Ok(Self::Ok),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown trace status {other:?}: expected ok, error or running"
            )),
        }
    }
}

/// Which traces [`Storage::list_traces`](crate::Storage::list_traces) returns.
/// Every set field must match; an empty filter lists every trace.
///
/// A trace is listed once, through its first root span (a span with no
/// exported parent in the process that recorded it: a trace continued in
/// other processes has several); fields marked *any span* match when at
/// least one span of the trace matches.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct TraceFilter {
    /// Root started at or after this time.
    pub started_after: Option<DateTime<Utc>>,
    /// Root started before this time.
    pub started_before: Option<DateTime<Utc>>,
    /// Root span name, exactly.
    pub root_name: Option<String>,
    /// *Any span* of this type.
    pub span_type: Option<SpanType>,
    /// *Any span* whose entity has this id.
    pub entity_id: Option<String>,
    /// *Any span* whose entity has this name.
    pub entity_name: Option<String>,
    /// The trace's user id.
    pub user_id: Option<String>,
    /// The trace's session id.
    pub session_id: Option<String>,
    /// The trace carries every one of these tags.
    pub tags: Vec<String>,
    /// The trace's status.
    pub status: Option<TraceStatus>,
    /// *Any span* whose name contains this text (case-insensitive for ASCII).
    pub name_contains: Option<String>,
    /// This trace only.
    pub trace_id: Option<TraceId>,
}

impl TraceFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }
    /// Root started at or after `t`.
    #[must_use]
    pub fn started_after(mut self, t: DateTime<Utc>) -> Self {
        self.started_after = Some(t);
        self
    }
    /// Root started before `t`.
    #[must_use]
    pub fn started_before(mut self, t: DateTime<Utc>) -> Self {
        self.started_before = Some(t);
        self
    }
    /// Root span name.
    #[must_use]
    pub fn root_name(mut self, name: impl Into<String>) -> Self {
        self.root_name = Some(name.into());
        self
    }
    /// Any span of this type.
    #[must_use]
    pub fn span_type(mut self, t: SpanType) -> Self {
        self.span_type = Some(t);
        self
    }
    /// Any span with this entity id.
    #[must_use]
    pub fn entity_id(mut self, id: impl Into<String>) -> Self {
        self.entity_id = Some(id.into());
        self
    }
    /// Any span with this entity name.
    #[must_use]
    pub fn entity_name(mut self, name: impl Into<String>) -> Self {
        self.entity_name = Some(name.into());
        self
    }
    /// The trace's user.
    #[must_use]
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }
    /// The trace's session.
    #[must_use]
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    /// The trace carries this tag (add several: all must be present).
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// The trace's status.
    #[must_use]
    pub fn status(mut self, status: TraceStatus) -> Self {
        self.status = Some(status);
        self
    }
    /// Any span whose name contains `text`.
    #[must_use]
    pub fn name_contains(mut self, text: impl Into<String>) -> Self {
        self.name_contains = Some(text.into());
        self
    }
    /// This trace only (its root, or roots).
    #[must_use]
    pub fn trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }
}

/// Where a page of traces continues: an opaque position in the listing order
/// (newest root first). Shown and parsed as text, to hand back on the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) start_us: i64,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.start_us, self.trace_id, self.span_id)
    }
}

impl FromStr for Cursor {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, StorageError> {
        let bad = || StorageError::invalid(format!("malformed page cursor {s:?}"));
        let mut parts = s.trim().split('.');
        let (Some(start), Some(trace), Some(span), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            start_us: start.parse().map_err(|_| bad())?,
            trace_id: trace.parse().map_err(|_| bad())?,
            span_id: span.parse().map_err(|_| bad())?,
        })
    }
}

/// Which page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PageRequest {
    /// Most traces on the page (1..=1000; default 50).
    pub limit: usize,
    /// Continue after this position (from [`TracePage::next_cursor`]).
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            cursor: None,
        }
    }
}

impl PageRequest {
    /// The largest page.
    pub const MAX_LIMIT: usize = 1000;

    /// The first page of at most `limit` traces (clamped to 1..=1000).
    pub fn first(limit: usize) -> Self {
        Self {
            limit: limit.clamp(1, Self::MAX_LIMIT),
            cursor: None,
        }
    }
    /// The page after `cursor`.
    #[must_use]
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }
    pub(crate) fn effective_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

/// Token and cost totals of a trace: the usage of the spans that carry
/// billable usage by core's one rule ([`aiobs_core::ExportedSpan::billable_usage`]:
/// a model span with no model ancestor), so the per-step usage inside a
/// generation is not counted twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct UsageTotals {
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Input tokens read from a prompt cache.
    pub cached_input_tokens: u64,
    /// Cost in USD: the sum of the counted spans' [`Cost`](aiobs_core::Cost)
    /// (`total`, else `input + output`); `None` when none of them reported one.
    pub cost_usd: Option<f64>,
}

impl UsageTotals {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// One line of a trace listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Its root span.
    pub root_span_id: SpanId,
    /// The root span's name.
    pub name: String,
    /// The root span's type.
    pub span_type: SpanType,
    /// The trace's state.
    pub status: TraceStatus,
    /// When the root started.
    pub start_time: DateTime<Utc>,
    /// When the root ended (`None` while running).
    pub end_time: Option<DateTime<Utc>>,
    /// Spans stored for the trace.
    pub span_count: u64,
    /// Spans with status error.
    pub error_count: u64,
    /// The trace's user.
    pub user_id: Option<String>,
    /// The trace's session.
    pub session_id: Option<String>,
    /// The trace's tags.
    pub tags: Vec<String>,
    /// What the root span is about.
    pub entity: Option<EntityInfo>,
    /// Token totals.
    pub usage: UsageTotals,
}

impl TraceSummary {
    /// The root's duration, once it ended.
    pub fn duration(&self) -> Option<std::time::Duration> {
        let end = self.end_time?;
        Some((end - self.start_time).to_std().unwrap_or_default())
    }

    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            start_us: self.start_time.timestamp_micros(),
            trace_id: self.trace_id,
            span_id: self.root_span_id,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TracePage {
    /// The traces, newest root first.
    pub traces: Vec<TraceSummary>,
    /// Where the next page starts; `None` on the last page.
    #[serde(serialize_with = "cursor_as_text")]
    pub next_cursor: Option<Cursor>,
}

fn cursor_as_text<S: serde::Serializer>(c: &Option<Cursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.collect_str(c),
        None => s.serialize_none(),
    }
}

impl TracePage {
    /// Builds a page from up to `limit + 1` rows: the extra row only says a
    /// next page exists.
    pub(crate) fn from_rows(mut traces: Vec<TraceSummary>, limit: usize) -> Self {
        let next_cursor = if traces.len() > limit {
            traces.truncate(limit);
            traces.last().map(TraceSummary::cursor)
        } else {
            None
        };
        Self {
            traces,
            next_cursor,
        }
    }
}

/// Everything stored about one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TraceRecord {
    /// The trace.
    pub trace_id: TraceId,
    /// Its spans, by start time; complete as of the last event stored for each.
    pub spans: Vec<ExportedSpan>,
    /// Logs correlated with the trace, by time.
    pub logs: Vec<LogRecord>,
    /// Scores of the trace or its spans, by time.
    pub scores: Vec<ScoreRecord>,
    /// Feedback on the trace or its spans, by time.
    pub feedback: Vec<FeedbackRecord>,
}

impl TraceRecord {
    /// Each span's type by id (linear to build, so the helpers stay linear
    /// on traces of thousands of spans).
    fn types(&self) -> HashMap<SpanId, SpanType> {
        self.spans
            .iter()
            .map(|s| (s.span_id, s.span_type))
            .collect()
    }

    /// The root spans: spans whose parent is not in the trace (normally one).
    pub fn roots(&self) -> impl Iterator<Item = &ExportedSpan> {
        let types = self.types();
        self.spans
            .iter()
            .filter(move |s| s.parent_span_id.is_none_or(|p| !types.contains_key(&p)))
    }

    /// The direct children of `span`, by start time.
    pub fn children(&self, span: SpanId) -> impl Iterator<Item = &ExportedSpan> {
        self.spans
            .iter()
            .filter(move |s| s.parent_span_id == Some(span))
    }

    /// The trace's status, by the rule [`TraceStatus`] documents.
    pub fn status(&self) -> TraceStatus {
        if self.spans.iter().any(|s| s.status == SpanStatus::Error) {
            TraceStatus::Error
        } else if self.roots().any(|r| r.end_time.is_none()) {
            TraceStatus::Running
        } else {
            TraceStatus::Ok
        }
    }

    /// Token totals, by the rule [`UsageTotals`] documents.
    pub fn usage_totals(&self) -> UsageTotals {
        let mut t = UsageTotals::default();
        for u in self.spans.iter().filter_map(|s| s.billable_usage()) {
            t.input_tokens += u.input_tokens;
            t.output_tokens += u.output_tokens;
            t.cached_input_tokens += u.cache_read_tokens();
            let cost = u.cost.as_ref().and_then(|c| match (c.input, c.output) {
                _ if c.total.is_some() => c.total,
                (Some(i), Some(o)) => Some(i + o),
                _ => None,
            });
            if let Some(c) = cost {
                t.cost_usd = Some(t.cost_usd.unwrap_or(0.0) + c);
            }
        }
        t
    }
}

/// What [`Storage::delete_older_than`](crate::Storage::delete_older_than) removed.
///
/// Traces are removed whole: a trace goes when every one of its spans started
/// before the cutoff, taking its logs, scores and feedback with it. Logs and
/// metrics older than the cutoff go too; scores and feedback older than the
/// cutoff go when their trace is gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RetentionReport {
    /// Traces removed.
    pub traces: u64,
    /// Spans removed.
    pub spans: u64,
    /// Logs removed.
    pub logs: u64,
    /// Metrics removed.
    pub metrics: u64,
    /// Scores removed.
    pub scores: u64,
    /// Feedback records removed.
    pub feedback: u64,
}

/// SQL (both backends, `is_root` given as the backend's true test of column
/// `o.is_root`) true when root row `r` is the first root of its trace. A
/// trace continued in another process has one root per process (their
/// parents are external); it is listed once, through its first root.
pub(crate) fn first_root_sql(o_is_root: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM aiobs_spans o WHERE o.trace_id = r.trace_id AND {o_is_root} \
         AND (o.start_time, o.span_id) < (r.start_time, r.span_id))"
    )
}

/// SQL (both backends) true when trace `r` has a span with status error.
pub(crate) const HAS_ERROR: &str =
    "EXISTS (SELECT 1 FROM aiobs_spans e WHERE e.trace_id = r.trace_id AND e.status = 'error')";

impl TraceRecord {
    /// What a backend read for one trace; `None` when nothing is stored for it.
    pub(crate) fn assemble(
        trace_id: TraceId,
        spans: Vec<ExportedSpan>,
        logs: Vec<LogRecord>,
        scores: Vec<ScoreRecord>,
        feedback: Vec<FeedbackRecord>,
    ) -> Option<Self> {
        if spans.is_empty() && logs.is_empty() && scores.is_empty() && feedback.is_empty() {
            return None;
        }
        Some(Self {
            trace_id,
            spans,
            logs,
            scores,
            feedback,
        })
    }
}

/// The span types whose usage counts as model usage, as SQL string literals
/// (`'model_generation', ...`), for the backends' token totals.
pub(crate) fn model_types_sql() -> String {
    SpanType::ALL
        .iter()
        .filter(|t| t.is_model())
        .map(|t| format!("'{}'", t.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SQL (both backends) for one span's cost in USD, `total` else `input +
/// output`, given how the backend reads the number at
/// `attributes.usage.cost.<field>` of a span's JSON.
pub(crate) fn cost_sql(path: impl Fn(&str) -> String) -> String {
    format!(
        "COALESCE({}, {} + {})",
        path("total"),
        path("input"),
        path("output")
    )
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern and wraps it in `%`.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            start_us: -5,
            trace_id: TraceId::from_u128(7).unwrap(),
            span_id: SpanId::from_u64(9).unwrap(),
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        for bad in [
            "",
            "1.2",
            "x.00000000000000000000000000000007.0000000000000009",
            "1.2.3.4",
        ] {
            let e = bad.parse::<Cursor>().unwrap_err();
            assert_eq!(e.kind(), crate::StorageErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn status_parses() {
        assert_eq!("ERROR".parse::<TraceStatus>().unwrap(), TraceStatus::Error);
        assert!("bogus".parse::<TraceStatus>().is_err());
    }
}
