//! The table read back: `gen_ai.*` attributes (as the `tracing` layer or any
//! reader of OpenTelemetry GenAI spans receives them) turned into aiobs's
//! span type, typed attributes, usage and content — the other direction of
//! [`attributes`](super::attributes), from the same names.

use std::borrow::Cow;

use serde_json::Value;

use super::*;
use crate::span::{
    AgentAttributes, ModelAttributes, SpanAttributes, SpanType, ToolAttributes, Usage,
};

/// GenAI attributes gathered one by one, then read as aiobs fields.
///
/// Every attribute [`attributes`](super::attributes) writes is read here
/// under the same name, plus the deprecated names older instrumentations
/// still send (`gen_ai.system`, `gen_ai.usage.prompt_tokens`,
/// `gen_ai.usage.completion_tokens`). Values may arrive as the registry types
/// them or as strings (`tracing` fields are often recorded with `%`).
///
/// ```
/// use aiobs_core::semconv::{AttrValue, GenAiFields};
/// use aiobs_core::SpanType;
///
/// let mut f = GenAiFields::default();
/// for (k, v) in [
///     ("gen_ai.operation.name", AttrValue::from("chat")),
///     ("gen_ai.request.model", AttrValue::from("gpt-4o-mini")),
///     ("gen_ai.provider.name", AttrValue::from("openai")),
///     ("gen_ai.usage.input_tokens", AttrValue::Int(120)),
///     ("gen_ai.usage.cache_read.input_tokens", AttrValue::Int(100)),
///     ("gen_ai.usage.output_tokens", AttrValue::from("30")),
/// ] {
///     assert!(f.record(k, v));
/// }
/// assert!(!f.record("http.method", AttrValue::from("GET")), "not ours");
/// assert_eq!(f.span_type(), Some(SpanType::ModelGeneration));
/// let usage = f.usage().unwrap();
/// assert_eq!((usage.input_tokens, usage.output_tokens, usage.input_details.cache_read), (120, 30, Some(100)));
/// assert_eq!(f.attributes().model().unwrap().model.as_deref(), Some("gpt-4o-mini"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenAiFields {
    operation: Option<Operation>,
    model: ModelAttributes,
    model_seen: bool,
    tool: ToolAttributes,
    tool_seen: bool,
    agent: AgentAttributes,
    agent_seen: bool,
    agent_name: Option<String>,
    workflow_name: Option<String>,
    tokens: [Option<u64>; 5],
    session_id: Option<String>,
    user_id: Option<String>,
    input: Option<Value>,
    output: Option<Value>,
    error_type: Option<String>,
    tool_call_id: Option<String>,
}

fn text(v: &AttrValue<'_>) -> Option<String> {
    match v {
        AttrValue::Str(s) => Some(s.to_string()),
        AttrValue::Int(i) => Some(i.to_string()),
        AttrValue::Double(d) => Some(d.to_string()),
        AttrValue::Bool(b) => Some(b.to_string()),
        AttrValue::StrArray(items) => items.first().map(|s| s.to_string()),
    }
}

fn count(v: &AttrValue<'_>) -> Option<u64> {
    match v {
        AttrValue::Int(i) => u64::try_from(*i).ok(),
        AttrValue::Double(d) if d.is_finite() && *d >= 0.0 => Some(*d as u64),
        AttrValue::Str(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn number(v: &AttrValue<'_>) -> Option<Value> {
    match v {
        AttrValue::Int(i) => Some(Value::from(*i)),
        AttrValue::Double(d) => serde_json::Number::from_f64(*d).map(Value::Number),
        AttrValue::Str(s) => serde_json::from_str::<Value>(s.trim())
            .ok()
            .filter(Value::is_number),
        _ => None,
    }
}

/// JSON text parsed, else the text as a JSON string.
fn json(v: &AttrValue<'_>) -> Option<Value> {
    let t = text(v)?;
    Some(serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

impl GenAiFields {
    /// Takes one attribute; `false` when it is not one the table reads.
    pub fn record(&mut self, key: &str, value: AttrValue<'_>) -> bool {
        let v = &value;
        let usage_slot = |k: &str| match k {
            GEN_AI_USAGE_INPUT_TOKENS | GEN_AI_USAGE_PROMPT_TOKENS => Some(0),
            GEN_AI_USAGE_OUTPUT_TOKENS | GEN_AI_USAGE_COMPLETION_TOKENS => Some(1),
            GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS => Some(2),
            GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS => Some(3),
            GEN_AI_USAGE_REASONING_OUTPUT_TOKENS => Some(4),
            _ => None,
        };
        if let Some(slot) = usage_slot(key) {
            // The current name wins over a deprecated one, whatever the order.
            let deprecated = matches!(
                key,
                GEN_AI_USAGE_PROMPT_TOKENS | GEN_AI_USAGE_COMPLETION_TOKENS
            );
            if let Some(n) = count(v)
                && !(deprecated && self.tokens[slot].is_some())
            {
                self.tokens[slot] = Some(n);
            }
            return true;
        }
        let param = |f: &mut Self, name: &str, value: Value| {
            f.model_seen = true;
            let p = f
                .model
                .parameters
                .get_or_insert_with(|| Value::Object(Default::default()));
            if let Some(map) = p.as_object_mut() {
                map.insert(name.to_owned(), value);
            }
        };
        match key {
            GEN_AI_OPERATION_NAME => self.operation = text(v).as_deref().and_then(Operation::parse),
            GEN_AI_PROVIDER_NAME => {
                self.model_seen = true;
                self.model.provider = text(v).map(Cow::Owned);
            }
            GEN_AI_SYSTEM => {
                if self.model.provider.is_none() {
                    self.model_seen = true;
                    self.model.provider = text(v).map(Cow::Owned);
                }
            }
            GEN_AI_REQUEST_MODEL => {
                self.model_seen = true;
                self.model.model = text(v).map(Cow::Owned);
            }
            GEN_AI_RESPONSE_MODEL => {
                self.model_seen = true;
                self.model.response_model = text(v);
            }
            GEN_AI_RESPONSE_ID => {
                self.model_seen = true;
                self.model.response_id = text(v);
            }
            GEN_AI_RESPONSE_FINISH_REASONS => {
                self.model_seen = true;
                self.model.finish_reason = text(v);
            }
            GEN_AI_REQUEST_STREAM => {
                self.model_seen = true;
                self.model.streaming = match v {
                    AttrValue::Bool(b) => Some(*b),
                    other => text(other).and_then(|t| t.parse().ok()),
                };
            }
            GEN_AI_REQUEST_STOP_SEQUENCES => {
                let seqs: Vec<Value> = match v {
                    AttrValue::StrArray(items) => {
                        items.iter().map(|s| Value::from(s.as_ref())).collect()
                    }
                    other => text(other).map(Value::from).into_iter().collect(),
                };
                param(self, "stop", Value::Array(seqs));
            }
            k if parameter_name(k).is_some() => {
                if let (Some(name), Some(n)) = (parameter_name(k), number(v)) {
                    param(self, name, n);
                }
            }
            GEN_AI_AGENT_NAME => {
                self.agent_seen = true;
                self.agent_name = text(v);
            }
            GEN_AI_AGENT_ID => {
                self.agent_seen = true;
                self.agent.agent_id = text(v);
            }
            GEN_AI_SYSTEM_INSTRUCTIONS => {
                self.agent_seen = true;
                self.agent.instructions = json(v).map(|j| instructions_text(&j));
            }
            GEN_AI_WORKFLOW_NAME => self.workflow_name = text(v),
            GEN_AI_TOOL_NAME => {
                self.tool_seen = true;
                self.tool.tool_id = text(v).map(Cow::Owned);
            }
            GEN_AI_TOOL_TYPE => {
                self.tool_seen = true;
                self.tool.tool_type = text(v).map(Cow::Owned);
            }
            GEN_AI_TOOL_DESCRIPTION => {
                self.tool_seen = true;
                self.tool.description = text(v);
            }
            GEN_AI_TOOL_CALL_ID => self.tool_call_id = text(v),
            GEN_AI_TOOL_CALL_ARGUMENTS | GEN_AI_INPUT_MESSAGES => self.input = json(v),
            GEN_AI_TOOL_CALL_RESULT | GEN_AI_OUTPUT_MESSAGES => self.output = json(v),
            GEN_AI_CONVERSATION_ID => {
                if self.session_id.is_none() {
                    self.session_id = text(v);
                }
            }
            SESSION_ID => self.session_id = text(v),
            USER_ID => self.user_id = text(v),
            ERROR_TYPE => self.error_type = text(v),
            _ => return false,
        }
        true
    }

    /// The GenAI operation, if one was recorded.
    pub fn operation(&self) -> Option<Operation> {
        self.operation
    }

    /// The aiobs span type: the operation's ([`Operation::span_type`]);
    /// without one, a tool name means a tool call and a model a generation;
    /// `None` when nothing says.
    pub fn span_type(&self) -> Option<SpanType> {
        if let Some(op) = self.operation {
            return Some(op.span_type());
        }
        if self.tool_seen {
            Some(SpanType::ToolCall)
        } else if self.model.model.is_some() {
            Some(SpanType::ModelGeneration)
        } else {
            None
        }
    }

    /// The typed attributes for [`span_type`](Self::span_type) (usage included).
    pub fn attributes(&self) -> SpanAttributes {
        match self.span_type() {
            Some(t) if t.is_model() || t == SpanType::RagEmbedding => {
                let mut m = self.model.clone();
                m.usage = self.usage();
                m.into()
            }
            Some(t) if t.is_tool() => self.tool.clone().into(),
            Some(SpanType::AgentRun) => self.agent.clone().into(),
            _ if self.model_seen => {
                let mut m = self.model.clone();
                m.usage = self.usage();
                m.into()
            }
            _ => SpanAttributes::None,
        }
    }

    /// The usage, when an input or output count was recorded (inclusive
    /// counts, as the conventions and aiobs define them).
    pub fn usage(&self) -> Option<Usage> {
        let [input, output, cache_read, cache_write, reasoning] = self.tokens;
        if input.is_none() && output.is_none() {
            return None;
        }
        let mut u = Usage::new(input.unwrap_or(0), output.unwrap_or(0));
        u.input_details.cache_read = cache_read;
        u.input_details.cache_write = cache_write;
        u.output_details.reasoning = reasoning;
        Some(u)
    }

    /// The span name the conventions' attributes suggest (`{operation}
    /// {target}`), when an operation was recorded.
    pub fn name(&self) -> Option<String> {
        let op = self.operation?;
        let target = match op {
            Operation::InvokeAgent | Operation::CreateAgent => self.agent_name.clone(),
            Operation::ExecuteTool => self.tool.tool_id.as_deref().map(str::to_owned),
            Operation::InvokeWorkflow => self.workflow_name.clone(),
            _ => self.model.model.as_deref().map(str::to_owned),
        };
        Some(match target {
            Some(t) => format!("{} {t}", op.as_str()),
            None => op.as_str().to_owned(),
        })
    }

    /// The agent's name (`gen_ai.agent.name`).
    pub fn agent_name(&self) -> Option<&str> {
        self.agent_name.as_deref()
    }
    /// The workflow's name (`gen_ai.workflow.name`).
    pub fn workflow_name(&self) -> Option<&str> {
        self.workflow_name.as_deref()
    }
    /// The tool call's id (`gen_ai.tool.call.id`).
    pub fn tool_call_id(&self) -> Option<&str> {
        self.tool_call_id.as_deref()
    }
    /// The session (`session.id`, else `gen_ai.conversation.id`).
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    /// The user (`user.id`).
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }
    /// The input: tool arguments or input messages, parsed from their JSON text.
    pub fn input(&self) -> Option<&Value> {
        self.input.as_ref()
    }
    /// The output: tool result or output messages, parsed from their JSON text.
    pub fn output(&self) -> Option<&Value> {
        self.output.as_ref()
    }
    /// The error class (`error.type`), when the operation failed.
    pub fn error_type(&self) -> Option<&str> {
        self.error_type.as_deref()
    }
}

/// The model parameter a `gen_ai.request.*` attribute carries (the names
/// [`attributes`](super::attributes) writes; `max_tokens` for all three spellings).
fn parameter_name(attr: &str) -> Option<&'static str> {
    Some(match attr {
        GEN_AI_REQUEST_TEMPERATURE => "temperature",
        GEN_AI_REQUEST_MAX_TOKENS => "max_tokens",
        GEN_AI_REQUEST_TOP_P => "top_p",
        GEN_AI_REQUEST_TOP_K => "top_k",
        GEN_AI_REQUEST_FREQUENCY_PENALTY => "frequency_penalty",
        GEN_AI_REQUEST_PRESENCE_PENALTY => "presence_penalty",
        GEN_AI_REQUEST_SEED => "seed",
        GEN_AI_REQUEST_CHOICE_COUNT => "n",
        _ => return None,
    })
}

/// System instructions (an array of parts) as text: the text parts joined.
fn instructions_text(v: &Value) -> String {
    match v {
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("content").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AgentAttributes, ExportedSpan, SpanId, TraceId};

    /// What the table writes, read back, gives the same fields.
    #[test]
    fn the_table_round_trips() {
        let mut s = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "x",
            SpanType::ModelGeneration,
        );
        let mut m = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_parameters(json!({"temperature": 0.2, "max_tokens": 256, "stop": ["END"]}))
            .with_usage(
                Usage::new(120, 30)
                    .with_cache_read(100)
                    .with_cache_write(5)
                    .with_reasoning(7),
            );
        m.response_model = Some("gpt-4o-mini-2024-07-18".into());
        m.response_id = Some("chatcmpl-1".into());
        m.finish_reason = Some("stop".into());
        m.streaming = Some(true);
        s.attributes = m.clone().into();
        s.session_id = Some("sess".into());
        s.user_id = Some("u".into());
        s.input = Some(json!("hi"));
        let mut f = GenAiFields::default();
        for (k, v) in attributes(&s, AttributeOptions::default().capture_content(true)) {
            assert!(f.record(k, v), "{k} is written but not read");
        }
        assert_eq!(f.span_type(), Some(SpanType::ModelGeneration));
        assert_eq!(f.attributes(), SpanAttributes::from(m));
        assert_eq!((f.session_id(), f.user_id()), (Some("sess"), Some("u")));
        assert_eq!(
            f.input(),
            Some(&json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]))
        );
        assert_eq!(f.name().as_deref(), Some("chat gpt-4o-mini"));

        let mut agent = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "weather-agent",
            SpanType::AgentRun,
        );
        let a = AgentAttributes {
            agent_id: Some("wa-1".into()),
            instructions: Some("Be brief.".into()),
            ..AgentAttributes::default()
        };
        agent.attributes = a.clone().into();
        let mut f = GenAiFields::default();
        for (k, v) in attributes(&agent, AttributeOptions::default().capture_content(true)) {
            assert!(f.record(k, v), "{k}");
        }
        assert_eq!(f.attributes(), SpanAttributes::from(a));
        assert_eq!(f.agent_name(), Some("weather-agent"));
        assert_eq!(f.name().as_deref(), Some("invoke_agent weather-agent"));
    }

    #[test]
    fn deprecated_names_and_string_values() {
        let mut f = GenAiFields::default();
        f.record("gen_ai.usage.input_tokens", AttrValue::Int(10));
        f.record("gen_ai.usage.prompt_tokens", AttrValue::Int(99));
        f.record("gen_ai.usage.completion_tokens", AttrValue::from("4"));
        f.record("gen_ai.system", AttrValue::from("anthropic"));
        f.record("gen_ai.tool.name", AttrValue::from("search"));
        f.record("gen_ai.tool.call.arguments", AttrValue::from("{\"q\":1}"));
        let u = f.usage().unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens),
            (10, 4),
            "the current name wins"
        );
        assert_eq!(
            f.span_type(),
            Some(SpanType::ToolCall),
            "a tool name without an operation"
        );
        assert_eq!(f.input(), Some(&json!({"q": 1})));
        assert_eq!(GenAiFields::default().span_type(), None);
    }
}
