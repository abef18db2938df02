//! Encoding for Langfuse's OTLP endpoint (`/api/public/otel/v1/traces`):
//! mapped spans as OTLP protobuf carrying the `langfuse.*` attributes the
//! official SDKs set (see `wire/langfuse/v5-otel`).

use aiobs_http::ItemAnswers;
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use serde_json::Value;

use crate::mapping::{Level, MappedSpan, ObservationType};

/// The instrumentation scope Langfuse's span processor recognises as
/// "speaks the `langfuse.*` attributes": the server then takes metadata from
/// those attributes only, instead of copying every attribute into it.
pub(crate) const SCOPE_NAME: &str = "langfuse-sdk";

/// `SpanKind::Internal`.
const KIND_INTERNAL: i32 = 1;
/// `Status::Error`.
const STATUS_ERROR: i32 = 2;
/// W3C flags: "is the parent remote" is known (bit 8); bit 9 says it is.
const FLAGS_LOCAL_PARENT: u32 = 0x100;
const FLAGS_REMOTE_PARENT: u32 = 0x300;

/// What every request says about its sender.
#[derive(Debug, Clone)]
pub(crate) struct OtlpEncoder {
    pub(crate) public_key: String,
    pub(crate) environment: Option<String>,
    pub(crate) release: Option<String>,
    pub(crate) service_name: String,
}

impl OtlpEncoder {
    /// One `ExportTraceServiceRequest` holding every span.
    pub(crate) fn request(&self, spans: &[&MappedSpan]) -> ExportTraceServiceRequest {
        let mut resource = vec![
            kv("telemetry.sdk.language", s("rust")),
            kv("telemetry.sdk.name", s("aiobs")),
            kv("telemetry.sdk.version", s(env!("CARGO_PKG_VERSION"))),
            kv("service.name", s(&self.service_name)),
        ];
        if let Some(e) = &self.environment {
            resource.push(kv("langfuse.environment", s(e)));
        }
        if let Some(r) = &self.release {
            resource.push(kv("langfuse.release", s(r)));
        }
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        attributes: vec![kv("public_key", s(&self.public_key))],
                        ..InstrumentationScope::default()
                    }),
                    spans: spans.iter().map(|m| self.span(m)).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    /// The protobuf bytes of [`request`](Self::request).
    pub(crate) fn encode(&self, spans: &[&MappedSpan]) -> Vec<u8> {
        self.request(spans).encode_to_vec()
    }

    fn span(&self, m: &MappedSpan) -> Span {
        let t = &m.trace;
        let o = &m.observation;
        let mut a: Vec<KeyValue> = Vec::with_capacity(24);

        // Trace-level fields, on every span that knows them (as the official
        // SDK's `propagate_attributes` does): Langfuse merges them per trace.
        if t.is_root {
            a.push(kv("langfuse.internal.is_app_root", b(true)));
            if o.remote_parent {
                // The parent is in another process: still make this the trace root.
                a.push(kv("langfuse.internal.as_root", b(true)));
            }
        }
        if let Some(u) = &t.user_id {
            a.push(kv("user.id", s(u)));
        }
        if let Some(id) = &t.session_id {
            a.push(kv("session.id", s(id)));
        }
        for (k, v) in &t.metadata {
            a.push(kv(&format!("langfuse.trace.metadata.{k}"), s(&json(v))));
        }
        if !t.tags.is_empty() {
            a.push(kv("langfuse.trace.tags", array(&t.tags)));
        }
        if let Some(n) = &t.name {
            a.push(kv("langfuse.trace.name", s(n)));
        }
        if let Some(p) = t.public {
            a.push(kv("langfuse.trace.public", b(p)));
        }
        if let Some(e) = &self.environment {
            a.push(kv("langfuse.environment", s(e)));
        }
        if let Some(r) = &t.release {
            a.push(kv("langfuse.release", s(r)));
        }
        if let Some(v) = t.version.as_ref().or(o.version.as_ref()) {
            a.push(kv("langfuse.version", s(v)));
        }

        // The observation.
        a.push(kv("langfuse.observation.type", s(o.kind.as_str())));
        if let Some(i) = &o.input {
            a.push(kv("langfuse.observation.input", s(&json(i))));
        }
        if let Some(out) = &o.output {
            a.push(kv("langfuse.observation.output", s(&json(out))));
        }
        for (k, v) in &o.metadata {
            // Each value JSON-encoded, so "123" and 123 stay distinct (as SDK v5).
            a.push(kv(
                &format!("langfuse.observation.metadata.{k}"),
                s(&json(v)),
            ));
        }
        if o.level != Level::Default {
            a.push(kv("langfuse.observation.level", s(o.level.as_str())));
        }
        if let Some(msg) = &o.status_message {
            a.push(kv("langfuse.observation.status_message", s(msg)));
        }
        if let Some(g) = &o.generation {
            if let Some(model) = &g.model {
                a.push(kv("langfuse.observation.model.name", s(model)));
            }
            if !g.model_parameters.is_empty() {
                let p = serde_json::to_string(&g.model_parameters).unwrap_or_default();
                a.push(kv("langfuse.observation.model.parameters", s(&p)));
            }
            if !g.usage_details.is_empty() {
                let u: serde_json::Map<String, Value> = g
                    .usage_details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect();
                a.push(kv("langfuse.observation.usage_details", s(&json_map(&u))));
            }
            if !g.cost_details.is_empty() {
                let c: serde_json::Map<String, Value> = g
                    .cost_details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect();
                a.push(kv("langfuse.observation.cost_details", s(&json_map(&c))));
            }
            if let Some(cst) = g.completion_start_time {
                let iso = Value::from(iso_time(cst));
                a.push(kv(
                    "langfuse.observation.completion_start_time",
                    s(&json(&iso)),
                ));
            }
            if let Some(p) = &g.prompt {
                a.push(kv("langfuse.observation.prompt.name", s(&p.name)));
                a.push(kv("langfuse.observation.prompt.version", int(p.version)));
            }
        }

        let mut events = Vec::new();
        let status = match (&o.error, o.level) {
            (Some(e), _) => {
                let mut ea = Vec::with_capacity(3);
                ea.push(kv(
                    "exception.type",
                    s(e.kind.as_deref().unwrap_or("Error")),
                ));
                ea.push(kv("exception.message", s(&e.message)));
                if let Some(st) = &e.stack {
                    ea.push(kv("exception.stacktrace", s(st)));
                }
                events.push(span::Event {
                    time_unix_nano: nanos(o.end_time.unwrap_or(o.start_time)),
                    name: "exception".into(),
                    attributes: ea,
                    dropped_attributes_count: 0,
                });
                Some(Status {
                    message: match &e.kind {
                        Some(k) => format!("{k}: {}", e.message),
                        None => e.message.clone(),
                    },
                    code: STATUS_ERROR,
                })
            }
            (None, Level::Error) => Some(Status {
                message: o.status_message.clone().unwrap_or_default(),
                code: STATUS_ERROR,
            }),
            _ => Some(Status::default()),
        };

        let start = nanos(o.start_time);
        let end = match o.kind {
            ObservationType::Event => start,
            _ => o.end_time.map_or(start, nanos),
        };
        Span {
            trace_id: hex_bytes(&o.trace_id),
            span_id: hex_bytes(&o.id),
            trace_state: String::new(),
            parent_span_id: o.parent_id.as_deref().map(hex_bytes).unwrap_or_default(),
            flags: if o.remote_parent {
                FLAGS_REMOTE_PARENT
            } else {
                FLAGS_LOCAL_PARENT
            },
            name: o.name.clone(),
            kind: KIND_INTERNAL,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes: a,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status,
        }
    }
}

/// What an OTLP 2xx answer says about the spans of the request. OTLP's
/// `partial_success` gives a count without naming the spans: the count is
/// narrowed down by sending the spans again in halves (Langfuse keys
/// observations by span id, so re-sent spans are not duplicated). A body
/// that is empty or not an `ExportTraceServiceResponse` carries no per-span
/// section: the 2xx answers for the whole request (the OTLP spec makes the
/// body optional, and Langfuse answers JSON).
pub(crate) fn answers(body: &[u8]) -> ItemAnswers {
    match partial_success(body) {
        Some((refused, message)) => ItemAnswers::RefusedCount { refused, message },
        None => ItemAnswers::AllAccepted,
    }
}

/// What an OTLP 2xx answer says: how many spans the server refused, and why.
fn partial_success(body: &[u8]) -> Option<(u64, String)> {
    let resp = ExportTraceServiceResponse::decode(body).ok()?;
    let p = resp.partial_success?;
    (p.rejected_spans > 0).then(|| (p.rejected_spans.unsigned_abs(), p.error_message))
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.to_owned())
}

fn b(v: bool) -> any_value::Value {
    any_value::Value::BoolValue(v)
}

fn int(v: i64) -> any_value::Value {
    any_value::Value::IntValue(v)
}

fn array(items: &[String]) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue {
        values: items
            .iter()
            .map(|t| AnyValue { value: Some(s(t)) })
            .collect(),
    })
}

fn json(v: &Value) -> String {
    // Serialising a `Value` cannot fail (its map keys are strings).
    serde_json::to_string(v).unwrap_or_default()
}

fn json_map(m: &serde_json::Map<String, Value>) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// ISO 8601 with microseconds and `Z`, as Langfuse's SDKs write times.
pub(crate) fn iso_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn nanos(t: DateTime<Utc>) -> u64 {
    // Times before 1970 or after 2262 cannot be expressed; clamp instead of failing.
    t.timestamp_nanos_opt()
        .map_or(0, |n| u64::try_from(n).unwrap_or(0))
}

/// Ids are produced by `TraceId`/`SpanId` `Display` (lowercase hex), so
/// decoding cannot fail; a malformed digit would yield 0 rather than panic.
fn hex_bytes(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            (digit(pair[0]) << 4) | pair.get(1).map_or(0, |c| digit(*c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_become_big_endian_bytes() {
        assert_eq!(hex_bytes("00ff10"), vec![0x00, 0xff, 0x10]);
        assert_eq!(hex_bytes("3fb126125c47af83").len(), 8);
    }

    #[test]
    fn partial_success_is_read_from_the_response() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "bad span".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(partial_success(&body), Some((2, "bad span".into())));
        assert_eq!(partial_success(&[]), None, "an empty body is full success");
        assert_eq!(
            partial_success(b"{}"),
            None,
            "so is a body that is not OTLP"
        );
        assert_eq!(
            answers(&body),
            ItemAnswers::RefusedCount {
                refused: 2,
                message: "bad span".into()
            }
        );
        assert_eq!(answers(b""), ItemAnswers::AllAccepted);
    }
}
