//! The data the embedded store holds, read back through its query API:
//! usage counted once however model spans nest, a continued trace marked as
//! such, a rebuilt span's trace context and privacy, times that never run
//! backwards, and secrets redacted at any depth.

use std::sync::Arc;
use std::time::Duration;

use aiobs::exporters::default::{
    DefaultExporter, PageRequest, SqliteStorage, Storage, TraceFilter, TraceRecord,
};
use aiobs::{
    ExportedSpan, ModelAttributes, Observability, SensitiveDataFilter, SpanId, SpanOptions,
    SpanType, TraceId, TracingOptions, Usage,
};

const T: Duration = Duration::from_secs(10);

struct Store {
    _dir: tempfile::TempDir,
    storage: Arc<SqliteStorage>,
}

fn store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(SqliteStorage::open(dir.path().join("aiobs.db")).unwrap());
    Store { _dir: dir, storage }
}

fn pipeline(store: &Store, filter: bool) -> Observability {
    let mut b = Observability::builder().exporter(
        DefaultExporter::builder_shared(store.storage.clone())
            .build()
            .unwrap(),
    );
    if filter {
        b = b.processor(SensitiveDataFilter::new());
    }
    b.build().unwrap()
}

async fn flushed(obs: &Observability) {
    let report = obs.flush(T).await;
    assert!(report.is_success(), "{report}");
}

async fn trace(store: &Store, id: TraceId) -> TraceRecord {
    store.storage.get_trace(id).await.unwrap().expect("stored")
}

fn named<'a>(t: &'a TraceRecord, name: &str) -> &'a ExportedSpan {
    t.spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_once_however_model_spans_nest() {
    let store = store();
    let obs = pipeline(&store, false);
    let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let mut generation = run.child(
        SpanOptions::new("generation", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o", "openai")),
    );
    for (name, u) in [
        ("step 1", Usage::new(60, 10)),
        ("step 2", Usage::new(40, 10)),
    ] {
        let mut step = generation.child(SpanOptions::new(name, SpanType::ModelStep));
        // An inference under a non-model span, still inside the generation.
        let wrapper = step.child(SpanOptions::new("retry wrapper", SpanType::Generic));
        let mut inference = wrapper.child(SpanOptions::new("inference", SpanType::ModelInference));
        inference.set_usage(u.clone());
        inference.end();
        drop(wrapper);
        step.set_usage(u);
        step.end();
    }
    generation.set_usage(Usage::new(100, 20).with_cache_read(50));
    generation.end();
    let trace_id = run.trace_id();
    drop(run);
    flushed(&obs).await;

    let record = trace(&store, trace_id).await;
    let totals = record.usage_totals();
    assert_eq!(
        (
            totals.input_tokens,
            totals.output_tokens,
            totals.cached_input_tokens
        ),
        (100, 20, 50)
    );
    let page = store
        .storage
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.traces[0].usage, totals, "list and show agree");
    // Each span keeps its own usage for display.
    assert_eq!(
        named(&record, "step 1").attributes.usage(),
        Some(&Usage::new(60, 10))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_trace_is_stored_as_such() {
    let store = store();
    let a = pipeline(&store, false);
    let mut root = a.start_span(SpanOptions::new("trace1", SpanType::AgentRun).input("input1"));
    let header = root.traceparent().to_string();
    let trace_id = root.trace_id();
    root.end_with_output("output1");
    flushed(&a).await;

    let b = pipeline(&store, false);
    let mut joined = b.start_span(
        SpanOptions::new("trace2", SpanType::AgentRun)
            .tracing(TracingOptions::new().traceparent(&header)),
    );
    joined
        .child(SpanOptions::new("work in B", SpanType::ToolCall))
        .end();
    joined.end();
    flushed(&b).await;

    let record = trace(&store, trace_id).await;
    let owners: Vec<&str> = record
        .spans
        .iter()
        .filter(|s| s.is_trace_root())
        .map(|s| s.name.as_ref())
        .collect();
    assert_eq!(owners, ["trace1"], "one span owns the trace");
    let b_root = named(&record, "trace2");
    assert!(b_root.is_continued() && b_root.is_root);
    assert_eq!(
        b_root.effective_parent(),
        Some(named(&record, "trace1").span_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_span_keeps_its_trace_context_and_privacy_in_the_store() {
    let first = Observability::builder().build().unwrap();
    let root = first.start_span(
        SpanOptions::new("durable run", SpanType::AgentRun).tracing(
            TracingOptions::new()
                .metadata("tenant", "acme")
                .metadata(
                    "langfuse",
                    serde_json::json!({"traceName": "booking", "release": "r-7"}),
                )
                .hide_output(),
        ),
    );
    let saved = serde_json::to_string(&root.export().unwrap()).unwrap();
    let trace_id = root.trace_id();
    std::mem::forget(root);

    let store = store();
    let obs = pipeline(&store, false);
    let mut root = obs.rebuild_span(serde_json::from_str(&saved).unwrap());
    root.child(SpanOptions::new("step", SpanType::ToolCall))
        .end_with_output("secret step output");
    root.end_with_output("secret final output");
    flushed(&obs).await;

    let record = trace(&store, trace_id).await;
    let text = serde_json::to_string(&record.spans).unwrap();
    assert!(!text.contains("secret"), "{text}");
    for s in &record.spans {
        assert_eq!(s.output, None, "{}", s.name);
        assert_eq!(s.metadata["tenant"], "acme", "{}", s.name);
        assert_eq!(s.metadata["langfuse"]["traceName"], "booking");
        assert_eq!(s.metadata["langfuse"]["release"], "r-7");
        assert!(s.trace_context.hide_output);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stored_span_ends_before_it_starts() {
    let store = store();
    let obs = pipeline(&store, false);
    let mut data = ExportedSpan::new(
        TraceId::random(),
        SpanId::random(),
        "from a host 3 s ahead",
        SpanType::WorkflowStep,
    );
    data.start_time += chrono::TimeDelta::seconds(3);
    let trace_id = data.trace_id;
    obs.rebuild_span(data).end();
    flushed(&obs).await;
    let s = &trace(&store, trace_id).await.spans[0];
    assert!(s.end_time.unwrap() >= s.start_time, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_nested_deep_in_json_text_are_redacted_in_the_store() {
    let mut text = "{\"api_key\": \"sk-live-0123456789\"}".to_owned();
    for _ in 0..63 {
        text = format!("{{\"a\": {text}}}");
    }
    let store = store();
    let obs = pipeline(&store, true);
    let mut s = obs.start_span(
        SpanOptions::new("run", SpanType::AgentRun)
            .metadata("payload", &text)
            .tracing(TracingOptions::new().metadata("trace_payload", &text)),
    );
    let trace_id = s.trace_id();
    s.end();
    flushed(&obs).await;
    let stored = serde_json::to_string(&trace(&store, trace_id).await.spans).unwrap();
    assert!(!stored.contains("sk-live"), "leaked into the store");
    assert!(stored.contains("trace_payload"));
}
