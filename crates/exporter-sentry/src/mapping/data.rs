//! A span's `data`: the `gen_ai.*` keys Sentry's AI Agents views read.
//!
//! Key names as Sentry's Python SDK writes them (`sentry_sdk/consts.py`,
//! `SPANDATA`) and as recorded on the wire: usage as integers, with
//! `gen_ai.usage.input_tokens` *including* cached tokens
//! (`…input_tokens.cached`, `…input_tokens.cache_write`) and
//! `gen_ai.usage.output_tokens` including reasoning tokens
//! (`…output_tokens.reasoning`) — the same inclusive convention as aiobs'
//! `Usage`, so no conversion is needed. Messages are JSON *strings* of
//! `[{"role", "parts": [{"type": "text", "content": …}]}]`.

use aiobs_core::{ExportedSpan, SpanStatus, Usage};
use serde_json::{Map, Value, json};

use super::ops::{self, Operation};

/// Model parameters Sentry has `gen_ai.request.*` keys for.
const REQUEST_PARAMETERS: [&str; 7] = [
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "seed",
];

/// The `data` of one span.
pub(crate) fn span_data(span: &ExportedSpan, op: &Operation, capture: bool) -> Map<String, Value> {
    let mut d = Map::new();
    let mut put = |k: &str, v: Value| {
        d.insert(k.to_owned(), v);
    };
    if let Some(name) = op.gen_ai {
        put("gen_ai.operation.name", json!(name));
    }
    if let Some(agent) = ops::agent_name(span) {
        put("gen_ai.agent.name", json!(agent));
    }
    if let Some(session) = &span.session_id {
        put("gen_ai.conversation.id", json!(&**session));
    }
    if let Some(m) = span.attributes.model() {
        if let Some(p) = &m.provider {
            put("gen_ai.provider.name", json!(p));
        }
        if let Some(model) = &m.model {
            put("gen_ai.request.model", json!(model));
        }
        if let Some(r) = &m.response_model {
            put("gen_ai.response.model", json!(r));
        }
        if let Some(id) = &m.response_id {
            put("gen_ai.response.id", json!(id));
        }
        if let Some(stream) = m.streaming {
            put("gen_ai.response.streaming", json!(stream));
        }
        if let Some(reason) = &m.finish_reason {
            put(
                "gen_ai.response.finish_reasons",
                json!(json!([reason]).to_string()),
            );
        }
        if let Some(params) = m.parameters.as_ref().and_then(Value::as_object) {
            for k in REQUEST_PARAMETERS {
                if let Some(v) = params.get(k).filter(|v| v.is_number()) {
                    put(&format!("gen_ai.request.{k}"), v.clone());
                }
            }
        }
        if let Some(u) = &m.usage {
            usage(u, &mut put);
        }
    }
    if let Some(t) = span.attributes.tool() {
        put("gen_ai.tool.name", json!(ops::tool_name(span)));
        put(
            "gen_ai.tool.type",
            json!(t.tool_type.as_deref().unwrap_or("function")),
        );
        if let Some(desc) = &t.description {
            put("gen_ai.tool.description", json!(desc));
        }
    } else if span.span_type.is_tool() {
        put("gen_ai.tool.name", json!(ops::tool_name(span)));
    }
    if let aiobs_core::SpanAttributes::Agent(a) = &span.attributes {
        if capture && let Some(i) = &a.instructions {
            put("gen_ai.system_instructions", json!(i));
        }
        if !a.available_tools.is_empty() {
            put(
                "gen_ai.request.available_tools",
                json!(json!(a.available_tools).to_string()),
            );
        }
    }
    if capture {
        payloads(span, op, &mut put);
    }
    if let Some(e) = &span.error
        && let Some(kind) = &e.kind
    {
        put("error.type", json!(kind));
    }
    if span.status == SpanStatus::Dropped {
        put("aiobs.ended_by_drop", json!(true));
    }
    if op.gen_ai.is_some() && ops::description(span, op) != span.name {
        put("aiobs.span.name", json!(&*span.name));
    }
    d
}

/// Usage as Sentry's integer keys (inclusive counts, as in aiobs).
fn usage(u: &Usage, put: &mut impl FnMut(&str, Value)) {
    put("gen_ai.usage.input_tokens", json!(u.input_tokens));
    if let Some(n) = u.input_details.cache_read {
        put("gen_ai.usage.input_tokens.cached", json!(n));
    }
    if let Some(n) = u.input_details.cache_write {
        put("gen_ai.usage.input_tokens.cache_write", json!(n));
    }
    put("gen_ai.usage.output_tokens", json!(u.output_tokens));
    if let Some(n) = u.output_details.reasoning {
        put("gen_ai.usage.output_tokens.reasoning", json!(n));
    }
    put("gen_ai.usage.total_tokens", json!(u.total_tokens()));
}

/// Inputs and outputs: messages for model and agent spans, arguments and
/// results for tools, `aiobs.input`/`aiobs.output` for the rest. Always strings.
fn payloads(span: &ExportedSpan, op: &Operation, put: &mut impl FnMut(&str, Value)) {
    match op.gen_ai {
        Some("execute_tool") => {
            if let Some(i) = &span.input {
                put("gen_ai.tool.call.arguments", json!(as_text(i)));
            }
            if let Some(o) = &span.output {
                put("gen_ai.tool.call.result", json!(as_text(o)));
            }
        }
        Some(_) => {
            if let Some(i) = &span.input {
                put(
                    "gen_ai.input.messages",
                    json!(messages(i, "user", None).to_string()),
                );
            }
            if let Some(o) = &span.output {
                let finish = span
                    .attributes
                    .model()
                    .and_then(|m| m.finish_reason.as_deref());
                put(
                    "gen_ai.output.messages",
                    json!(messages(o, "assistant", finish).to_string()),
                );
            }
        }
        None => {
            if let Some(i) = &span.input {
                put("aiobs.input", json!(as_text(i)));
            }
            if let Some(o) = &span.output {
                put("aiobs.output", json!(as_text(o)));
            }
        }
    }
}

/// A string as is; any other JSON as its text.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A payload as Sentry's message list: `[{role, parts: [{type: "text", content}]}]`.
/// A list of `{role, content}` messages keeps its roles; a single message or
/// plain text gets `role`; anything else is carried as the text of one part.
fn messages(v: &Value, role: &str, finish_reason: Option<&str>) -> Value {
    let one = |m: &Value| -> Value {
        let (role, content) = match m {
            Value::Object(o) if o.contains_key("role") => (
                o.get("role").and_then(Value::as_str).unwrap_or(role),
                o.get("content").unwrap_or(&Value::Null),
            ),
            other => (role, other),
        };
        let parts = match content {
            Value::Array(parts) if parts.iter().all(|p| p.get("type").is_some()) => {
                Value::Array(parts.clone())
            }
            Value::Null => json!([]),
            c => json!([{"type": "text", "content": as_text(c)}]),
        };
        let mut msg = json!({"role": role, "parts": parts});
        if let (Some(r), Some(o)) = (finish_reason, msg.as_object_mut()) {
            o.insert("finish_reason".into(), json!(r));
        }
        msg
    };
    match v {
        Value::Array(items) if items.iter().all(|m| m.get("role").is_some()) => {
            Value::Array(items.iter().map(one).collect())
        }
        other => json!([one(other)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_sentrys_parts_format() {
        let input = json!([{"role": "user", "content": "What is the weather in Paris?"}]);
        assert_eq!(
            messages(&input, "user", None).to_string(),
            r#"[{"parts":[{"content":"What is the weather in Paris?","type":"text"}],"role":"user"}]"#
        );
        let out = messages(&json!("It is 18°C"), "assistant", Some("stop"));
        assert_eq!(out[0]["role"], "assistant");
        assert_eq!(out[0]["parts"][0]["content"], "It is 18°C");
        assert_eq!(out[0]["finish_reason"], "stop");
        let structured = messages(&json!({"city": "Paris"}), "user", None);
        assert_eq!(structured[0]["parts"][0]["content"], r#"{"city":"Paris"}"#);
    }

    #[test]
    fn usage_keys_are_integers_inclusive_of_cached_and_reasoning() {
        let mut d = Map::new();
        usage(
            &Usage::new(120, 30).with_cache_read(100).with_reasoning(0),
            &mut |k, v| {
                d.insert(k.into(), v);
            },
        );
        assert_eq!(
            Value::Object(d),
            json!({
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.input_tokens.cached": 100,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.output_tokens.reasoning": 0,
                "gen_ai.usage.total_tokens": 150,
            })
        );
    }
}
