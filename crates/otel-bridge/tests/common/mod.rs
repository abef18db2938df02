//! Shared by the integration tests: the recorded weather-agent trace built
//! with the aiobs span API, the exporter pointed at a scripted server, and
//! decoders for what it sends.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use aiobs_conformance::http::{CapturedRequest, ScriptedHttpServer};
use aiobs_core::{
    AgentAttributes, ModelAttributes, Observability, SpanError, SpanOptions, SpanType,
    ToolAttributes, TraceId, TracingOptions, Usage,
};
use aiobs_otel_bridge::{OtelExporter, OtelExporterBuilder, OtlpProtocol};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};

pub const TRACES_PATH: &str = "/v1/traces";
pub const METRICS_PATH: &str = "/v1/metrics";
pub const FLUSH: Duration = Duration::from_secs(20);

/// A recorded request (see `tests/fixtures/README.md`).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// An exporter configured like the recordings' clients, sending to `server`.
/// The environment is not read: tests must not depend on the machine's `OTEL_*`.
pub fn builder(server: &ScriptedHttpServer, protocol: OtlpProtocol) -> OtelExporterBuilder {
    OtelExporter::builder()
        .endpoint(server.url())
        .header("authorization", "Bearer otlp-test-token")
        .protocol(protocol)
        .service_name("weather-agent")
        .resource_attribute("service.version", "1.2.3")
        .resource_attribute("deployment.environment.name", "production")
        .capture_content(true)
        .env_proxy(false)
        .timeout(Duration::from_secs(5))
}

/// The recorded trace, as the Python recording program built it: an agent
/// run with a chat generation (cached tokens), a tool call and a failing one.
pub fn weather_trace(obs: &Observability) -> TraceId {
    let mut agent = AgentAttributes::default();
    agent.agent_id = Some("weather-agent-v1".into());
    let mut root = obs.start_span(
        SpanOptions::new("weather-agent", SpanType::AgentRun)
            .attributes(agent)
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("prod")
                    .tag("beta")
                    .metadata("tenant", "acme"),
            ),
    );
    let trace = root.trace_id();

    let mut model = ModelAttributes::new("gpt-4o-mini", "openai")
        .with_parameters(json!({"temperature": 0.2, "max_tokens": 256}));
    model.response_model = Some("gpt-4o-mini-2024-07-18".into());
    model.response_id = Some("chatcmpl-123".into());
    model.finish_reason = Some("stop".into());
    let mut llm = root.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(model)
            .input(json!([{"role": "user", "content": "What is the weather in Paris?"}]))
            // No field of the span model says which host was called: the raw-attribute escape hatch.
            .metadata(
                "otel",
                json!({"attributes": {"server.address": "api.openai.com"}}),
            ),
    );
    llm.set_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(0));
    llm.end_with_output("It is 18°C and sunny in Paris.");

    for (name, call, input, result) in [
        (
            "get_weather",
            "call_1",
            json!({"city": "Paris"}),
            Ok(json!({"tempC": 18})),
        ),
        (
            "get_forecast",
            "call_2",
            json!({"city": "Paris", "days": 3}),
            Err("forecast service unavailable"),
        ),
    ] {
        let mut tool_attrs = ToolAttributes::new(name);
        tool_attrs.tool_type = Some("function".into());
        let mut t = root.child(
            SpanOptions::new(name, SpanType::ToolCall)
                .attributes(tool_attrs)
                .input(input)
                .metadata("otel", json!({"attributes": {"gen_ai.tool.call.id": call}})),
        );
        match result {
            Ok(out) => t.end_with_output(out),
            Err(msg) => {
                let mut e = SpanError::new(msg).with_kind("RuntimeError");
                e.stack = Some("Traceback (most recent call last):\nRuntimeError: forecast service unavailable\n".into());
                t.error(e);
            }
        }
    }
    root.end_with_output("It is 18°C and sunny in Paris.");
    trace
}

/// The `ExportTraceServiceRequest` of a captured request, as OTLP/JSON (hex
/// ids, int64 as strings), whichever encoding it was sent in.
pub fn decode(req: &CapturedRequest) -> Value {
    match req.header("content-type") {
        Some("application/x-protobuf") => {
            let r = ExportTraceServiceRequest::decode(&req.body[..]).expect("protobuf request");
            serde_json::to_value(&r).unwrap()
        }
        Some("application/json") => req.json().expect("JSON request"),
        other => panic!("unexpected content-type {other:?}"),
    }
}

/// The spans of a decoded request, in order.
pub fn spans(request: &Value) -> Vec<Value> {
    request["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// A span's attribute value (`{"stringValue": ..}`, ...), by key.
pub fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

/// A string attribute.
pub fn str_attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key)?["stringValue"].as_str()
}

/// An int attribute (OTLP/JSON carries int64 as a string).
pub fn int_attr(span: &Value, key: &str) -> Option<i64> {
    let v = &attr(span, key)?["intValue"];
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}
