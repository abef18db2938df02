//! Isolation and deadlines under exporters that misbehave: one that blocks its
//! thread (a synchronous vendor SDK call), one whose `shutdown` hangs.
//!
//! The pipeline's documented ε is 50 ms; these tests allow `SLACK` on top of a
//! deadline because the test machine is shared and noisy.

mod common;

use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ExportError, Exporter, ExporterContext, FlushScope, InMemoryExporter,
    Observability, RetryPolicy, Signals, SpanOptions, SpanType,
};
use common::{FlushBehaviour, Scripted, Step};

/// How late past its deadline a call may return in these tests.
const SLACK: Duration = Duration::from_millis(200);
/// How long the hostile exporter blocks its thread per call.
const BLOCK: Duration = Duration::from_secs(5);

fn emit_spans(obs: &Observability, n: usize) {
    for i in 0..n {
        obs.start_span(SpanOptions::new(format!("span-{i}"), SpanType::ToolCall))
            .end();
    }
}

fn blocking_and_memory() -> (Observability, InMemoryExporter) {
    let blocking = Scripted::new("blocking", |_, _| Step::Block(BLOCK))
        .with_policy(BatchPolicy::default().with_max_wait(Duration::from_millis(10)));
    let memory = InMemoryExporter::new()
        .with_signals(Signals::ENDED_SPANS)
        .with_batch_policy(BatchPolicy::default().with_max_wait(Duration::from_millis(20)));
    let obs = Observability::builder()
        .exporter(blocking)
        .exporter(memory.clone())
        .build()
        .unwrap();
    (obs, memory)
}

fn assert_on_time(what: &str, took: Duration, deadline: Duration) {
    assert!(
        took <= deadline + SLACK,
        "{what}: returned after {took:?}, past its deadline of {deadline:?} (+{SLACK:?} slack)"
    );
}

#[tokio::test]
async fn a_blocking_exporter_delays_neither_its_neighbours_deliveries_nor_a_flush_deadline() {
    let (obs, memory) = blocking_and_memory();
    emit_spans(&obs, 1);
    // Let the blocking exporter take its batch and block its thread.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The neighbour delivers on its own batch timer, without any flush.
    let until = Instant::now() + Duration::from_secs(2);
    while memory.ended_spans().is_empty() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        memory.ended_spans().len(),
        1,
        "the neighbour of a blocked exporter did not deliver on its own"
    );

    emit_spans(&obs, 1);
    let deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = obs.flush(deadline).await;
    let took = start.elapsed();
    assert_on_time("flush", took, deadline);
    assert!(!report.completed, "{report}");
    let mem = report.exporter("memory").unwrap();
    assert!(mem.completed, "{report}");
    // The first flush covers everything emitted before it, delivered or not.
    assert_eq!(mem.delivered, 2, "{report}");
    assert_eq!(memory.ended_spans().len(), 2);
    assert_eq!(report.exporter("blocking").unwrap().pending, 2, "{report}");
    let blocked = report.exporter("blocking").unwrap();
    assert!(!blocked.completed, "{report}");
    assert!(
        report.elapsed >= deadline && report.elapsed <= took,
        "elapsed {:?} is not the time the caller waited ({took:?})",
        report.elapsed
    );
}

#[test]
fn flush_blocking_beside_a_blocking_exporter_returns_on_time_and_the_neighbour_delivers() {
    let (obs, memory) = blocking_and_memory();
    emit_spans(&obs, 3);
    std::thread::sleep(Duration::from_millis(100));
    emit_spans(&obs, 2);
    let deadline = Duration::from_secs(1);
    let start = Instant::now();
    let report = std::thread::spawn(move || obs.flush_blocking(deadline))
        .join()
        .unwrap();
    let took = start.elapsed();
    assert_on_time("flush_blocking", took, deadline);
    assert_eq!(memory.ended_spans().len(), 5, "{report}");
    assert!(report.exporter("memory").unwrap().completed, "{report}");
    assert!(!report.exporter("blocking").unwrap().completed, "{report}");
    assert!(
        report.elapsed >= deadline.mul_f64(0.9) && report.elapsed <= took,
        "elapsed {:?} is not the time the caller waited ({took:?})",
        report.elapsed
    );
}

#[tokio::test]
async fn shutdown_beside_a_blocking_exporter_returns_on_time_and_counts_what_it_lost() {
    let (obs, memory) = blocking_and_memory();
    emit_spans(&obs, 4);
    let deadline = Duration::from_millis(500);
    let start = Instant::now();
    let report = obs.shutdown(deadline).await;
    assert_on_time("shutdown", start.elapsed(), deadline);
    assert_eq!(memory.ended_spans().len(), 4, "{report}");
    assert!(report.exporter("memory").unwrap().completed, "{report}");
    let blocked = report.exporter("blocking").unwrap();
    assert!(!blocked.completed, "{report}");
    let stats = obs.stats();
    assert!(stats.is_conserved(), "{stats:?}");
    assert_eq!(stats.exporter("blocking").unwrap().pending, 0, "{stats:?}");
}

#[tokio::test]
async fn a_shutdown_whose_exporter_hangs_names_that_exporter_incomplete() {
    let hanging = Scripted::ok("hangs-in-shutdown").on_flush(FlushBehaviour::HangOnShutdown);
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(hanging)
        .exporter(memory.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 2);
    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let report = obs.shutdown(deadline).await;
    assert_on_time("shutdown", start.elapsed(), deadline);
    assert!(!report.completed, "{report}");
    let h = report.exporter("hangs-in-shutdown").unwrap();
    assert!(
        !h.completed,
        "the exporter whose shutdown hung is reported completed:\n{report}"
    );
    assert!(report.exporter("memory").unwrap().completed, "{report}");
    assert_eq!(report.incomplete(), ["hangs-in-shutdown"], "{report}");
    assert!(h.cause.is_some(), "{report}");
}

#[tokio::test]
async fn an_exporter_whose_flush_blocks_does_not_hold_the_caller_past_its_deadline() {
    let blocking_flush =
        Scripted::ok("flush-blocks").on_flush(FlushBehaviour::Block(Duration::from_secs(3)));
    let obs = Observability::builder()
        .exporter(blocking_flush)
        .build()
        .unwrap();
    emit_spans(&obs, 1);
    let deadline = Duration::from_millis(400);
    let start = Instant::now();
    let report = obs.flush(deadline).await;
    assert_on_time("flush", start.elapsed(), deadline);
    assert!(!report.completed, "{report}");
}

#[test]
fn flush_blocking_never_overruns_its_deadline_even_when_the_pipeline_is_stuck() {
    let blocking = Scripted::new("blocking", |_, _| Step::Block(BLOCK));
    let obs = Observability::builder().exporter(blocking).build().unwrap();
    emit_spans(&obs, 1);
    for deadline in [Duration::from_millis(50), Duration::from_millis(300)] {
        let start = Instant::now();
        let report = obs.flush_blocking(deadline);
        let took = start.elapsed();
        assert_on_time("flush_blocking", took, deadline);
        assert!(!report.completed);
        assert!(report.elapsed <= took && report.elapsed >= deadline.mul_f64(0.9));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_flush_reports_nothing_pending_even_mid_burst() {
    let memory = InMemoryExporter::new()
        .with_batch_policy(BatchPolicy::default().with_max_wait(Duration::from_secs(60)));
    let obs = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    let burst = {
        let obs = obs.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                emit_spans(&obs, 50);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let mut checked = 0;
    while !burst.is_finished() {
        let report = obs.flush(Duration::from_secs(10)).await;
        assert!(report.completed, "{report}");
        let m = report.exporter("memory").unwrap();
        assert_eq!(
            m.pending, 0,
            "a completed flush reported events pending (those emitted after it):\n{report}"
        );
        assert_eq!(report.pending(), 0, "{report}");
        checked += 1;
    }
    burst.join().unwrap();
    assert!(checked > 0);
}

/// The fifth case: a destination that refuses connections must not
/// cost every request its whole deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_known_to_be_failing_is_reported_at_once_with_its_error() {
    let refused = Scripted::new("langfuse", |_, _| {
        Step::Err(ExportError::transient(
            "error sending request: tcp connect error: Connection refused (os error 111)",
        ))
    })
    .with_retry(RetryPolicy::default());
    let store = InMemoryExporter::new()
        .named("sqlite")
        .with_signals(Signals::ENDED_SPANS);
    let obs = Observability::builder()
        .exporter(refused)
        .exporter(store.clone())
        .build()
        .unwrap();
    let deadline = Duration::from_secs(2);
    let mut took = Vec::new();
    for request in 0..4 {
        let mut root = obs.start_span(SpanOptions::new(
            format!("request-{request}"),
            SpanType::AgentRun,
        ));
        root.end();
        let start = Instant::now();
        let report = obs.flush_trace(root.trace_id(), deadline).await;
        took.push(start.elapsed());
        assert_on_time("flush_trace", start.elapsed(), deadline);
        let sqlite = report.exporter("sqlite").unwrap();
        assert!(sqlite.completed, "{report}");
        assert_eq!(sqlite.delivered, 1, "{report}");
        let lf = report.exporter("langfuse").unwrap();
        assert!(!lf.completed, "{report}");
        assert_eq!(lf.pending, 1, "{report}");
        let cause = lf.cause.as_deref().unwrap_or_default();
        assert!(
            cause.contains("Connection refused"),
            "the report must name the cause: {report}"
        );
        assert_eq!(report.incomplete(), ["langfuse"]);
    }
    // Once the destination is known to be failing, a request costs nothing.
    for t in &took[1..] {
        assert!(*t < Duration::from_millis(300), "took {took:?}");
    }
    // A flush scoped to the store does not even look at the failing one.
    let mut root = obs.start_span(SpanOptions::new("scoped", SpanType::AgentRun));
    root.end();
    let report = obs
        .flush_scoped(
            FlushScope::trace(root.trace_id()).only(["sqlite"]),
            deadline,
        )
        .await;
    assert!(report.is_success(), "{report}");
    assert_eq!(report.exporters.len(), 1);
    // And shutdown does not wait out its deadline for it either.
    let start = Instant::now();
    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(start.elapsed() < Duration::from_millis(500), "{report}");
    assert_eq!(report.incomplete(), ["langfuse"], "{report}");
    assert!(obs.stats().is_conserved());
}

#[tokio::test]
async fn a_flush_scoped_to_an_unknown_exporter_says_so_at_once() {
    let obs = Observability::builder()
        .exporter(InMemoryExporter::new())
        .build()
        .unwrap();
    let report = obs
        .flush_scoped(FlushScope::all().only(["sqlite"]), Duration::from_secs(5))
        .await;
    assert!(!report.completed);
    assert!(
        report.cause.as_deref().unwrap().contains("sqlite"),
        "{report}"
    );
}

/// A blocking vendor call through `run_blocking` keeps the worker's own
/// timers alive: the attempt timeout fires although the call never returns.
#[tokio::test]
async fn run_blocking_keeps_the_attempt_timeout() {
    #[derive(Debug, Default)]
    struct VendorSdk {
        ctx: std::sync::OnceLock<ExporterContext>,
    }
    #[aiobs_core::async_trait]
    impl Exporter for VendorSdk {
        fn name(&self) -> &str {
            "vendor"
        }
        fn signals(&self) -> Signals {
            Signals::ENDED_SPANS
        }
        fn batch_policy(&self) -> BatchPolicy {
            BatchPolicy::default()
        }
        fn retry_policy(&self) -> RetryPolicy {
            RetryPolicy::default()
                .with_max_retries(0)
                .with_attempt_timeout(Duration::from_millis(200))
        }
        async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
            let _first = self.ctx.set(ctx.clone());
            Ok(())
        }
        async fn export(
            &self,
            _b: &aiobs_core::ExportBatch,
        ) -> Result<aiobs_core::ExportOutcome, ExportError> {
            let ctx = self
                .ctx
                .get()
                .ok_or_else(|| ExportError::permanent("no init"))?;
            ctx.run_blocking(|| std::thread::sleep(Duration::from_secs(3)))
                .await?;
            Ok(aiobs_core::ExportOutcome::all_delivered())
        }
        async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
            Ok(())
        }
        async fn shutdown(&self, _d: Instant) -> Result<(), ExportError> {
            Ok(())
        }
    }
    let obs = Observability::builder()
        .exporter(VendorSdk::default())
        .build()
        .unwrap();
    emit_spans(&obs, 2);
    let start = Instant::now();
    let report = obs.flush(Duration::from_secs(2)).await;
    assert!(start.elapsed() < Duration::from_secs(1), "{report}");
    assert!(report.completed, "{report}");
    let e = report.exporter("vendor").unwrap();
    assert_eq!(
        e.failed.get(&aiobs_core::DropReason::RetriesExhausted),
        Some(&2),
        "{report}"
    );
    assert!(
        e.totals
            .last_error
            .as_deref()
            .unwrap()
            .contains("attempt timeout"),
        "{report}"
    );
}
