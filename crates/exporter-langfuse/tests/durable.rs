//! Correct output from `Ended` events alone: spans started in one process
//! (one `Observability`) and ended in another, children ending before their
//! parent, and a continued upstream trace.

mod common;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{
    ExportedSpan, InMemoryExporter, Observability, SpanOptions, SpanType, TracingOptions,
};
use aiobs_exporter_langfuse::LangfuseTransport;
use common::*;
use serde_json::{Value, json};

/// Starts a root and a tool call in a first process and exports them, as a
/// durable engine checkpoints running steps.
fn started_elsewhere() -> (ExportedSpan, ExportedSpan) {
    let first = Observability::builder()
        .exporter(InMemoryExporter::new())
        .build()
        .unwrap();
    let root = first.start_span(
        SpanOptions::new("durable agent", SpanType::AgentRun)
            .input(json!({"task": "book"}))
            .tracing(
                TracingOptions::new()
                    .user_id("u-1")
                    .session_id("s-1")
                    .tag("durable"),
            ),
    );
    let step =
        root.child(SpanOptions::new("book_flight", SpanType::ToolCall).input(json!({"to": "CDG"})));
    let out = (root.export().unwrap(), step.export().unwrap());
    // The first process dies without ending them.
    std::mem::forget(step);
    std::mem::forget(root);
    out
}

#[test]
fn spans_ended_in_a_new_process_child_first_otlp() {
    let (root, step) = started_elsewhere();
    let server = ScriptedHttpServer::start().unwrap();
    let obs = Observability::builder()
        .exporter(builder(&server, LangfuseTransport::Otlp).build().unwrap())
        .build()
        .unwrap();
    let mut s = obs.rebuild_span(step.clone());
    s.end_with_output(json!({"confirmation": "X1"}));
    let mut r = obs.rebuild_span(root.clone());
    r.end_with_output("booked");
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");

    let spans: Vec<NormSpan> = server
        .requests_to(OTLP_PATH)
        .iter()
        .flat_map(|r| our_spans(&decode_otlp(r)))
        .collect();
    assert_eq!(spans.len(), 2);
    let child = spans.iter().find(|s| s.name == "book_flight").unwrap();
    let parent = spans.iter().find(|s| s.name == "durable agent").unwrap();
    assert_eq!(child.parent.as_deref(), Some(parent.id.as_str()));
    assert_eq!(child.id, step.span_id.to_string());
    assert_eq!(parent.parent, None);
    assert_eq!(
        parent.attributes["langfuse.internal.is_app_root"],
        json!(true)
    );
    assert_eq!(child.attributes["langfuse.observation.type"], json!("tool"));
    assert_eq!(
        child.attributes["langfuse.observation.input"],
        json!({"to": "CDG"})
    );
    assert_eq!(
        child.attributes["langfuse.observation.output"],
        json!({"confirmation": "X1"})
    );
    // Trace-level fields reach Langfuse from whichever span arrives first.
    for s in [child, parent] {
        assert_eq!(s.attributes["user.id"], json!("u-1"));
        assert_eq!(s.attributes["session.id"], json!("s-1"));
        assert_eq!(s.attributes["langfuse.trace.tags"], json!(["durable"]));
    }
    assert_eq!(
        parent.attributes["langfuse.trace.name"],
        json!("durable agent")
    );
}

#[test]
fn spans_ended_in_a_new_process_child_alone_ingestion() {
    let (root, step) = started_elsewhere();
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(INGESTION_PATH)
        .set_default(ScriptedResponse::multi_status(
            &json!({"successes": [], "errors": []}),
        ));
    let obs = Observability::builder()
        .exporter(
            builder(&server, LangfuseTransport::Ingestion)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // The child ends and is delivered before the root ends at all.
    let mut s = obs.rebuild_span(step.clone());
    s.end();
    assert!(obs.flush_blocking(FLUSH).is_success());
    let mut r = obs.rebuild_span(root.clone());
    r.end();
    assert!(obs.flush_blocking(FLUSH).is_success());

    let reqs = server.requests_to(INGESTION_PATH);
    assert_eq!(reqs.len(), 2);
    let first: Value = reqs[0].json().unwrap();
    let kinds: Vec<&str> = first["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // The lone child creates its trace (with what it knows) and itself, complete.
    assert_eq!(kinds, ["trace-create", "span-create"]);
    let trace = &first["batch"][0]["body"];
    assert_eq!(trace["id"], json!(root.trace_id.to_string()));
    assert_eq!(trace["userId"], "u-1");
    assert_eq!(trace["tags"], json!(["durable"]));
    let obs_body = &first["batch"][1]["body"];
    assert_eq!(
        obs_body["parentObservationId"],
        json!(root.span_id.to_string())
    );
    assert_eq!(
        obs_body["startTime"],
        json!(
            step.start_time
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    );
    assert!(obs_body["endTime"].is_string());
    assert_eq!(obs_body["metadata"]["observation_type"], "tool");
    // Then the root completes the trace.
    let second: Value = reqs[1].json().unwrap();
    let trace = &second["batch"][0]["body"];
    assert_eq!(second["batch"][0]["type"], "trace-create");
    assert_eq!(trace["name"], "durable agent");
    assert_eq!(trace["input"], json!({"task": "book"}));
}

#[test]
fn a_continued_trace_keeps_the_upstream_parent_and_claims_nothing_of_the_trace() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = Observability::builder()
        .exporter(builder(&server, LangfuseTransport::Otlp).build().unwrap())
        .build()
        .unwrap();
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut span = obs.start_span(
        SpanOptions::new("handler", SpanType::WorkflowRun)
            .tracing(TracingOptions::new().traceparent(header)),
    );
    span.end();
    assert!(obs.flush_blocking(FLUSH).is_success());
    let spans = our_spans(&decode_otlp(&server.requests_to(OTLP_PATH)[0]));
    let s = &spans[0];
    assert_eq!(s.parent.as_deref(), Some("00f067aa0ba902b7"));
    // The upstream service began the trace: this span neither says it is
    // the root nor names the trace (Langfuse would rename it after us).
    for claim in [
        "langfuse.internal.as_root",
        "langfuse.internal.is_app_root",
        "langfuse.trace.name",
    ] {
        assert!(
            !s.attributes.contains_key(claim),
            "{claim}: {:?}",
            s.attributes
        );
    }
    assert_eq!(s.attributes["langfuse.observation.type"], json!("chain"));
    assert_eq!(s.flags, 0x300, "the parent is remote");
}
