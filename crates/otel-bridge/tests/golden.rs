//! The requests `OtelExporter` sends, over protobuf and over JSON, compared
//! field by field with the recordings of the official exporters (ids and
//! times aside). Every difference that is allowed is listed below with its
//! reason; any other difference fails.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aiobs_conformance::http::ScriptedHttpServer;
use aiobs_core::Observability;
use aiobs_otel_bridge::OtlpProtocol;
use common::*;
use serde_json::Value;

/// Attributes of a recorded span that ours may lack, with the reason.
const MAY_LACK: &[(&str, &str, &str)] = &[(
    "invoke_agent",
    "gen_ai.provider.name",
    "aiobs agent runs carry no provider: the model spans under them do",
)];

/// Attributes ours may carry that the Python recording's span has not.
const MAY_ADD: &[(&str, &str)] = &[
    (
        "gen_ai.system",
        "the deprecated provider name, written in the default stability mode",
    ),
    (
        "aiobs.span.type",
        "the aiobs span type, which the conventions merge (model steps are `chat` too)",
    ),
    (
        "user.id",
        "aiobs carries trace-level fields on every span, not only the root",
    ),
    ("session.id", "same"),
    (
        "gen_ai.conversation.id",
        "same (the session, on every GenAI span)",
    ),
    ("tags", "same"),
    ("metadata.tenant", "same"),
];

/// Event attributes of the recording that ours lack.
const EVENT_MAY_LACK: &[(&str, &str)] = &[(
    "exception.escaped",
    "Python-only, and deprecated in the conventions",
)];

/// Resource attributes that differ.
const RESOURCE_MAY_DIFFER: &[(&str, &str)] = &[
    ("telemetry.sdk.name", "`aiobs`: aiobs produced the spans"),
    ("telemetry.sdk.version", "aiobs's version"),
    ("telemetry.sdk.language", "rust"),
    (
        "service.instance.id",
        "a random id per Python process; aiobs sets none",
    ),
];

/// What a span does, to pair recorded spans with ours: its tool, else its operation.
fn role(span: &Value) -> String {
    str_attr(span, "gen_ai.tool.name")
        .or_else(|| str_attr(span, "gen_ai.operation.name"))
        .unwrap_or("?")
        .to_owned()
}

fn by_role(spans: &[Value]) -> BTreeMap<String, Value> {
    spans.iter().map(|s| (role(s), s.clone())).collect()
}

fn parent_role(span: &Value, spans: &BTreeMap<String, Value>) -> Option<String> {
    let parent = span["parentSpanId"].as_str().filter(|p| !p.is_empty())?;
    spans
        .iter()
        .find(|(_, s)| s["spanId"] == parent)
        .map(|(r, _)| r.clone())
}

/// Two attribute values are equal, or both are JSON text of the same value.
fn same_value(a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    let text = |v: &Value| {
        v["stringValue"]
            .as_str()
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    };
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn status(span: &Value) -> (i64, String) {
    (
        span["status"]["code"].as_i64().unwrap_or(0),
        span["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Compares one request with a recording; returns the differences. `full`:
/// the recording carries the whole trace (Python's); otherwise (Rust's
/// recording program set fewer fields) what it has must be in ours, and ours
/// may have more.
fn differences(ours: &Value, recorded: &Value, full: bool) -> Vec<String> {
    let mut diffs = Vec::new();
    // Resource.
    let resource = |r: &Value| -> BTreeMap<String, Value> {
        r["resourceSpans"][0]["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|kv| {
                (
                    kv["key"].as_str().unwrap_or_default().to_owned(),
                    kv["value"].clone(),
                )
            })
            .collect()
    };
    let (ro, rr) = (resource(ours), resource(recorded));
    for (k, v) in &rr {
        if RESOURCE_MAY_DIFFER.iter().any(|(key, _)| key == k) {
            continue;
        }
        if ro.get(k) != Some(v) {
            diffs.push(format!("resource {k}: recorded {v}, ours {:?}", ro.get(k)));
        }
    }
    let (so, sr) = (by_role(&spans(ours)), by_role(&spans(recorded)));
    let roles: BTreeSet<&String> = so.keys().chain(sr.keys()).collect();
    for role in roles {
        let (Some(o), Some(r)) = (so.get(role), sr.get(role)) else {
            // Rust's recording program left out a span and the exception event.
            if !full && !sr.contains_key(role) {
                continue;
            }
            diffs.push(format!(
                "span {role}: only in {}",
                if so.contains_key(role) {
                    "ours"
                } else {
                    "the recording"
                }
            ));
            continue;
        };
        if o["kind"] != r["kind"] {
            diffs.push(format!(
                "{role}: kind recorded {}, ours {}",
                r["kind"], o["kind"]
            ));
        }
        if parent_role(o, &so) != parent_role(r, &sr) {
            diffs.push(format!(
                "{role}: parent recorded {:?}, ours {:?}",
                parent_role(r, &sr),
                parent_role(o, &so)
            ));
        }
        if o["traceId"].as_str().map(str::len) != Some(32)
            || o["spanId"].as_str().map(str::len) != Some(16)
        {
            diffs.push(format!(
                "{role}: ids not 16/8 bytes: {} {}",
                o["traceId"], o["spanId"]
            ));
        }
        let (oc, om) = status(o);
        let (rc, rm) = status(r);
        // Rust's recording set the message without the error type.
        let message_ok = if full { rm == om } else { om.ends_with(&rm) };
        if oc != rc || !message_ok {
            diffs.push(format!(
                "{role}: status recorded ({rc}, {rm:?}), ours ({oc}, {om:?})"
            ));
        }
        if o["name"] != r["name"]
            && !(role == "invoke_agent" && o["name"] == "invoke_agent weather-agent")
        {
            diffs.push(format!(
                "{role}: name recorded {}, ours {}",
                r["name"], o["name"]
            ));
        }
        // Flags: aiobs exports sampled spans (bit 0), as Rust's exporter does;
        // Python's recording sets only "is the parent remote known" (bit 8).
        if o["flags"] != 257 {
            diffs.push(format!("{role}: flags {} (expected 257)", o["flags"]));
        }
        for kv in r["attributes"].as_array().into_iter().flatten() {
            let key = kv["key"].as_str().unwrap_or_default();
            if MAY_LACK.iter().any(|(r2, k, _)| *r2 == role && *k == key) {
                continue;
            }
            match attr(o, key) {
                Some(v) if same_value(v, &kv["value"]) => {}
                other => diffs.push(format!(
                    "{role}: attribute {key} recorded {}, ours {other:?}",
                    kv["value"]
                )),
            }
        }
        if full {
            for kv in o["attributes"].as_array().into_iter().flatten() {
                let key = kv["key"].as_str().unwrap_or_default();
                if attr(r, key).is_none() && !MAY_ADD.iter().any(|(k, _)| *k == key) {
                    diffs.push(format!(
                        "{role}: attribute {key} only in ours: {}",
                        kv["value"]
                    ));
                }
            }
        }
        let events = |s: &Value| s["events"].as_array().cloned().unwrap_or_default();
        let (eo, er) = (events(o), events(r));
        if eo.len() != er.len() && (full || eo.len() < er.len()) {
            diffs.push(format!(
                "{role}: {} events recorded, {} ours",
                er.len(),
                eo.len()
            ));
        }
        for (e_o, e_r) in eo.iter().zip(&er) {
            if e_o["name"] != e_r["name"] {
                diffs.push(format!(
                    "{role}: event {} recorded, {} ours",
                    e_r["name"], e_o["name"]
                ));
            }
            for kv in e_r["attributes"].as_array().into_iter().flatten() {
                let key = kv["key"].as_str().unwrap_or_default();
                // The stack is the application's; the recorded one is Python's.
                if EVENT_MAY_LACK.iter().any(|(k, _)| *k == key) || key == "exception.stacktrace" {
                    continue;
                }
                if attr(e_o, key).is_none_or(|v| !same_value(v, &kv["value"])) {
                    diffs.push(format!(
                        "{role}: event attribute {key} recorded {}, ours {:?}",
                        kv["value"],
                        attr(e_o, key)
                    ));
                }
            }
            if attr(e_o, "exception.stacktrace").is_none()
                != attr(e_r, "exception.stacktrace").is_none()
            {
                diffs.push(format!("{role}: stack trace present in one only"));
            }
        }
    }
    diffs
}

/// Sends the weather trace with `protocol` and returns the decoded request and its headers.
fn send(protocol: OtlpProtocol) -> (Value, aiobs_conformance::http::CapturedRequest) {
    let server = ScriptedHttpServer::start().unwrap();
    let exporter = builder(&server, protocol).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let reqs = server.requests_to(TRACES_PATH);
    assert_eq!(reqs.len(), 1, "one request for one flushed trace");
    (decode(&reqs[0]), reqs[0].clone())
}

#[test]
fn protobuf_matches_the_recorded_requests() {
    let (ours, req) = send(OtlpProtocol::HttpProtobuf);
    assert_eq!(req.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(req.header("authorization"), Some("Bearer otlp-test-token"));
    assert_eq!(
        req.header("content-encoding"),
        None,
        "no compression by default, as recorded"
    );
    assert!(
        req.header("user-agent")
            .is_some_and(|ua| ua.contains("OTel-OTLP-Exporter-Rust"))
    );
    assert_eq!(spans(&ours).len(), 4);

    let python = differences(&ours, &fixture("python_proto_decoded.json"), true);
    assert!(
        python.is_empty(),
        "against Python's protobuf request:\n{}",
        python.join("\n")
    );
    let rust = differences(&ours, &fixture("rust_proto_decoded.json"), false);
    assert!(
        rust.is_empty(),
        "against Rust's protobuf request:\n{}",
        rust.join("\n")
    );
}

#[test]
fn json_matches_the_recorded_requests() {
    let (ours, req) = send(OtlpProtocol::HttpJson);
    assert_eq!(req.header("content-type"), Some("application/json"));
    // OTLP/JSON: hex ids, int64 as strings, enums as integers.
    let chat = spans(&ours)
        .into_iter()
        .find(|s| role(s) == "chat")
        .unwrap();
    assert_eq!(chat["kind"], 3);
    assert!(chat["startTimeUnixNano"].is_string());
    assert_eq!(
        attr(&chat, "gen_ai.usage.input_tokens").unwrap()["intValue"],
        "120"
    );

    let python = differences(&ours, &fixture("python_json_request.json")["body"], true);
    assert!(
        python.is_empty(),
        "against Python's JSON request:\n{}",
        python.join("\n")
    );
    let rust = differences(&ours, &fixture("rust_json_request.json")["body"], false);
    assert!(
        rust.is_empty(),
        "against Rust's JSON request:\n{}",
        rust.join("\n")
    );
}

#[test]
fn gzip_is_sent_when_asked_as_recorded() {
    let recorded = fixture("python_proto_gzip_request.json");
    assert_eq!(recorded["content_encoding"], "gzip");
    let server = ScriptedHttpServer::start().unwrap();
    let exporter = builder(&server, OtlpProtocol::HttpProtobuf)
        .compression(aiobs_otel_bridge::OtlpCompression::Gzip)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs);
    assert!(obs.flush_blocking(FLUSH).is_success());
    let req = &server.requests_to(TRACES_PATH)[0];
    assert!(req.is_gzip() && req.decode_error.is_none());
    assert!(req.raw_body.len() < req.body.len());
    let diffs = differences(&decode(req), &fixture("python_proto_decoded.json"), true);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn ids_and_times_are_exact() {
    let server = ScriptedHttpServer::start().unwrap();
    let memory = aiobs_core::InMemoryExporter::new();
    let exporter = builder(&server, OtlpProtocol::HttpProtobuf)
        .build()
        .unwrap();
    let obs = Observability::builder()
        .exporter(exporter)
        .exporter(memory.clone())
        .build()
        .unwrap();
    weather_trace(&obs);
    assert!(obs.flush_blocking(FLUSH).is_success());
    let sent = spans(&decode(&server.requests_to(TRACES_PATH)[0]));
    let nanos = |t: chrono::DateTime<chrono::Utc>| t.timestamp_nanos_opt().unwrap().to_string();
    for s in memory.ended_spans() {
        let o = sent
            .iter()
            .find(|o| o["spanId"] == s.span_id.to_string())
            .unwrap_or_else(|| panic!("span {} not sent", s.span_id));
        assert_eq!(o["traceId"], s.trace_id.to_string());
        assert_eq!(
            o["parentSpanId"].as_str().filter(|p| !p.is_empty()),
            s.parent_span_id.map(|p| p.to_string()).as_deref()
        );
        assert_eq!(o["startTimeUnixNano"], nanos(s.start_time));
        assert_eq!(o["endTimeUnixNano"], nanos(s.end_time.unwrap()));
    }
}
