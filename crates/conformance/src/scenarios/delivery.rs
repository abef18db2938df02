//! Delivery when nothing goes wrong: always-succeed, flush-drains, concurrency.

use std::time::Duration;

use aiobs_core::{
    FeedbackRecord, LogLevel, LogRecord, MetricKind, MetricRecord, ScoreRecord, Signal,
};

use super::emit::{ExpectedSpan, emit_trace, emit_traces};
use super::{Run, Step, Wrapping, check};
use crate::harness::ItemKind;
use crate::instrument::Tuning;

const FLUSH: Duration = Duration::from_secs(10);

/// Every span (and record, for exporters that take them) delivered exactly
/// once, payloads and parents intact, nothing lost.
pub(crate) async fn always_succeed(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let expected = emit_traces(&pipe.obs, "always-succeed", 4, 3);
    let mut records = Vec::new();
    let root = &expected[0];
    if pipe.signals.contains(Signal::Log) {
        let log =
            LogRecord::new(LogLevel::Info, "conformance log line").in_span(root.trace, root.id);
        records.push((ItemKind::Log, log.id.clone()));
        pipe.obs.log(log);
    }
    if pipe.signals.contains(Signal::Metric) {
        let mut metric = MetricRecord::new("conformance.latency_ms", MetricKind::Histogram, 12.5);
        metric.trace_id = Some(root.trace);
        records.push((ItemKind::Metric, metric.id.clone()));
        pipe.obs.metric(metric);
    }
    if pipe.signals.contains(Signal::Score) {
        let score = ScoreRecord::new(root.trace, "relevance", 0.9).on_span(root.id);
        records.push((ItemKind::Score, score.id.clone()));
        pipe.obs.score(score);
    }
    if pipe.signals.contains(Signal::Feedback) {
        let feedback = FeedbackRecord::new(root.trace, "thumbs", 1);
        records.push((ItemKind::Feedback, feedback.id.clone()));
        pipe.obs.feedback(feedback);
    }
    let report = pipe.obs.flush(FLUSH).await;
    check::flushed(run, &pipe, &report, "after flush")?;
    check::no_losses(run, &pipe, "after flush")?;
    let events = expected.len() as u64 * pipe.events_per_span() + records.len() as u64;
    check::delivered_count(run, &pipe, events, "after flush")?;
    check::spans_at_destination(run, &expected, &[], "after flush").await?;
    check::records_at_destination(run, &records, "after flush").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}

/// Flush exports what waits for its batch (the batch wait is an hour here),
/// calls the exporter's own flush, and does so through `Arc` and
/// `Box<dyn Exporter>` as well.
pub(crate) async fn flush_drains(run: &Run<'_>) -> Step {
    let tuning = Tuning {
        max_wait: Duration::from_secs(3600),
        ..Tuning::default()
    };
    for wrapping in [Wrapping::Plain, Wrapping::Arc, Wrapping::BoxDyn] {
        let label = match wrapping {
            Wrapping::Plain => "plain",
            Wrapping::Arc => "Arc<E>",
            Wrapping::BoxDyn => "Box<dyn Exporter>",
        };
        let when = format!("through {label}, right after flush returned");
        let pipe = run.pipe_wrapped(tuning, wrapping)?;
        run.require_spans(&pipe)?;
        let expected = emit_traces(&pipe.obs, &format!("flush-drains-{label}"), 3, 2);
        let report = pipe.obs.flush(FLUSH).await;
        check::flushed(run, &pipe, &report, &when)?;
        if pipe.log.flushes() == 0 {
            return Err(run.fail(format!(
                "{when}: expected the exporter's own flush() to be called but observed 0 calls"
            )));
        }
        check::no_losses(run, &pipe, &when)?;
        check::delivered_count(
            run,
            &pipe,
            expected.len() as u64 * pipe.events_per_span(),
            &when,
        )?;
        // Read at once: a destination that only receives later was not flushed.
        check::spans_at_destination(run, &expected, &[], &when).await?;
        let report = pipe.obs.shutdown(FLUSH).await;
        check::flushed(
            run,
            &pipe,
            &report,
            &format!("through {label}, after shutdown"),
        )?;
        if pipe.log.shutdowns() != 1 {
            return Err(run.fail(format!(
                "through {label}: expected the exporter's shutdown() called once but observed {} calls",
                pipe.log.shutdowns()
            )));
        }
    }
    Ok(())
}

/// Tasks emitting at once.
const TASKS: usize = 64;
/// Traces per task.
const TRACES_PER_TASK: usize = 6;

/// 64 tasks × 6 traces × 4 spans at once: every span delivered exactly once.
pub(crate) async fn concurrency(run: &Run<'_>) -> Step {
    let tuning = Tuning {
        queue_capacity: Some(1 << 20),
        ..Tuning::default()
    };
    let pipe = run.pipe(tuning)?;
    run.require_spans(&pipe)?;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let obs = pipe.obs.clone();
        tasks.push(tokio::spawn(async move {
            let mut expected: Vec<ExpectedSpan> = Vec::new();
            for i in 0..TRACES_PER_TASK {
                expected.extend(emit_trace(&obs, &format!("concurrency-{t}-{i}"), 2));
                tokio::task::yield_now().await;
            }
            expected
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        match t.await {
            Ok(e) => expected.extend(e),
            Err(e) => {
                return Err(run.fail(format!(
                    "expected every emitting task to finish but observed: {e}"
                )));
            }
        }
    }
    let report = pipe.obs.flush(Duration::from_secs(30)).await;
    check::flushed(run, &pipe, &report, "after flush")?;
    check::no_losses(run, &pipe, "after flush")?;
    check::delivered_count(
        run,
        &pipe,
        expected.len() as u64 * pipe.events_per_span(),
        "after flush",
    )?;
    check::spans_at_destination(run, &expected, &[], "after flush").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}
