//! What the ingest receives for each event: the item shapes and their
//! idempotency keys. `docs/exporters.md` ("Cloud") documents them for ingest
//! servers; [`crate::encode`] assembles items into request bodies.

use aiobs_core::{ExportedSpan, ObservabilityEvent, SpanEventKind};
use serde::Serialize;

/// The kind of item, which picks the endpoint: `/v1/<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ItemKind {
    Spans,
    Logs,
    Metrics,
    Scores,
    Feedback,
}

impl ItemKind {
    pub(crate) const ALL: [ItemKind; 5] = [
        Self::Spans,
        Self::Logs,
        Self::Metrics,
        Self::Scores,
        Self::Feedback,
    ];

    pub(crate) fn of(event: &ObservabilityEvent) -> Option<Self> {
        match event {
            ObservabilityEvent::Span { .. } => Some(Self::Spans),
            ObservabilityEvent::Log(_) => Some(Self::Logs),
            ObservabilityEvent::Metric(_) => Some(Self::Metrics),
            ObservabilityEvent::Score(_) => Some(Self::Scores),
            ObservabilityEvent::Feedback(_) => Some(Self::Feedback),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Spans => "spans",
            Self::Logs => "logs",
            Self::Metrics => "metrics",
            Self::Scores => "scores",
            Self::Feedback => "feedback",
        }
    }
}

/// One span event on the wire.
#[derive(Serialize)]
pub(crate) struct SpanItem<'a> {
    pub(crate) id: &'a str,
    pub(crate) event: SpanEventKind,
    pub(crate) span: &'a ExportedSpan,
    /// Present when the span carries usage: whether it counts toward the
    /// trace's billable totals, by core's one rule
    /// ([`ExportedSpan::billable_usage`]), so a server need not re-derive it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) billable_usage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) truncated: Option<Truncated>,
}

impl<'a> SpanItem<'a> {
    pub(crate) fn new(id: &'a str, event: SpanEventKind, span: &'a ExportedSpan) -> Self {
        Self {
            id,
            event,
            span,
            billable_usage: span
                .attributes
                .usage()
                .map(|_| span.billable_usage().is_some()),
            truncated: None,
        }
    }
}

/// Marks a span sent without its largest fields because it exceeded the body limit.
#[derive(Serialize)]
pub(crate) struct Truncated {
    pub(crate) original_bytes: usize,
    pub(crate) removed: [&'static str; 3],
}

/// Namespace of the name-based (v5) UUIDs that identify batches and updates.
pub(crate) const ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6169_6f62_735f_636c_6f75_645f_6964_7331);

/// `<trace id>:<span id>:<event>`; an `updated` event also carries a digest
/// of its content, since one span may send several different updates.
pub(crate) fn span_item_id(kind: SpanEventKind, span: &ExportedSpan) -> String {
    match kind {
        SpanEventKind::Started => format!("{}:{}:started", span.trace_id, span.span_id),
        SpanEventKind::Ended => format!("{}:{}:ended", span.trace_id, span.span_id),
        SpanEventKind::Updated => {
            let content = serde_json::to_vec(span).unwrap_or_default();
            let digest = uuid::Uuid::new_v5(&ID_NAMESPACE, &content)
                .simple()
                .to_string();
            format!(
                "{}:{}:updated:{}",
                span.trace_id,
                span.span_id,
                &digest[..16]
            )
        }
    }
}
