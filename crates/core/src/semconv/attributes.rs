//! The attribute table: which `gen_ai.*` (and general) attributes an aiobs
//! span carries, written once for every exporter that speaks the conventions.

use std::borrow::Cow;

use serde_json::Value;

use super::messages::{Side, system_instructions, to_messages_text};
use super::*;
use crate::span::{ExportedSpan, SpanAttributes, SpanStatus, Usage};

/// An attribute value, typed as the conventions type it. Exporters convert it
/// to their own value type (an OpenTelemetry `Value`, a JSON value).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AttrValue<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// A signed 64-bit integer (token counts saturate at `i64::MAX`).
    Int(i64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// An array of strings.
    StrArray(Vec<Cow<'a, str>>),
}

impl<'a> AttrValue<'a> {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl<'a> From<&'a str> for AttrValue<'a> {
    fn from(s: &'a str) -> Self {
        Self::Str(Cow::Borrowed(s))
    }
}
impl From<String> for AttrValue<'_> {
    fn from(s: String) -> Self {
        Self::Str(Cow::Owned(s))
    }
}
impl From<u64> for AttrValue<'_> {
    fn from(n: u64) -> Self {
        Self::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// What the table writes besides names and numbers.
///
/// ```
/// use aiobs_core::semconv::{AttributeOptions, Stability};
///
/// // From OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT and OTEL_SEMCONV_STABILITY_OPT_IN:
/// let from_env = AttributeOptions::from_env();
/// // Or explicitly:
/// let opts = AttributeOptions::default().capture_content(true).stability(Stability::LatestExperimental);
/// assert!(opts.captures_content());
/// # let _ = from_env;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct AttributeOptions {
    capture_content: bool,
    stability: Stability,
}

impl AttributeOptions {
    /// From the environment: [`capture_content_from_env`] and [`Stability::from_env`].
    pub fn from_env() -> Self {
        Self {
            capture_content: capture_content_from_env(),
            stability: Stability::from_env(),
        }
    }
    /// Whether prompts, completions, instructions and tool arguments/results
    /// are written (off by default: content is opt-in in the conventions).
    pub fn capture_content(mut self, on: bool) -> Self {
        self.capture_content = on;
        self
    }
    /// Which version of the conventions is written.
    pub fn stability(mut self, stability: Stability) -> Self {
        self.stability = stability;
        self
    }
    /// Whether content is written.
    pub fn captures_content(&self) -> bool {
        self.capture_content
    }
    /// The stability mode.
    pub fn stability_mode(&self) -> Stability {
        self.stability
    }
}

/// One attribute: its registry name and value.
pub type Attribute<'a> = (&'static str, AttrValue<'a>);

/// The semantic-convention attributes of `span`, in a stable order.
///
/// | aiobs | attribute |
/// |---|---|
/// | span type ([`Operation`]) | `gen_ai.operation.name` |
/// | trace user / session | `user.id`, `session.id`; the session also as `gen_ai.conversation.id` on GenAI spans |
/// | model: provider | `gen_ai.provider.name` (and `gen_ai.system` in [`Stability::Default`]) |
/// | model: model, parameters | `gen_ai.request.model`; parameters `temperature`, `max_tokens` (or `max_output_tokens`, `max_completion_tokens`), `top_p`, `top_k`, `frequency_penalty`, `presence_penalty`, `stop` / `stop_sequences`, `seed`, `n` → `gen_ai.request.*` |
/// | model: streaming | `gen_ai.request.stream` |
/// | model: response model, id, finish reason | `gen_ai.response.model`, `.id`, `.finish_reasons` (a one-element array) |
/// | model: completion start | `gen_ai.response.time_to_first_chunk` (seconds after the span's start) |
/// | usage | `gen_ai.usage.input_tokens` (cached included), `.output_tokens` (reasoning included), `.cache_read.input_tokens`, `.cache_creation.input_tokens`, `.reasoning.output_tokens` — for every model span that carries usage: the exporter moves a non-billable span's usage ([`ExportedSpan::billable_usage`]) under names of its own ([`usage_attributes`]) |
/// | agent | `gen_ai.agent.name` ([`agent_name`]), `gen_ai.agent.id` (`AgentAttributes::agent_id`, else the entity id) |
/// | tool | `gen_ai.tool.name` ([`tool_name`]), `.type`, `.description` |
/// | workflow run | `gen_ai.workflow.name` (the span name) |
/// | error | `error.type`: the error's kind, else `_OTHER` (the conventions' fallback) |
/// | content (only with [`AttributeOptions::capture_content`]) | model and agent spans: input → `gen_ai.input.messages`, output → `gen_ai.output.messages` (parts schema, see below); agent instructions → `gen_ai.system_instructions`; available tools → `gen_ai.tool.definitions`; tool spans: input → `gen_ai.tool.call.arguments`, output → `gen_ai.tool.call.result` (JSON text; strings as they are) |
///
/// Model parameters the conventions do not name are not written here
/// ([`unmapped_parameters`] lists them for the exporter to carry). Messages
/// follow the conventions' parts schema; the conversion rules are in
/// `docs/exporters.md` (OpenTelemetry section). Spans without a GenAI
/// operation get only the trace-level and error attributes; their content
/// is the exporter's to place.
pub fn attributes<'a>(span: &'a ExportedSpan, opts: AttributeOptions) -> Vec<Attribute<'a>> {
    let mut out: Vec<Attribute<'a>> = Vec::with_capacity(16);
    let op = Operation::of(span);
    if let Some(op) = op {
        out.push((GEN_AI_OPERATION_NAME, op.as_str().into()));
    }
    match &span.attributes {
        SpanAttributes::Model(m) => {
            if let Some(p) = m.provider.as_deref() {
                out.push((GEN_AI_PROVIDER_NAME, p.into()));
                if opts.stability.writes_deprecated() {
                    out.push((GEN_AI_SYSTEM, p.into()));
                }
            }
            if let Some(model) = m.model.as_deref() {
                out.push((GEN_AI_REQUEST_MODEL, model.into()));
            }
            if let Some(Value::Object(params)) = &m.parameters {
                parameters(params, &mut out);
            }
            if let Some(s) = m.streaming {
                out.push((GEN_AI_REQUEST_STREAM, AttrValue::Bool(s)));
            }
            if let Some(r) = m.response_model.as_deref() {
                out.push((GEN_AI_RESPONSE_MODEL, r.into()));
            }
            if let Some(id) = m.response_id.as_deref() {
                out.push((GEN_AI_RESPONSE_ID, id.into()));
            }
            if let Some(fr) = m.finish_reason.as_deref() {
                out.push((
                    GEN_AI_RESPONSE_FINISH_REASONS,
                    AttrValue::StrArray(vec![Cow::Borrowed(fr)]),
                ));
            }
            if let Some(first) = m.completion_start_time
                && let Ok(d) = (first - span.start_time).to_std()
            {
                out.push((
                    GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                    AttrValue::Double(d.as_secs_f64()),
                ));
            }
            // Written for every model span that carries usage; a span nested
            // in another model span is not billable (`ExportedSpan::billable_usage`),
            // and exporters move its usage under names of their own
            // (`usage_attributes`), so destinations never add it up twice.
            if let Some(u) = &m.usage {
                usage(u, &mut out);
            }
        }
        SpanAttributes::Agent(a) => {
            out.push((GEN_AI_AGENT_NAME, agent_name(span).into()));
            let id = a
                .agent_id
                .as_deref()
                .or(span.entity.as_deref().map(|e| e.id.as_str()));
            if let Some(id) = id {
                out.push((GEN_AI_AGENT_ID, id.into()));
            }
        }
        SpanAttributes::Tool(t) => {
            out.push((GEN_AI_TOOL_NAME, tool_name(span).into()));
            if let Some(ty) = t.tool_type.as_deref() {
                out.push((GEN_AI_TOOL_TYPE, ty.into()));
            }
            if let Some(d) = t.description.as_deref() {
                out.push((GEN_AI_TOOL_DESCRIPTION, d.into()));
            }
        }
        _ => {}
    }
    // Spans of a GenAI type whose typed attributes were not set still say what they act on.
    match (op, &span.attributes) {
        (Some(Operation::InvokeAgent), a) if !matches!(a, SpanAttributes::Agent(_)) => {
            out.push((GEN_AI_AGENT_NAME, agent_name(span).into()));
            if let Some(e) = span.entity.as_deref() {
                out.push((GEN_AI_AGENT_ID, e.id.as_str().into()));
            }
        }
        (Some(Operation::ExecuteTool), a) if !matches!(a, SpanAttributes::Tool(_)) => {
            out.push((GEN_AI_TOOL_NAME, tool_name(span).into()));
        }
        (Some(Operation::InvokeWorkflow), _) => {
            out.push((GEN_AI_WORKFLOW_NAME, span.name.as_ref().into()));
        }
        _ => {}
    }
    if let Some(session) = span.session_id.as_deref() {
        if op.is_some() {
            out.push((GEN_AI_CONVERSATION_ID, session.into()));
        }
        out.push((SESSION_ID, session.into()));
    }
    if let Some(user) = span.user_id.as_deref() {
        out.push((USER_ID, user.into()));
    }
    if let Some(e) = &span.error {
        out.push((
            ERROR_TYPE,
            e.kind
                .as_deref()
                .filter(|k| !k.is_empty())
                .unwrap_or("_OTHER")
                .into(),
        ));
    } else if span.status == SpanStatus::Error {
        out.push((ERROR_TYPE, "_OTHER".into()));
    }
    if opts.capture_content {
        content(span, op, &mut out);
    }
    out
}

/// The usage attributes (all five registry keys that apply).
fn usage<'a>(u: &Usage, out: &mut Vec<Attribute<'a>>) {
    usage_with_names(u, USAGE_NAMES, out);
}

/// The five usage attribute names: input, output, cache read, cache
/// creation, reasoning.
pub type UsageNames = [&'static str; 5];

const USAGE_NAMES: UsageNames = [
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
];

/// Usage under other names: for the usage of a model span that is not
/// billable (an exporter that still wants to show it writes it under names
/// of its own, which backends do not add up).
pub fn usage_attributes<'a>(u: &Usage, names: UsageNames) -> Vec<Attribute<'a>> {
    let mut out = Vec::with_capacity(5);
    usage_with_names(u, names, &mut out);
    out
}

fn usage_with_names<'a>(u: &Usage, names: UsageNames, out: &mut Vec<Attribute<'a>>) {
    let [input, output, cache_read, cache_creation, reasoning] = names;
    out.push((input, u.input_tokens.into()));
    out.push((output, u.output_tokens.into()));
    if let Some(n) = u.input_details.cache_read {
        out.push((cache_read, n.into()));
    }
    if let Some(n) = u.input_details.cache_write {
        out.push((cache_creation, n.into()));
    }
    if let Some(n) = u.output_details.reasoning {
        out.push((reasoning, n.into()));
    }
}

/// Model parameter keys the conventions name, with their attribute.
const PARAMETERS: [(&str, &str); 11] = [
    ("temperature", GEN_AI_REQUEST_TEMPERATURE),
    ("max_tokens", GEN_AI_REQUEST_MAX_TOKENS),
    ("max_output_tokens", GEN_AI_REQUEST_MAX_TOKENS),
    ("max_completion_tokens", GEN_AI_REQUEST_MAX_TOKENS),
    ("top_p", GEN_AI_REQUEST_TOP_P),
    ("top_k", GEN_AI_REQUEST_TOP_K),
    ("frequency_penalty", GEN_AI_REQUEST_FREQUENCY_PENALTY),
    ("presence_penalty", GEN_AI_REQUEST_PRESENCE_PENALTY),
    ("seed", GEN_AI_REQUEST_SEED),
    ("n", GEN_AI_REQUEST_CHOICE_COUNT),
    ("stop", GEN_AI_REQUEST_STOP_SEQUENCES),
];

fn parameter_attribute(key: &str) -> Option<&'static str> {
    if key == "stop_sequences" {
        return Some(GEN_AI_REQUEST_STOP_SEQUENCES);
    }
    PARAMETERS.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
}

/// The attribute value of one parameter, `None` when its type is not the
/// attribute's (then [`unmapped_parameters`] hands it back).
fn parameter_value<'a>(attr: &'static str, value: &'a Value) -> Option<AttrValue<'a>> {
    Some(match (attr, value) {
        (GEN_AI_REQUEST_STOP_SEQUENCES, Value::String(s)) => {
            AttrValue::StrArray(vec![Cow::Borrowed(s.as_str())])
        }
        (GEN_AI_REQUEST_STOP_SEQUENCES, Value::Array(items))
            if items.iter().all(Value::is_string) =>
        {
            AttrValue::StrArray(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(Cow::Borrowed)
                    .collect(),
            )
        }
        (GEN_AI_REQUEST_STOP_SEQUENCES, _) => return None,
        (
            GEN_AI_REQUEST_MAX_TOKENS | GEN_AI_REQUEST_SEED | GEN_AI_REQUEST_CHOICE_COUNT,
            Value::Number(n),
        ) if n.is_i64() => AttrValue::Int(n.as_i64()?),
        (_, Value::Number(n)) => AttrValue::Double(n.as_f64()?),
        _ => return None,
    })
}

fn parameters<'a>(params: &'a serde_json::Map<String, Value>, out: &mut Vec<Attribute<'a>>) {
    for (key, value) in params {
        if let Some(attr) = parameter_attribute(key)
            && let Some(v) = parameter_value(attr, value)
        {
            out.push((attr, v));
        }
    }
}

/// The model parameters [`attributes`] does not write (a key the conventions
/// do not name, or a value of the wrong type), for the exporter to carry
/// under a name of its own rather than lose them.
pub fn unmapped_parameters(span: &ExportedSpan) -> Vec<(&str, &Value)> {
    let Some(Value::Object(params)) = span.attributes.model().and_then(|m| m.parameters.as_ref())
    else {
        return Vec::new();
    };
    params
        .iter()
        .filter(|(k, v)| {
            parameter_attribute(k)
                .and_then(|a| parameter_value(a, v))
                .is_none()
        })
        .map(|(k, v)| (k.as_str(), v))
        .collect()
}

/// The finish reason written on output messages (see [`messages`](super::messages)).
fn fallback_finish_reason(span: &ExportedSpan) -> &str {
    if let Some(fr) = span
        .attributes
        .model()
        .and_then(|m| m.finish_reason.as_deref())
    {
        return fr;
    }
    if span.error.is_some() || span.status == SpanStatus::Error {
        "error"
    } else {
        "stop"
    }
}

fn json_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn content<'a>(span: &'a ExportedSpan, op: Option<Operation>, out: &mut Vec<Attribute<'a>>) {
    match op {
        Some(Operation::ExecuteTool) => {
            if let Some(i) = &span.input {
                out.push((GEN_AI_TOOL_CALL_ARGUMENTS, json_text(i).into()));
            }
            if let Some(o) = &span.output {
                out.push((GEN_AI_TOOL_CALL_RESULT, json_text(o).into()));
            }
        }
        Some(
            Operation::Chat
            | Operation::GenerateContent
            | Operation::TextCompletion
            | Operation::InvokeAgent
            | Operation::CreateAgent,
        ) => {
            if let SpanAttributes::Agent(a) = &span.attributes {
                if let Some(text) = a.instructions.as_deref() {
                    out.push((
                        GEN_AI_SYSTEM_INSTRUCTIONS,
                        system_instructions(text).to_string().into(),
                    ));
                }
                if !a.available_tools.is_empty() {
                    let defs: Vec<Value> = a
                        .available_tools
                        .iter()
                        .map(|t| serde_json::json!({"type": "function", "name": t}))
                        .collect();
                    out.push((
                        GEN_AI_TOOL_DEFINITIONS,
                        Value::Array(defs).to_string().into(),
                    ));
                }
            }
            let fr = fallback_finish_reason(span);
            if let Some(i) = &span.input {
                out.push((
                    GEN_AI_INPUT_MESSAGES,
                    to_messages_text(i, Side::Input, fr).into(),
                ));
            }
            if let Some(o) = &span.output {
                out.push((
                    GEN_AI_OUTPUT_MESSAGES,
                    to_messages_text(o, Side::Output, fr).into(),
                ));
            }
        }
        // Embeddings, retrievals, workflows and non-GenAI spans have no
        // message attributes in the conventions: the exporter places them.
        _ => {}
    }
}

/// Whether [`attributes`] writes `span`'s input and output under a
/// convention name (so the exporter need not place them itself).
pub fn content_has_convention(span: &ExportedSpan) -> bool {
    matches!(
        Operation::of(span),
        Some(
            Operation::ExecuteTool
                | Operation::Chat
                | Operation::GenerateContent
                | Operation::TextCompletion
                | Operation::InvokeAgent
                | Operation::CreateAgent
        )
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::{
        AgentAttributes, ModelAttributes, SpanError, SpanId, SpanType, ToolAttributes, TraceId,
    };

    fn span(name: &'static str, t: SpanType) -> ExportedSpan {
        ExportedSpan::new(TraceId::random(), SpanId::random(), name, t)
    }

    fn map<'a>(attrs: &'a [Attribute<'a>]) -> BTreeMap<&'static str, &'a AttrValue<'a>> {
        let m: BTreeMap<_, _> = attrs.iter().map(|(k, v)| (*k, v)).collect();
        assert_eq!(
            m.len(),
            attrs.len(),
            "no attribute written twice: {attrs:?}"
        );
        m
    }

    #[test]
    fn model_span_carries_the_recorded_attributes() {
        let mut s = span("chat gpt-4o-mini", SpanType::ModelGeneration);
        let mut m = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_parameters(
                json!({"temperature": 0.2, "max_tokens": 256, "stop": "END", "logit_bias": {}, "seed": "x"}),
            )
            .with_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(0));
        m.response_model = Some("gpt-4o-mini-2024-07-18".into());
        m.response_id = Some("chatcmpl-123".into());
        m.finish_reason = Some("stop".into());
        m.completion_start_time = Some(s.start_time + Duration::milliseconds(250));
        s.attributes = m.into();
        s.session_id = Some(Arc::from("session-abc"));
        s.input = Some(json!("What is the weather in Paris?"));
        let attrs = attributes(&s, AttributeOptions::default());
        let a = map(&attrs);
        assert_eq!(a["gen_ai.operation.name"].as_str(), Some("chat"));
        assert_eq!(a["gen_ai.provider.name"].as_str(), Some("openai"));
        assert_eq!(
            a["gen_ai.system"].as_str(),
            Some("openai"),
            "default stability"
        );
        assert_eq!(a["gen_ai.request.temperature"], &AttrValue::Double(0.2));
        assert_eq!(a["gen_ai.request.max_tokens"], &AttrValue::Int(256));
        assert_eq!(
            a["gen_ai.request.stop_sequences"],
            &AttrValue::StrArray(vec!["END".into()])
        );
        assert_eq!(
            a["gen_ai.response.finish_reasons"],
            &AttrValue::StrArray(vec!["stop".into()])
        );
        assert_eq!(
            a["gen_ai.response.time_to_first_chunk"],
            &AttrValue::Double(0.25)
        );
        assert_eq!(a["gen_ai.usage.input_tokens"], &AttrValue::Int(120));
        assert_eq!(a["gen_ai.usage.output_tokens"], &AttrValue::Int(30));
        assert_eq!(
            a["gen_ai.usage.cache_read.input_tokens"],
            &AttrValue::Int(100)
        );
        assert_eq!(
            a["gen_ai.usage.reasoning.output_tokens"],
            &AttrValue::Int(0)
        );
        assert!(!a.contains_key("gen_ai.usage.cache_creation.input_tokens"));
        assert_eq!(a["gen_ai.conversation.id"].as_str(), Some("session-abc"));
        assert!(
            !a.contains_key("gen_ai.input.messages"),
            "content is opt-in"
        );
        assert_eq!(
            unmapped_parameters(&s),
            vec![("logit_bias", &json!({})), ("seed", &json!("x"))],
            "what the conventions do not name is handed back"
        );

        let latest = attributes(
            &s,
            AttributeOptions::default()
                .stability(Stability::LatestExperimental)
                .capture_content(true),
        );
        let a = map(&latest);
        assert!(!a.contains_key("gen_ai.system"));
        assert_eq!(
            a["gen_ai.input.messages"].as_str(),
            Some(
                r#"[{"parts":[{"content":"What is the weather in Paris?","type":"text"}],"role":"user"}]"#
            )
        );
    }

    #[test]
    fn agent_tool_and_error_attributes() {
        let mut agent = span("weather-agent", SpanType::AgentRun);
        agent.attributes = AgentAttributes {
            agent_id: Some("weather-agent-v1".into()),
            instructions: Some("Answer briefly.".into()),
            ..AgentAttributes::default()
        }
        .into();
        agent.user_id = Some(Arc::from("user-123"));
        agent.output = Some(json!("It is 18°C."));
        let attrs = attributes(&agent, AttributeOptions::default().capture_content(true));
        let a = map(&attrs);
        assert_eq!(a["gen_ai.agent.name"].as_str(), Some("weather-agent"));
        assert_eq!(a["gen_ai.agent.id"].as_str(), Some("weather-agent-v1"));
        assert_eq!(a["user.id"].as_str(), Some("user-123"));
        assert_eq!(
            a["gen_ai.system_instructions"].as_str(),
            Some(r#"[{"content":"Answer briefly.","type":"text"}]"#)
        );
        assert!(
            a["gen_ai.output.messages"]
                .as_str()
                .unwrap()
                .contains(r#""finish_reason":"stop""#)
        );

        let mut tool = span("get_forecast", SpanType::ToolCall);
        tool.attributes = ToolAttributes::new("get_forecast").into();
        tool.input = Some(json!({"city": "Paris", "days": 3}));
        tool.error = Some(Box::new(
            SpanError::new("forecast service unavailable").with_kind("RuntimeError"),
        ));
        tool.status = SpanStatus::Error;
        let attrs = attributes(&tool, AttributeOptions::default().capture_content(true));
        let a = map(&attrs);
        assert_eq!(a["gen_ai.tool.name"].as_str(), Some("get_forecast"));
        assert_eq!(
            a["gen_ai.tool.call.arguments"].as_str(),
            Some(r#"{"city":"Paris","days":3}"#)
        );
        assert_eq!(a["error.type"].as_str(), Some("RuntimeError"));

        let bare_tool = span("lookup", SpanType::ToolCall);
        let attrs = attributes(&bare_tool, AttributeOptions::default());
        assert_eq!(map(&attrs)["gen_ai.tool.name"].as_str(), Some("lookup"));

        let step = span("step", SpanType::WorkflowStep);
        assert!(attributes(&step, AttributeOptions::default()).is_empty());
        assert!(!content_has_convention(&step));
    }

    #[test]
    fn nested_usage_can_be_written_under_other_names() {
        let mut step = span("step 0", SpanType::ModelStep);
        step.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(Usage::new(120, 30))
            .into();
        step.ancestry = Arc::from(vec![crate::Ancestor::new(
            SpanId::random(),
            step.start_time,
            SpanType::ModelGeneration,
        )]);
        assert!(
            step.billable_usage().is_none(),
            "the generation carries these tokens"
        );
        let attrs = attributes(&step, AttributeOptions::default());
        assert_eq!(
            map(&attrs)["gen_ai.usage.input_tokens"],
            &AttrValue::Int(120),
            "the table writes them; the exporter renames them"
        );
        let own = usage_attributes(
            step.attributes.usage().unwrap(),
            ["a.in", "a.out", "a.cr", "a.cw", "a.r"],
        );
        assert_eq!(
            own,
            vec![("a.in", AttrValue::Int(120)), ("a.out", AttrValue::Int(30))]
        );
    }

    #[test]
    fn huge_token_counts_saturate() {
        assert_eq!(AttrValue::from(u64::MAX), AttrValue::Int(i64::MAX));
    }
}
