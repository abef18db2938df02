//! The pipeline's promises, tested end to end: truthful flush, deadlines,
//! conservation, overflow, lifecycle, isolation of misbehaving exporters.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, DropReason, ErrorClass, ExportError, ExportOutcome, Exporter, InMemoryExporter,
    ItemRejection, Observability, OverflowPolicy, SpanOptions, SpanType, Stats,
};
use common::{Scripted, Step};

const SECS5: Duration = Duration::from_secs(5);

fn emit_spans(obs: &Observability, n: usize) {
    for i in 0..n {
        let mut s =
            obs.start_span(SpanOptions::new(format!("span-{i}"), SpanType::ToolCall).input(i));
        s.end();
    }
}

fn assert_conserved(stats: &Stats) {
    assert!(
        stats.pipeline.is_conserved(),
        "pipeline not conserved: {:?}",
        stats.pipeline
    );
    for e in &stats.exporters {
        assert!(e.is_conserved(), "exporter {} not conserved: {e:?}", e.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conservation_under_slow_failing_and_panicking_exporters() {
    let slow = Scripted::new("slow", |_, _| Step::Slow(Duration::from_millis(3))).with_policy(
        BatchPolicy::default()
            .with_max_events(50)
            .with_max_wait(Duration::from_millis(5)),
    );
    let failing = Scripted::new("failing", |_, _| {
        Step::Err(ExportError::transient("503 from upstream"))
    });
    let panicking = Scripted::new("panicking", |call, _| {
        if call % 2 == 0 { Step::Panic } else { Step::Ok }
    })
    .with_policy(
        BatchPolicy::default()
            .with_max_events(10)
            .with_max_wait(Duration::from_millis(5)),
    );
    let healthy = Scripted::ok("healthy");
    let obs = Observability::builder()
        .exporter(slow.clone())
        .exporter(failing.clone())
        .exporter(panicking.clone())
        .exporter(healthy.clone())
        .build()
        .unwrap();

    let mut threads = Vec::new();
    for _ in 0..4 {
        let obs = obs.clone();
        threads.push(std::thread::spawn(move || emit_spans(&obs, 500)));
    }
    for t in threads {
        t.join().unwrap();
    }
    let report = obs.flush(Duration::from_secs(30)).await;
    assert!(report.completed, "{report}");
    let stats = obs.stats();
    assert_conserved(&stats);
    assert_eq!(stats.pipeline.accepted, 2000);
    for e in &stats.exporters {
        assert_eq!(e.accepted, 2000, "{e:?}");
        assert_eq!(e.pending, 0, "{e:?}");
    }
    assert_eq!(stats.exporter("slow").unwrap().delivered, 2000);
    assert_eq!(slow.acked_len(), 2000);
    assert_eq!(
        healthy.acked_len(),
        2000,
        "a failing neighbour must not cost the healthy exporter anything"
    );
    let f = stats.exporter("failing").unwrap();
    assert_eq!(f.lost(DropReason::RetriesExhausted), 2000);
    assert_eq!(
        f.retries,
        f.attempts / 4 * 3,
        "every batch tried 1 + 3 times: {f:?}"
    );
    assert!(f.last_error.as_deref().unwrap().contains("503"));
    let p = stats.exporter("panicking").unwrap();
    assert_eq!(p.delivered + p.lost(DropReason::ExporterPanicked), 2000);
    assert!(
        p.lost(DropReason::ExporterPanicked) > 0 && p.delivered > 0,
        "{p:?}"
    );
    assert!(!report.is_success());
    assert_eq!(report.lost(), 2000 + p.lost(DropReason::ExporterPanicked));
}

#[tokio::test]
async fn flush_returns_only_after_the_destination_acknowledged() {
    // Acknowledges 200 ms after each call; the batch timer would wait a minute.
    let exporter = Scripted::new("slow-ack", |_, _| Step::Slow(Duration::from_millis(200)))
        .with_policy(BatchPolicy::default().with_max_wait(Duration::from_secs(60)));
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 100);
    let start = Instant::now();
    let report = obs.flush(SECS5).await;
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(report.is_success(), "{report}");
    assert_eq!(
        exporter.acked_len(),
        100,
        "flush returned before the destination had everything"
    );
    assert_eq!(report.exporter("slow-ack").unwrap().delivered, 100);
    // The next report counts only what happened since.
    emit_spans(&obs, 3);
    let report = obs.flush(SECS5).await;
    assert_eq!(report.exporter("slow-ack").unwrap().delivered, 3);
    assert_eq!(report.exporter("slow-ack").unwrap().totals.delivered, 103);
}

#[tokio::test]
async fn flush_deadline_holds_on_a_hung_exporter_and_shutdown_accounts_for_it() {
    let hung = Scripted::new("hung", |_, _| Step::Hang);
    let healthy = Scripted::ok("healthy");
    let obs = Observability::builder()
        .exporter(hung.clone())
        .exporter(healthy.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 10);
    let start = Instant::now();
    let report = obs.flush(Duration::from_millis(300)).await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "flush overran its deadline: {took:?}"
    );
    assert!(!report.completed);
    assert_eq!(report.exporter("hung").unwrap().pending, 10);
    assert!(!report.exporter("hung").unwrap().completed);
    assert!(report.exporter("healthy").unwrap().completed);
    assert_eq!(
        healthy.acked_len(),
        10,
        "the hung exporter must not hold up its neighbour"
    );

    let start = Instant::now();
    let report = obs.shutdown(Duration::from_millis(300)).await;
    assert!(start.elapsed() < Duration::from_millis(1500));
    let stats = obs.stats();
    assert_conserved(&stats);
    let h = stats.exporter("hung").unwrap();
    assert_eq!(h.pending, 0);
    assert_eq!(h.lost(DropReason::FlushTimeout), 10);
    assert_eq!(
        report
            .exporter("hung")
            .unwrap()
            .dropped
            .get(&DropReason::FlushTimeout),
        Some(&10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_is_counted_exactly() {
    // The exporter is stuck until released, so its queue (capacity 10) fills.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let exporter = Scripted::new("gated", move |_, _| {
        if g.available_permits() == 0 {
            Step::Slow(Duration::from_millis(50))
        } else {
            Step::Ok
        }
    })
    .with_policy(
        BatchPolicy::default()
            .with_queue_capacity(10)
            .with_max_events(5)
            .with_max_wait(Duration::from_millis(1)),
    );
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .ingress_capacity(64)
        .build()
        .unwrap();
    emit_spans(&obs, 1000);
    gate.add_permits(1);
    let report = obs.flush(Duration::from_secs(20)).await;
    assert!(report.completed, "{report}");
    let stats = obs.stats();
    assert_conserved(&stats);
    let e = stats.exporter("gated").unwrap();
    let ingress_full = stats
        .pipeline
        .dropped
        .get(&DropReason::QueueFull)
        .copied()
        .unwrap_or(0);
    let queue_full = e.lost(DropReason::QueueFull);
    assert!(
        ingress_full + queue_full > 0,
        "nothing overflowed: {stats:?}"
    );
    assert_eq!(e.delivered as usize, exporter.acked_len());
    assert_eq!(e.delivered + queue_full + ingress_full, 1000, "{stats:?}");
    assert_eq!(report.lost(), queue_full + ingress_full);
}

#[test]
fn block_overflow_applies_back_pressure_instead_of_dropping() {
    let exporter = Scripted::new("slowish", |_, _| Step::Slow(Duration::from_millis(2)))
        .with_policy(
            BatchPolicy::default()
                .with_queue_capacity(100)
                .with_max_events(50),
        );
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .ingress_capacity(32)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(10),
        })
        .build()
        .unwrap();
    emit_spans(&obs, 3000);
    let report = obs.flush_blocking(Duration::from_secs(30));
    assert!(report.is_success(), "{report}");
    assert_eq!(exporter.acked_len(), 3000);
}

#[tokio::test]
async fn shutdown_is_idempotent_and_later_events_are_counted() {
    let memory = InMemoryExporter::new().with_signals(aiobs_core::Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    let first = obs.shutdown(SECS5).await;
    assert!(first.is_success(), "{first}");
    let second = obs.shutdown(SECS5).await;
    assert_eq!(first, second);
    assert_eq!(memory.shutdown_count(), 1);

    emit_spans(&obs, 3);
    let stats = obs.stats();
    assert_eq!(
        stats.pipeline.dropped.get(&DropReason::AfterShutdown),
        Some(&3)
    );
    assert_conserved(&stats);
    let start = Instant::now();
    let after = obs.flush(SECS5).await;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(
        after.pipeline_dropped.get(&DropReason::AfterShutdown),
        Some(&3)
    );
    assert!(
        !after.is_success(),
        "events after shutdown are a loss the report must show"
    );
}

#[tokio::test]
async fn partial_rejections_retry_only_the_retryable_items() {
    let exporter = Scripted::new("multi-status", |call, batch| {
        if call == 0 && batch.len() >= 2 {
            Step::Partial(ExportOutcome::partial(vec![
                ItemRejection {
                    index: 0,
                    class: ErrorClass::Permanent,
                    message: "400 invalid body".into(),
                },
                ItemRejection {
                    index: 1,
                    class: ErrorClass::Transient,
                    message: "500 item".into(),
                },
            ]))
        } else {
            Step::Ok
        }
    })
    .with_policy(BatchPolicy::default().with_max_wait(Duration::from_secs(60)));
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 10);
    let report = obs.flush(SECS5).await;
    let e = report.exporter("multi-status").unwrap();
    assert_eq!(e.delivered, 9);
    assert_eq!(e.failed.get(&DropReason::PermanentError), Some(&1));
    assert_eq!(exporter.acked_len(), 9);
    assert_eq!(
        e.totals.attempts, 2,
        "one retry, for the one retryable item"
    );
    // The retry carried only the rejected-transient item.
    let names: Vec<String> = exporter
        .acked()
        .iter()
        .map(|e| e.span().unwrap().name.to_string())
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "span-1").count(), 1);
    assert!(!names.contains(&"span-0".to_string()));
}

#[tokio::test]
async fn disabled_exporter_counts_every_event_and_stops_calling_out() {
    let exporter = Scripted::new("bad-creds", |_, _| {
        Step::Err(ExportError::disabled("401 Unauthorized"))
    });
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 5);
    let _first = obs.flush(SECS5).await;
    emit_spans(&obs, 5);
    let report = obs.flush(SECS5).await;
    let e = &report.exporter("bad-creds").unwrap().totals;
    assert!(e.disabled);
    assert_eq!(e.lost(DropReason::ExporterDisabled), 10);
    assert_eq!(
        exporter.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "no calls after disabling"
    );
    assert!(e.last_error.as_deref().unwrap().contains("401"));
}

/// An exporter that buffers internally and only sends on `flush`, like a vendor SDK.
#[derive(Debug, Default, Clone)]
struct Buffering {
    buffer: Arc<std::sync::Mutex<Vec<String>>>,
    sent: Arc<std::sync::Mutex<Vec<String>>>,
}

#[aiobs_core::async_trait]
impl Exporter for Buffering {
    fn name(&self) -> &str {
        "buffering"
    }
    fn signals(&self) -> aiobs_core::Signals {
        aiobs_core::Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
    }
    fn retry_policy(&self) -> aiobs_core::RetryPolicy {
        aiobs_core::RetryPolicy::default()
    }
    async fn init(&self, _c: &aiobs_core::ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &aiobs_core::ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut b = self.buffer.lock().unwrap();
        b.extend(batch.iter().map(|e| e.span().unwrap().name.to_string()));
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
        let drained: Vec<String> = std::mem::take(&mut *self.buffer.lock().unwrap());
        self.sent.lock().unwrap().extend(drained);
        Ok(())
    }
    async fn shutdown(&self, d: Instant) -> Result<(), ExportError> {
        self.flush(d).await
    }
}

#[tokio::test]
async fn flush_reaches_the_exporter_through_arc_and_box() {
    let inner = Buffering::default();
    let boxed: Box<dyn Exporter> = Box::new(Arc::new(inner.clone()));
    let obs = Observability::builder().exporter(boxed).build().unwrap();
    emit_spans(&obs, 7);
    let report = obs.flush(SECS5).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(
        inner.sent.lock().unwrap().len(),
        7,
        "flush did not reach the exporter's own buffer"
    );
}

#[tokio::test]
async fn no_exporter_counts_instead_of_panicking() {
    let obs = Observability::builder().build().unwrap();
    emit_spans(&obs, 4);
    obs.score(aiobs_core::ScoreRecord::new(
        aiobs_core::TraceId::random(),
        "q",
        1.0,
    ));
    let report = obs.flush(SECS5).await;
    assert_eq!(
        report.pipeline.dropped.get(&DropReason::NoExporter),
        Some(&5)
    );
    assert!(report.pipeline.is_conserved());
}

#[tokio::test(flavor = "current_thread")]
async fn inline_mode_delivers_only_when_flushed_in_the_callers_task() {
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(memory.clone())
        .inline()
        .build()
        .unwrap();
    emit_spans(&obs, 25);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        memory.ended_spans().is_empty(),
        "inline mode has no background delivery"
    );
    let report = obs.flush(SECS5).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(memory.ended_spans().len(), 25);
    let report = obs.shutdown(SECS5).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(memory.shutdown_count(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn inline_flush_deadline_keeps_the_batch_for_the_next_flush() {
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = calls.clone();
    let exporter = Scripted::new("first-call-hangs", move |_, _| {
        if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Step::Hang
        } else {
            Step::Ok
        }
    });
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .inline()
        .build()
        .unwrap();
    emit_spans(&obs, 5);
    let report = obs.flush(Duration::from_millis(200)).await;
    assert!(!report.completed);
    assert_eq!(report.pending(), 5);
    let report = obs.flush(SECS5).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(exporter.acked_len(), 5, "the cancelled batch was re-sent");
}

#[test]
fn flush_blocking_and_guard_work_from_sync_code() {
    let memory = InMemoryExporter::new();
    {
        let obs = Observability::builder()
            .exporter(memory.clone())
            .build()
            .unwrap();
        let _guard = obs.guard(SECS5);
        emit_spans(&obs, 3);
        let report = obs.flush_blocking(SECS5);
        assert!(report.is_success(), "{report}");
        emit_spans(&obs, 2);
    }
    assert_eq!(memory.ended_spans().len(), 5, "the guard flushed on drop");
    assert_eq!(memory.shutdown_count(), 1);
}

#[test]
fn supplied_runtime_handle_runs_the_pipeline() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(memory.clone())
        .runtime(aiobs_core::RuntimeMode::Handle(rt.handle().clone()))
        .build()
        .unwrap();
    emit_spans(&obs, 4);
    let report = rt.block_on(obs.flush(SECS5));
    assert!(report.is_success(), "{report}");
    assert_eq!(memory.ended_spans().len(), 4);
}

#[tokio::test]
async fn flush_trace_delivers_one_trace_without_waiting_for_the_rest() {
    for inline in [false, true] {
        let exporter = Scripted::ok("per-request")
            .with_policy(BatchPolicy::default().with_max_wait(Duration::from_secs(60)))
            .with_signals(aiobs_core::Signals::ENDED_SPANS.with(aiobs_core::Signal::Log));
        let mut builder = Observability::builder().exporter(exporter.clone());
        if inline {
            builder = builder.inline();
        }
        let obs = builder.build().unwrap();
        let mut other = obs.start_span(SpanOptions::new("other request", SpanType::AgentRun));
        other.end();
        let mut mine = obs.start_span(SpanOptions::new("this request", SpanType::AgentRun));
        let mut tool = mine.child(SpanOptions::new("tool", SpanType::ToolCall));
        tool.end();
        mine.end();
        obs.log(aiobs_core::LogRecord::new(
            aiobs_core::LogLevel::Info,
            "outside any trace",
        ));
        let report = obs.flush_trace(mine.trace_id(), SECS5).await;
        assert!(report.completed, "inline={inline}: {report}");
        let acked: Vec<String> = exporter
            .acked()
            .iter()
            .map(|e| match e.span() {
                Some(s) => s.name.to_string(),
                None => "log".to_string(),
            })
            .collect();
        assert_eq!(acked, ["tool", "this request", "log"], "inline={inline}");
        assert!(report.is_success(), "inline={inline}: {report}");
        assert_eq!(
            report.exporter("per-request").unwrap().delivered,
            2,
            "{report}"
        );
        assert_eq!(
            obs.stats().exporter("per-request").unwrap().pending,
            1,
            "the other trace still waits for its batch"
        );
        let report = obs.flush(SECS5).await;
        assert!(report.is_success(), "{report}");
        assert_eq!(exporter.acked_len(), 4);
    }
}

#[derive(Debug)]
struct PanicsOnSecret;
impl aiobs_core::SpanProcessor for PanicsOnSecret {
    fn name(&self) -> &str {
        "panics-on-secret"
    }
    fn process_span(&self, span: &mut aiobs_core::ExportedSpan) -> aiobs_core::Verdict {
        if span.name == "secret" {
            panic!("processor bug");
        }
        if span.name == "noise" {
            aiobs_core::Verdict::Drop
        } else {
            aiobs_core::Verdict::Keep
        }
    }
}

/// Enriches spans with a deployment tag and removes spans named "drop-async".
#[derive(Debug)]
struct Enrich;
#[aiobs_core::async_trait]
impl aiobs_core::AsyncProcessor for Enrich {
    fn name(&self) -> &str {
        "enrich"
    }
    async fn process(&self, events: &mut Vec<Arc<aiobs_core::ObservabilityEvent>>) {
        tokio::time::sleep(Duration::from_millis(1)).await;
        events.retain(|e| e.span().is_none_or(|s| s.name != "drop-async"));
        for e in events.iter_mut() {
            if let aiobs_core::ObservabilityEvent::Span { span, .. } = Arc::make_mut(e) {
                Arc::make_mut(span)
                    .metadata
                    .insert("deployment".into(), "eu-1".into());
            }
        }
    }
}

#[tokio::test]
async fn processors_run_once_and_their_drops_and_panics_are_counted() {
    let a = InMemoryExporter::new()
        .named("a")
        .with_signals(aiobs_core::Signals::ENDED_SPANS);
    let b = InMemoryExporter::new()
        .named("b")
        .with_signals(aiobs_core::Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(a.clone())
        .exporter(b.clone())
        .processor(PanicsOnSecret)
        .async_processor(Enrich)
        .build()
        .unwrap();
    for name in ["kept", "noise", "secret", "drop-async", "kept too"] {
        obs.start_span(SpanOptions::new(name, SpanType::Generic))
            .end();
    }
    let report = obs.flush(SECS5).await;
    assert!(report.completed);
    for m in [&a, &b] {
        let names: Vec<String> = m.ended_spans().iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["kept", "kept too"]);
        assert!(
            m.ended_spans()
                .iter()
                .all(|s| s.metadata["deployment"] == "eu-1")
        );
    }
    assert_eq!(
        report.pipeline.dropped.get(&DropReason::Filtered),
        Some(&2),
        "{report}"
    );
    assert_eq!(
        report.pipeline.dropped.get(&DropReason::ProcessorPanicked),
        Some(&1),
        "{report}"
    );
    assert!(report.pipeline.is_conserved());
    assert_eq!(
        report.lost(),
        1,
        "a processor panic is a loss; filtering is not"
    );
}

#[derive(Debug)]
struct BadInit;
#[aiobs_core::async_trait]
impl Exporter for BadInit {
    fn name(&self) -> &str {
        "bad-init"
    }
    fn signals(&self) -> aiobs_core::Signals {
        aiobs_core::Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
    }
    fn retry_policy(&self) -> aiobs_core::RetryPolicy {
        aiobs_core::RetryPolicy::default()
    }
    async fn init(&self, _c: &aiobs_core::ExporterContext) -> Result<(), ExportError> {
        Err(ExportError::disabled(
            "LANGFUSE_PUBLIC_KEY is not a public key",
        ))
    }
    async fn export(&self, _b: &aiobs_core::ExportBatch) -> Result<ExportOutcome, ExportError> {
        unreachable!("a disabled exporter is never asked to export")
    }
    async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

#[tokio::test]
async fn an_exporter_whose_init_fails_is_disabled_and_counted() {
    let obs = Observability::builder().exporter(BadInit).build().unwrap();
    emit_spans(&obs, 3);
    let report = obs.flush(SECS5).await;
    let e = report.exporter("bad-init").unwrap();
    assert!(e.totals.disabled);
    assert_eq!(e.dropped.get(&DropReason::ExporterDisabled), Some(&3));
    assert!(
        e.totals
            .last_error
            .as_deref()
            .unwrap()
            .contains("public key")
    );
    assert!(!report.is_success());
}

#[test]
fn block_admits_a_routed_chunk_larger_than_the_exporter_queue_piece_by_piece() {
    let exporter = Scripted::new("small-queue", |_, _| Step::Slow(Duration::from_millis(1)))
        .with_policy(
            BatchPolicy::default()
                .with_queue_capacity(50)
                .with_max_events(25),
        );
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .ingress_capacity(8192)
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(20),
        })
        .build()
        .unwrap();
    let start = Instant::now();
    emit_spans(&obs, 4000);
    let report = obs.flush_blocking(Duration::from_secs(30));
    assert!(report.is_success(), "{report}");
    assert_eq!(exporter.acked_len(), 4000);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "blocked for a whole timeout: {:?}",
        start.elapsed()
    );
}
