//! Shared by the integration tests: the recorded scenario built with the aiobs
//! span API, the exporter pointed at a scripted server, and decoders for what
//! it sends.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use aiobs_conformance::http::{CapturedRequest, ScriptedHttpServer};
use aiobs_core::{
    Cost, ModelAttributes, Observability, ScoreRecord, SpanError, SpanOptions, SpanType,
    ToolAttributes, TraceId, TracingOptions, Usage,
};
use aiobs_exporter_langfuse::{LangfuseExporter, LangfuseExporterBuilder, LangfuseTransport};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message;
use serde_json::{Value, json};

pub const OTLP_PATH: &str = "/api/public/otel/v1/traces";
pub const SCORES_PATH: &str = "/api/public/scores";
pub const INGESTION_PATH: &str = "/api/public/ingestion";
pub const FLUSH: Duration = Duration::from_secs(20);

/// A recorded request (see `tests/fixtures/README.md`).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// The builder the recordings' clients were configured like.
pub fn builder(
    server: &ScriptedHttpServer,
    transport: LangfuseTransport,
) -> LangfuseExporterBuilder {
    LangfuseExporter::builder()
        .public_key("pk-lf-test")
        .secret_key("sk-lf-test")
        .base_url(server.url())
        .environment("production")
        .release("v1.2.3")
        .transport(transport)
        .timeout(Duration::from_secs(5))
}

/// The recorded scenario (`tests/fixtures/README.md`), as the Python clients built it.
/// `with_event` adds the `agent.decision` event the v2 recording has (the v5
/// recording has none).
pub fn weather_trace(obs: &Observability, with_event: bool) -> TraceId {
    let tracing = TracingOptions::new()
        .user_id("user-123")
        .session_id("session-abc")
        .tag("prod")
        .tag("beta")
        .metadata("tenant", "acme")
        // The recorded client propagated the trace name to every span
        // (`propagate_attributes(trace_name=...)`); this is aiobs's way.
        .metadata("langfuse", json!({"traceName": "agent run: weather-agent"}));
    let mut root = obs.start_span(
        SpanOptions::new("agent run: weather-agent", SpanType::AgentRun)
            .input(json!({"question": "What is the weather in Paris?"}))
            .metadata("agent", "weather-agent")
            .tracing(tracing),
    );

    let mut llm = root.child(
        SpanOptions::new("llm: gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(
                ModelAttributes::new("gpt-4o-mini", "openai")
                    .with_parameters(json!({"temperature": 0.2, "max_tokens": 256})),
            )
            .input(json!([{"role": "user", "content": "What is the weather in Paris?"}])),
    );
    llm.set_usage(
        Usage::new(120, 30)
            .with_cache_read(100)
            .with_reasoning(0)
            .with_cost(Cost::new(1.8e-5, 1.8e-5)),
    );
    llm.end_with_output(json!({"role": "assistant", "content": "It is 18°C and sunny in Paris."}));

    let mut weather = root.child(
        SpanOptions::new("get_weather", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_weather"))
            .input(json!({"city": "Paris"})),
    );
    weather.end_with_output(json!({"tempC": 18}));

    let mut forecast = root.child(
        SpanOptions::new("get_forecast", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_forecast"))
            .input(json!({"city": "Paris", "days": 3})),
    );
    forecast.error(SpanError {
        message: "forecast service unavailable".into(),
        kind: Some("RuntimeError".into()),
        stack: Some(
            "Traceback (most recent call last):\nRuntimeError: forecast service unavailable\n"
                .into(),
        ),
        details: None,
    });

    if with_event {
        root.event(
            SpanOptions::new("agent.decision", SpanType::Generic).input(json!({"next": "answer"})),
        );
    }
    root.end_with_output(json!({"answer": "It is 18°C and sunny in Paris."}));
    let trace_id = root.trace_id();
    obs.score(ScoreRecord::new(trace_id, "user_feedback", 1.0).with_comment("thumbs up"));
    trace_id
}

/// Decodes an OTLP request body (already gunzipped by the scripted server).
pub fn decode_otlp(req: &CapturedRequest) -> ExportTraceServiceRequest {
    assert!(req.decode_error.is_none(), "{:?}", req.decode_error);
    ExportTraceServiceRequest::decode(&req.body[..]).expect("valid ExportTraceServiceRequest")
}

/// Attribute keys whose string values are JSON documents (compared decoded,
/// since the Python client's `json.dumps` spacing differs from serde's).
fn json_encoded(key: &str) -> bool {
    key.starts_with("langfuse.observation.metadata.")
        || key.starts_with("langfuse.trace.metadata.")
        || matches!(
            key,
            "langfuse.observation.input"
                | "langfuse.observation.output"
                | "langfuse.observation.model.parameters"
                | "langfuse.observation.usage_details"
                | "langfuse.observation.cost_details"
                | "langfuse.observation.completion_start_time"
        )
}

/// A span reduced to what the comparison looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct NormSpan {
    pub trace_id: String,
    pub id: String,
    pub parent: Option<String>,
    pub name: String,
    pub kind: i64,
    pub flags: i64,
    pub attributes: BTreeMap<String, Value>,
    pub status_code: i64,
    pub status_message: String,
    pub events: Vec<(String, BTreeMap<String, Value>)>,
}

fn norm_attrs(pairs: impl IntoIterator<Item = (String, Value)>) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| {
            let v = match (&v, json_encoded(&k)) {
                (Value::String(s), true) => {
                    serde_json::from_str(s).unwrap_or_else(|e| panic!("{k} is not JSON ({e}): {s}"))
                }
                _ => v,
            };
            (k, v)
        })
        .collect()
}

fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(any_value).collect())
        }
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our spans, normalised.
pub fn our_spans(req: &ExportTraceServiceRequest) -> Vec<NormSpan> {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| NormSpan {
            trace_id: hex(&s.trace_id),
            id: hex(&s.span_id),
            parent: (!s.parent_span_id.is_empty()).then(|| hex(&s.parent_span_id)),
            name: s.name.clone(),
            kind: i64::from(s.kind),
            flags: i64::from(s.flags),
            attributes: norm_attrs(s.attributes.iter().map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map(any_value).unwrap_or(Value::Null),
                )
            })),
            status_code: s.status.as_ref().map_or(0, |st| i64::from(st.code)),
            status_message: s
                .status
                .as_ref()
                .map(|st| st.message.clone())
                .unwrap_or_default(),
            events: s
                .events
                .iter()
                .map(|e| {
                    let attrs = norm_attrs(e.attributes.iter().map(|kv| {
                        (
                            kv.key.clone(),
                            kv.value.as_ref().map(any_value).unwrap_or(Value::Null),
                        )
                    }));
                    (e.name.clone(), attrs)
                })
                .collect(),
        })
        .collect()
}

/// A protobuf-JSON attribute value of the recording.
fn recorded_value(v: &Value) -> Value {
    if let Some(s) = v.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = v.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = v.get("intValue") {
        let n: i64 = i
            .as_str()
            .and_then(|s| s.parse().ok())
            .or(i.as_i64())
            .unwrap();
        return json!(n);
    }
    if let Some(d) = v.get("doubleValue") {
        return d.clone();
    }
    if let Some(a) = v.get("arrayValue") {
        let values = a
            .get("values")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        return Value::Array(values.iter().map(recorded_value).collect());
    }
    panic!("unexpected recorded value {v}")
}

fn recorded_attrs(list: &Value) -> BTreeMap<String, Value> {
    norm_attrs(
        list.as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap().to_owned(),
                    recorded_value(&kv["value"]),
                )
            }),
    )
}

/// The recorded spans, normalised.
pub fn recorded_spans(decoded: &Value) -> Vec<NormSpan> {
    decoded["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap())
        .flat_map(|s| s["spans"].as_array().unwrap())
        .map(|s| NormSpan {
            trace_id: s["traceId"].as_str().unwrap().to_owned(),
            id: s["spanId"].as_str().unwrap().to_owned(),
            parent: s["parentSpanId"].as_str().map(str::to_owned),
            name: s["name"].as_str().unwrap().to_owned(),
            kind: s["kind"].as_i64().unwrap_or(0),
            flags: s["flags"].as_i64().unwrap_or(0),
            attributes: recorded_attrs(&s["attributes"]),
            status_code: s["status"]["code"].as_i64().unwrap_or(0),
            status_message: s["status"]["message"].as_str().unwrap_or("").to_owned(),
            events: s["events"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_owned(),
                        recorded_attrs(&e["attributes"]),
                    )
                })
                .collect(),
        })
        .collect()
}

/// The recorded resource attributes.
pub fn recorded_resource(decoded: &Value) -> BTreeMap<String, Value> {
    recorded_attrs(&decoded["resourceSpans"][0]["resource"]["attributes"])
}

/// The header names and values of a recorded request, names lower-cased.
pub fn recorded_headers(request: &Value) -> BTreeMap<String, String> {
    request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_ascii_lowercase(),
                h[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Ingestion events merged per entity the way Langfuse merges them: later
/// events' fields override earlier ones. Keyed by `(entity kind, name)`; the
/// value keeps the merged body and the event types seen.
pub fn merge_ingestion(events: &[Value]) -> BTreeMap<(String, String), (Value, Vec<String>)> {
    type Merged = (serde_json::Map<String, Value>, Vec<String>);
    let mut by_id: BTreeMap<(String, String), Merged> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for e in events {
        let kind = e["type"].as_str().unwrap();
        let entity = match kind {
            "trace-create" => "trace",
            "score-create" => "score",
            _ => "observation",
        };
        let id = e["body"]["id"].as_str().unwrap().to_owned();
        let key = (entity.to_owned(), id);
        if !by_id.contains_key(&key) {
            order.push(key.clone());
        }
        let slot = by_id.entry(key).or_default();
        for (k, v) in e["body"].as_object().unwrap() {
            if !v.is_null() {
                slot.0.insert(k.clone(), v.clone());
            }
        }
        slot.1.push(kind.to_owned());
    }
    // Re-key by name, which both sides share (ids differ).
    let names: BTreeMap<String, String> = by_id
        .iter()
        .filter(|((entity, _), _)| entity == "observation")
        .map(|((_, id), (b, _))| (id.clone(), b["name"].as_str().unwrap_or("").to_owned()))
        .collect();
    by_id
        .into_iter()
        .map(|((entity, _id), (mut body, kinds))| {
            let name = match entity.as_str() {
                "trace" => "trace".to_owned(),
                _ => body["name"].as_str().unwrap_or("").to_owned(),
            };
            // Parents by name, so the structure is compared too.
            if let Some(p) = body.get("parentObservationId").and_then(Value::as_str) {
                let parent = names
                    .get(p)
                    .cloned()
                    .unwrap_or_else(|| format!("<unknown {p}>"));
                body.insert("parentObservationId".into(), json!(parent));
            }
            ((entity, name), (Value::Object(body), kinds))
        })
        .collect()
}
