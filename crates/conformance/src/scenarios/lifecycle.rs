//! Shutdown with nothing, shutdown twice, events after shutdown, shutdown delivers.

use std::time::{Duration, Instant};

use aiobs_core::DropReason;

use super::emit::{emit_trace, emit_traces};
use super::{Run, Step, check};
use crate::instrument::Tuning;

const DEADLINE: Duration = Duration::from_secs(10);
/// A second shutdown, or a flush after shutdown, answers from the first report.
const PROMPT: Duration = Duration::from_millis(500);

pub(crate) async fn lifecycle(run: &Run<'_>) -> Step {
    // 1. Shutdown with nothing emitted.
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let report = pipe.obs.shutdown(DEADLINE).await;
    if !report.is_success() {
        return Err(run.fail(format!(
            "expected shutdown with nothing emitted to succeed but observed:\n{report}"
        )));
    }
    if pipe.log.shutdowns() != 1 || !pipe.log.calls().is_empty() {
        return Err(run.fail(format!(
            "expected one exporter shutdown() and no export call but observed {} shutdown(s) and {} export(s)",
            pipe.log.shutdowns(),
            pipe.log.calls().len()
        )));
    }

    // 2. Shutdown twice: the second answers at once and does not shut the exporter down again.
    let started = Instant::now();
    let again = pipe.obs.shutdown(DEADLINE).await;
    if started.elapsed() > PROMPT || !again.completed {
        return Err(run.fail(format!(
            "expected a second shutdown to return the first report at once but observed it after {:?}:\n{again}",
            started.elapsed()
        )));
    }
    if pipe.log.shutdowns() != 1 {
        return Err(run.fail(format!(
            "expected the exporter's shutdown() called once after two shutdowns but observed {}",
            pipe.log.shutdowns()
        )));
    }

    // 3. Events after shutdown are counted, never exported.
    let late = emit_trace(&pipe.obs, "after-shutdown", 1);
    let started = Instant::now();
    let report = pipe.obs.flush(DEADLINE).await;
    if started.elapsed() > PROMPT || !report.completed {
        return Err(run.fail(format!(
            "expected a flush after shutdown to return at once but observed it after {:?}:\n{report}",
            started.elapsed()
        )));
    }
    check::conserved(run, &pipe, "after events emitted after shutdown")?;
    let p = pipe.obs.stats().pipeline;
    let late_events = late.len() as u64 * pipe.events_per_span();
    let counted = p
        .dropped
        .get(&DropReason::AfterShutdown)
        .copied()
        .unwrap_or(0);
    if counted != late_events || p.pending != 0 {
        return Err(run.fail(format!(
            "expected the {late_events} event(s) of spans {} and {} emitted after shutdown counted \
             after_shutdown but observed after_shutdown {counted}, pending {} (dropped {:?})",
            late[0].id, late[1].id, p.pending, p.dropped
        )));
    }
    if pipe.log.exports_after_shutdown() > 0 || !pipe.log.calls().is_empty() {
        return Err(run.fail(format!(
            "expected no export after shutdown but observed {} export call(s)",
            pipe.log.calls().len()
        )));
    }
    check::spans_at_destination(run, &[], &late, "after shutdown").await?;

    // 4. Shutdown alone (no flush first) delivers everything emitted before it.
    let pipe = run.pipe(Tuning {
        max_wait: Duration::from_secs(3600),
        ..Tuning::default()
    })?;
    let expected = emit_traces(&pipe.obs, "lifecycle", 2, 2);
    let report = pipe.obs.shutdown(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after shutdown without flush")?;
    check::no_losses(run, &pipe, "after shutdown without flush")?;
    check::spans_at_destination(run, &expected, &[], "after shutdown without flush").await?;
    if pipe.log.shutdowns() != 1 {
        return Err(run.fail(format!(
            "expected the exporter's shutdown() called once but observed {}",
            pipe.log.shutdowns()
        )));
    }
    if pipe.log.exports_after_shutdown() > 0 {
        return Err(run.fail(format!(
            "expected every export before the exporter's shutdown() but observed {} after it",
            pipe.log.exports_after_shutdown()
        )));
    }
    Ok(())
}
