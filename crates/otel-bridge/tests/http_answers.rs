//! What each answer of an OTLP backend becomes: the scripted server answers,
//! the flush report and the stats tell. Every answer is read through
//! aiobs-http's classifier, not `opentelemetry-otlp`'s "InternalFailure".

mod common;

use std::time::Duration;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{DropReason, Observability, RetryPolicy, SpanOptions, SpanType};
use aiobs_otel_bridge::{OtelExporter, OtlpProtocol};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

fn quick_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(20))
        .with_max_backoff(Duration::from_secs(2))
        .with_max_retries(3)
        .with_attempt_timeout(Duration::from_secs(5))
}

fn pipeline(server: &ScriptedHttpServer) -> Observability {
    let exporter = builder(server, OtlpProtocol::HttpProtobuf)
        .retry_policy(quick_retries())
        .build()
        .unwrap();
    Observability::builder().exporter(exporter).build().unwrap()
}

fn otel_stats(obs: &Observability) -> aiobs_core::ExporterStats {
    obs.stats()
        .exporter("otel")
        .cloned()
        .expect("otel exporter stats")
}

#[test]
fn partial_success_counts_rejected_spans_as_failed() {
    let server = ScriptedHttpServer::start().unwrap();
    let body = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "2 spans too old".into(),
        }),
    }
    .encode_to_vec();
    server.route(TRACES_PATH).push(
        ScriptedResponse::new(200)
            .with_header("content-type", "application/x-protobuf")
            .with_body(body),
    );
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let otel = report.exporter("otel").unwrap();
    assert_eq!(otel.delivered, 2, "{report}");
    assert_eq!(
        otel.failed.get(&DropReason::PermanentError),
        Some(&2),
        "{report}"
    );
    let stats = otel_stats(&obs);
    assert!(stats.is_conserved());
    assert!(
        stats
            .last_error
            .unwrap_or_default()
            .contains("2 spans too old")
    );
    assert_eq!(
        server.requests_to(TRACES_PATH).len(),
        1,
        "rejected spans are not re-sent"
    );
}

#[test]
fn json_partial_success_is_read_too() {
    let server = ScriptedHttpServer::start().unwrap();
    server.route(TRACES_PATH).push(ScriptedResponse::json(
        200,
        &serde_json::json!({"partialSuccess": {"rejectedSpans": "1", "errorMessage": "bad"}}),
    ));
    let exporter = builder(&server, OtlpProtocol::HttpJson).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let otel = report.exporter("otel").unwrap();
    assert_eq!(
        (otel.delivered, otel.failed.get(&DropReason::PermanentError)),
        (3, Some(&1)),
        "{report}"
    );
}

#[test]
fn refused_credentials_disable_the_exporter() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(TRACES_PATH)
        .set_default(ScriptedResponse::unauthorized());
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(!report.is_success());
    let stats = otel_stats(&obs);
    assert!(stats.disabled, "{stats:?}");
    assert_eq!(stats.lost(DropReason::ExporterDisabled), 4);
    assert_eq!(
        server.requests_to(TRACES_PATH).len(),
        1,
        "401 is not retried"
    );
    // Later spans are counted, not sent.
    obs.start_span(SpanOptions::new("later", SpanType::Generic))
        .end();
    let _later = obs.flush_blocking(FLUSH);
    assert_eq!(otel_stats(&obs).lost(DropReason::ExporterDisabled), 5);
    assert_eq!(server.requests_to(TRACES_PATH).len(), 1);
}

#[test]
fn throttling_honours_retry_after_then_delivers() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(TRACES_PATH)
        .push(ScriptedResponse::too_many_requests(Some(
            Duration::from_secs(1),
        )));
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let reqs = server.requests_to(TRACES_PATH);
    assert_eq!(reqs.len(), 2);
    let waited = reqs[1].received_at - reqs[0].received_at;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    assert_eq!(otel_stats(&obs).delivered, 4);
}

#[test]
fn server_errors_and_resets_are_retried() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(TRACES_PATH)
        .push(ScriptedResponse::server_error())
        .push(ScriptedResponse::reset())
        .push(ScriptedResponse::service_unavailable(None));
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    assert_eq!(server.requests_to(TRACES_PATH).len(), 4);
    let stats = otel_stats(&obs);
    assert_eq!((stats.delivered, stats.retries), (4, 3), "{stats:?}");
}

#[test]
fn bad_requests_fail_permanently_without_retry() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(TRACES_PATH)
        .push(ScriptedResponse::text(400, "invalid span"));
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let otel = report.exporter("otel").unwrap();
    assert_eq!(
        otel.failed.get(&DropReason::PermanentError),
        Some(&4),
        "{report}"
    );
    assert_eq!(server.requests_to(TRACES_PATH).len(), 1);
    let error = otel_stats(&obs).last_error.unwrap_or_default();
    assert!(
        error.contains("400") && error.contains("invalid span"),
        "{error}"
    );
}

#[test]
fn payload_too_large_splits_the_request() {
    let server = ScriptedHttpServer::start().unwrap();
    // Take at most one span per request.
    server.route(TRACES_PATH).respond_with(|req| {
        if spans(&decode(req)).len() > 1 {
            ScriptedResponse::payload_too_large()
        } else {
            ScriptedResponse::ok()
        }
    });
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let acknowledged: Vec<_> = server
        .requests_to(TRACES_PATH)
        .into_iter()
        .filter(|r| r.was_acknowledged())
        .collect();
    assert_eq!(acknowledged.len(), 4, "one span per acknowledged request");
    let mut ids: Vec<String> = acknowledged
        .iter()
        .flat_map(|r| spans(&decode(r)))
        .map(|s| s["spanId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each span delivered once");
}

#[test]
fn an_html_page_is_not_an_acknowledgement() {
    let server = ScriptedHttpServer::start().unwrap();
    server.route(TRACES_PATH).push(
        ScriptedResponse::new(200)
            .with_header("content-type", "text/html; charset=utf-8")
            .with_body("<html><body>Sign in</body></html>"),
    );
    let obs = pipeline(&server);
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let otel = report.exporter("otel").unwrap();
    assert_eq!(otel.delivered, 0, "{report}");
    assert_eq!(otel.failed.get(&DropReason::PermanentError), Some(&4));
    let error = otel_stats(&obs).last_error.unwrap_or_default();
    assert!(error.contains("not an OTLP/HTTP endpoint"), "{error}");
}

#[test]
fn an_unreachable_backend_is_reported_not_hidden() {
    // A port nothing listens on: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exporter = OtelExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .env_proxy(false)
        .retry_policy(quick_retries().with_max_retries(1))
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    obs.start_span(SpanOptions::new("lost", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(FLUSH);
    assert!(!report.is_success());
    let stats = otel_stats(&obs);
    assert_eq!(stats.lost(DropReason::RetriesExhausted), 1, "{stats:?}");
    assert!(
        stats.last_error.unwrap_or_default().contains("refused"),
        "the classifier named the failure"
    );
}
