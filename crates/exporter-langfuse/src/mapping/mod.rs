//! The transport-neutral Langfuse view of aiobs events.
//!
//! A span becomes one [`Observation`] plus the [`TraceFields`] it knows; a
//! score or feedback becomes a [`ScoreBody`]. Both transports (OTLP and the
//! ingestion API) encode these, so the mapping rules live here once. Every
//! field comes from the span itself: an `Ended` event alone is enough, whatever
//! arrived before it (durable replay, child before parent).

pub(crate) mod directives;
pub(crate) mod fit;
pub(crate) mod score;
pub(crate) mod usage;

use aiobs_core::{ExportedSpan, SpanAttributes, SpanStatus, SpanType};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub(crate) use directives::PromptLink;
pub(crate) use score::ScoreBody;
use usage::{CostDetails, UsageDetails};

/// Langfuse's observation types (what current servers accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ObservationType {
    Span,
    Generation,
    Event,
    Agent,
    Tool,
    Chain,
    Retriever,
    Evaluator,
    Embedding,
    Guardrail,
}

impl ObservationType {
    /// The value of `langfuse.observation.type`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Span => "span",
            Self::Generation => "generation",
            Self::Event => "event",
            Self::Agent => "agent",
            Self::Tool => "tool",
            Self::Chain => "chain",
            Self::Retriever => "retriever",
            Self::Evaluator => "evaluator",
            Self::Embedding => "embedding",
            Self::Guardrail => "guardrail",
        }
    }

    /// The type a span maps to. Only model spans that carry billable usage
    /// ([`ExportedSpan::billable_usage`]: no model span above them) become
    /// generations: Langfuse sums the usage of every generation, and infers
    /// usage for a generation that has none, so a step inside a generation
    /// is a plain span (its usage shown as metadata). A top-level model step
    /// or inference is a generation when it carries usage.
    pub(crate) fn of(span: &ExportedSpan) -> Self {
        if span.is_event {
            return Self::Event;
        }
        let nested_model = span.span_type.is_model() && span.has_model_ancestor();
        let has_usage = span.attributes.usage().is_some();
        match span.span_type {
            _ if nested_model => Self::Span,
            SpanType::AgentRun => Self::Agent,
            SpanType::ModelGeneration => Self::Generation,
            SpanType::ModelStep | SpanType::ModelInference if has_usage => Self::Generation,
            t if t.is_tool() => Self::Tool,
            SpanType::WorkflowRun
            | SpanType::WorkflowStep
            | SpanType::WorkflowConditional
            | SpanType::WorkflowConditionalEval
            | SpanType::WorkflowParallel
            | SpanType::WorkflowLoop
            | SpanType::RagIngestion => Self::Chain,
            SpanType::RagEmbedding => Self::Embedding,
            SpanType::RagVectorOperation => Self::Retriever,
            SpanType::ScorerRun => Self::Evaluator,
            // Input/output processors check or rewrite what reaches the model.
            SpanType::ProcessorRun => Self::Guardrail,
            _ => Self::Span,
        }
    }
}

/// Langfuse's observation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Default,
    Warning,
    Error,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Default => "DEFAULT",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

/// The trace-level fields one span carries. Every span knows the trace's
/// user, session, tags and trace-level metadata (aiobs puts them on every
/// span, as the official SDKs' `propagate_attributes` does); only the span
/// that began the trace ([`ExportedSpan::is_trace_root`]) owns its name,
/// input and output. A span that continues an upstream trace owns none of
/// them, so it never renames the trace it joins.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TraceFields {
    pub(crate) id: String,
    /// The span began the trace: it sets the name, input and output.
    pub(crate) owns_trace: bool,
    /// The span's start: the trace's start when the span owns the trace.
    pub(crate) timestamp: DateTime<Utc>,
    /// `metadata.langfuse.traceName`, else the owner's name.
    pub(crate) name: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) session_id: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) public: Option<bool>,
    pub(crate) release: Option<String>,
    pub(crate) version: Option<String>,
    /// The trace-level metadata (`TracingOptions::metadata`, without the
    /// `langfuse` directives).
    pub(crate) metadata: Map<String, Value>,
    /// Owner only.
    pub(crate) input: Option<Value>,
    /// Owner only.
    pub(crate) output: Option<Value>,
}

/// The error details an OTLP exception event carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorDetails {
    pub(crate) kind: Option<String>,
    pub(crate) message: String,
    pub(crate) stack: Option<String>,
}

/// What only generations have.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GenerationFields {
    pub(crate) model: Option<String>,
    pub(crate) model_parameters: Map<String, Value>,
    pub(crate) usage_details: UsageDetails,
    pub(crate) cost_details: CostDetails,
    pub(crate) completion_start_time: Option<DateTime<Utc>>,
    pub(crate) prompt: Option<PromptLink>,
}

/// One Langfuse observation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Observation {
    /// The 16-hex span id: both transports address the same observation.
    pub(crate) id: String,
    pub(crate) trace_id: String,
    pub(crate) parent_id: Option<String>,
    /// The parent lives in another process (continued trace).
    pub(crate) remote_parent: bool,
    pub(crate) kind: ObservationType,
    pub(crate) name: String,
    pub(crate) start_time: DateTime<Utc>,
    pub(crate) end_time: Option<DateTime<Utc>>,
    pub(crate) input: Option<Value>,
    pub(crate) output: Option<Value>,
    pub(crate) metadata: Map<String, Value>,
    pub(crate) level: Level,
    pub(crate) status_message: Option<String>,
    pub(crate) error: Option<ErrorDetails>,
    pub(crate) version: Option<String>,
    pub(crate) generation: Option<GenerationFields>,
}

/// A span as Langfuse sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MappedSpan {
    pub(crate) trace: TraceFields,
    pub(crate) observation: Observation,
}

/// Langfuse limits trace names to 1000 characters.
const MAX_TRACE_NAME_CHARS: usize = 1000;

/// Maps ended spans with the exporter's fixed settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mapper {
    /// The configured release; `metadata.langfuse.release` overrides it.
    pub(crate) release: Option<String>,
}

impl Mapper {
    /// Maps one span (normally from its `Ended` event).
    pub(crate) fn map_span(&self, span: &ExportedSpan) -> MappedSpan {
        let (metadata, d) = directives::split(&span.metadata);
        let (trace_metadata, _) = directives::split(&span.trace_context.metadata);
        let kind = ObservationType::of(span);
        let trace_id = span.trace_id.to_string();
        let owns_trace = span.is_trace_root();

        let trace = TraceFields {
            id: trace_id.clone(),
            owns_trace,
            timestamp: span.start_time,
            name: d
                .trace_name
                .clone()
                .or_else(|| owns_trace.then(|| span.name.to_string()))
                .map(|n| n.chars().take(MAX_TRACE_NAME_CHARS).collect()),
            user_id: d
                .user_id
                .clone()
                .or_else(|| span.user_id.as_deref().map(str::to_owned)),
            session_id: d
                .session_id
                .clone()
                .or_else(|| span.session_id.as_deref().map(str::to_owned)),
            tags: merge_tags(&span.tags, &d.tags),
            public: d.public,
            release: d.release.clone().or_else(|| self.release.clone()),
            version: d.version.clone(),
            input: owns_trace.then(|| span.input.clone()).flatten(),
            output: owns_trace.then(|| span.output.clone()).flatten(),
            metadata: trace_metadata,
        };

        let (level, status_message, error) = level_of(span);
        // The span's own metadata: what it holds minus what it inherited
        // from the trace (sent once, as trace metadata).
        let mut obs_metadata = metadata;
        obs_metadata.retain(|k, v| trace.metadata.get(k) != Some(v));
        add_attribute_metadata(span, kind, &mut obs_metadata);
        let generation =
            (kind == ObservationType::Generation).then(|| generation_fields(span, d.prompt));

        let observation = Observation {
            id: span.span_id.to_string(),
            trace_id,
            parent_id: span.effective_parent().map(|p| p.to_string()),
            remote_parent: span.parent_span_id.is_none() && span.external_parent_span_id.is_some(),
            kind,
            name: span.name.to_string(),
            start_time: span.start_time,
            end_time: if kind == ObservationType::Event {
                None
            } else {
                span.end_time
            },
            input: span.input.clone(),
            output: span.output.clone(),
            metadata: obs_metadata,
            level,
            status_message,
            error,
            version: d.version,
            generation,
        };
        MappedSpan { trace, observation }
    }
}

fn merge_tags(span_tags: &[String], extra: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = span_tags.to_vec();
    for t in extra {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    tags
}

fn level_of(span: &ExportedSpan) -> (Level, Option<String>, Option<ErrorDetails>) {
    if let Some(e) = &span.error {
        let details = ErrorDetails {
            kind: e.kind.clone(),
            message: e.message.clone(),
            stack: e.stack.clone(),
        };
        return (Level::Error, Some(e.message.clone()), Some(details));
    }
    match span.status {
        SpanStatus::Error => (Level::Error, Some("span ended with an error".into()), None),
        SpanStatus::Dropped => (
            Level::Warning,
            Some("span was not ended explicitly (its handle was dropped)".into()),
            None,
        ),
        _ => (Level::Default, None, None),
    }
}

/// Typed attributes Langfuse has no field for go to the observation's
/// metadata (user keys win on a clash).
fn add_attribute_metadata(
    span: &ExportedSpan,
    kind: ObservationType,
    meta: &mut Map<String, Value>,
) {
    let mut put = |k: &str, v: Value| {
        meta.entry(k.to_owned()).or_insert(v);
    };
    match &span.attributes {
        SpanAttributes::Model(m) => {
            if let Some(p) = &m.provider {
                put("provider", Value::from(p.as_ref()));
            }
            // Usage Langfuse must not sum (a step inside a generation) stays
            // visible, inclusive counts as recorded.
            if kind != ObservationType::Generation
                && let Some(u) = &m.usage
                && let Ok(v) = serde_json::to_value(u)
            {
                put("usage", v);
            }
            if kind != ObservationType::Generation
                && let Some(model) = &m.model
            {
                put("model", Value::from(model.as_ref()));
            }
            if let Some(v) = m.streaming {
                put("streaming", Value::from(v));
            }
            if let Some(v) = &m.finish_reason {
                put("finish_reason", Value::from(v.as_str()));
            }
            if let Some(v) = &m.response_model {
                put("response_model", Value::from(v.as_str()));
            }
            if let Some(v) = &m.response_id {
                put("response_id", Value::from(v.as_str()));
            }
        }
        SpanAttributes::Tool(t) => {
            if let Some(id) = t.tool_id.as_deref().filter(|id| *id != span.name) {
                put("tool_id", Value::from(id));
            }
            if let Some(v) = &t.tool_type {
                put("tool_type", Value::from(v.as_ref()));
            }
            if let Some(v) = &t.description {
                put("tool_description", Value::from(v.as_str()));
            }
            if let Some(v) = t.success {
                put("success", Value::from(v));
            }
            if let Some(v) = &t.mcp_server {
                put("mcp_server", Value::from(v.as_str()));
            }
        }
        SpanAttributes::Agent(a) => {
            if let Some(v) = &a.agent_id {
                put("agent_id", Value::from(v.as_str()));
            }
            if let Some(v) = &a.instructions {
                put("instructions", Value::from(v.as_str()));
            }
            if let Some(v) = a.max_steps {
                put("max_steps", Value::from(v));
            }
            if !a.available_tools.is_empty() {
                put("available_tools", Value::from(a.available_tools.clone()));
            }
        }
        SpanAttributes::Workflow(w) => {
            if let Some(v) = &w.step_id {
                put("step_id", Value::from(v.as_str()));
            }
            if let Some(v) = &w.status {
                put("status", Value::from(v.as_str()));
            }
            if let Some(v) = w.iteration {
                put("iteration", Value::from(v));
            }
            if let Some(v) = w.condition_result {
                put("condition_result", Value::from(v));
            }
        }
        _ => {}
    }
    // The entity is "what ran": worth showing on the spans that run it, not
    // on every descendant that inherits it.
    if matches!(span.span_type, SpanType::AgentRun | SpanType::WorkflowRun)
        && let Some(e) = &span.entity
    {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(e.entity_type.as_str()));
        m.insert("id".into(), Value::from(e.id.as_str()));
        if let Some(n) = &e.name {
            m.insert("name".into(), Value::from(n.as_str()));
        }
        put("entity", Value::Object(m));
    }
}

fn generation_fields(span: &ExportedSpan, prompt: Option<PromptLink>) -> GenerationFields {
    let Some(m) = span.attributes.model() else {
        return GenerationFields {
            prompt,
            ..GenerationFields::default()
        };
    };
    GenerationFields {
        model: m
            .model
            .as_deref()
            .map(str::to_owned)
            .or_else(|| m.response_model.clone()),
        model_parameters: match &m.parameters {
            Some(Value::Object(p)) => p.clone(),
            Some(other) => {
                let mut p = Map::new();
                p.insert("parameters".into(), other.clone());
                p
            }
            None => Map::new(),
        },
        usage_details: span
            .billable_usage()
            .map(usage::usage_details)
            .unwrap_or_default(),
        cost_details: span
            .billable_usage()
            .and_then(|u| u.cost.as_ref())
            .map(usage::cost_details)
            .unwrap_or_default(),
        completion_start_time: m.completion_start_time,
        prompt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiobs_core::{
        Ancestor, Cost, ModelAttributes, SpanError, SpanId, ToolAttributes, TraceContext, TraceId,
        Usage,
    };
    use serde_json::json;
    use std::sync::Arc;

    fn span(kind: SpanType) -> ExportedSpan {
        let mut s = ExportedSpan::new(
            TraceId::from_u128(0xabc).unwrap(),
            SpanId::from_u64(0x1).unwrap(),
            "s",
            kind,
        );
        s.end_time = Some(s.start_time);
        s.status = SpanStatus::Ok;
        s
    }

    fn child(kind: SpanType) -> ExportedSpan {
        let mut s = span(kind);
        s.span_id = SpanId::from_u64(0x2).unwrap();
        s.parent_span_id = SpanId::from_u64(0x1);
        s.is_root = false;
        s
    }

    #[test]
    fn span_types_map_to_langfuse_observation_types() {
        use ObservationType as O;
        let cases = [
            (SpanType::AgentRun, O::Agent),
            (SpanType::ModelGeneration, O::Generation),
            (SpanType::ModelStep, O::Span),
            (SpanType::ToolCall, O::Tool),
            (SpanType::McpToolCall, O::Tool),
            (SpanType::WorkflowRun, O::Chain),
            (SpanType::WorkflowStep, O::Chain),
            (SpanType::RagEmbedding, O::Embedding),
            (SpanType::RagVectorOperation, O::Retriever),
            (SpanType::ScorerRun, O::Evaluator),
            (SpanType::ProcessorRun, O::Guardrail),
            (SpanType::MemoryOperation, O::Span),
            (SpanType::Generic, O::Span),
        ];
        for (t, expected) in cases {
            assert_eq!(ObservationType::of(&span(t)), expected, "{t:?}");
        }
        let mut step = span(SpanType::ModelStep);
        step.attributes = ModelAttributes::new("m", "p")
            .with_usage(Usage::new(1, 1))
            .into();
        assert_eq!(
            ObservationType::of(&step),
            O::Generation,
            "a step with usage"
        );
        let mut ev = span(SpanType::ToolCall);
        ev.is_event = true;
        assert_eq!(ObservationType::of(&ev), O::Event);
    }

    #[test]
    fn root_carries_trace_fields_and_children_only_shared_ones() {
        let mut root = span(SpanType::AgentRun);
        root.name = "agent run".into();
        root.user_id = Some(Arc::from("u"));
        root.session_id = Some(Arc::from("s"));
        root.tags = Arc::from(vec!["prod".to_owned()]);
        root.input = Some(json!({"q": 1}));
        root.output = Some(json!({"a": 2}));
        let mut trace = TraceContext::default();
        trace.metadata = json!({"tenant": "acme", "langfuse": {"release": "r2", "version": "v3"}})
            .as_object()
            .cloned()
            .unwrap();
        root.trace_context = Arc::new(trace);
        // As the span API leaves it at the end: the trace's keys merged in.
        root.metadata =
            json!({"tenant": "acme", "agent": "a", "langfuse": {"release": "r2", "version": "v3"}})
                .as_object()
                .cloned()
                .unwrap();
        let m = Mapper {
            release: Some("r1".into()),
        };
        let mapped = m.map_span(&root);
        assert_eq!(
            Value::Object(mapped.observation.metadata),
            json!({"agent": "a"}),
            "the trace's keys are sent once, as trace metadata"
        );
        let t = mapped.trace;
        assert!(t.owns_trace);
        assert_eq!(t.name.as_deref(), Some("agent run"));
        assert_eq!(t.user_id.as_deref(), Some("u"));
        assert_eq!(t.tags, vec!["prod".to_owned()]);
        assert_eq!(t.release.as_deref(), Some("r2"), "metadata beats config");
        assert_eq!(t.version.as_deref(), Some("v3"));
        assert_eq!(Value::Object(t.metadata), json!({"tenant": "acme"}));
        assert_eq!(t.input, Some(json!({"q": 1})));

        let mut c = child(SpanType::ToolCall);
        c.user_id = root.user_id.clone();
        c.input = Some(json!("x"));
        let mapped = m.map_span(&c);
        assert_eq!(
            mapped.trace.name, None,
            "children do not know the trace name"
        );
        assert_eq!(mapped.trace.user_id.as_deref(), Some("u"));
        assert_eq!(mapped.trace.input, None);
        assert_eq!(mapped.trace.release.as_deref(), Some("r1"));
        assert_eq!(
            mapped.observation.parent_id.as_deref(),
            Some("0000000000000001")
        );
        assert_eq!(mapped.observation.input, Some(json!("x")));
    }

    #[test]
    fn generation_with_usage_cost_prompt_and_completion_start() {
        let mut g = child(SpanType::ModelGeneration);
        let mut attrs = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_parameters(json!({"temperature": 0.2}))
            .with_usage(
                Usage::new(120, 30)
                    .with_cache_read(100)
                    .with_cost(Cost::new(1.8e-5, 1.8e-5)),
            );
        attrs.completion_start_time = Some(g.start_time);
        g.attributes = attrs.into();
        g.metadata = json!({"langfuse": {"prompt": {"name": "p", "version": 2}}})
            .as_object()
            .cloned()
            .unwrap();
        let o = Mapper::default().map_span(&g).observation;
        assert_eq!(o.kind, ObservationType::Generation);
        let gen_fields = o.generation.unwrap();
        assert_eq!(gen_fields.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(
            Value::Object(gen_fields.model_parameters),
            json!({"temperature": 0.2})
        );
        assert!(
            gen_fields
                .usage_details
                .contains(&("input_cached_tokens", 100))
        );
        assert_eq!(gen_fields.cost_details[2], ("total", 3.6e-5));
        assert_eq!(gen_fields.completion_start_time, Some(g.start_time));
        assert_eq!(
            gen_fields.prompt.map(|p| (p.name, p.version)),
            Some(("p".into(), 2))
        );
        assert_eq!(Value::Object(o.metadata), json!({"provider": "openai"}));
    }

    #[test]
    fn errors_and_dropped_spans_set_the_level() {
        let mut t = child(SpanType::ToolCall);
        t.attributes = ToolAttributes::new("get_forecast").into();
        t.error = Some(Box::new(
            SpanError::new("forecast service unavailable").with_kind("RuntimeError"),
        ));
        t.status = SpanStatus::Error;
        let o = Mapper::default().map_span(&t).observation;
        assert_eq!(o.level, Level::Error);
        assert_eq!(
            o.status_message.as_deref(),
            Some("forecast service unavailable")
        );
        assert_eq!(o.error.unwrap().kind.as_deref(), Some("RuntimeError"));

        let mut d = child(SpanType::Generic);
        d.status = SpanStatus::Dropped;
        assert_eq!(
            Mapper::default().map_span(&d).observation.level,
            Level::Warning
        );
    }

    #[test]
    fn a_continued_root_has_a_remote_parent_and_owns_nothing_of_the_trace() {
        let mut r = span(SpanType::AgentRun);
        r.external_parent_span_id = SpanId::from_u64(0x99);
        let mut continued = TraceContext::default();
        continued.continued = true;
        r.trace_context = Arc::new(continued);
        r.input = Some(json!("mine"));
        let m = Mapper::default().map_span(&r);
        assert!(m.observation.remote_parent);
        assert_eq!(m.observation.parent_id.as_deref(), Some("0000000000000099"));
        assert!(!m.trace.owns_trace);
        assert_eq!((m.trace.name, m.trace.input), (None, None));
        assert_eq!(m.observation.input, Some(json!("mine")));
    }

    #[test]
    fn model_spans_inside_a_generation_are_not_generations() {
        let mut step = child(SpanType::ModelStep);
        step.ancestry = Arc::from(vec![
            Ancestor::new(
                SpanId::from_u64(7).unwrap(),
                step.start_time,
                SpanType::AgentRun,
            ),
            Ancestor::new(
                SpanId::from_u64(1).unwrap(),
                step.start_time,
                SpanType::ModelGeneration,
            ),
        ]);
        step.attributes = ModelAttributes::new("gpt-4o", "openai")
            .with_usage(Usage::new(60, 10))
            .into();
        let o = Mapper::default().map_span(&step).observation;
        assert_eq!(o.kind, ObservationType::Span);
        assert!(o.generation.is_none());
        assert_eq!(
            o.metadata["usage"],
            json!({"input_tokens": 60, "output_tokens": 10})
        );
        assert_eq!(o.metadata["model"], json!("gpt-4o"));
    }

    #[test]
    fn events_have_no_end_time() {
        let mut e = child(SpanType::Generic);
        e.is_event = true;
        let o = Mapper::default().map_span(&e).observation;
        assert_eq!(o.kind, ObservationType::Event);
        assert_eq!(o.end_time, None);
    }
}
