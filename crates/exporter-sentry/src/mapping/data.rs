//! A span's `data`: the `gen_ai.*` keys Sentry's AI Agents views read.
//!
//! The names and values come from the workspace's one table of the
//! OpenTelemetry GenAI conventions ([`aiobs_core::semconv::attributes`]),
//! which Sentry's AI monitoring speaks. What is Sentry's own is renamed here,
//! as its Python SDK writes it (`sentry_sdk/consts.py`, `SPANDATA`) and as
//! recorded on the wire:
//!
//! | conventions | Sentry |
//! |---|---|
//! | `gen_ai.usage.cache_read.input_tokens` | `gen_ai.usage.input_tokens.cached` |
//! | `gen_ai.usage.cache_creation.input_tokens` | `gen_ai.usage.input_tokens.cache_write` |
//! | `gen_ai.usage.reasoning.output_tokens` | `gen_ai.usage.output_tokens.reasoning` |
//! | — | `gen_ai.usage.total_tokens` (input + output) |
//! | `gen_ai.system`, `user.id`, `session.id` | left out: deprecated, or on the event (`user`) and in `gen_ai.conversation.id` |
//!
//! Usage counts are integers, and *inclusive* (`input_tokens` counts cached
//! tokens, `output_tokens` reasoning tokens) in both. Sentry sums
//! `gen_ai.usage.*` over a trace's spans, so only billable usage
//! ([`ExportedSpan::billable_usage`]: no model span above it) is written
//! there; a nested model span's usage is kept visible under `aiobs.usage.*`.
//! Messages are JSON strings in the conventions' parts schema.

use aiobs_core::semconv::{self, AttrValue, AttributeOptions, Stability};
use aiobs_core::{ExportedSpan, SpanStatus};
use serde_json::{Map, Value, json};

/// The `data` of one span.
pub(crate) fn span_data(span: &ExportedSpan, capture: bool) -> Map<String, Value> {
    let opts = AttributeOptions::default()
        .capture_content(capture)
        .stability(Stability::LatestExperimental);
    let mut d = Map::new();
    let billable = span.billable_usage().is_some();
    for (name, value) in semconv::attributes(span, opts) {
        let key = match name {
            semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS => "gen_ai.usage.input_tokens.cached",
            semconv::GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS => {
                "gen_ai.usage.input_tokens.cache_write"
            }
            semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS => "gen_ai.usage.output_tokens.reasoning",
            semconv::GEN_AI_SYSTEM | semconv::USER_ID | semconv::SESSION_ID => continue,
            other => other,
        };
        let key = match key.strip_prefix("gen_ai.usage.") {
            Some(rest) if !billable => format!("aiobs.usage.{rest}"),
            _ => key.to_owned(),
        };
        d.insert(key, json_of(value));
    }
    if let Some(u) = span.attributes.usage() {
        let total = if billable {
            "gen_ai.usage.total_tokens"
        } else {
            "aiobs.usage.total_tokens"
        };
        d.insert(total.into(), json!(u.total_tokens()));
    }
    for (k, v) in semconv::unmapped_parameters(span) {
        d.insert(format!("aiobs.request.{k}"), v.clone());
    }
    if capture && semconv::Operation::of(span).is_none() {
        // The conventions place no content on other spans: ours, namespaced.
        if let Some(i) = &span.input {
            d.insert("aiobs.input".into(), json!(as_text(i)));
        }
        if let Some(o) = &span.output {
            d.insert("aiobs.output".into(), json!(as_text(o)));
        }
    }
    if span.status == SpanStatus::Dropped {
        d.insert("aiobs.ended_by_drop".into(), json!(true));
    }
    if semconv::span_name(span) != span.name {
        d.insert("aiobs.span.name".into(), json!(&*span.name));
    }
    d
}

fn json_of(v: AttrValue<'_>) -> Value {
    match v {
        AttrValue::Str(s) => json!(s),
        AttrValue::Int(i) => json!(i),
        AttrValue::Double(f) => json!(f),
        AttrValue::Bool(b) => json!(b),
        AttrValue::StrArray(a) => json!(a),
        // A value kind added to the table later: carried as its debug text
        // rather than lost.
        #[allow(unreachable_patterns)]
        other => json!(format!("{other:?}")),
    }
}

/// A string as is; any other JSON as its text.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use aiobs_core::{ModelAttributes, SpanId, SpanType, TraceId, Usage};

    use super::*;

    #[test]
    fn usage_keys_are_sentrys_integers_inclusive_of_cached_and_reasoning() {
        let mut span = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "llm",
            SpanType::ModelGeneration,
        );
        span.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(
                Usage::new(120, 30)
                    .with_cache_read(100)
                    .with_cache_write(5)
                    .with_reasoning(0),
            )
            .into();
        let d = span_data(&span, false);
        let usage: Map<String, Value> = d
            .into_iter()
            .filter(|(k, _)| k.starts_with("gen_ai.usage."))
            .collect();
        assert_eq!(
            Value::Object(usage),
            json!({
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.input_tokens.cached": 100,
                "gen_ai.usage.input_tokens.cache_write": 5,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.output_tokens.reasoning": 0,
                "gen_ai.usage.total_tokens": 150,
            })
        );
    }

    #[test]
    fn nested_model_usage_is_shown_but_not_summed_by_sentry() {
        let mut step = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "step",
            SpanType::ModelStep,
        );
        step.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(Usage::new(60, 10))
            .into();
        let generation = ExportedSpan::new(
            step.trace_id,
            SpanId::random(),
            "generation",
            SpanType::ModelGeneration,
        );
        step.ancestry = std::sync::Arc::from(vec![aiobs_core::Ancestor::new(
            generation.span_id,
            generation.start_time,
            SpanType::ModelGeneration,
        )]);
        let d = span_data(&step, false);
        assert!(!d.keys().any(|k| k.starts_with("gen_ai.usage.")), "{d:?}");
        assert_eq!(d["aiobs.usage.input_tokens"], 60);
        assert_eq!(d["aiobs.usage.total_tokens"], 70);
    }

    #[test]
    fn content_only_when_captured_and_other_spans_keep_theirs_namespaced() {
        let mut span = ExportedSpan::new(
            TraceId::random(),
            SpanId::random(),
            "step",
            SpanType::WorkflowStep,
        );
        span.input = Some(json!({"a": 1}));
        assert!(!span_data(&span, false).contains_key("aiobs.input"));
        assert_eq!(span_data(&span, true)["aiobs.input"], r#"{"a":1}"#);
    }
}
