//! What the exporter does when Langfuse answers badly, through the real
//! pipeline and a scripted loopback server: every event ends delivered, or
//! counted in the flush report with a reason.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{DropReason, Observability, SpanOptions, SpanType};
use aiobs_exporter_langfuse::{LangfuseExporter, LangfuseTransport};
use common::*;
use serde_json::{Value, json};

fn accepted() -> ScriptedResponse {
    ScriptedResponse::json(202, &json!({"message": "Accepted"}))
}

#[test]
fn unauthorized_disables_the_exporter_with_a_clear_error() {
    let server = ScriptedHttpServer::start().unwrap();
    server.set_default(ScriptedResponse::unauthorized());
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();

    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    assert!(!report.is_success());
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 0);
    assert_eq!(
        lf.dropped.get(&DropReason::ExporterDisabled),
        Some(&5),
        "{report}"
    );
    assert!(lf.totals.disabled);
    let err = lf.totals.last_error.clone().unwrap();
    for needle in [
        "Langfuse refused the credentials",
        "pk-lf-test",
        "LANGFUSE_SECRET_KEY",
        "401",
    ] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(
        !err.contains("sk-lf-test"),
        "the secret must not leak: {err}"
    );
    // One request: no retry, and the scores are not tried with refused keys.
    assert_eq!(server.request_count(), 1, "{:?}", server.requests());

    // Later events are counted as dropped without reaching the network.
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.dropped.get(&DropReason::ExporterDisabled), Some(&5));
    assert_eq!(server.request_count(), 1);
    assert!(lf.totals.is_conserved());
}

#[test]
fn multi_status_retries_only_the_failed_items() {
    let server = ScriptedHttpServer::start().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // First answer: the get_weather span is invalid (400), the get_forecast
    // span hit a server error (500); everything else is accepted.
    server.route(INGESTION_PATH).respond_with(move |req| {
        let first = seen.fetch_add(1, Ordering::SeqCst) == 0;
        let body: Value = req.json().unwrap_or(Value::Null);
        let (mut ok, mut errors) = (Vec::new(), Vec::new());
        for e in body["batch"].as_array().cloned().unwrap_or_default() {
            let name = e["body"]["name"].as_str().unwrap_or("");
            let span = e["type"] == "span-create";
            match (first && span, name) {
                (true, "get_weather") => errors.push(json!({"id": e["id"], "status": 400, "message": "Invalid request data", "error": "bad"})),
                (true, "get_forecast") => errors.push(json!({"id": e["id"], "status": 500, "message": "boom"})),
                _ => ok.push(json!({"id": e["id"], "status": 201})),
            }
        }
        ScriptedResponse::multi_status(&json!({"successes": ok, "errors": errors}))
    });
    let exporter = builder(&server, LangfuseTransport::Ingestion)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, true);
    let report = obs.flush_blocking(FLUSH);
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 5, "{report}");
    assert_eq!(
        lf.failed.get(&DropReason::PermanentError),
        Some(&1),
        "{report}"
    );
    assert_eq!(lf.pending, 0);
    assert!(
        lf.totals
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("Invalid request data")
    );

    let requests = server.requests_to(INGESTION_PATH);
    assert_eq!(
        requests.len(),
        2,
        "the first batch, then the one retried item"
    );
    let first: Value = requests[0].json().unwrap();
    let retry: Value = requests[1].json().unwrap();
    // Only the failed item is sent again: its observation, plus the
    // trace-create with the trace-level fields it carries (an idempotent upsert).
    let retried: Vec<&Value> = retry["batch"].as_array().unwrap().iter().collect();
    let kinds: Vec<&str> = retried
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["trace-create", "span-create"], "{retry}");
    let span = retried[1];
    assert_eq!(span["body"]["name"], "get_forecast");
    assert!(
        retried[0]["body"].get("input").is_none(),
        "a child's trace-create is shallow"
    );
    // Same event id and body as the first attempt, so the server's
    // de-duplication by event id holds.
    let original = first["batch"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["body"]["name"] == "get_forecast" && e["type"] == "span-create")
        .unwrap();
    assert_eq!(span["id"], original["id"]);
    assert_eq!(span["body"], original["body"]);
}

#[test]
fn throttling_honours_retry_after_and_resends_only_what_failed() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(OTLP_PATH)
        .push(ScriptedResponse::too_many_requests(Some(
            Duration::from_secs(2),
        )));
    server.route(SCORES_PATH).set_default(accepted());
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 5);
    assert_eq!((lf.totals.attempts, lf.totals.retries), (2, 1));

    let otlp = server.requests_to(OTLP_PATH);
    assert_eq!(otlp.len(), 2);
    let waited = otlp[1].received_at - otlp[0].received_at;
    // The backoff alone would be ~0.5 s; Retry-After asked for 2 s.
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    assert_eq!(
        server.requests_to(SCORES_PATH).len(),
        1,
        "the accepted score is not sent again"
    );
    assert_eq!(
        decode_otlp(&otlp[1]).resource_spans[0].scope_spans[0]
            .spans
            .len(),
        4
    );
}

#[test]
fn bad_request_fails_the_spans_without_retry_and_keeps_the_score() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(OTLP_PATH)
        .set_default(ScriptedResponse::bad_request());
    server.route(SCORES_PATH).set_default(accepted());
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 1, "the score: {report}");
    assert_eq!(
        lf.failed.get(&DropReason::PermanentError),
        Some(&4),
        "{report}"
    );
    assert_eq!(server.requests_to(OTLP_PATH).len(), 1, "400 is not retried");
}

#[test]
fn transient_errors_are_retried_until_delivered() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(OTLP_PATH)
        .push(ScriptedResponse::server_error());
    server.route(OTLP_PATH).push(ScriptedResponse::reset());
    server
        .route(SCORES_PATH)
        .push(ScriptedResponse::service_unavailable(None));
    server.route(SCORES_PATH).set_default(accepted());
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.exporter("langfuse").unwrap().delivered, 5);
    assert_eq!(server.requests_to(OTLP_PATH).len(), 3);
    assert_eq!(server.requests_to(SCORES_PATH).len(), 2);
}

#[test]
fn oversized_payloads_are_truncated_not_dropped() {
    for transport in [LangfuseTransport::Otlp, LangfuseTransport::Ingestion] {
        let server = ScriptedHttpServer::start().unwrap();
        let exporter = Arc::new(
            builder(&server, transport)
                .max_event_bytes(64 * 1024)
                .build()
                .unwrap(),
        );
        let obs = Observability::builder()
            .exporter(exporter.clone())
            .build()
            .unwrap();
        let big = "x".repeat(100 * 1024);
        let mut span = obs.start_span(
            SpanOptions::new("big", SpanType::AgentRun).input(json!({"document": big})),
        );
        span.end_with_output("done");
        let report = obs.flush_blocking(FLUSH);
        assert!(report.is_success(), "{transport:?}: {report}");
        assert_eq!(report.exporter("langfuse").unwrap().delivered, 1);
        assert!(exporter.truncated_fields() >= 1, "{transport:?}");
        let req = server.last_request().unwrap();
        // Each event fits the limit (the root's trace-create and its
        // observation are two ingestion events, each carrying the input).
        if transport == LangfuseTransport::Ingestion {
            let body: Value = req.json().unwrap();
            for e in body["batch"].as_array().unwrap() {
                let n = e.to_string().len();
                assert!(n <= 64 * 1024, "{}: {n} bytes", e["type"]);
            }
        } else {
            assert!(req.body.len() <= 64 * 1024, "{} bytes", req.body.len());
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        assert!(text.contains("[aiobs: truncated"), "{transport:?}: marker");
        assert!(
            text.contains("done"),
            "{transport:?}: the small output is kept"
        );
    }
}

#[test]
fn too_large_ingestion_batches_are_split() {
    let server = ScriptedHttpServer::start().unwrap();
    server.route(INGESTION_PATH).respond_with(|req| {
        let n = req
            .json::<Value>()
            .ok()
            .and_then(|b| b["batch"].as_array().map(Vec::len))
            .unwrap_or(0);
        if n > 3 {
            ScriptedResponse::payload_too_large()
        } else {
            ScriptedResponse::multi_status(&json!({"successes": [], "errors": []}))
        }
    });
    let exporter = builder(&server, LangfuseTransport::Ingestion)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, true);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.exporter("langfuse").unwrap().delivered, 6);
    let sent: usize = server
        .requests_to(INGESTION_PATH)
        .iter()
        .filter(|r| r.was_acknowledged())
        .map(|r| {
            r.json::<Value>().unwrap()["batch"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(
        sent, 8,
        "5 observations, 2 trace-creates, 1 score, each sent once"
    );
}

#[test]
fn missing_keys_fail_the_build_with_a_clear_message() {
    let err = LangfuseExporter::builder()
        .secret_key("sk")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("LANGFUSE_PUBLIC_KEY"), "{err}");
}

#[test]
fn an_unreadable_scores_207_is_never_counted_delivered() {
    let server = ScriptedHttpServer::start().unwrap();
    // The scores endpoint first answers 207 with a body that says nothing
    // readable about which scores failed, then accepts.
    server
        .route(SCORES_PATH)
        .push(ScriptedResponse::text(207, "<html>upstream busy</html>"));
    server.route(SCORES_PATH).set_default(accepted());
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 5, "{report}");
    // The score was sent again: the unreadable answer did not count it delivered.
    assert_eq!(server.requests_to(SCORES_PATH).len(), 2);
}

#[test]
fn an_otlp_partial_success_is_narrowed_down_to_the_refused_span() {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    use prost::Message;
    let server = ScriptedHttpServer::start().unwrap();
    server.route(SCORES_PATH).set_default(accepted());
    // The server refuses the failed tool call, counting it without naming it.
    server.route(OTLP_PATH).respond_with(|req| {
        let refused = our_spans(&decode_otlp(req))
            .iter()
            .filter(|s| s.name == "get_forecast")
            .count();
        let body = ExportTraceServiceResponse {
            partial_success: (refused > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: refused as i64,
                error_message: "invalid span".into(),
            }),
        }
        .encode_to_vec();
        ScriptedResponse::new(200).with_body(body)
    });
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    let lf = report.exporter("langfuse").unwrap();
    assert_eq!(lf.delivered, 4, "3 spans and the score: {report}");
    assert_eq!(
        lf.failed.get(&DropReason::PermanentError),
        Some(&1),
        "exactly the refused span: {report}"
    );
    let requests: Vec<Vec<String>> = server
        .requests_to(OTLP_PATH)
        .iter()
        .map(|r| {
            our_spans(&decode_otlp(r))
                .into_iter()
                .map(|s| s.name)
                .collect()
        })
        .collect();
    assert!(
        requests.contains(&vec!["get_forecast".to_owned()]),
        "narrowed down to the one span: {requests:?}"
    );
}
