//! The conformance kit, over both encodings: the kit's scripted server plays
//! the OTLP backend (faults included), and this decoder reads back what the
//! exporter sent.
//!
//! Partial acceptance is not applicable: an OTLP `partial_success` gives a
//! count, never which spans, so the kit cannot refuse chosen items (the
//! count is tested in `http_answers.rs`).

mod common;

use aiobs_conformance::http::CapturedRequest;
use aiobs_conformance::{DeliveredItem, Harness, HarnessError};
use aiobs_otel_bridge::{OtelExporter, OtlpProtocol};
use common::*;
use serde_json::Value;

fn exporter(url: &str, protocol: OtlpProtocol) -> OtelExporter {
    OtelExporter::builder()
        .endpoint(url)
        .protocol(protocol)
        .capture_content(true)
        .env_proxy(false)
        .build()
        .expect("valid configuration")
}

/// The input or output the kit emitted, read back: tool arguments and
/// results, other spans' `input.value`/`output.value`, and messages made of
/// one text part (what a plain value becomes).
fn payload(span: &Value, tool_key: &str, value_key: &str, messages_key: &str) -> Option<Value> {
    if let Some(s) = str_attr(span, tool_key).or_else(|| str_attr(span, value_key)) {
        return Some(Value::String(s.to_owned()));
    }
    let messages: Value = serde_json::from_str(str_attr(span, messages_key)?).ok()?;
    match messages.as_array()?.as_slice() {
        [m] => match m["parts"].as_array()?.as_slice() {
            [p] if p["type"] == "text" => Some(p["content"].clone()),
            _ => None,
        },
        _ => None,
    }
}

fn decode_request(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    if req.path != TRACES_PATH {
        return Err(HarnessError::new(format!(
            "unexpected request to {}",
            req.path
        )));
    }
    Ok(spans(&decode(req))
        .iter()
        .map(|s| {
            let hex = |k: &str| s[k].as_str().filter(|v| !v.is_empty()).map(str::to_owned);
            DeliveredItem::span(hex("spanId").unwrap_or_default())
                .trace(hex("traceId").unwrap_or_default())
                .parent(hex("parentSpanId"))
                .input(payload(
                    s,
                    "gen_ai.tool.call.arguments",
                    "input.value",
                    "gen_ai.input.messages",
                ))
                .output(payload(
                    s,
                    "gen_ai.tool.call.result",
                    "output.value",
                    "gen_ai.output.messages",
                ))
        })
        .collect())
}

fn protobuf() -> Harness {
    Harness::http(|url| exporter(url, OtlpProtocol::HttpProtobuf))
        .named("OtelExporter (http/protobuf)")
        .ingest_path(TRACES_PATH)
        .decode_requests(decode_request)
}

fn json() -> Harness {
    Harness::http(|url| exporter(url, OtlpProtocol::HttpJson))
        .named("OtelExporter (http/json)")
        .ingest_path(TRACES_PATH)
        .decode_requests(decode_request)
}

aiobs_conformance::conformance_tests!(protobuf_conformance: protobuf);
aiobs_conformance::conformance_tests!(json_conformance: json);
