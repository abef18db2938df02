//! A full exporter queue: exact accounting.

use std::time::{Duration, Instant};

use aiobs_core::DropReason;

use super::emit::{ExpectedSpan, emit_trace};
use super::{Run, Step, check};
use crate::instrument::Tuning;

const CAPACITY: usize = 8;
const SPANS: usize = 20;

/// With the exporter's queue bounded to 8 events and its destination held
/// back, 20 single-span traces: exactly 8 events admitted (and later
/// delivered), the rest counted `queue_full`, and the destination holds
/// exactly the admitted spans.
pub(crate) async fn queue_full(run: &Run<'_>) -> Step {
    let tuning = Tuning {
        queue_capacity: Some(CAPACITY),
        ..Tuning::default()
    };
    let pipe = run.pipe(tuning)?;
    run.require_spans(&pipe)?;
    pipe.log.close_gate();
    let expected: Vec<ExpectedSpan> = (0..SPANS)
        .flat_map(|i| emit_trace(&pipe.obs, &format!("queue-full-{i}"), 0))
        .collect();
    let events = SPANS as u64 * pipe.events_per_span();
    // Wait until the router handed every event to the exporter's queue.
    let until = Instant::now() + Duration::from_secs(5);
    while pipe.stats().accepted < events && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = pipe.stats();
    let refused = events.saturating_sub(CAPACITY as u64);
    if s.accepted != events
        || s.lost(DropReason::QueueFull) != refused
        || s.pending != CAPACITY as u64
    {
        pipe.log.open_gate();
        return Err(run.fail(format!(
            "with a queue of {CAPACITY} and {events} events, expected accepted {events}, queue_full {refused}, \
             pending {CAPACITY} but observed accepted {}, queue_full {}, pending {} (dropped {:?})",
            s.accepted,
            s.lost(DropReason::QueueFull),
            s.pending,
            s.dropped
        )));
    }
    check::conserved(run, &pipe, "while the queue is full")?;
    pipe.log.open_gate();
    let report = pipe.obs.flush(Duration::from_secs(10)).await;
    if !report.completed || report.pending() > 0 {
        return Err(run.fail(format!(
            "expected the flush to complete with nothing pending once the destination answered but observed:\n{report}"
        )));
    }
    check::conserved(run, &pipe, "after flush")?;
    check::delivered_count(run, &pipe, CAPACITY as u64, "after flush")?;
    let s = pipe.stats();
    if s.failed_total() > 0 || s.dropped_total() != refused {
        return Err(run.fail(format!(
            "expected only the {refused} queue_full drops but observed failed {:?} dropped {:?}",
            s.failed, s.dropped
        )));
    }
    // The destination holds exactly the spans whose end was admitted.
    let admitted: Vec<String> = pipe
        .log
        .calls()
        .iter()
        .flat_map(|c| {
            c.delivered()
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let (kept, gone): (Vec<ExpectedSpan>, Vec<ExpectedSpan>) = expected
        .into_iter()
        .partition(|e| admitted.contains(&e.ended_identity()));
    check::spans_at_destination(run, &kept, &gone, "after flush").await?;
    let report = pipe.obs.shutdown(Duration::from_secs(10)).await;
    check::conserved(run, &pipe, "after shutdown")?;
    if report.pending() > 0 {
        return Err(run.fail(format!(
            "expected nothing pending after shutdown but observed:\n{report}"
        )));
    }
    Ok(())
}
