//! The events that travel the pipeline: span lifecycle, logs, metrics, scores, feedback.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::id::{SpanId, TraceId};
use crate::span::ExportedSpan;

/// Which moment of a span's life an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanEventKind {
    /// The span started (a snapshot of what was known then).
    Started,
    /// The span changed while running.
    Updated,
    /// The span ended: the event carries the complete span.
    Ended,
}

/// Severity of a [`LogRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// A log line correlated with a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogRecord {
    /// Unique id (idempotency key).
    pub id: String,
    /// When it was logged.
    pub timestamp: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// Message.
    pub message: String,
    /// Correlated trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Correlated span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
    /// Structured fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub attributes: Map<String, Value>,
}

/// What kind of metric a [`MetricRecord`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MetricKind {
    /// Monotonic count.
    Counter,
    /// Point-in-time value.
    Gauge,
    /// One observation of a distribution.
    Histogram,
}

/// One metric observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricRecord {
    /// Unique id (idempotency key).
    pub id: String,
    /// Metric name, e.g. `aiobs.span.duration_ms`.
    pub name: String,
    /// Kind.
    pub kind: MetricKind,
    /// Value.
    pub value: f64,
    /// When it was observed.
    pub timestamp: DateTime<Utc>,
    /// Dimensions.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub labels: Map<String, Value>,
    /// Correlated trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Correlated span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
}

/// A score (evaluation) of a trace or span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScoreRecord {
    /// Unique id (idempotency key).
    pub id: String,
    /// Scored trace.
    pub trace_id: TraceId,
    /// Scored span, if a span rather than the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
    /// Score name, e.g. `relevance`.
    pub name: String,
    /// Value: a number, a boolean or a category string.
    pub value: Value,
    /// Comment or reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who scored (scorer id, model, human).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When.
    pub timestamp: DateTime<Utc>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// End-user feedback on a trace or span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FeedbackRecord {
    /// Unique id (idempotency key).
    pub id: String,
    /// Trace the feedback is about.
    pub trace_id: TraceId,
    /// Span the feedback is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
    /// Feedback key, e.g. `user_feedback`.
    pub key: String,
    /// Value (thumbs as 1/0, a rating, or text).
    pub value: Value,
    /// Free-text comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Who gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When.
    pub timestamp: DateTime<Utc>,
}

/// Generates a unique record id: 32 hex digits.
pub fn new_record_id() -> String {
    format!("{:032x}", fastrand::u128(..))
}

impl LogRecord {
    /// A log record with a fresh id and the current time.
    pub fn new(level: LogLevel, message: impl Into<String>) -> Self {
        Self {
            id: new_record_id(),
            timestamp: Utc::now(),
            level,
            message: message.into(),
            trace_id: None,
            span_id: None,
            attributes: Map::new(),
        }
    }
    /// Correlates with a span.
    pub fn in_span(mut self, trace_id: TraceId, span_id: SpanId) -> Self {
        self.trace_id = Some(trace_id);
        self.span_id = Some(span_id);
        self
    }
}

impl MetricRecord {
    /// A metric observation with a fresh id and the current time.
    pub fn new(name: impl Into<String>, kind: MetricKind, value: f64) -> Self {
        Self {
            id: new_record_id(),
            name: name.into(),
            kind,
            value,
            timestamp: Utc::now(),
            labels: Map::new(),
            trace_id: None,
            span_id: None,
        }
    }
}

impl ScoreRecord {
    /// A score with a fresh id and the current time.
    pub fn new(trace_id: TraceId, name: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            id: new_record_id(),
            trace_id,
            span_id: None,
            name: name.into(),
            value: value.into(),
            comment: None,
            source: None,
            timestamp: Utc::now(),
            metadata: Map::new(),
        }
    }
    /// Scores a span rather than the whole trace.
    pub fn on_span(mut self, span_id: SpanId) -> Self {
        self.span_id = Some(span_id);
        self
    }
    /// Sets the comment.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
}

impl FeedbackRecord {
    /// Feedback with a fresh id and the current time.
    pub fn new(trace_id: TraceId, key: impl Into<String>, value: impl Into<Value>) -> Self {
        Self {
            id: new_record_id(),
            trace_id,
            span_id: None,
            key: key.into(),
            value: value.into(),
            comment: None,
            user_id: None,
            timestamp: Utc::now(),
        }
    }
}

/// Everything that travels the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObservabilityEvent {
    /// A span lifecycle event.
    Span {
        /// Which moment.
        kind: SpanEventKind,
        /// The span (complete when `kind` is `Ended`).
        span: Arc<ExportedSpan>,
    },
    /// A log record.
    Log(LogRecord),
    /// A metric.
    Metric(MetricRecord),
    /// A score.
    Score(ScoreRecord),
    /// Feedback.
    Feedback(FeedbackRecord),
}

impl ObservabilityEvent {
    /// The signal this event belongs to.
    pub fn signal(&self) -> Signal {
        match self {
            Self::Span { kind, .. } => match kind {
                SpanEventKind::Started => Signal::SpanStarted,
                SpanEventKind::Updated => Signal::SpanUpdated,
                SpanEventKind::Ended => Signal::SpanEnded,
            },
            Self::Log(_) => Signal::Log,
            Self::Metric(_) => Signal::Metric,
            Self::Score(_) => Signal::Score,
            Self::Feedback(_) => Signal::Feedback,
        }
    }
    /// The span, for span events.
    pub fn span(&self) -> Option<&Arc<ExportedSpan>> {
        match self {
            Self::Span { span, .. } => Some(span),
            _ => None,
        }
    }
    /// The trace this event belongs to, where it has one.
    pub fn trace_id(&self) -> Option<TraceId> {
        match self {
            Self::Span { span, .. } => Some(span.trace_id),
            Self::Log(l) => l.trace_id,
            Self::Metric(m) => m.trace_id,
            Self::Score(s) => Some(s.trace_id),
            Self::Feedback(f) => Some(f.trace_id),
        }
    }
    /// A stable identity, for de-duplication and error messages
    /// (`span:<span id>:ended`, `score:<id>`, ...).
    pub fn identity(&self) -> String {
        match self {
            Self::Span { kind, span } => format!("span:{}:{kind:?}", span.span_id).to_lowercase(),
            Self::Log(l) => format!("log:{}", l.id),
            Self::Metric(m) => format!("metric:{}", m.id),
            Self::Score(s) => format!("score:{}", s.id),
            Self::Feedback(f) => format!("feedback:{}", f.id),
        }
    }
    /// A cheap estimate of the event's size in bytes, for `BatchPolicy::max_bytes`.
    pub fn estimated_size(&self) -> usize {
        fn v(x: &Option<Value>) -> usize {
            x.as_ref().map_or(0, estimate_value)
        }
        match self {
            Self::Span { span, .. } => {
                256 + span.name.len()
                    + v(&span.input)
                    + v(&span.output)
                    + span
                        .metadata
                        .iter()
                        .map(|(k, x)| k.len() + estimate_value(x))
                        .sum::<usize>()
            }
            Self::Log(l) => 128 + l.message.len(),
            Self::Metric(m) => 128 + m.name.len(),
            Self::Score(s) => 128 + s.name.len() + s.comment.as_ref().map_or(0, String::len),
            Self::Feedback(f) => 128 + f.key.len() + f.comment.as_ref().map_or(0, String::len),
        }
    }
}

fn estimate_value(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 4,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => a.iter().map(estimate_value).sum::<usize>() + 2,
        Value::Object(o) => {
            o.iter()
                .map(|(k, x)| k.len() + 3 + estimate_value(x))
                .sum::<usize>()
                + 2
        }
    }
}

/// One kind of event an exporter can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Signal {
    /// Span started.
    SpanStarted,
    /// Span updated.
    SpanUpdated,
    /// Span ended.
    SpanEnded,
    /// Logs.
    Log,
    /// Metrics.
    Metric,
    /// Scores.
    Score,
    /// Feedback.
    Feedback,
}

/// A set of [`Signal`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Signals(u8);

impl Signals {
    /// No signals.
    pub const NONE: Signals = Signals(0);
    /// Only `SpanEnded`: the complete spans (what most exporters need).
    pub const ENDED_SPANS: Signals = Signals(1 << 2);
    /// All span lifecycle events.
    pub const ALL_SPANS: Signals = Signals(0b111);
    /// Everything.
    pub const ALL: Signals = Signals(0b111_1111);

    fn bit(s: Signal) -> u8 {
        1 << match s {
            Signal::SpanStarted => 0,
            Signal::SpanUpdated => 1,
            Signal::SpanEnded => 2,
            Signal::Log => 3,
            Signal::Metric => 4,
            Signal::Score => 5,
            Signal::Feedback => 6,
        }
    }
    /// This set plus `s`.
    pub const fn union(self, other: Signals) -> Signals {
        Signals(self.0 | other.0)
    }
    /// This set plus one signal.
    pub fn with(self, s: Signal) -> Signals {
        Signals(self.0 | Self::bit(s))
    }
    /// Whether the set holds `s`.
    pub fn contains(self, s: Signal) -> bool {
        self.0 & Self::bit(s) != 0
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Signal> for Signals {
    fn from_iter<I: IntoIterator<Item = Signal>>(iter: I) -> Self {
        iter.into_iter().fold(Signals::NONE, Signals::with)
    }
}
