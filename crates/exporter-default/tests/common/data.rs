//! Spans and records for the storage suite, at fixed times.

use std::sync::Arc;

use aiobs_core::{
    EntityInfo, ExportedSpan, FeedbackRecord, LogLevel, LogRecord, MetricKind, MetricRecord,
    ModelAttributes, ScoreRecord, SpanError, SpanEventKind, SpanId, SpanStatus, SpanType,
    ToolAttributes, TraceId, Usage,
};
use aiobs_exporter_default::WriteBatch;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// A fixed instant, plus `secs` seconds.
pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + Duration::seconds(secs)
}

/// A fresh random trace id (tests share stores only within one test).
pub(crate) fn trace_id() -> TraceId {
    TraceId::random()
}

/// An ended span starting at `start` seconds, lasting `millis`.
pub(crate) fn span(
    trace: TraceId,
    parent: Option<SpanId>,
    name: &str,
    span_type: SpanType,
    start: i64,
    millis: i64,
) -> ExportedSpan {
    let mut s = ExportedSpan::new(trace, SpanId::random(), name.to_owned(), span_type);
    s.parent_span_id = parent;
    s.is_root = parent.is_none();
    s.start_time = at(start);
    s.end_time = Some(at(start) + Duration::milliseconds(millis));
    s.status = SpanStatus::Ok;
    s
}

/// Trace-level fields, as the span API copies them onto every span.
pub(crate) fn with_trace_fields(
    mut s: ExportedSpan,
    user: &str,
    session: &str,
    tags: &[&str],
) -> ExportedSpan {
    s.user_id = Some(Arc::from(user));
    s.session_id = Some(Arc::from(session));
    s.tags = tags
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .into();
    s
}

/// A realistic trace: agent run > generation (usage 1200/80, 1024 cached) >
/// step (usage 700/40: inside the generation, not counted again), a failing
/// tool call, and a workflow step. Spans are in start order.
pub(crate) struct RichTrace {
    pub(crate) trace_id: TraceId,
    pub(crate) spans: Vec<ExportedSpan>,
    pub(crate) log: LogRecord,
    pub(crate) score: ScoreRecord,
    pub(crate) feedback: FeedbackRecord,
}

pub(crate) fn rich_trace(start: i64, user: &str, session: &str, tags: &[&str]) -> RichTrace {
    let t = trace_id();
    let tf = |s: ExportedSpan| with_trace_fields(s, user, session, tags);
    let entity = Arc::new(EntityInfo {
        entity_type: "agent".into(),
        id: "support-agent".into(),
        name: Some("Support Agent".into()),
    });
    let mut root = tf(span(
        t,
        None,
        "support-agent",
        SpanType::AgentRun,
        start,
        900,
    ));
    root.entity = Some(entity.clone());
    root.input = Some(json!({"message": "Where is order #1234?"}));
    root.output = Some(json!("It ships tomorrow."));
    root.metadata.insert("app_version".into(), json!("1.4.2"));

    let mut generation = tf(span(
        t,
        Some(root.span_id),
        "chat gpt-4o-mini",
        SpanType::ModelGeneration,
        start,
        500,
    ));
    generation.start_time += Duration::milliseconds(10);
    generation.entity = Some(entity.clone());
    generation.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
        .with_usage(
            Usage::new(1200, 80)
                .with_cache_read(1024)
                .with_reasoning(16),
        )
        .into();
    generation.ancestry = vec![aiobs_core::Ancestor::new(
        root.span_id,
        root.start_time,
        root.span_type,
    )]
    .into();

    let mut step = tf(span(
        t,
        Some(generation.span_id),
        "step 1",
        SpanType::ModelStep,
        start,
        200,
    ));
    step.start_time += Duration::milliseconds(20);
    step.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
        .with_usage(Usage::new(700, 40))
        .into();

    let mut tool = tf(span(
        t,
        Some(step.span_id),
        "get_tracking",
        SpanType::ToolCall,
        start,
        100,
    ));
    tool.start_time += Duration::milliseconds(30);
    tool.status = SpanStatus::Error;
    tool.error = Some(Box::new(
        SpanError::new("carrier API timed out after 2.0 s").with_kind("Timeout"),
    ));
    let mut ta = ToolAttributes::new("get_tracking");
    ta.success = Some(false);
    tool.attributes = ta.into();

    let mut wf = tf(span(
        t,
        Some(root.span_id),
        "refund-policy",
        SpanType::WorkflowStep,
        start,
        50,
    ));
    wf.start_time += Duration::milliseconds(600);

    let mut log = LogRecord::new(LogLevel::Warn, "carrier API slow").in_span(t, tool.span_id);
    log.timestamp = at(start) + Duration::milliseconds(130);
    let mut score = ScoreRecord::new(t, "helpfulness", 0.82).with_comment("clear answer");
    score.timestamp = at(start + 1);
    let mut feedback = FeedbackRecord::new(t, "thumbs", 1);
    feedback.timestamp = at(start + 2);
    RichTrace {
        trace_id: t,
        spans: vec![root, generation, step, tool, wf],
        log,
        score,
        feedback,
    }
}

impl RichTrace {
    /// Everything as ended spans plus the records, in one batch.
    pub(crate) fn batch(&self) -> WriteBatch {
        let mut b = WriteBatch::new();
        for s in &self.spans {
            b.push_span(SpanEventKind::Ended, Arc::new(s.clone()));
        }
        b.push_log(self.log.clone());
        b.push_score(self.score.clone());
        b.push_feedback(self.feedback.clone());
        b
    }

    pub(crate) fn root(&self) -> &ExportedSpan {
        &self.spans[0]
    }
}

/// A batch of ended spans.
pub(crate) fn ended(spans: &[ExportedSpan]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for s in spans {
        b.push_span(SpanEventKind::Ended, Arc::new(s.clone()));
    }
    b
}

/// One batch with a single span state.
pub(crate) fn one(kind: SpanEventKind, s: &ExportedSpan) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.push_span(kind, Arc::new(s.clone()));
    b
}

/// A metric at `secs`.
pub(crate) fn metric(secs: i64, value: f64) -> MetricRecord {
    let mut m = MetricRecord::new("aiobs.span.duration_ms", MetricKind::Histogram, value);
    m.timestamp = at(secs);
    m
}

/// A log at `secs`, optionally in a trace.
pub(crate) fn log(secs: i64, trace: Option<TraceId>) -> LogRecord {
    let mut l = LogRecord::new(LogLevel::Info, format!("log at {secs}"));
    l.timestamp = at(secs);
    l.trace_id = trace;
    l
}
