//! The recorded scenario, sent through the exporter and compared field by
//! field with what Sentry's Python SDK sent for it (tests/fixtures), then
//! normalised by Relay. Ids and times differ on every run and are not
//! compared; every other difference allowed is listed in `ALLOWED`.

mod common;

use std::time::Duration;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{
    ModelAttributes, Observability, SpanError, SpanOptions, SpanType, ToolAttributes,
    TracingOptions, Usage,
};
use serde_json::{Value, json};

/// Differences from the Python SDK's payloads that are expected, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "type, transaction_info",
        "the sentry crate's Transaction has neither: Relay takes the type from the item header, and the Rust SDK sends no transaction_info either",
    ),
    (
        "thread.id, thread.name",
        "Python SDK process details; aiobs spans are not bound to a thread",
    ),
    (
        "gen_ai.system, gen_ai.request.messages, gen_ai.response.text",
        "deprecated keys the Python SDK still writes beside their replacements",
    ),
    (
        "origin, sdk, platform, server_name, breadcrumbs, measurements, same_process_as_parent",
        "client identity and client-side state",
    ),
    (
        "contexts.agent_metadata vs contexts.metadata",
        "the recording's script named its context; aiobs puts metadata and trace tags under `metadata`",
    ),
    (
        "tags",
        "aiobs tags are a list: `deployment:prod` style tags become key/value pairs, bare ones `tag: \"true\"`",
    ),
    (
        "contexts.trace.description on the root",
        "aiobs gives it the convention name `invoke_agent {agent}`; the recording left it null",
    ),
    (
        "exception stacktrace and mechanism",
        "Python captured its own frames; aiobs carries the application's stack from SpanError.stack, mechanism `aiobs`",
    ),
    (
        "JSON inside strings",
        "compared as parsed JSON: Python's json.dumps adds spaces",
    ),
];

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/python-sdk-classic.json")).unwrap()
}

/// The recorded scenario: agent run, chat, a tool, a failing tool.
fn emit_scenario(obs: &Observability) {
    let root = obs.start_span(
        SpanOptions::new("agent run: weather-agent", SpanType::AgentRun)
            .entity("agent", "weather-agent", Some("weather-agent".into()))
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("deployment:prod")
                    .tag("channel:beta")
                    .metadata("tenant", "acme"),
            ),
    );
    let mut model = ModelAttributes::new("gpt-4o-mini", "openai")
        .with_parameters(json!({"temperature": 0.2, "max_tokens": 256}));
    model.response_model = Some("gpt-4o-mini-2024-07-18".into());
    model.finish_reason = Some("stop".into());
    let mut chat = root.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(model)
            .input(json!([{"role": "user", "content": "What is the weather in Paris?"}])),
    );
    chat.set_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(0));
    chat.end_with_output("It is 18°C and sunny in Paris.");
    let mut weather = ToolAttributes::new("get_weather");
    weather.tool_type = Some("function".into());
    root.child(
        SpanOptions::new("get_weather", SpanType::ToolCall)
            .attributes(weather.clone())
            .input(json!({"city": "Paris"})),
    )
    .end_with_output(json!({"tempC": 18}));
    let mut forecast = ToolAttributes::new("get_forecast");
    forecast.tool_type = Some("function".into());
    let mut e = SpanError::new("forecast service unavailable").with_kind("RuntimeError");
    e.stack = Some(
        "   0: weather_agent::tools::get_forecast\n             at ./src/tools.rs:42:9\n".into(),
    );
    root.child(
        SpanOptions::new("get_forecast", SpanType::ToolCall)
            .attributes(forecast)
            .input(json!({"city": "Paris", "days": 3})),
    )
    .error(e);
    drop(root);
}

/// Sends the scenario; returns the transaction and the error event.
fn send_scenario() -> (Value, Value, Vec<aiobs_conformance::http::CapturedRequest>) {
    let server = ScriptedHttpServer::start().unwrap();
    server.set_default(ScriptedResponse::json(200, &json!({})));
    let obs = Observability::builder()
        .exporter(common::exporter(&server.url()))
        .build()
        .unwrap();
    emit_scenario(&obs);
    let report = obs.flush_blocking(Duration::from_secs(10));
    assert!(report.is_success(), "{report}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one transaction and one error envelope");
    for r in &requests {
        assert_eq!(r.path, common::ENVELOPE_PATH);
        assert_eq!(
            r.header("content-type"),
            Some("application/x-sentry-envelope")
        );
        assert!(r.is_gzip(), "gzip as Python's SDK");
        let auth = r.header("x-sentry-auth").unwrap();
        assert!(
            auth.starts_with("Sentry sentry_key=publickey, sentry_version=7"),
            "{auth}"
        );
        assert!(r.body.ends_with(b"\n"), "an envelope ends with a newline");
    }
    let mut txn = None;
    let mut err = None;
    for r in &requests {
        let env = common::envelope_of(r);
        assert_eq!(env.items.len(), 1, "one event per envelope");
        let (h, p) = env.items[0].clone();
        assert_eq!(
            env.header["event_id"].as_str().map(|s| s.replace('-', "")),
            p["event_id"].as_str().map(str::to_owned)
        );
        assert_eq!(env.header["trace"]["public_key"], "publickey");
        assert_eq!(
            env.header["trace"]["trace_id"],
            p["contexts"]["trace"]["trace_id"]
        );
        match h["type"].as_str() {
            Some("transaction") => txn = Some(p),
            Some("event") => err = Some(p),
            other => panic!("unexpected item {other:?}"),
        }
    }
    (txn.unwrap(), err.unwrap(), requests)
}

/// Compares `ours[key]` with `theirs[key]`, parsing JSON held in strings.
fn same(what: &str, ours: &Value, theirs: &Value) {
    let parse = |v: &Value| match v
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        Some(j) if j.is_object() || j.is_array() => j,
        _ => v.clone(),
    };
    assert_eq!(
        parse(ours),
        parse(theirs),
        "{what}: ours {ours} vs recorded {theirs}"
    );
}

fn by_description<'a>(spans: &'a Value, d: &str) -> &'a Value {
    spans
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["description"] == d)
        .unwrap_or_else(|| panic!("no span {d:?} in {spans}"))
}

#[test]
fn transaction_matches_the_python_sdk_recording() {
    assert!(!ALLOWED.is_empty());
    let (txn, _, _) = send_scenario();
    let rec = &fixture()["transaction"];
    for k in ["transaction", "release", "environment", "user"] {
        same(k, &txn[k], &rec[k]);
    }
    let (ours, theirs) = (&txn["contexts"]["trace"], &rec["contexts"]["trace"]);
    same("root op", &ours["op"], &theirs["op"]);
    assert!(ours["parent_span_id"].is_null(), "a root has no parent");
    for k in [
        "gen_ai.operation.name",
        "gen_ai.agent.name",
        "gen_ai.conversation.id",
    ] {
        same(k, &ours["data"][k], &theirs["data"][k]);
    }
    assert_eq!(txn["contexts"]["metadata"]["tenant"], "acme");
    assert_eq!(
        txn["tags"],
        json!({"deployment": "prod", "channel": "beta"})
    );
    assert_eq!(txn["spans"].as_array().unwrap().len(), 3);
    let root_id = &ours["span_id"];
    for d in [
        "chat gpt-4o-mini",
        "execute_tool get_weather",
        "execute_tool get_forecast",
    ] {
        let (o, t) = (
            by_description(&txn["spans"], d),
            by_description(&rec["spans"], d),
        );
        same(&format!("{d} op"), &o["op"], &t["op"]);
        assert_eq!(&o["parent_span_id"], root_id, "{d} is a child of the root");
        assert_eq!(o["trace_id"], ours["trace_id"]);
        let their_keys: Vec<&String> = t["data"].as_object().unwrap().keys().collect();
        for k in their_keys {
            if k.starts_with("thread.")
                || [
                    "gen_ai.system",
                    "gen_ai.request.messages",
                    "gen_ai.response.text",
                ]
                .contains(&k.as_str())
            {
                continue; // ALLOWED
            }
            same(&format!("{d} data.{k}"), &o["data"][k], &t["data"][k]);
        }
        same(
            &format!("{d} status"),
            &o["status"],
            &t["status"].as_str().map_or(json!("ok"), |s| json!(s)),
        );
    }
    // Usage: integers under Sentry's names, cached and reasoning included.
    let chat = &by_description(&txn["spans"], "chat gpt-4o-mini")["data"];
    assert!(chat["gen_ai.usage.input_tokens"].is_u64());
    assert_eq!(chat["gen_ai.usage.input_tokens.cached"], 100);
}

#[test]
fn error_event_matches_the_recording_and_links_to_the_failing_span() {
    let (txn, err, _) = send_scenario();
    let rec = &fixture()["error_event"];
    assert!(err.get("level").is_none_or(|l| l == "error"), "{err}");
    for k in ["transaction", "release", "environment", "user"] {
        same(k, &err[k], &rec[k]);
    }
    let (ex, rex) = (
        &err["exception"]["values"][0],
        &rec["exception"]["values"][0],
    );
    same("exception type", &ex["type"], &rex["type"]);
    same("exception value", &ex["value"], &rex["value"]);
    let (ours, theirs) = (&err["contexts"]["trace"], &rec["contexts"]["trace"]);
    for k in ["op", "description", "status"] {
        same(&format!("trace.{k}"), &ours[k], &theirs[k]);
    }
    // Linked: the error's trace context is the failing span of the transaction.
    let forecast = by_description(&txn["spans"], "execute_tool get_forecast");
    assert_eq!(ours["span_id"], forecast["span_id"]);
    assert_eq!(ours["parent_span_id"], forecast["parent_span_id"]);
    assert_eq!(ours["trace_id"], txn["contexts"]["trace"]["trace_id"]);
    // The application's stack, never the exporter's.
    let frames = ex["stacktrace"]["frames"].as_array().unwrap();
    assert!(
        frames.iter().any(|f| f["function"]
            .as_str()
            .is_some_and(|s| s.contains("get_forecast"))),
        "{frames:?}"
    );
    assert!(!ex.to_string().contains("aiobs_exporter_sentry"), "{ex}");
}

#[test]
fn relay_accepts_the_scenario() {
    let (_, _, requests) = send_scenario();
    let events = common::events_for_relay(&requests);
    let normalised = common::assert_relay_accepts(&events);
    if let Some(t) = normalised.iter().find(|e| e["type"] == "transaction") {
        assert_eq!(
            t["spans"].as_array().map(Vec::len),
            Some(3),
            "Relay kept every span"
        );
    }
}

#[test]
fn the_rust_sentry_crate_recording_has_the_same_shape() {
    // What the `sentry` crate itself sends for the scenario: the same item
    // type and the same header form (no Content-Type or gzip there; we add both).
    let rec: Value =
        serde_json::from_str(include_str!("fixtures/rust-sentry-0.49.5.json")).unwrap();
    let (txn, _, _) = send_scenario();
    let theirs = &rec["envelope"]["items"][0]["payload"];
    for k in ["transaction", "release", "environment", "user"] {
        same(k, &txn[k], &theirs[k]);
    }
    same(
        "op",
        &txn["contexts"]["trace"]["op"],
        &theirs["contexts"]["trace"]["op"],
    );
    let ops = |t: &Value| {
        let mut v: Vec<String> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s["op"], s["description"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(ops(&txn), ops(theirs));
}
