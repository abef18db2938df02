//! Runtime configurations: blocking calls on the thread that runs the
//! pipeline, runtimes without timers. Never a deadlock, never a panic.

mod common;

use std::time::{Duration, Instant};

use aiobs_core::{InMemoryExporter, Observability, RuntimeMode, SpanOptions, SpanType};

const SECS2: Duration = Duration::from_secs(2);
/// A call that cannot wait must say so at once, not after its deadline.
const AT_ONCE: Duration = Duration::from_millis(200);

fn emit_spans(obs: &Observability, n: usize) {
    for i in 0..n {
        obs.start_span(SpanOptions::new(format!("span-{i}"), SpanType::ToolCall))
            .end();
    }
}

fn on_handle(memory: &InMemoryExporter) -> Observability {
    Observability::builder()
        .exporter(memory.clone())
        .runtime(RuntimeMode::Handle(tokio::runtime::Handle::current()))
        .build()
        .unwrap()
}

/// The third case: `flush_blocking`, `shutdown_blocking` and guard drop
/// on the thread of the current_thread runtime that runs the pipeline.
#[test]
fn blocking_calls_on_the_pipelines_own_current_thread_runtime_answer_at_once_with_the_reason() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let memory = InMemoryExporter::new();
        let obs = on_handle(&memory);
        emit_spans(&obs, 100);

        let start = Instant::now();
        let report = obs.flush_blocking(SECS2);
        assert!(
            start.elapsed() < AT_ONCE,
            "flush_blocking on the pipeline's own thread waited {:?}",
            start.elapsed()
        );
        assert!(!report.completed, "{report}");
        let cause = report.cause.as_deref().unwrap_or_default();
        assert!(
            cause.contains("current_thread"),
            "the report must say why it could not wait: {report}"
        );

        // The pipeline is not wedged: awaiting delivers everything.
        let report = obs.flush(SECS2).await;
        assert!(report.is_success(), "{report}");
        assert_eq!(memory.ended_spans().len(), 100);

        emit_spans(&obs, 10);
        let start = Instant::now();
        drop(obs.guard(SECS2));
        assert!(
            start.elapsed() < AT_ONCE,
            "guard drop on the pipeline's own thread waited {:?}",
            start.elapsed()
        );
        let start = Instant::now();
        let report = obs.shutdown_blocking(SECS2);
        assert!(start.elapsed() < AT_ONCE, "{report}");
        assert!(report.cause.is_some(), "{report}");

        // An awaited shutdown still delivers what is left.
        let report = obs.shutdown(SECS2).await;
        assert!(report.is_success(), "{report}");
        assert_eq!(memory.ended_spans().len(), 110);
    });
}

/// On a multi-thread runtime, the blocking calls work from its worker threads.
#[test]
fn blocking_calls_on_a_multi_thread_runtime_that_runs_the_pipeline_deliver() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let memory = InMemoryExporter::new();
    let m = memory.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let obs = on_handle(&m);
            emit_spans(&obs, 50);
            let report = obs.flush_blocking(SECS2);
            assert!(report.is_success(), "{report}");
            emit_spans(&obs, 5);
            drop(obs.guard(SECS2));
        })
        .await
        .unwrap();
    });
    assert_eq!(memory.ended_spans().len(), 55);
    assert_eq!(memory.shutdown_count(), 1);
}

/// The fourth case: inline mode on a runtime built without timers.
#[test]
fn inline_mode_on_a_runtime_without_timers_flushes_instead_of_panicking() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(memory.clone())
        .inline()
        .build()
        .unwrap();
    emit_spans(&obs, 3);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let flushed = obs.flush(SECS2).await;
            let shut = obs.shutdown(SECS2).await;
            (flushed, shut)
        })
    }));
    let (flushed, shut) = result.expect("flush on a runtime without timers panicked");
    assert!(flushed.is_success(), "{flushed}");
    assert!(shut.is_success(), "{shut}");
    assert_eq!(memory.ended_spans().len(), 3);
}

/// Handle mode on a runtime without timers: the pipeline does not depend on
/// tokio's timers, so it runs.
#[test]
fn handle_mode_on_a_runtime_without_timers_delivers() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(memory.clone())
        .runtime(RuntimeMode::Handle(rt.handle().clone()))
        .build()
        .unwrap();
    emit_spans(&obs, 7);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(obs.flush(SECS2))
    }));
    let report = result.expect("flush on a runtime without timers panicked");
    assert!(report.is_success(), "{report}");
    assert_eq!(memory.ended_spans().len(), 7);
}

/// A flush from any executor, not only tokio's.
#[test]
fn flush_works_from_a_non_tokio_executor() {
    let memory = InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(memory.clone())
        .build()
        .unwrap();
    emit_spans(&obs, 4);
    let report = futures_executor_block_on(obs.flush(SECS2));
    assert!(report.is_success(), "{report}");
    // A deadline on a hung pipeline is enforced without tokio's timers too.
    assert_eq!(memory.ended_spans().len(), 4);
}

/// A minimal executor: polls on this thread, parks between wake-ups.
fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
