//! Isolation: a neighbour exporter that blocks its thread changes nothing
//! for the exporter under test, nor for any caller's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiobs_core::FlushScope;

use super::emit::{emit_trace, emit_traces};
use super::faults::DEADLINE_SLACK;
use super::{Run, Step, Wrapping, check};
use crate::fakes::BlockingExporter;
use crate::instrument::Tuning;

/// How long the neighbour blocks its thread in each call.
const NEIGHBOUR_BLOCKS: Duration = Duration::from_secs(4);
/// How long the exporter under test may take to deliver on its own (its
/// batch wait is 20 ms; the rest is slack for a loaded machine).
const OWN_DELIVERY: Duration = Duration::from_secs(3);

/// Beside a neighbour that blocks its thread for 4 s in every call: the
/// exporter under test delivers on its own batch timer, without any flush;
/// `flush(1s)`, `flush_trace(1s)` and `shutdown(1s)` return on time, report
/// it completed with everything delivered, and name the neighbour as the one
/// that did not complete.
pub(crate) async fn neighbour_blocks(run: &Run<'_>) -> Step {
    let neighbour = BlockingExporter::new(NEIGHBOUR_BLOCKS);
    let pipe = run.pipe_beside(
        Tuning::default(),
        Wrapping::Plain,
        Some(Arc::new(neighbour.clone())),
    )?;
    run.require_spans(&pipe)?;
    let mut expected = emit_traces(&pipe.obs, "neighbour-blocks", 2, 2);
    // 1. Delivery on the exporter's own timer while the neighbour is blocked.
    let events = expected.len() as u64 * pipe.events_per_span();
    let until = Instant::now() + OWN_DELIVERY;
    while pipe.stats().delivered < events && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if neighbour.calls() == 0 {
        run.note("the neighbour had not started blocking when the exporter delivered");
    }
    // (What reaches the destination is checked after the flush: an exporter
    // may hold events in a vendor queue that only its own `flush` sends.)
    check::delivered_count(
        run,
        &pipe,
        events,
        &format!(
            "within {OWN_DELIVERY:?}, without a flush, beside a neighbour blocking its thread"
        ),
    )?;

    // 2. Deadlines: flush, flush_trace, shutdown.
    let deadline = Duration::from_secs(1);
    expected.extend(emit_trace(&pipe.obs, "neighbour-blocks-flush", 2));
    let started = Instant::now();
    let report = pipe.obs.flush(deadline).await;
    on_time(run, "flush", started.elapsed(), deadline)?;
    own_lane_completed(run, &pipe, &report, "flush")?;
    if !report.incomplete().contains(&"blocking-neighbour") {
        return Err(run.fail(format!(
            "expected the report to name the blocked neighbour as incomplete but observed:\n{report}"
        )));
    }
    check::spans_at_destination(
        run,
        &expected,
        &[],
        "after flush beside a blocked neighbour",
    )
    .await?;

    let request = emit_trace(&pipe.obs, "neighbour-blocks-request", 1);
    let started = Instant::now();
    let report = pipe.obs.flush_trace(request[0].trace, deadline).await;
    on_time(run, "flush_trace", started.elapsed(), deadline)?;
    own_lane_completed(run, &pipe, &report, "flush_trace")?;
    let own = report.exporter(&pipe.name).map_or(0, |e| e.delivered);
    let want = request.len() as u64 * pipe.events_per_span();
    if own != want {
        return Err(run.fail(format!(
            "expected flush_trace to report the request's {want} event(s) delivered by `{}` \
             but observed {own}:\n{report}",
            pipe.name
        )));
    }
    // Scoped to the exporter under test, the call is a plain success.
    let more = emit_trace(&pipe.obs, "neighbour-blocks-scoped", 0);
    let scope = FlushScope::trace(more[0].trace).only([pipe.name.clone()]);
    let report = pipe.obs.flush_scoped(scope, deadline).await;
    if !report.is_success() {
        return Err(run.fail(format!(
            "expected a flush scoped to `{}` to succeed beside a blocked neighbour but observed:\n{report}",
            pipe.name
        )));
    }

    let started = Instant::now();
    let report = pipe.obs.shutdown(deadline).await;
    on_time(run, "shutdown", started.elapsed(), deadline)?;
    own_lane_completed(run, &pipe, &report, "shutdown")?;
    check::conserved(run, &pipe, "after shutdown beside a blocked neighbour")?;
    if pipe.log.shutdowns() != 1 {
        return Err(run.fail(format!(
            "expected the exporter's shutdown() called once beside a blocked neighbour but observed {}",
            pipe.log.shutdowns()
        )));
    }
    Ok(())
}

fn on_time(run: &Run<'_>, what: &str, took: Duration, deadline: Duration) -> Step {
    if took > deadline + DEADLINE_SLACK {
        return Err(run.fail(format!(
            "expected {what}({deadline:?}) beside a neighbour blocking its thread to return within \
             {:?} but observed {took:?}",
            deadline + DEADLINE_SLACK
        )));
    }
    Ok(())
}

fn own_lane_completed(
    run: &Run<'_>,
    pipe: &super::Pipe,
    report: &aiobs_core::FlushReport,
    what: &str,
) -> Step {
    match report.exporter(&pipe.name) {
        Some(e) if e.completed && e.pending == 0 && e.failed.is_empty() && e.dropped.is_empty() => {
            Ok(())
        }
        _ => Err(run.fail(format!(
            "expected {what} beside a blocked neighbour to report `{}` completed with nothing \
             pending or lost but observed:\n{report}",
            pipe.name
        ))),
    }
}
