//! One pipeline, three destinations: the embedded store, an HTTP ingest
//! service that first answers 503, and Langfuse. One flush must leave every
//! span delivered everywhere, and the accounting must say so.

use std::time::Duration;

use aiobs::exporters::cloud::CloudExporter;
use aiobs::exporters::default::{DefaultExporter, SqliteStorage, Storage};
use aiobs::exporters::langfuse::LangfuseExporter;
use aiobs::{
    ModelAttributes, Observability, RetryPolicy, SensitiveDataFilter, SpanError, SpanOptions,
    SpanType, ToolAttributes, TracingOptions, Usage,
};
use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flush_delivers_a_trace_to_every_destination() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStorage::open(dir.path().join("aiobs.db")).unwrap());
    let ingest = ScriptedHttpServer::start().unwrap();
    ingest.push(ScriptedResponse::service_unavailable(Some(
        Duration::from_secs(1),
    )));
    let langfuse = ScriptedHttpServer::start().unwrap();

    let obs = Observability::builder()
        .processor(SensitiveDataFilter::new())
        .exporter(
            DefaultExporter::builder_shared(store.clone())
                .build()
                .unwrap(),
        )
        .exporter(
            CloudExporter::builder()
                .endpoint(ingest.url())
                .token("test-token")
                .retry_policy(
                    RetryPolicy::default().with_initial_backoff(Duration::from_millis(50)),
                )
                .build()
                .unwrap(),
        )
        .exporter(
            LangfuseExporter::builder()
                .public_key("pk-lf-test")
                .secret_key("sk-lf-test")
                .base_url(langfuse.url())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();

    let mut run = obs.start_span(
        SpanOptions::new("agent run: weather-agent", SpanType::AgentRun)
            .input(serde_json::json!({"question": "Weather in Paris?", "api_key": "sk-secret"}))
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("prod"),
            ),
    );
    let mut llm = run.child(
        SpanOptions::new("chat gpt-4o-mini", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    llm.set_usage(Usage::new(120, 30).with_cache_read(100));
    llm.end_with_output("calling tools");
    let mut weather = run.child(
        SpanOptions::new("get_weather", SpanType::ToolCall)
            .attributes(ToolAttributes::new("get_weather")),
    );
    weather.end_with_output(serde_json::json!({"tempC": 18}));
    let mut forecast = run.child(SpanOptions::new("get_forecast", SpanType::ToolCall));
    forecast.error(SpanError::new("forecast service unavailable"));
    run.end_with_output("18°C");
    let trace_id = run.trace_id();

    let report = obs.flush(Duration::from_secs(20)).await;
    assert!(report.is_success(), "{report}");
    // Each exporter got the events it subscribes to: the store and the ingest
    // service also take span starts and derived metrics; Langfuse, ended spans.
    assert_eq!(
        report.exporter("langfuse").unwrap().delivered,
        4,
        "{report}"
    );
    for e in &report.exporters {
        assert_eq!(
            (e.pending, e.totals.failed_total(), e.totals.dropped_total()),
            (0, 0, 0),
            "{report}"
        );
    }
    assert!(obs.stats().is_conserved());

    // The store has the whole trace, redacted.
    let stored = store
        .get_trace(trace_id)
        .await
        .unwrap()
        .expect("trace stored");
    assert_eq!(stored.spans.len(), 4);
    let root = stored.spans.iter().find(|s| s.is_root).unwrap();
    assert_eq!(root.user_id.as_deref(), Some("user-123"));
    assert!(
        !serde_json::to_string(&root.input)
            .unwrap()
            .contains("sk-secret")
    );

    // The ingest service got every span, after its 503.
    let ingested: usize = ingest
        .acknowledged_requests()
        .iter()
        .filter(|r| r.path == "/v1/spans")
        .map(|r| {
            r.json::<serde_json::Value>().unwrap()["items"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum();
    assert_eq!(ingested, 4);
    assert!(ingest.request_count() >= 2, "the 503 was retried");
    assert!(
        ingest
            .requests()
            .iter()
            .all(|r| !r.text().contains("sk-secret"))
    );

    // Langfuse got them over OTLP.
    let otlp = langfuse.requests_to("/api/public/otel/v1/traces");
    assert!(!otlp.is_empty() && otlp.iter().all(|r| r.was_acknowledged()));

    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_success(), "{report}");
}
