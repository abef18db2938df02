//! The span API: trace context, sampling, noise control, durable rebuild,
//! hostile payloads, redaction, derived metrics, the tracking adapter.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, DropReason, ExportError, ExportOutcome, ExportedSpan, ExporterContext,
    InMemoryExporter, ModelAttributes, Observability, ObservabilityEvent, RetryPolicy, Sampler,
    SamplingInput, SensitiveDataFilter, SerializationLimits, Signals, SpanError, SpanOptions,
    SpanStatus, SpanType, ToolAttributes, TraceId, TraceParent, TracingOptions, TrackedEvent,
    Tracking, TrackingExporter, Usage,
};

const T: Duration = Duration::from_secs(5);

fn setup() -> (Observability, InMemoryExporter) {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    (obs, memory)
}

#[tokio::test]
async fn trace_context_is_inherited_by_the_whole_trace() {
    let (obs, memory) = setup();
    let root = obs.start_span(
        SpanOptions::new("agent run", SpanType::AgentRun)
            .entity("agent", "weather-agent", Some("Weather".into()))
            .tracing(
                TracingOptions::new()
                    .user_id("user-123")
                    .session_id("session-abc")
                    .tag("prod")
                    .tag("beta")
                    .metadata("tenant", "acme")
                    .metadata(
                        "langfuse",
                        serde_json::json!({"traceName": "weather", "release": "1.2"}),
                    ),
            ),
    );
    let mut llm_span = root.child(
        SpanOptions::new("llm", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai"))
            .metadata("tenant", "override")
            .metadata(
                "langfuse",
                serde_json::json!({"prompt": {"name": "p", "version": 3}, "release": "span"}),
            ),
    );
    llm_span.set_usage(Usage::new(120, 30).with_cache_read(100).with_reasoning(0));
    llm_span.end();
    let mut tool = root.child(SpanOptions::new("get_weather", SpanType::ToolCall));
    tool.error(SpanError::new("forecast service unavailable").with_kind("RuntimeError"));
    let mut root = root;
    root.end();
    root.end(); // idempotent
    assert!(obs.flush(T).await.is_success());

    let spans = memory.ended_spans();
    assert_eq!(spans.len(), 3, "end() twice must not emit twice");
    let root_id = root.span_id();
    for s in &spans {
        assert_eq!(s.trace_id, root.trace_id());
        assert_eq!(s.user_id.as_deref(), Some("user-123"));
        assert_eq!(s.session_id.as_deref(), Some("session-abc"));
        assert_eq!(&*s.tags, &["prod".to_string(), "beta".to_string()]);
        assert_eq!(
            s.entity.as_ref().unwrap().id,
            "weather-agent",
            "entity propagates to descendants"
        );
    }
    let llm_span = spans.iter().find(|s| s.name == "llm").unwrap();
    assert_eq!(llm_span.parent_span_id, Some(root_id));
    assert!(!llm_span.is_root);
    assert_eq!(
        llm_span.metadata["tenant"], "override",
        "span metadata wins over trace metadata"
    );
    assert_eq!(
        llm_span.metadata["langfuse"],
        serde_json::json!({"prompt": {"name": "p", "version": 3}, "release": "span", "traceName": "weather"}),
        "exporter-namespaced objects merge key by key"
    );
    assert_eq!(
        llm_span
            .attributes
            .usage()
            .unwrap()
            .input_details
            .cache_read,
        Some(100)
    );
    assert_eq!(llm_span.ancestry.len(), 1);
    assert_eq!(llm_span.ancestry[0].span_id, root_id);
    let tool = spans.iter().find(|s| s.name == "get_weather").unwrap();
    assert_eq!(tool.status, SpanStatus::Error);
    assert_eq!(
        tool.error.as_ref().unwrap().kind.as_deref(),
        Some("RuntimeError")
    );
    assert!(
        Arc::ptr_eq(&tool.ancestry, &llm_span.ancestry),
        "siblings share one ancestry"
    );
    let r = spans.iter().find(|s| s.is_root).unwrap();
    assert_eq!(r.metadata["tenant"], "acme");
    assert!(r.end_time.unwrap() >= r.start_time);
}

#[tokio::test]
async fn traceparent_continues_an_upstream_trace() {
    let (obs, memory) = setup();
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut s = obs.start_span(
        SpanOptions::new("handler", SpanType::AgentRun)
            .tracing(TracingOptions::new().traceparent(header)),
    );
    let downstream = s.traceparent();
    assert_eq!(
        downstream.trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(downstream.parent_span_id, s.span_id());
    assert_eq!(
        TraceParent::parse(&downstream.to_string()).unwrap(),
        downstream
    );
    s.end();

    // Invalid input: ignored with a warning (a new trace), never a panic.
    let mut bad = obs.start_span(
        SpanOptions::new("bad", SpanType::AgentRun)
            .tracing(TracingOptions::new().traceparent("00-zz-yy-01")),
    );
    bad.end();
    assert!(
        TracingOptions::new()
            .try_traceparent("00-zz-yy-01")
            .is_err()
    );
    assert!(TracingOptions::new().try_continue("not-hex", None).is_err());
    let ok = TracingOptions::new()
        .try_continue("4bf92f3577b34da6a3ce929d0e0e4736", Some("00f067aa0ba902b7"))
        .unwrap();
    assert!(ok.parent_span_id.is_some());

    assert!(obs.flush(T).await.is_success());
    let spans = memory.ended_spans();
    let h = spans.iter().find(|s| s.name == "handler").unwrap();
    assert_eq!(h.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(
        h.external_parent_span_id.unwrap().to_string(),
        "00f067aa0ba902b7"
    );
    assert!(h.is_root && h.parent_span_id.is_none());
    let b = spans.iter().find(|s| s.name == "bad").unwrap();
    assert_ne!(b.trace_id, h.trace_id);
    assert!(b.external_parent_span_id.is_none());
}

#[tokio::test]
async fn sampling_is_per_trace_deterministic_and_counted() {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .sampler(Sampler::Ratio(0.5))
        .build()
        .unwrap();
    let mut sampled = HashSet::new();
    let mut unsampled_spans = 0;
    for _ in 0..400 {
        let root = obs.start_span(SpanOptions::new("root", SpanType::AgentRun));
        let mut a = root.child(SpanOptions::new("a", SpanType::ToolCall));
        let mut b = a.child(SpanOptions::new("b", SpanType::ToolCall));
        let decision = Sampler::Ratio(0.5).should_sample(&SamplingInput::new(
            root.trace_id(),
            "root",
            SpanType::AgentRun,
        ));
        assert_eq!(
            root.is_recording(),
            decision,
            "the decision follows the trace id"
        );
        assert_eq!(a.is_recording(), decision, "children follow the root");
        assert_eq!(
            b.trace_id(),
            root.trace_id(),
            "unsampled spans keep the trace id for propagation"
        );
        if decision {
            sampled.insert(root.trace_id());
        } else {
            unsampled_spans += 3;
        }
        b.end();
        a.end();
        drop(root);
    }
    assert!(obs.flush(T).await.completed);
    let spans = memory.ended_spans();
    assert_eq!(spans.len(), sampled.len() * 3);
    assert!(spans.iter().all(|s| sampled.contains(&s.trace_id)));
    let stats = obs.stats();
    assert_eq!(
        stats
            .pipeline
            .dropped
            .get(&DropReason::Sampled)
            .copied()
            .unwrap_or(0),
        unsampled_spans
    );
    assert!(stats.is_conserved());
    assert!((100..300).contains(&sampled.len()), "{}", sampled.len());

    let never = Observability::builder()
        .sampler(Sampler::Never)
        .exporter(InMemoryExporter::new())
        .build()
        .unwrap();
    let s = never.start_span(SpanOptions::new("x", SpanType::AgentRun));
    assert!(!s.is_recording());
    assert!(!s.traceparent().sampled);
}

#[tokio::test]
async fn excluded_and_filtered_spans_reparent_their_children() {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .exclude_span_types([SpanType::ModelStep, SpanType::ModelChunk])
        .span_filter(|s| !s.name.starts_with("internal"))
        .build()
        .unwrap();
    let mut root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let mut step = root.child(SpanOptions::new("step 1", SpanType::ModelStep));
    let mut chunk = step.child(SpanOptions::new("chunk", SpanType::ModelChunk));
    let mut internal = step.child(SpanOptions::new("internal bookkeeping", SpanType::Generic));
    let mut tool = internal.child(SpanOptions::new("search", SpanType::ToolCall));
    tool.end();
    internal.end();
    chunk.end();
    step.end();
    root.end();
    let report = obs.flush(T).await;
    assert!(
        report.is_success(),
        "filtered spans are intentional, not losses: {report}"
    );
    let spans = memory.ended_spans();
    let names: Vec<&str> = spans.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["search", "agent"]);
    let search = &spans[0];
    assert_eq!(
        search.parent_span_id,
        Some(root.span_id()),
        "re-parented to the nearest exported ancestor"
    );
    assert_eq!(
        search
            .ancestry
            .iter()
            .map(|a| a.span_id)
            .collect::<Vec<_>>(),
        [root.span_id()]
    );
    assert_eq!(report.pipeline.dropped.get(&DropReason::Filtered), Some(&3));
}

#[tokio::test]
async fn durable_replay_rebuilds_a_span_in_a_fresh_instance() {
    // Process 1: the step starts, its state is persisted, the process dies.
    let (obs1, memory1) = setup();
    let root = obs1.start_span(
        SpanOptions::new("workflow", SpanType::WorkflowRun)
            .tracing(TracingOptions::new().user_id("u1")),
    );
    let step = root.child(
        SpanOptions::new("step: fetch", SpanType::WorkflowStep)
            .input(serde_json::json!({"url": "x"})),
    );
    let persisted = serde_json::to_string(&step.export().unwrap()).unwrap();
    let root_persisted = serde_json::to_string(&root.export().unwrap()).unwrap();
    std::mem::forget(step);
    std::mem::forget(root);
    assert!(obs1.shutdown(T).await.completed);
    assert!(memory1.ended_spans().is_empty());

    // Process 2: a fresh instance resumes and ends both.
    let (obs2, memory2) = setup();
    let data: ExportedSpan = serde_json::from_str(&persisted).unwrap();
    let original_start = data.start_time;
    let mut step = obs2.rebuild_span(data);
    step.set_output("fetched");
    step.end();
    let mut root = obs2.rebuild_span(serde_json::from_str(&root_persisted).unwrap());
    root.end();
    assert!(obs2.flush(T).await.is_success());
    let spans = memory2.ended_spans();
    let s = spans.iter().find(|s| s.name == "step: fetch").unwrap();
    assert_eq!(s.start_time, original_start);
    assert_eq!(s.parent_span_id, Some(root.span_id()));
    assert_eq!(s.input, Some(serde_json::json!({"url": "x"})));
    assert_eq!(s.output, Some(serde_json::json!("fetched")));
    assert_eq!(s.user_id.as_deref(), Some("u1"));
    assert_eq!(s.status, SpanStatus::Ok);
    assert_eq!(s.ancestry.len(), 1);
}

struct NotSerialisable;
impl serde::Serialize for NotSerialisable {
    fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "socket handles cannot be serialised",
        ))
    }
}

#[tokio::test]
async fn hostile_payloads_are_bounded_and_never_lose_the_span() {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .serialization_limits(SerializationLimits::default().with_max_string_len(1000))
        .build()
        .unwrap();
    let huge = "x".repeat(100 * 1024 * 1024);
    let mut deep = serde_json::Value::Null;
    for _ in 0..10_000 {
        deep = serde_json::Value::Array(vec![deep]);
    }
    let mut s = obs.start_span(SpanOptions::new("hostile", SpanType::ToolCall).input(&huge));
    s.set_output(&deep);
    s.set_metadata("nan", f64::NAN);
    s.set_metadata("socket", NotSerialisable);
    s.set_metadata("control", "a\u{0}b\u{1b}c");
    s.end();
    std::mem::forget(deep);
    assert!(obs.flush(T).await.is_success());
    let spans = memory.ended_spans();
    assert_eq!(spans.len(), 1);
    let sp = &spans[0];
    let input = sp.input.as_ref().unwrap().as_str().unwrap();
    assert!(
        input.len() < 1100 && input.contains("truncated"),
        "{}",
        input.len()
    );
    assert!(
        sp.output
            .as_ref()
            .unwrap()
            .to_string()
            .contains("max depth")
    );
    assert_eq!(sp.metadata["nan"], "NaN");
    assert!(
        sp.metadata["socket"]
            .as_str()
            .unwrap()
            .contains("cannot be serialised")
    );
    assert_eq!(sp.metadata["control"], "a\u{0}b\u{1b}c");
    // It still serialises to valid JSON for any exporter.
    let json = serde_json::to_string(&**sp).unwrap();
    assert!(serde_json::from_str::<ExportedSpan>(&json).is_ok());
    assert!(obs.stats().pipeline.payload_truncations >= 3);
}

#[tokio::test]
async fn dropping_an_unended_span_ends_it_and_counts_it() {
    let (obs, memory) = setup();
    {
        let _forgotten = obs.start_span(SpanOptions::new("forgotten", SpanType::ToolCall));
    }
    assert!(obs.flush(T).await.is_success());
    let spans = memory.ended_spans();
    assert_eq!(spans[0].status, SpanStatus::Dropped);
    assert!(spans[0].end_time.is_some());
    assert_eq!(obs.stats().pipeline.spans_ended_by_drop, 1);
}

#[tokio::test]
async fn sensitive_data_never_reaches_an_exporter() {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .processor(SensitiveDataFilter::new())
        .build()
        .unwrap();
    let mut s = obs.start_span(
        SpanOptions::new("call", SpanType::ToolCall)
            .attributes(ToolAttributes::new("http"))
            .input(serde_json::json!({
                "headers": {"x-api-key": "sk-123", "Authorization": "Bearer t0k"},
                "messages": [{"role": "tool", "content": "{\"access_token\": \"at-9\"}"}],
            }))
            .metadata("client_secret", "cs-1"),
    );
    s.set_output(serde_json::json!({"apiKey": {"nested": "k"}}));
    s.end();
    assert!(obs.flush(T).await.is_success());
    let text = serde_json::to_string(&*memory.ended_spans()[0]).unwrap();
    for secret in ["sk-123", "t0k", "at-9", "cs-1", "nested"] {
        assert!(
            !text.contains(secret),
            "{secret} reached the exporter: {text}"
        );
    }
    assert!(text.contains("[REDACTED]"));
}

#[tokio::test]
async fn span_end_derives_duration_and_token_metrics() {
    let memory =
        InMemoryExporter::new().with_signals(Signals::ENDED_SPANS.with(aiobs_core::Signal::Metric));
    let obs = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    let mut g = obs.start_span(
        SpanOptions::new("llm", SpanType::ModelGeneration).attributes(
            ModelAttributes::new("gpt-4o-mini", "openai")
                .with_usage(Usage::new(120, 30).with_cache_read(100)),
        ),
    );
    g.end();
    assert!(obs.flush(T).await.is_success());
    let metrics: Vec<_> = memory
        .events()
        .iter()
        .filter_map(|e| match &**e {
            ObservabilityEvent::Metric(m) => Some((m.name.clone(), m.value)),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = metrics.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"aiobs.span.duration_ms"));
    assert!(metrics.contains(&("aiobs.tokens.input".into(), 120.0)));
    assert!(metrics.contains(&("aiobs.tokens.cache_read".into(), 100.0)));
}

/// (span name and signal, first_in_trace, start_seen, parent_seen, after_root_end)
type Annotation = (String, bool, bool, bool, bool);

/// A tracking exporter that records the adapter's annotations.
#[derive(Debug, Default)]
struct Recorder {
    seen: std::sync::Mutex<Vec<Annotation>>,
}

#[aiobs_core::async_trait]
impl TrackingExporter for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn signals(&self) -> Signals {
        Signals::ALL_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default().with_max_wait(Duration::from_millis(5))
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _c: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export_tracked(&self, batch: &[TrackedEvent]) -> Result<ExportOutcome, ExportError> {
        let mut seen = self.seen.lock().unwrap();
        for t in batch {
            let span = t.event.span().unwrap();
            let kind = format!("{:?}", t.event.signal());
            seen.push((
                format!("{}:{kind}", span.name),
                t.first_in_trace,
                t.start_seen,
                t.parent_seen,
                t.after_root_end,
            ));
        }
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

#[tokio::test]
async fn tracking_adapter_annotates_out_of_order_events() {
    let tracking = Arc::new(Tracking::new(Recorder::default()));
    let obs = Observability::builder()
        .exporter(tracking.clone())
        .build()
        .unwrap();
    // A rebuilt span: its start happened elsewhere, only its end arrives here.
    let trace_id = TraceId::random();
    let mut root_data = ExportedSpan::new(
        trace_id,
        aiobs_core::SpanId::random(),
        "root",
        SpanType::AgentRun,
    );
    root_data.start_time = chrono::Utc::now();
    let mut child_data = ExportedSpan::new(
        trace_id,
        aiobs_core::SpanId::random(),
        "child",
        SpanType::ToolCall,
    );
    child_data.parent_span_id = Some(root_data.span_id);
    child_data.is_root = false;
    let mut late_data = ExportedSpan::new(
        trace_id,
        aiobs_core::SpanId::random(),
        "late",
        SpanType::ToolCall,
    );
    late_data.parent_span_id = Some(root_data.span_id);
    late_data.is_root = false;

    obs.rebuild_span(child_data).end(); // child before parent, end without start
    assert!(obs.flush(T).await.is_success());
    obs.rebuild_span(root_data).end();
    assert!(obs.flush(T).await.is_success());
    obs.rebuild_span(late_data).end(); // late child after the root ended
    assert!(obs.flush(T).await.is_success());

    let seen = tracking.inner().seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            ("child:SpanEnded".to_string(), true, false, false, false),
            ("root:SpanEnded".to_string(), false, false, true, false),
            ("late:SpanEnded".to_string(), false, false, true, true),
        ]
    );
    assert_eq!(tracking.tracked_traces(), 1);

    // A normal trace: start seen before end.
    let mut s = obs.start_span(SpanOptions::new("normal", SpanType::AgentRun));
    s.end();
    assert!(obs.flush(T).await.is_success());
    let seen = tracking.inner().seen.lock().unwrap().clone();
    assert_eq!(
        seen[3],
        ("normal:SpanStarted".to_string(), true, false, true, false)
    );
    assert_eq!(
        seen[4],
        ("normal:SpanEnded".to_string(), false, true, true, false)
    );
}

#[tokio::test]
async fn events_and_updates_reach_exporters_that_subscribe() {
    let all = InMemoryExporter::new()
        .named("all")
        .with_signals(Signals::ALL_SPANS);
    let ended = InMemoryExporter::new()
        .named("ended")
        .with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(all.clone())
        .exporter(ended.clone())
        .build()
        .unwrap();
    let mut run = obs.start_span(SpanOptions::new("run", SpanType::AgentRun));
    run.event(SpanOptions::new("user feedback received", SpanType::Generic).input("thumbs up"));
    run.set_output("partial");
    run.update();
    run.end_with_output("done");
    assert!(obs.flush(T).await.is_success());

    let kinds: Vec<String> = all
        .events()
        .iter()
        .map(|e| format!("{}:{:?}", e.span().unwrap().name, e.signal()))
        .collect();
    assert_eq!(
        kinds,
        [
            "run:SpanStarted",
            "user feedback received:SpanStarted",
            "user feedback received:SpanEnded",
            "run:SpanUpdated",
            "run:SpanEnded"
        ]
    );
    let updated = all.events()[3].span().unwrap().clone();
    assert_eq!(updated.output, Some(serde_json::json!("partial")));
    assert!(updated.end_time.is_none());
    let spans = ended.ended_spans();
    assert_eq!(
        spans.len(),
        2,
        "no started/updated events for an exporter that did not ask"
    );
    let event = spans.iter().find(|s| s.is_event).unwrap();
    assert_eq!(event.end_time, Some(event.start_time));
    assert_eq!(event.parent_span_id, Some(run.span_id()));
}

/// Checks ended spans as they are exported, without keeping them, so their
/// allocations go back to the emitting thread's pool and are reused.
#[derive(Debug, Clone, Default)]
struct FreshnessCheck {
    /// (plain spans seen, what was wrong with them)
    seen: Arc<std::sync::Mutex<(usize, Vec<String>)>>,
}

#[aiobs_core::async_trait]
impl aiobs_core::Exporter for FreshnessCheck {
    fn name(&self) -> &str {
        "freshness"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &aiobs_core::ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut seen = self.seen.lock().unwrap();
        for e in batch.iter() {
            let ObservabilityEvent::Span { span: s, .. } = &**e else {
                continue;
            };
            if s.name != "plain" {
                continue;
            }
            seen.0 += 1;
            let stale = [
                ("input", s.input.is_some()),
                ("output", s.output.is_some()),
                ("error", s.error.is_some()),
                ("metadata", !s.metadata.is_empty()),
                ("tags", !s.tags.is_empty()),
                ("user", s.user_id.is_some()),
                ("session", s.session_id.is_some()),
                ("entity", s.entity.is_some()),
                ("attributes", s.attributes != Default::default()),
                ("parent", s.parent_span_id.is_some()),
                ("status", s.status != SpanStatus::Ok),
                ("trace context", !s.trace_context.is_default()),
                ("ancestry", !s.ancestry.is_empty()),
            ];
            for (what, bad) in stale {
                if bad && seen.1.len() < 10 {
                    seen.1
                        .push(format!("span {} kept a previous {what}", s.span_id));
                }
            }
        }
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Span allocations are recycled through a per-thread pool and refilled in
/// place: nothing of a previous span may survive into the next.
#[test]
fn a_recycled_span_allocation_carries_nothing_of_its_previous_span() {
    let check = FreshnessCheck::default();
    let obs = Observability::builder()
        .exporter(check.clone())
        .build()
        .unwrap();
    let waves = 5;
    let per_wave = 1500;
    for _ in 0..waves {
        for i in 0..per_wave {
            let root = obs.start_span(
                SpanOptions::new("dirty", SpanType::AgentRun)
                    .entity("agent", "a", None)
                    .input("question")
                    .metadata("k", i)
                    .tracing(
                        TracingOptions::new()
                            .user_id("u")
                            .session_id("s")
                            .tag("t")
                            .metadata("tenant", i)
                            .trace_id(TraceId::random()),
                    ),
            );
            let mut child = root.child(
                SpanOptions::new("dirty", SpanType::ModelGeneration)
                    .attributes(ModelAttributes::new("m", "p").with_usage(Usage::new(1, 2))),
            );
            child.error(SpanError::new("boom"));
            let mut root = root;
            root.end_with_output("answer");
        }
        assert!(obs.flush_blocking(T).is_success());
        for _ in 0..per_wave {
            obs.start_span(SpanOptions::new("plain", SpanType::ToolCall))
                .end();
        }
        assert!(obs.flush_blocking(T).is_success());
    }
    let seen = check.seen.lock().unwrap();
    assert_eq!(seen.0, waves * per_wave);
    assert!(seen.1.is_empty(), "{:#?}", seen.1);
}

/// Process A starts a root with trace-level metadata, exporter directives, a
/// hidden output and hidden inputs; process B rebuilds it from its serialised
/// form, starts a child and ends both. Everything trace-wide survives, and
/// nothing hidden is ever recorded.
#[tokio::test]
async fn a_rebuilt_span_keeps_the_whole_trace_context_and_its_privacy() {
    let (obs_a, _) = setup();
    let root = obs_a.start_span(
        SpanOptions::new("trace1", SpanType::AgentRun)
            .input("secret input")
            .tracing(
                TracingOptions::new()
                    .user_id("u-1")
                    .tag("durable")
                    .metadata("tenant", "acme")
                    .metadata(
                        "langfuse",
                        serde_json::json!({"traceName": "booking", "release": "r-7"}),
                    )
                    .hide_input()
                    .hide_output(),
            ),
    );
    let saved = serde_json::to_string(&root.export().unwrap()).unwrap();
    std::mem::forget(root);

    let (obs_b, memory_b) = setup();
    let mut root = obs_b.rebuild_span(serde_json::from_str(&saved).unwrap());
    let mut child =
        root.child(SpanOptions::new("step", SpanType::ToolCall).input("secret child input"));
    child.set_input("secret again");
    child.end_with_output("secret child output");
    root.set_output("secret output");
    root.end();
    assert!(obs_b.flush(T).await.is_success());

    let spans = memory_b.ended_spans();
    assert_eq!(spans.len(), 2);
    let text = serde_json::to_string(&spans).unwrap();
    assert!(
        !text.contains("secret"),
        "a hidden payload was recorded: {text}"
    );
    for s in &spans {
        assert_eq!(
            (s.input.as_ref(), s.output.as_ref()),
            (None, None),
            "{}",
            s.name
        );
        assert!(s.trace_context.hide_input && s.trace_context.hide_output);
        assert_eq!(s.metadata["tenant"], "acme", "{}", s.name);
        assert_eq!(s.metadata["langfuse"]["traceName"], "booking", "{}", s.name);
        assert_eq!(s.metadata["langfuse"]["release"], "r-7", "{}", s.name);
        assert_eq!(s.trace_context.metadata["tenant"], "acme");
        assert_eq!(s.user_id.as_deref(), Some("u-1"));
        assert_eq!(&*s.tags, &["durable".to_owned()]);
    }
    let r = spans.iter().find(|s| s.name == "trace1").unwrap();
    assert!(
        r.is_trace_root(),
        "a rebuilt root is still the root of its trace"
    );
}

/// Data that carries a hidden payload (changed on the way, or written by an
/// older version) loses it on rebuild: the flag wins.
#[tokio::test]
async fn a_privacy_flag_wins_over_a_payload_in_the_exported_data() {
    let (obs, memory) = setup();
    let root = obs.start_span(
        SpanOptions::new("r", SpanType::AgentRun).tracing(TracingOptions::new().hide_output()),
    );
    let mut data = root.export().unwrap();
    std::mem::forget(root);
    data.output = Some(serde_json::json!("leaked output"));
    data.input = Some(serde_json::json!("kept input"));
    obs.rebuild_span(data).end();
    assert!(obs.flush(T).await.is_success());
    let s = &memory.ended_spans()[0];
    assert_eq!(s.output, None);
    assert_eq!(s.input, Some(serde_json::json!("kept input")));
}

/// A span that continues an upstream trace is marked, and so are its
/// children: none of them owns the trace-level fields.
#[tokio::test]
async fn continued_traces_are_marked_and_own_no_trace_level_fields() {
    let (obs, memory) = setup();
    let upstream = TraceId::random();
    let header = format!("00-{upstream}-00f067aa0ba902b7-01");
    let mut by_header = obs.start_span(
        SpanOptions::new("trace2 (traceparent)", SpanType::AgentRun)
            .tracing(TracingOptions::new().traceparent(&header)),
    );
    by_header
        .child(SpanOptions::new("child", SpanType::ToolCall))
        .end();
    by_header.end();
    obs.start_span(
        SpanOptions::new("trace2 (trace id)", SpanType::AgentRun)
            .tracing(TracingOptions::new().trace_id(upstream)),
    )
    .end();
    obs.start_span(SpanOptions::new("fresh", SpanType::AgentRun))
        .end();
    assert!(obs.flush(T).await.is_success());

    let spans = memory.ended_spans();
    for s in spans.iter().filter(|s| s.name != "fresh") {
        assert_eq!(s.trace_id, upstream);
        assert!(s.is_continued(), "{}", s.name);
        assert!(!s.is_trace_root(), "{}", s.name);
    }
    let by_id = spans
        .iter()
        .find(|s| s.name == "trace2 (trace id)")
        .unwrap();
    assert!(by_id.is_root && by_id.effective_parent().is_none());
    let fresh = spans.iter().find(|s| s.name == "fresh").unwrap();
    assert!(fresh.is_trace_root() && !fresh.is_continued());
    // The mark survives export and rebuild.
    let cont = obs.start_span(
        SpanOptions::new("c", SpanType::AgentRun).tracing(TracingOptions::new().trace_id(upstream)),
    );
    let data: ExportedSpan =
        serde_json::from_str(&serde_json::to_string(&cont.export().unwrap()).unwrap()).unwrap();
    assert!(data.is_continued());
    std::mem::forget(cont);
}

/// An unsampled trace exports a token; rebuilt anywhere it records nothing,
/// and neither do its children.
#[tokio::test]
async fn the_sampling_decision_survives_export_and_rebuild() {
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let never = Observability::builder()
        .sampler(Sampler::Never)
        .exporter(InMemoryExporter::new())
        .build()
        .unwrap();
    let unsampled = never.start_span(SpanOptions::new("r", SpanType::AgentRun));
    let token = serde_json::to_string(&unsampled.export().expect("a token")).unwrap();

    let always = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    let mut rebuilt = always.rebuild_span(serde_json::from_str(&token).unwrap());
    assert!(!rebuilt.is_recording());
    assert_eq!(rebuilt.span_id(), unsampled.span_id());
    assert_eq!(rebuilt.trace_id(), unsampled.trace_id());
    assert!(!rebuilt.traceparent().sampled);
    rebuilt
        .child(SpanOptions::new("c", SpanType::ToolCall))
        .end();
    rebuilt.end();
    let report = always.flush(T).await;
    assert!(report.is_success(), "{report}");
    assert!(memory.ended_spans().is_empty());
    assert_eq!(report.pipeline.dropped.get(&DropReason::Sampled), Some(&2));
}

/// A span started on a host whose clock runs 3 s ahead of this one, ended
/// here, ends no earlier than it started; spans started here end exactly
/// their monotonic duration after their start.
#[tokio::test]
async fn no_span_ends_before_it_starts() {
    let (obs, memory) = setup();
    let mut data = ExportedSpan::new(
        TraceId::random(),
        aiobs_core::SpanId::random(),
        "started elsewhere",
        SpanType::WorkflowStep,
    );
    data.start_time += chrono::TimeDelta::seconds(3);
    let ahead = data.start_time;
    obs.rebuild_span(data).end();
    let mut local = obs.start_span(SpanOptions::new("local", SpanType::ToolCall));
    std::thread::sleep(Duration::from_millis(3));
    local.end();
    assert!(obs.flush(T).await.is_success());
    for s in memory.ended_spans() {
        let end = s.end_time.unwrap();
        assert!(
            end >= s.start_time,
            "{}: ends {end} before it starts {}",
            s.name,
            s.start_time
        );
        if s.name == "started elsewhere" {
            assert_eq!(s.start_time, ahead);
            assert_eq!(s.duration(), Some(Duration::ZERO));
        } else {
            assert!(s.duration().unwrap() >= Duration::from_millis(3));
        }
    }
}

/// A generation with usage and two steps with their own: the trace's
/// billable usage is the generation's, by one rule exporters apply from a
/// single span (its ancestry carries the ancestors' types).
#[tokio::test]
async fn one_level_of_nested_model_spans_carries_billable_usage() {
    let (obs, memory) = setup();
    let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let mut generation = run.child(SpanOptions::new("generation", SpanType::ModelGeneration));
    for (i, u) in [Usage::new(60, 10), Usage::new(40, 10)]
        .into_iter()
        .enumerate()
    {
        let mut step = generation.child(SpanOptions::new(format!("step {i}"), SpanType::ModelStep));
        // Nested deeper, under a non-model span, still inside the generation.
        let mut inner = step
            .child(SpanOptions::new("inner", SpanType::Generic))
            .child(SpanOptions::new("inference", SpanType::ModelInference));
        inner.set_usage(u.clone());
        inner.end();
        step.set_usage(u);
        step.end();
    }
    generation.set_usage(Usage::new(100, 20));
    generation.end();
    let mut tool = run.child(SpanOptions::new("tool", SpanType::ToolCall));
    tool.set_attributes(ModelAttributes::new("m", "p").with_usage(Usage::new(5, 5)));
    tool.end();
    drop(run);
    assert!(obs.flush(T).await.is_success());

    let spans = memory.ended_spans();
    let billable: Vec<_> = spans
        .iter()
        .filter_map(|s| s.billable_usage().map(|u| (s.name.to_string(), u.clone())))
        .collect();
    assert_eq!(
        billable,
        vec![("generation".to_owned(), Usage::new(100, 20))]
    );
    let step = spans.iter().find(|s| s.name == "step 0").unwrap();
    assert!(step.has_model_ancestor());
    assert_eq!(
        step.ancestry
            .iter()
            .map(|a| a.span_type)
            .collect::<Vec<_>>(),
        [SpanType::AgentRun, SpanType::ModelGeneration]
    );

    // Without the generation (excluded from export), the steps carry it.
    let memory = InMemoryExporter::new().with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exclude_span_types([SpanType::ModelGeneration])
        .exporter(memory.clone())
        .build()
        .unwrap();
    let generation = obs.start_span(SpanOptions::new("generation", SpanType::ModelGeneration));
    let mut step = generation.child(SpanOptions::new("step", SpanType::ModelStep));
    step.set_usage(Usage::new(7, 3));
    step.end();
    drop(generation);
    assert!(obs.flush(T).await.is_success());
    let spans = memory.ended_spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].billable_usage(), Some(&Usage::new(7, 3)));
}
