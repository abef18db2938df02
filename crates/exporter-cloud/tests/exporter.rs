//! CloudExporter through a real pipeline against the scripted loopback ingest:
//! wire format, and every failure ending in a clear, conserved report.

use std::time::{Duration, Instant};

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{
    DropReason, FeedbackRecord, LogLevel, LogRecord, MetricKind, MetricRecord, ModelAttributes,
    Observability, RetryPolicy, ScoreRecord, SpanOptions, SpanType, Usage,
};
use aiobs_exporter_cloud::{CloudExporter, CloudExporterBuilder};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(20))
        .with_max_backoff(Duration::from_secs(2))
        .with_max_retries(2)
        .with_jitter(0.0)
        .with_attempt_timeout(Duration::from_secs(5))
}

fn builder(server: &ScriptedHttpServer) -> CloudExporterBuilder {
    CloudExporter::builder()
        .endpoint(server.url())
        .token("tok-1")
        .env_proxy(false)
        .retry_policy(fast_retries())
}

fn obs_with(exporter: CloudExporter) -> Observability {
    Observability::builder()
        .service_name("test-svc")
        .derive_metrics(false)
        .exporter(exporter)
        .build()
        .unwrap()
}

/// Every item of every acknowledged request to `path`.
fn acked_items(server: &ScriptedHttpServer, path: &str) -> Vec<Value> {
    server
        .requests_to(path)
        .iter()
        .filter(|r| r.was_acknowledged())
        .flat_map(|r| {
            r.json::<Value>().unwrap()["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn every_signal_reaches_its_endpoint_as_a_versioned_gzip_envelope() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = obs_with(builder(&server).build().unwrap());
    let mut root = obs.start_span(
        SpanOptions::new("agent run", SpanType::AgentRun)
            .input(json!({"q": "weather?"}))
            .tracing(aiobs_core::TracingOptions::new().user_id("u-1").tag("prod")),
    );
    let mut llm = root.child(
        SpanOptions::new("chat", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    llm.set_usage(Usage::new(120, 30).with_cache_read(100));
    llm.end();
    let trace = root.trace_id();
    root.end_with_output("sunny");
    obs.log(LogRecord::new(LogLevel::Info, "hello").in_span(trace, root.span_id()));
    obs.metric(MetricRecord::new("latency_ms", MetricKind::Histogram, 12.5));
    obs.score(ScoreRecord::new(trace, "relevance", 0.9));
    obs.feedback(FeedbackRecord::new(trace, "thumbs", 1));
    let report = obs.flush_blocking(WAIT);
    assert!(report.is_success(), "{report}");
    assert_eq!(report.exporter("cloud").unwrap().delivered, 6);

    for path in [
        "/v1/spans",
        "/v1/logs",
        "/v1/metrics",
        "/v1/scores",
        "/v1/feedback",
    ] {
        let reqs = server.requests_to(path);
        assert_eq!(reqs.len(), 1, "{path}");
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert!(r.is_gzip(), "{path}");
        assert_eq!(r.header("authorization"), Some("Bearer tok-1"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body: Value = r.json().unwrap();
        assert_eq!(body["schema_version"], 1, "{path}");
        assert_eq!(body["kind"], path.trim_start_matches("/v1/"));
        assert_eq!(body["service"], "test-svc");
        assert!(body["batch_id"].as_str().unwrap().len() == 36);
        assert!(body["sent_at"].as_str().unwrap().ends_with('Z'));
    }
    let spans = acked_items(&server, "/v1/spans");
    assert_eq!(spans.len(), 2);
    let root_item = spans.iter().find(|s| s["span"]["is_root"] == true).unwrap();
    assert_eq!(root_item["event"], "ended");
    assert_eq!(root_item["id"], format!("{trace}:{}:ended", root.span_id()));
    assert_eq!(root_item["span"]["output"], "sunny");
    assert_eq!(root_item["span"]["user_id"], "u-1");
    let llm_item = spans
        .iter()
        .find(|s| s["span"]["is_root"] == false)
        .unwrap();
    assert_eq!(
        llm_item["span"]["attributes"]["usage"]["input_details"]["cache_read"],
        100
    );
    assert_eq!(acked_items(&server, "/v1/scores")[0]["name"], "relevance");
    assert_eq!(acked_items(&server, "/v1/feedback")[0]["key"], "thumbs");
    assert_eq!(acked_items(&server, "/v1/logs")[0]["message"], "hello");
    assert!(obs.stats().is_conserved());
}

#[test]
fn started_spans_only_when_configured() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = obs_with(
        builder(&server)
            .include_started_spans(true)
            .build()
            .unwrap(),
    );
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    assert!(obs.flush_blocking(WAIT).is_success());
    let events: Vec<Value> = acked_items(&server, "/v1/spans")
        .iter()
        .map(|i| i["event"].clone())
        .collect();
    assert_eq!(events, vec![json!("started"), json!("ended")]);

    let server = ScriptedHttpServer::start().unwrap();
    let obs = obs_with(builder(&server).build().unwrap());
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    assert!(obs.flush_blocking(WAIT).is_success());
    assert_eq!(acked_items(&server, "/v1/spans").len(), 1);
}

#[test]
fn unauthorized_disables_with_one_clear_error_and_counts_drops() {
    let server = ScriptedHttpServer::start().unwrap();
    server.set_default(ScriptedResponse::unauthorized());
    let obs = obs_with(builder(&server).build().unwrap());
    for _ in 0..3 {
        obs.start_span(SpanOptions::new("a", SpanType::Generic))
            .end();
    }
    let report = obs.flush_blocking(WAIT);
    assert!(report.completed);
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(
        cloud.dropped.get(&DropReason::ExporterDisabled),
        Some(&3),
        "{report}"
    );
    assert!(cloud.totals.disabled);
    let err = cloud.totals.last_error.clone().unwrap();
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    // Later events are counted too, and never sent.
    obs.start_span(SpanOptions::new("b", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(WAIT);
    assert_eq!(
        report
            .exporter("cloud")
            .unwrap()
            .dropped
            .get(&DropReason::ExporterDisabled),
        Some(&1)
    );
    assert_eq!(server.request_count(), 1);
    assert!(obs.stats().is_conserved());
}

#[test]
fn throttled_ingest_is_retried_after_retry_after() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::service_unavailable(Some(
        Duration::from_secs(1),
    )));
    let obs = obs_with(builder(&server).build().unwrap());
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    let started = Instant::now();
    let report = obs.flush_blocking(WAIT);
    assert!(report.is_success(), "{report}");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let reqs = server.requests_to("/v1/spans");
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].received_at.duration_since(reqs[0].received_at) >= Duration::from_millis(950));
    // A retried request carries the same items and the same batch id.
    let (a, b): (Value, Value) = (reqs[0].json().unwrap(), reqs[1].json().unwrap());
    assert_eq!(a["batch_id"], b["batch_id"]);
    assert_eq!(a["items"], b["items"]);
    assert_eq!(report.exporter("cloud").unwrap().totals.retries, 1);
}

#[test]
fn reset_connection_is_retried_with_the_same_ids() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::reset());
    let obs = obs_with(builder(&server).build().unwrap());
    for i in 0..5 {
        obs.start_span(SpanOptions::new(format!("s{i}"), SpanType::Generic))
            .end();
    }
    let report = obs.flush_blocking(WAIT);
    assert!(report.is_success(), "{report}");
    let reqs = server.requests_to("/v1/spans");
    assert_eq!(reqs.len(), 2);
    let ids = |r: &aiobs_conformance::http::CapturedRequest| -> Vec<Value> {
        r.json::<Value>().unwrap()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    assert_eq!(ids(&reqs[0]), ids(&reqs[1]));
    assert_eq!(ids(&reqs[0]).len(), 5);
}

#[test]
fn payload_too_large_splits_until_it_fits() {
    let server = ScriptedHttpServer::start().unwrap();
    // The ingest takes at most 4 items per request.
    server.respond_with(|req| {
        let n = req
            .json::<Value>()
            .ok()
            .and_then(|v| v["items"].as_array().map(Vec::len))
            .unwrap_or(0);
        if n > 4 {
            ScriptedResponse::payload_too_large()
        } else {
            ScriptedResponse::ok()
        }
    });
    let obs = obs_with(builder(&server).build().unwrap());
    for i in 0..13 {
        obs.start_span(SpanOptions::new(format!("s{i}"), SpanType::Generic))
            .end();
    }
    let report = obs.flush_blocking(WAIT);
    assert!(report.is_success(), "{report}");
    let mut names: Vec<String> = acked_items(&server, "/v1/spans")
        .iter()
        .map(|i| i["span"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..13).map(|i| format!("s{i}")).collect();
    want.sort();
    assert_eq!(names, want, "each span acknowledged exactly once");
}

#[test]
fn enormous_spans_are_truncated_or_rejected_never_stuck() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = obs_with(builder(&server).max_body_bytes(16 * 1024).build().unwrap());
    // Large input: cut to fit, keeping its head, marked truncated.
    obs.start_span(SpanOptions::new("big-input", SpanType::Generic).input("x".repeat(60_000)))
        .end();
    // Large name: cannot be made small enough, refused and counted.
    obs.start_span(SpanOptions::new("n".repeat(40_000), SpanType::Generic))
        .end();
    obs.start_span(SpanOptions::new("small", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(WAIT);
    assert!(report.completed, "{report}");
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(cloud.delivered, 2, "{report}");
    assert_eq!(
        cloud.failed.get(&DropReason::PermanentError),
        Some(&1),
        "{report}"
    );
    assert!(
        cloud
            .totals
            .last_error
            .as_deref()
            .unwrap()
            .contains("max_body_bytes")
    );
    assert_eq!(report.pending(), 0);
    let items = acked_items(&server, "/v1/spans");
    let big = items
        .iter()
        .find(|i| i["span"]["name"] == "big-input")
        .unwrap();
    let input = big["span"]["input"].as_str().unwrap();
    assert!(
        input.starts_with("\"xxxx") && input.len() > 8_000,
        "{}",
        input.len()
    );
    assert!(input.contains("[aiobs: truncated"));
    assert_eq!(big["truncated"]["cut"], serde_json::json!(["input"]));
    assert!(big["truncated"]["original_bytes"].as_u64().unwrap() > 60_000);
    for r in server.requests() {
        assert!(r.body.len() <= 16 * 1024, "{}", r.body.len());
    }
    // The queue moves on.
    obs.start_span(SpanOptions::new("after", SpanType::Generic))
        .end();
    assert!(obs.flush_blocking(WAIT).is_success());
    assert!(obs.stats().is_conserved());
}

#[test]
fn multi_status_rejections_are_counted_and_transient_items_resent() {
    let server = ScriptedHttpServer::start().unwrap();
    // First answer: item "bad" refused for good, item "later" to retry.
    server.respond_with(|req| {
        let body: Value = req.json().unwrap_or_default();
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let id_of = |name: &str| {
            items
                .iter()
                .find(|i| i["span"]["name"] == name)
                .map(|i| i["id"].clone())
        };
        let mut errors = Vec::new();
        if let Some(id) = id_of("bad") {
            errors.push(json!({"id": id, "status": 400, "message": "invalid span"}));
        }
        if req.seq == 0
            && let Some(id) = id_of("later")
        {
            errors.push(json!({"id": id, "status": 500, "message": "try again"}));
        }
        ScriptedResponse::multi_status(&json!({"errors": errors}))
    });
    let obs = obs_with(builder(&server).build().unwrap());
    for name in ["ok", "bad", "later"] {
        obs.start_span(SpanOptions::new(name, SpanType::Generic))
            .end();
    }
    let report = obs.flush_blocking(WAIT);
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(cloud.delivered, 2, "{report}");
    assert_eq!(
        cloud.failed.get(&DropReason::PermanentError),
        Some(&1),
        "{report}"
    );
    let reqs = server.requests_to("/v1/spans");
    assert_eq!(reqs.len(), 2);
    let second: Value = reqs[1].json().unwrap();
    let resent: Vec<&Value> = second["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["span"]["name"])
        .collect();
    assert_eq!(resent, vec!["later"], "only the transient item is re-sent");
    // Core records the last rejection's message (here the retryable one).
    let err = cloud.totals.last_error.clone().unwrap();
    assert!(err.contains("refused with status"), "{err}");
}

#[test]
fn endpoint_down_ends_in_a_report_not_a_hang() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter = CloudExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .token("t")
        .env_proxy(false)
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let obs = obs_with(exporter);
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(WAIT);
    assert!(report.completed, "{report}");
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(
        cloud.failed.get(&DropReason::RetriesExhausted),
        Some(&1),
        "{report}"
    );
    assert_eq!(cloud.totals.attempts, 3);
    assert!(
        cloud
            .totals
            .last_error
            .as_deref()
            .unwrap()
            .contains("refused"),
        "{report}"
    );
}

#[test]
fn dns_failure_is_reported_clearly() {
    let exporter = CloudExporter::builder()
        .endpoint("http://ingest.aiobs-test.invalid")
        .token("t")
        .env_proxy(false)
        .retry_policy(fast_retries().with_max_retries(0))
        .build()
        .unwrap();
    let obs = obs_with(exporter);
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(WAIT);
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(
        cloud.failed.get(&DropReason::RetriesExhausted),
        Some(&1),
        "{report}"
    );
    let err = cloud.totals.last_error.clone().unwrap();
    assert!(
        err.contains("DNS lookup of ingest.aiobs-test.invalid failed"),
        "{err}"
    );
}

#[test]
fn tls_failure_is_permanent_and_reported_clearly() {
    let server = ScriptedHttpServer::start().unwrap();
    let exporter = CloudExporter::builder()
        .endpoint(format!("https://{}", server.addr()))
        .token("t")
        .env_proxy(false)
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let obs = obs_with(exporter);
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    let report = obs.flush_blocking(WAIT);
    let cloud = report.exporter("cloud").unwrap();
    assert_eq!(
        cloud.failed.get(&DropReason::PermanentError),
        Some(&1),
        "{report}"
    );
    assert_eq!(cloud.totals.attempts, 1, "a TLS failure is not retried");
    assert!(
        cloud
            .totals
            .last_error
            .as_deref()
            .unwrap()
            .contains("TLS handshake"),
        "{report}"
    );
}

#[test]
fn slow_endpoint_beyond_the_deadline_returns_on_time_with_pending() {
    let server = ScriptedHttpServer::start().unwrap();
    server.push(ScriptedResponse::ok().with_delay(Duration::from_secs(3)));
    let obs = obs_with(builder(&server).build().unwrap());
    obs.start_span(SpanOptions::new("a", SpanType::Generic))
        .end();
    let started = Instant::now();
    let report = obs.flush_blocking(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(!report.completed, "{report}");
    assert_eq!(report.pending(), 1, "{report}");
    // Once the ingest answers, the next flush reports it delivered.
    let report = obs.flush_blocking(WAIT);
    assert!(report.is_success(), "{report}");
    assert_eq!(obs.stats().exporter("cloud").unwrap().delivered, 1);
}

/// The ingest receives usage inclusive (OpenTelemetry's convention: input
/// includes cached tokens, output includes reasoning) and, for every span
/// with usage, whether it counts toward the trace's billable totals.
#[test]
fn usage_is_inclusive_and_marked_billable_once() {
    let server = ScriptedHttpServer::start().unwrap();
    let obs = obs_with(builder(&server).build().unwrap());
    let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let mut generation = run.child(
        SpanOptions::new("generation", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o", "openai")),
    );
    let mut step = generation.child(SpanOptions::new("step", SpanType::ModelStep));
    step.set_usage(Usage::new(100, 20).with_cache_read(80).with_reasoning(5));
    step.end();
    generation.set_usage(Usage::new(100, 20).with_cache_read(80).with_reasoning(5));
    generation.end();
    drop(run);
    assert!(obs.flush_blocking(WAIT).is_success());
    let items = acked_items(&server, "/v1/spans");
    let item = |name: &str| {
        items
            .iter()
            .find(|i| i["span"]["name"] == name)
            .unwrap()
            .clone()
    };
    let g = item("generation");
    assert_eq!(
        g["span"]["attributes"]["usage"],
        json!({"input_tokens": 100, "output_tokens": 20,
               "input_details": {"cache_read": 80}, "output_details": {"reasoning": 5}})
    );
    assert_eq!(g["billable_usage"], true);
    assert_eq!(item("step")["billable_usage"], false);
    assert!(item("agent").get("billable_usage").is_none());
    // What a server needs to apply the rule itself travels too.
    assert_eq!(
        item("step")["span"]["ancestry"][1]["span_type"],
        "model_generation"
    );
}
