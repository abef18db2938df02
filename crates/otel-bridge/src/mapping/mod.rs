//! aiobs spans as OpenTelemetry `SpanData`: ids, parents and times exactly,
//! the span kind, status and `exception` event, and the attributes of the
//! GenAI semantic-conventions table (`aiobs_core::semconv`) plus what the
//! conventions leave to us (tags, metadata, unnamed model parameters, cost,
//! the aiobs span type, other spans' content).
//!
//! | aiobs | OpenTelemetry |
//! |---|---|
//! | `trace_id`, `span_id` | the same 16 and 8 bytes, flags `SAMPLED` |
//! | `parent_span_id`, else `external_parent_span_id` | `parent_span_id`; `parent_span_is_remote` for the external one |
//! | `start_time`, `end_time` | the same instants (nanoseconds since the Unix epoch, UTC) |
//! | span type | kind `CLIENT` for model calls, embeddings, retrievals; `INTERNAL` otherwise ([`semconv::is_client_call`]) |
//! | name | [`semconv::span_name`]: `{operation} {model|agent|tool|workflow}`, else the aiobs name |
//! | `error` | status `ERROR` with `"{kind}: {message}"`, an `exception` event (`exception.type`, `.message`, `.stacktrace`) at the end time, `error.type` |
//! | `tags` | `tags` (string array) |
//! | `metadata.<key>` | `metadata.<key>` (strings, numbers, booleans and uniform arrays as themselves, other JSON as text); `metadata.otel.attributes` is copied verbatim as attributes |
//! | span type | `aiobs.span.type` (e.g. `model_step`), so a reader can tell types the conventions merge |
//! | model parameters the conventions do not name | `aiobs.request.<key>` |
//! | cost of billable usage | `gen_ai.usage.cost` (USD, total; read by Langfuse, not in the registry) |
//! | usage of a model span nested in another (not billable, see `ExportedSpan::billable_usage`) | `aiobs.usage.input_tokens`, `.output_tokens`, `.cache_read.input_tokens`, ... (backends do not add these up) |
//! | input / output of spans without a GenAI message attribute, when capture is on | `input.value` / `output.value` (OpenInference's names, read by Phoenix, Arize and Langfuse) |

use std::time::SystemTime;

use aiobs_core::semconv::{self, AttributeOptions};
use aiobs_core::{ExportedSpan, SpanStatus};
use chrono::{DateTime, Utc};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value;

pub(crate) mod value;

/// Where the usage of a model span nested in another goes.
const NESTED_USAGE: semconv::UsageNames = [
    "aiobs.usage.input_tokens",
    "aiobs.usage.output_tokens",
    "aiobs.usage.cache_read.input_tokens",
    "aiobs.usage.cache_creation.input_tokens",
    "aiobs.usage.reasoning.output_tokens",
];

/// The metadata key under which this exporter reads its own settings.
pub(crate) const METADATA_KEY: &str = "otel";

/// Maps aiobs spans to `SpanData` with fixed options.
#[derive(Debug, Clone)]
pub(crate) struct Mapper {
    pub(crate) options: AttributeOptions,
    pub(crate) scope: InstrumentationScope,
}

impl Mapper {
    pub(crate) fn new(options: AttributeOptions) -> Self {
        Self {
            options,
            scope: InstrumentationScope::builder("aiobs")
                .with_version(env!("CARGO_PKG_VERSION"))
                .with_schema_url(semconv::SCHEMA_URL)
                .build(),
        }
    }

    /// One span, ended or not (a running span ends at its start).
    pub(crate) fn span_data(&self, span: &ExportedSpan) -> SpanData {
        let parent = span.effective_parent();
        let start = system_time(span.start_time);
        let end = span.end_time.map_or(start, system_time);
        let (status, events) = status_and_events(span, end);
        let mut span_events = SpanEvents::default();
        span_events.events = events;
        SpanData {
            span_context: span_context(span),
            parent_span_id: parent.map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_bytes())),
            parent_span_is_remote: span.parent_span_id.is_none()
                && span.external_parent_span_id.is_some(),
            span_kind: if semconv::is_client_call(span) {
                SpanKind::Client
            } else {
                SpanKind::Internal
            },
            name: semconv::span_name(span).into_owned().into(),
            start_time: start,
            end_time: end,
            attributes: self.attributes(span),
            dropped_attributes_count: 0,
            events: span_events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: self.scope.clone(),
        }
    }

    /// The span's attributes: the conventions' table, then ours.
    pub(crate) fn attributes(&self, span: &ExportedSpan) -> Vec<KeyValue> {
        let table = semconv::attributes(span, self.options);
        let mut out: Vec<KeyValue> = Vec::with_capacity(table.len() + 8 + span.metadata.len());
        let billable = span.billable_usage().is_some();
        out.extend(
            table
                .into_iter()
                // A nested model span's usage goes under our names, below.
                .filter(|(k, _)| billable || !k.starts_with("gen_ai.usage."))
                .map(|(k, v)| KeyValue::new(k, value::from_attr(v))),
        );
        out.push(KeyValue::new("aiobs.span.type", span.span_type.as_str()));
        if span.status == SpanStatus::Dropped {
            // Ended by dropping the handle: the application never said how it went.
            out.push(KeyValue::new("aiobs.span.status", "dropped"));
        }
        if span.is_event {
            out.push(KeyValue::new("aiobs.span.is_event", true));
        }
        for (key, v) in semconv::unmapped_parameters(span) {
            out.push(KeyValue::new(
                format!("aiobs.request.{key}"),
                value::from_json(v),
            ));
        }
        // A model span inside another reports tokens the outer one already
        // carries (`ExportedSpan::billable_usage`): shown under our own
        // names, which backends do not add up.
        if !billable && let Some(u) = span.attributes.usage() {
            out.extend(
                semconv::usage_attributes(u, NESTED_USAGE)
                    .into_iter()
                    .map(|(k, v)| KeyValue::new(k, value::from_attr(v))),
            );
        }
        if let Some(total) = span
            .billable_usage()
            .and_then(|u| u.cost.as_ref())
            .and_then(|c| c.total)
            .filter(|t| t.is_finite())
        {
            out.push(KeyValue::new("gen_ai.usage.cost", total));
        }
        if !span.tags.is_empty() {
            out.push(KeyValue::new(
                "tags",
                opentelemetry::Value::Array(opentelemetry::Array::String(
                    span.tags.iter().map(|t| t.clone().into()).collect(),
                )),
            ));
        }
        for (key, v) in &span.metadata {
            if key == METADATA_KEY {
                continue;
            }
            out.push(KeyValue::new(
                format!("metadata.{key}"),
                value::from_json(v),
            ));
        }
        if self.options.captures_content() && !semconv::content_has_convention(span) {
            if let Some(i) = &span.input {
                out.push(value::json_text("input.value".into(), i));
            }
            if let Some(o) = &span.output {
                out.push(value::json_text("output.value".into(), o));
            }
        }
        // Raw attributes the application asked for (e.g. `server.address`).
        if let Some(Value::Object(raw)) = span
            .exporter_metadata(METADATA_KEY)
            .and_then(|m| m.get("attributes"))
        {
            for (key, v) in raw {
                out.push(KeyValue::new(key.clone(), value::from_json(v)));
            }
        }
        out
    }
}

/// The span's context: its ids, sampled (only sampled traces are exported).
pub(crate) fn span_context(span: &ExportedSpan) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(span.trace_id.to_bytes()),
        SpanId::from_bytes(span.span_id.to_bytes()),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    )
}

/// A UTC instant as a `SystemTime` (exact to the nanosecond).
pub(crate) fn system_time(t: DateTime<Utc>) -> SystemTime {
    SystemTime::from(t)
}

fn status_and_events(
    span: &ExportedSpan,
    end: SystemTime,
) -> (Status, Vec<opentelemetry::trace::Event>) {
    let Some(e) = &span.error else {
        return match span.status {
            SpanStatus::Error => (Status::error(""), Vec::new()),
            // The conventions leave a successful span's status unset.
            _ => (Status::Unset, Vec::new()),
        };
    };
    let kind = e.kind.as_deref().filter(|k| !k.is_empty());
    let mut attrs = vec![
        KeyValue::new(semconv::EXCEPTION_TYPE, kind.unwrap_or("Error").to_owned()),
        KeyValue::new(semconv::EXCEPTION_MESSAGE, e.message.clone()),
    ];
    if let Some(stack) = &e.stack {
        attrs.push(KeyValue::new(semconv::EXCEPTION_STACKTRACE, stack.clone()));
    }
    if let Some(details) = &e.details {
        attrs.push(value::json_text("aiobs.error.details".into(), details));
    }
    let message = match kind {
        Some(k) => format!("{k}: {}", e.message),
        None => e.message.clone(),
    };
    (
        Status::error(message),
        vec![opentelemetry::trace::Event::new(
            semconv::EXCEPTION_EVENT,
            end,
            attrs,
            0,
        )],
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aiobs_core::{ModelAttributes, SpanError, SpanType, ToolAttributes, Usage};
    use serde_json::json;

    use super::*;

    fn span(t: SpanType) -> ExportedSpan {
        ExportedSpan::new(
            "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap(),
            "00f067aa0ba902b7".parse().unwrap(),
            "x",
            t,
        )
    }

    fn attr<'a>(d: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
        d.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn ids_times_kind_and_parents_are_exact() {
        let mut s = span(SpanType::ModelGeneration);
        s.attributes = ModelAttributes::new("gpt-4o-mini", "openai").into();
        s.start_time = DateTime::from_timestamp(1_795_431_187, 379_584_042).unwrap();
        s.end_time = Some(DateTime::from_timestamp(1_795_431_187, 389_884_323).unwrap());
        s.parent_span_id = Some("0234fbe105bbfd21".parse().unwrap());
        let d = Mapper::new(AttributeOptions::default()).span_data(&s);
        assert_eq!(
            format!("{:032x}", d.span_context.trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            format!("{:016x}", d.span_context.span_id()),
            "00f067aa0ba902b7"
        );
        assert_eq!(format!("{:016x}", d.parent_span_id), "0234fbe105bbfd21");
        assert!(!d.parent_span_is_remote);
        assert_eq!(d.span_kind, SpanKind::Client);
        assert_eq!(d.name, "chat gpt-4o-mini");
        let nanos = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        assert_eq!(nanos(d.start_time), 1_795_431_187_379_584_042);
        assert_eq!(nanos(d.end_time), 1_795_431_187_389_884_323);
        assert_eq!(d.status, Status::Unset);

        let mut remote = span(SpanType::AgentRun);
        remote.external_parent_span_id = Some("00000000000000aa".parse().unwrap());
        let d = Mapper::new(AttributeOptions::default()).span_data(&remote);
        assert_eq!(format!("{:016x}", d.parent_span_id), "00000000000000aa");
        assert!(d.parent_span_is_remote);
        assert_eq!(d.span_kind, SpanKind::Internal);
        assert_eq!(d.name, "invoke_agent x");
    }

    #[test]
    fn errors_become_status_and_exception_event() {
        let mut s = span(SpanType::ToolCall);
        s.attributes = ToolAttributes::new("get_forecast").into();
        let mut err = SpanError::new("forecast service unavailable").with_kind("RuntimeError");
        err.stack = Some("at forecast()".into());
        s.error = Some(Box::new(err));
        s.status = SpanStatus::Error;
        s.end_time = Some(s.start_time);
        let d = Mapper::new(AttributeOptions::default()).span_data(&s);
        assert_eq!(
            d.status,
            Status::error("RuntimeError: forecast service unavailable")
        );
        assert_eq!(d.events.len(), 1);
        let ev = &d.events.events[0];
        assert_eq!(ev.name, "exception");
        assert_eq!(ev.timestamp, d.end_time);
        let get = |k: &str| {
            ev.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(get("exception.type").as_deref(), Some("RuntimeError"));
        assert_eq!(
            get("exception.message").as_deref(),
            Some("forecast service unavailable")
        );
        assert_eq!(
            get("exception.stacktrace").as_deref(),
            Some("at forecast()")
        );
        assert_eq!(
            attr(&d, "error.type").map(ToString::to_string).as_deref(),
            Some("RuntimeError")
        );
    }

    #[test]
    fn a_nested_model_span_carries_its_usage_under_our_names() {
        let mut step = span(SpanType::ModelStep);
        step.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(Usage::new(120, 30).with_cache_read(100))
            .into();
        let mapper = Mapper::new(AttributeOptions::default());
        let alone = mapper.span_data(&step);
        assert_eq!(
            attr(&alone, "gen_ai.usage.input_tokens"),
            Some(&opentelemetry::Value::I64(120))
        );
        step.ancestry = Arc::from(vec![aiobs_core::Ancestor::new(
            "00000000000000aa".parse().unwrap(),
            step.start_time,
            SpanType::ModelGeneration,
        )]);
        let nested = mapper.span_data(&step);
        assert!(
            nested
                .attributes
                .iter()
                .all(|kv| !kv.key.as_str().starts_with("gen_ai.usage.")),
            "backends would add these tokens to the generation's"
        );
        assert_eq!(
            attr(&nested, "aiobs.usage.input_tokens"),
            Some(&opentelemetry::Value::I64(120))
        );
        assert_eq!(
            attr(&nested, "aiobs.usage.cache_read.input_tokens"),
            Some(&opentelemetry::Value::I64(100))
        );
    }

    #[test]
    fn tags_metadata_cost_parameters_and_content() {
        let mut s = span(SpanType::ModelStep);
        s.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_parameters(json!({"temperature": 0.2, "response_format": {"type": "json"}}))
            .with_usage(Usage::new(10, 2).with_cost(aiobs_core::Cost::new(0.25, 0.5)))
            .into();
        s.tags = Arc::from(vec!["prod".to_owned()]);
        s.metadata.insert("tenant".into(), json!("acme"));
        s.metadata.insert(
            "otel".into(),
            json!({"attributes": {"server.address": "api.openai.com"}}),
        );
        s.input = Some(json!("hi"));
        let d = Mapper::new(AttributeOptions::default()).span_data(&s);
        assert_eq!(attr(&d, "aiobs.span.type"), Some(&"model_step".into()));
        assert_eq!(attr(&d, "metadata.tenant"), Some(&"acme".into()));
        assert_eq!(
            attr(&d, "metadata.otel"),
            None,
            "our own settings are not metadata"
        );
        assert_eq!(attr(&d, "server.address"), Some(&"api.openai.com".into()));
        assert_eq!(
            attr(&d, "gen_ai.usage.cost"),
            Some(&opentelemetry::Value::F64(0.75))
        );
        assert_eq!(
            attr(&d, "aiobs.request.response_format"),
            Some(&r#"{"type":"json"}"#.into())
        );
        assert!(
            attr(&d, "gen_ai.input.messages").is_none(),
            "capture is off"
        );
        assert!(attr(&d, "input.value").is_none());

        let mut step = span(SpanType::WorkflowStep);
        step.input = Some(json!({"city": "Paris"}));
        let with = Mapper::new(AttributeOptions::default().capture_content(true)).span_data(&step);
        assert_eq!(
            attr(&with, "input.value"),
            Some(&r#"{"city":"Paris"}"#.into())
        );
        assert_eq!(with.name, "x");
    }
}
