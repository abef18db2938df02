//! One write: the spans to create or update and the records to insert, stored
//! in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use aiobs_core::{
    ExportedSpan, FeedbackRecord, LogRecord, MetricRecord, ObservabilityEvent, ScoreRecord,
    SpanEventKind, SpanId, TraceId,
};

/// A span to create or update.
///
/// A store keeps, per span, the most advanced state it was given: `Ended`
/// beats `Updated` beats `Started`, whatever the order of arrival. So an update
/// never goes back in time, and an `Ended` event whose `Started` never arrived
/// (a durable replay, another process, an exporter that subscribes only to
/// ended spans) creates the row on its own: the ended span is complete.
#[derive(Debug, Clone)]
pub struct SpanWrite {
    /// Which moment of the span this is.
    pub kind: SpanEventKind,
    /// The span as it was at that moment.
    pub span: Arc<ExportedSpan>,
}

impl SpanWrite {
    /// The rank of the state: 0 started, 1 updated, 2 ended. A store replaces a
    /// stored span only with one of equal or higher phase.
    pub fn phase(&self) -> i16 {
        phase(self.kind)
    }
}

fn phase(kind: SpanEventKind) -> i16 {
    match kind {
        SpanEventKind::Started => 0,
        SpanEventKind::Updated => 1,
        SpanEventKind::Ended => 2,
    }
}

/// An item of a [`WriteBatch`], to say which one a store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchItem {
    /// `spans()[i]`.
    Span(usize),
    /// `logs()[i]`.
    Log(usize),
    /// `metrics()[i]`.
    Metric(usize),
    /// `scores()[i]`.
    Score(usize),
    /// `feedback()[i]`.
    Feedback(usize),
}

/// An item a store refused while writing the rest of its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedItem {
    /// Which item.
    pub item: BatchItem,
    /// Why (retrying will not help).
    pub reason: String,
}

/// What a successful [`Storage::write`](crate::Storage::write) committed:
/// everything but the rejected items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct WriteOutcome {
    /// Items refused (e.g. a metric whose value is not a finite number).
    pub rejected: Vec<RejectedItem>,
}

/// Spans, logs, metrics, scores and feedback to store in one transaction.
///
/// Several events for one span collapse into one [`SpanWrite`] holding the
/// most advanced state, so a span that started and ended within one batch is
/// written once.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    spans: Vec<SpanWrite>,
    span_index: HashMap<(TraceId, SpanId), usize>,
    logs: Vec<Arc<ObservabilityEvent>>,
    metrics: Vec<Arc<ObservabilityEvent>>,
    scores: Vec<Arc<ObservabilityEvent>>,
    feedback: Vec<Arc<ObservabilityEvent>>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a span state (merged with any earlier state of the same span).
    pub fn push_span(&mut self, kind: SpanEventKind, span: Arc<ExportedSpan>) -> BatchItem {
        let key = (span.trace_id, span.span_id);
        let write = SpanWrite { kind, span };
        match self.span_index.get(&key) {
            Some(&i) => {
                if write.phase() >= self.spans[i].phase() {
                    self.spans[i] = write;
                }
                BatchItem::Span(i)
            }
            None => {
                self.span_index.insert(key, self.spans.len());
                self.spans.push(write);
                BatchItem::Span(self.spans.len() - 1)
            }
        }
    }

    /// Adds any pipeline event; `None` for an event kind this store does not keep.
    pub fn push_event(&mut self, event: Arc<ObservabilityEvent>) -> Option<BatchItem> {
        let (list, item): (&mut Vec<_>, fn(usize) -> BatchItem) = match &*event {
            ObservabilityEvent::Span { kind, span } => {
                return Some(self.push_span(*kind, span.clone()));
            }
            ObservabilityEvent::Log(_) => (&mut self.logs, BatchItem::Log),
            ObservabilityEvent::Metric(_) => (&mut self.metrics, BatchItem::Metric),
            ObservabilityEvent::Score(_) => (&mut self.scores, BatchItem::Score),
            ObservabilityEvent::Feedback(_) => (&mut self.feedback, BatchItem::Feedback),
            _ => return None,
        };
        list.push(event);
        Some(item(list.len() - 1))
    }

    /// Adds a log record.
    pub fn push_log(&mut self, log: LogRecord) -> BatchItem {
        self.logs.push(Arc::new(ObservabilityEvent::Log(log)));
        BatchItem::Log(self.logs.len() - 1)
    }
    /// Adds a metric.
    pub fn push_metric(&mut self, metric: MetricRecord) -> BatchItem {
        self.metrics
            .push(Arc::new(ObservabilityEvent::Metric(metric)));
        BatchItem::Metric(self.metrics.len() - 1)
    }
    /// Adds a score.
    pub fn push_score(&mut self, score: ScoreRecord) -> BatchItem {
        self.scores.push(Arc::new(ObservabilityEvent::Score(score)));
        BatchItem::Score(self.scores.len() - 1)
    }
    /// Adds feedback.
    pub fn push_feedback(&mut self, feedback: FeedbackRecord) -> BatchItem {
        self.feedback
            .push(Arc::new(ObservabilityEvent::Feedback(feedback)));
        BatchItem::Feedback(self.feedback.len() - 1)
    }

    /// The span writes, one per span.
    pub fn spans(&self) -> &[SpanWrite] {
        &self.spans
    }
    /// The log records.
    pub fn logs(&self) -> impl Iterator<Item = &LogRecord> {
        self.logs.iter().filter_map(|e| match &**e {
            ObservabilityEvent::Log(l) => Some(l),
            _ => None,
        })
    }
    /// The metrics.
    pub fn metrics(&self) -> impl Iterator<Item = &MetricRecord> {
        self.metrics.iter().filter_map(|e| match &**e {
            ObservabilityEvent::Metric(m) => Some(m),
            _ => None,
        })
    }
    /// The scores.
    pub fn scores(&self) -> impl Iterator<Item = &ScoreRecord> {
        self.scores.iter().filter_map(|e| match &**e {
            ObservabilityEvent::Score(s) => Some(s),
            _ => None,
        })
    }
    /// The feedback records.
    pub fn feedback(&self) -> impl Iterator<Item = &FeedbackRecord> {
        self.feedback.iter().filter_map(|e| match &**e {
            ObservabilityEvent::Feedback(f) => Some(f),
            _ => None,
        })
    }
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
            && self.logs.is_empty()
            && self.metrics.is_empty()
            && self.scores.is_empty()
            && self.feedback.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiobs_core::SpanType;

    fn span(id: u64) -> Arc<ExportedSpan> {
        Arc::new(ExportedSpan::new(
            TraceId::from_u128(1).unwrap(),
            SpanId::from_u64(id).unwrap(),
            "s",
            SpanType::Generic,
        ))
    }

    #[test]
    fn most_advanced_state_wins_whatever_the_order() {
        let mut b = WriteBatch::new();
        assert_eq!(
            b.push_span(SpanEventKind::Ended, span(1)),
            BatchItem::Span(0)
        );
        assert_eq!(
            b.push_span(SpanEventKind::Started, span(1)),
            BatchItem::Span(0)
        );
        assert_eq!(
            b.push_span(SpanEventKind::Started, span(2)),
            BatchItem::Span(1)
        );
        assert_eq!(
            b.push_span(SpanEventKind::Updated, span(2)),
            BatchItem::Span(1)
        );
        assert_eq!(b.spans().len(), 2);
        assert_eq!(b.spans()[0].kind, SpanEventKind::Ended);
        assert_eq!(b.spans()[1].kind, SpanEventKind::Updated);
    }

    #[test]
    fn records_are_indexed_per_kind() {
        let mut b = WriteBatch::new();
        let t = TraceId::from_u128(1).unwrap();
        assert_eq!(
            b.push_log(LogRecord::new(aiobs_core::LogLevel::Info, "x")),
            BatchItem::Log(0)
        );
        assert_eq!(
            b.push_score(ScoreRecord::new(t, "q", 1.0)),
            BatchItem::Score(0)
        );
        assert_eq!(
            b.push_score(ScoreRecord::new(t, "q", 2.0)),
            BatchItem::Score(1)
        );
        assert_eq!(b.logs().count(), 1);
        assert_eq!(b.scores().count(), 2);
        assert!(!b.is_empty());
    }
}
