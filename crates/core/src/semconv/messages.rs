//! Span inputs and outputs as the GenAI conventions' "parts" message schema
//! (`gen_ai.input.messages`, `gen_ai.output.messages`,
//! `gen_ai.system_instructions`).
//!
//! aiobs records whatever the application passed (a string, OpenAI- or
//! Anthropic-style message lists, any JSON). The conventions want
//! `[{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", ...}], "finish_reason"?}]`.
//! The rules, in order:
//!
//! | recorded value | messages |
//! |---|---|
//! | a string | one message (`user` for input, `assistant` for output) with a `text` part |
//! | `{"messages": [...]}` | the list, converted |
//! | a message `{"role", ...}` | a list of that one message |
//! | a list of messages | each converted: `parts` kept as they are; `content` as a string → a `text` part; content blocks `{type: text, text}` → `text`, `{type: image_url}` → `uri`, Anthropic `tool_use` / `tool_result` / `thinking` → `tool_call` / `tool_call_response` / `reasoning`; OpenAI `tool_calls` → `tool_call` parts; a `tool` message with `tool_call_id` → a `tool_call_response` part |
//! | anything else | one message with a `text` part holding the value's JSON |
//!
//! Output messages carry `finish_reason` (required by the schema): the
//! message's own, else the span's, else `error` for a failed span and
//! `stop` otherwise. Nothing recorded is dropped: a content block the table
//! does not know is kept as it is (the schema's generic part) when it has a
//! `type`, and as JSON text otherwise.

use serde::Serialize;
use serde_json::{Map, Value, json};

/// Which side of the call a value was recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Input,
    Output,
}

impl Side {
    fn default_role(self) -> &'static str {
        match self {
            Self::Input => "user",
            Self::Output => "assistant",
        }
    }
}

/// [`to_messages`] as JSON text. A plain string — the common case — is
/// written directly, without building the intermediate JSON tree.
pub(crate) fn to_messages_text(value: &Value, side: Side, finish_reason: &str) -> String {
    #[derive(Serialize)]
    struct Part<'a> {
        content: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        finish_reason: Option<&'a str>,
        parts: [Part<'a>; 1],
        role: &'static str,
    }
    match value {
        // Fields in the order serde_json's sorted maps would write them.
        Value::String(text) => serde_json::to_string(&[Message {
            finish_reason: (side == Side::Output).then_some(finish_reason),
            parts: [Part {
                content: text,
                kind: "text",
            }],
            role: side.default_role(),
        }])
        .unwrap_or_default(),
        other => to_messages(other, side, finish_reason).to_string(),
    }
}

/// `value` as a list of messages in the parts schema. `finish_reason` is the
/// fallback written on output messages that do not carry their own.
pub(crate) fn to_messages(value: &Value, side: Side, finish_reason: &str) -> Value {
    let list: Vec<Value> = match value {
        Value::Array(items) if !items.is_empty() && items.iter().all(is_message) => items
            .iter()
            .map(|m| message(m, side, finish_reason))
            .collect(),
        Value::Object(o) if o.get("messages").is_some_and(Value::is_array) => {
            return to_messages(&o["messages"], side, finish_reason);
        }
        v if is_message(v) => vec![message(v, side, finish_reason)],
        other => vec![finish(
            side,
            json!({"role": side.default_role(), "parts": [text_part(other)]}),
            finish_reason,
        )],
    };
    Value::Array(list)
}

/// System instructions as the array of parts `gen_ai.system_instructions` holds.
pub(crate) fn system_instructions(text: &str) -> Value {
    json!([{"type": "text", "content": text}])
}

fn is_message(v: &Value) -> bool {
    v.get("role").is_some_and(Value::is_string)
}

fn finish(side: Side, mut message: Value, finish_reason: &str) -> Value {
    if side == Side::Output
        && let Some(m) = message.as_object_mut()
        && !m.get("finish_reason").is_some_and(Value::is_string)
    {
        m.insert("finish_reason".into(), Value::from(finish_reason));
    }
    message
}

fn message(m: &Value, side: Side, finish_reason: &str) -> Value {
    let obj = m.as_object().cloned().unwrap_or_default();
    if obj.get("parts").is_some_and(Value::is_array) {
        return finish(side, Value::Object(obj), finish_reason);
    }
    let role = obj
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or(side.default_role());
    let mut parts = Vec::new();
    if role == "tool"
        && let Some(id) = obj.get("tool_call_id")
    {
        parts.push(json!({
            "type": "tool_call_response",
            "id": id,
            "response": obj.get("content").cloned().unwrap_or(Value::Null),
        }));
    } else {
        match obj.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Array(blocks)) => parts.extend(blocks.iter().map(block)),
            Some(other) => parts.push(text_part(other)),
        }
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls") {
        parts.extend(calls.iter().map(openai_tool_call));
    }
    let mut out = Map::new();
    out.insert("role".into(), Value::from(role));
    if let Some(name) = obj.get("name").filter(|n| n.is_string()) {
        out.insert("name".into(), name.clone());
    }
    out.insert("parts".into(), Value::Array(parts));
    if let Some(fr) = obj.get("finish_reason").filter(|f| f.is_string()) {
        out.insert("finish_reason".into(), fr.clone());
    }
    finish(side, Value::Object(out), finish_reason)
}

/// A text part: strings as they are, other values as their JSON.
fn text_part(v: &Value) -> Value {
    let content = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    json!({"type": "text", "content": content})
}

/// One content block of a message.
fn block(b: &Value) -> Value {
    let Some(o) = b.as_object() else {
        return text_part(b);
    };
    let field = |k: &str| o.get(k).cloned().unwrap_or(Value::Null);
    match o.get("type").and_then(Value::as_str) {
        Some("text" | "input_text" | "output_text") if o.get("text").is_some() => {
            text_part(&field("text"))
        }
        Some("image_url") => {
            let url = o
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .cloned()
                .unwrap_or(Value::Null);
            json!({"type": "uri", "modality": "image", "uri": url})
        }
        Some("tool_use") => {
            json!({"type": "tool_call", "id": field("id"), "name": field("name"), "arguments": field("input")})
        }
        Some("tool_result") => {
            json!({"type": "tool_call_response", "id": field("tool_use_id"), "response": field("content")})
        }
        Some("thinking") if o.get("thinking").is_some() => {
            json!({"type": "reasoning", "content": field("thinking")})
        }
        // Already a part of the schema, or a part it does not name (its generic part).
        Some(_) => b.clone(),
        None => text_part(b),
    }
}

/// An OpenAI `tool_calls` entry (`{id, type: function, function: {name,
/// arguments}}`); a bare string is taken as the tool's name.
fn openai_tool_call(c: &Value) -> Value {
    if let Some(name) = c.as_str() {
        return json!({"type": "tool_call", "name": name});
    }
    let f = c.get("function").unwrap_or(c);
    let arguments = match f.get("arguments") {
        // OpenAI sends arguments as JSON text: keep the structure when it parses.
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::from(s.as_str()))
        }
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let mut part =
        json!({"type": "tool_call", "name": f.get("name").cloned().unwrap_or(Value::Null)});
    if let Some(id) = c.get("id") {
        part["id"] = id.clone();
    }
    if !arguments.is_null() {
        part["arguments"] = arguments;
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_fast_path_writes_what_the_tree_would() {
        for v in [
            json!("plain \"quoted\" é"),
            json!({"a": 1}),
            json!([{"role": "user", "content": "x"}]),
        ] {
            for side in [Side::Input, Side::Output] {
                assert_eq!(
                    to_messages_text(&v, side, "stop"),
                    to_messages(&v, side, "stop").to_string(),
                    "{v} {side:?}"
                );
            }
        }
    }

    #[test]
    fn strings_become_one_text_message() {
        assert_eq!(
            to_messages(&json!("What is the weather in Paris?"), Side::Input, "stop"),
            json!([{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}])
        );
        assert_eq!(
            to_messages(&json!("It is 18°C."), Side::Output, "stop"),
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "It is 18°C."}], "finish_reason": "stop"}])
        );
    }

    #[test]
    fn openai_chat_messages_with_tool_calls_and_results() {
        let input = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"tempC\":18}"}
        ]);
        assert_eq!(
            to_messages(&input, Side::Input, "stop"),
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [
                    {"type": "text", "content": "Weather?"},
                    {"type": "uri", "modality": "image", "uri": "https://x/y.png"}
                ]},
                {"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "{\"tempC\":18}"}]}
            ])
        );
    }

    #[test]
    fn anthropic_blocks_parts_messages_and_other_values() {
        let input = json!({"messages": [{"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm"},
            {"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "x"}},
            {"type": "custom_block", "data": 1}
        ]}]});
        assert_eq!(
            to_messages(&input, Side::Output, "tool_call"),
            json!([{"role": "assistant", "parts": [
                {"type": "reasoning", "content": "hmm"},
                {"type": "tool_call", "id": "tu_1", "name": "search", "arguments": {"q": "x"}},
                {"type": "custom_block", "data": 1}
            ], "finish_reason": "tool_call"}])
        );
        let parts = json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]);
        assert_eq!(
            to_messages(&parts, Side::Input, "stop"),
            parts,
            "already in the schema"
        );
        assert_eq!(
            to_messages(&json!({"city": "Paris"}), Side::Input, "stop"),
            json!([{"role": "user", "parts": [{"type": "text", "content": "{\"city\":\"Paris\"}"}]}])
        );
        assert_eq!(
            to_messages(
                &json!({"role": "assistant", "tool_calls": ["get_weather"]}),
                Side::Output,
                "stop"
            ),
            json!([{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather"}], "finish_reason": "stop"}])
        );
    }
}
