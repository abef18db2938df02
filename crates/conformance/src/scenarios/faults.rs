//! Faults at the destination: transient, permanent, throttled, partial, hung.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use aiobs_core::{DropReason, ErrorClass};

use super::emit::{ExpectedSpan, emit_trace, emit_traces};
use super::{Fault, Run, Step, check};
use crate::instrument::{CallRecord, CallResult, Tuning};

const FLUSH: Duration = Duration::from_secs(10);
/// How late past its deadline a flush may return.
pub(crate) const DEADLINE_SLACK: Duration = Duration::from_millis(250);

fn result_of(calls: &[CallRecord], i: usize) -> String {
    calls
        .get(i)
        .map_or_else(|| "no such call".into(), |c| format!("{:?}", c.result))
}

/// 503, a reset, 503 again, then success: everything delivered once, each
/// failure classified retryable, attempts and retries counted.
pub(crate) async fn transient_errors(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let faults = [Fault::ServerError, Fault::Reset, Fault::ServerError];
    run.inject(&pipe, &faults);
    let expected = emit_traces(&pipe.obs, "transient", 3, 2);
    let report = pipe.obs.flush(FLUSH).await;
    let calls = pipe.log.calls();
    for (i, fault) in faults.iter().enumerate() {
        let retryable = matches!(
            calls.get(i).map(|c| &c.result),
            Some(CallResult::Err(class, _)) if class.is_retryable()
        );
        if !retryable {
            return Err(run.fail(format!(
                "expected export attempt #{} (answered with {}) to fail with a retryable error \
                 (Transient) but observed {}",
                i + 1,
                fault.describe(run.kind()),
                result_of(&calls, i)
            )));
        }
    }
    check::flushed(run, &pipe, &report, "after flush")?;
    check::no_losses(run, &pipe, "after flush")?;
    let s = pipe.stats();
    if s.retries < 3 || s.attempts < 4 {
        return Err(run.fail(format!(
            "expected at least 4 attempts and 3 retries counted but observed attempts {} retries {}",
            s.attempts, s.retries
        )));
    }
    check::delivered_count(
        run,
        &pipe,
        expected.len() as u64 * pipe.events_per_span(),
        "after flush",
    )?;
    check::spans_at_destination(run, &expected, &[], "after the retries").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}

/// A 400: the batch is counted failed (`permanent_error`), never retried, and
/// the exporter goes on delivering later events.
pub(crate) async fn permanent_errors(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    run.inject(&pipe, &[Fault::Permanent]);
    let first = emit_traces(&pipe.obs, "permanent", 2, 2);
    let report = pipe.obs.flush(FLUSH).await;
    let calls = pipe.log.calls();
    let Some(CallRecord {
        result: CallResult::Err(ErrorClass::Permanent, _),
        items: refused,
        ..
    }) = calls.first()
    else {
        return Err(run.fail(format!(
            "expected the first export (answered with {}) to fail with a Permanent error but observed {}",
            Fault::Permanent.describe(run.kind()),
            result_of(&calls, 0)
        )));
    };
    if !report.completed || report.pending() > 0 {
        return Err(run.fail(format!(
            "expected the flush to complete with nothing pending after a permanent error but observed:\n{report}"
        )));
    }
    check::conserved(run, &pipe, "after flush")?;
    let s = pipe.stats();
    let failed = s.lost(DropReason::PermanentError);
    if failed != refused.len() as u64 {
        return Err(run.fail(format!(
            "expected the {} events of the refused batch counted failed (permanent_error) but observed {failed} \
             (failed {:?}, dropped {:?})",
            refused.len(),
            s.failed,
            s.dropped
        )));
    }
    if s.retries > 0 {
        return Err(run.fail(format!(
            "expected no retry after a permanent error but observed {} retries",
            s.retries
        )));
    }
    let resent: Vec<&String> = calls
        .iter()
        .skip(1)
        .flat_map(|c| c.items.iter())
        .filter(|id| refused.contains(id))
        .collect();
    if !resent.is_empty() {
        return Err(run.fail(format!(
            "expected the refused events never sent again but observed {} re-sent, e.g. {}",
            resent.len(),
            resent[0]
        )));
    }
    let (gone, kept): (Vec<ExpectedSpan>, Vec<ExpectedSpan>) = first
        .into_iter()
        .partition(|e| refused.contains(&e.ended_identity()));
    check::spans_at_destination(run, &kept, &gone, "after a permanent error").await?;

    // The exporter must still work.
    let later = emit_trace(&pipe.obs, "permanent-after", 2);
    let report = pipe.obs.flush(FLUSH).await;
    check::flushed(run, &pipe, &report, "after a later flush")?;
    if pipe.stats().disabled {
        return Err(run.fail(
            "expected the exporter to keep working after a permanent error but observed it disabled",
        ));
    }
    check::spans_at_destination(run, &later, &[], "after a later flush").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::conserved(run, &pipe, "after shutdown")?;
    if report.pending() > 0 {
        return Err(run.fail(format!(
            "expected nothing pending after shutdown but observed:\n{report}"
        )));
    }
    Ok(())
}

/// `429` + `Retry-After: 1`: the retry waits about a second. Then a
/// `Retry-After: 30`: a flush with a 600 ms deadline returns on time
/// reporting what is pending, and a later flush delivers it.
pub(crate) async fn throttled(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let fault = Fault::Throttled(Duration::from_secs(1));
    run.inject(&pipe, &[fault]);
    let first = emit_trace(&pipe.obs, "throttled", 2);
    let report = pipe.obs.flush(FLUSH).await;
    let calls = pipe.log.calls();
    match calls.first().map(|c| &c.result) {
        Some(CallResult::Err(ErrorClass::Throttled(Some(after)), _))
            if *after >= Duration::from_millis(900) => {}
        _ => {
            return Err(run.fail(format!(
                "expected the first export (answered with {}) to fail as Throttled(Some(1s)) but observed {}",
                fault.describe(run.kind()),
                result_of(&calls, 0)
            )));
        }
    }
    let gap = match (calls.first(), calls.get(1)) {
        (Some(a), Some(b)) => b.started.duration_since(a.started),
        _ => Duration::ZERO,
    };
    if gap < Duration::from_millis(900) {
        return Err(run.fail(format!(
            "expected the retry to wait for Retry-After (1 s) but observed it after {gap:?} ({} attempts)",
            calls.len()
        )));
    }
    check::flushed(run, &pipe, &report, "after the throttled retry")?;
    check::no_losses(run, &pipe, "after the throttled retry")?;
    check::spans_at_destination(run, &first, &[], "after the throttled retry").await?;

    // A long Retry-After is cut by the flush deadline.
    let long = Fault::Throttled(Duration::from_secs(30));
    run.inject(&pipe, &[long]);
    let second = emit_trace(&pipe.obs, "throttled-long", 1);
    let deadline = Duration::from_millis(600);
    let started = Instant::now();
    let report = pipe.obs.flush(deadline).await;
    let took = started.elapsed();
    if took > deadline + DEADLINE_SLACK {
        return Err(run.fail(format!(
            "expected flush({deadline:?}) during a Retry-After of 30 s to return within {:?} but observed {took:?}",
            deadline + DEADLINE_SLACK
        )));
    }
    if report.completed || report.pending() == 0 {
        return Err(run.fail(format!(
            "expected flush({deadline:?}) during a Retry-After of 30 s to report incomplete with events \
             pending but observed:\n{report}"
        )));
    }
    check::conserved(run, &pipe, "while throttled")?;
    let report = pipe.obs.flush(FLUSH).await;
    check::flushed(run, &pipe, &report, "after the long throttle")?;
    check::no_losses(run, &pipe, "after the long throttle")?;
    check::spans_at_destination(run, &second, &[], "after the long throttle").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}

/// A partial success: two items refused with a retryable per-item status
/// (500), two with a permanent one (400). Only the refused items are sent
/// again, only the permanent ones are counted failed.
pub(crate) async fn partial_acceptance(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    // Decide what to refuse before emitting: the ids are known once the spans start.
    let expected = emit_partial_trace(run, &pipe)?;
    let report = pipe.obs.flush(FLUSH).await;
    check::flushed(run, &pipe, &report, "after flush")?;
    let retry: HashSet<String> = expected[1..3]
        .iter()
        .map(ExpectedSpan::ended_identity)
        .collect();
    let perm: HashSet<String> = expected[3..5]
        .iter()
        .map(ExpectedSpan::ended_identity)
        .collect();
    let refused = run.refused_ids();
    if refused.len() != 4 {
        return Err(run.fail(format!(
            "expected the destination to refuse 4 items but observed it refused {} (the exporter may \
             not have sent them)",
            refused.len()
        )));
    }
    let calls = pipe.log.calls();
    // The call that carried the refusals reports them with the right classes.
    let mut reported: HashMap<String, ErrorClass> = HashMap::new();
    for c in &calls {
        if let CallResult::Ok(rejected) = &c.result {
            for (i, class) in rejected {
                if let Some(id) = c.items.get(*i) {
                    reported.insert(id.clone(), *class);
                }
            }
        }
    }
    for id in retry.iter().chain(perm.iter()) {
        let want_retry = retry.contains(id);
        match reported.get(id) {
            Some(class) if class.is_retryable() == want_retry => {}
            other => {
                return Err(run.fail(format!(
                    "expected item {id} (refused with per-item status {}) reported as a {} rejection \
                     but observed {}",
                    if want_retry { 500 } else { 400 },
                    if want_retry { "retryable" } else { "permanent" },
                    other.map_or("no rejection (counted delivered)".into(), |c| format!("{c:?}"))
                )));
            }
        }
    }
    // Only the retryable items were sent again.
    let resent: HashSet<&str> = calls
        .iter()
        .filter(|c| c.items.iter().any(|i| retry.contains(i)))
        .skip(1)
        .flat_map(|c| c.items.iter().map(String::as_str))
        .collect();
    let wanted: HashSet<&str> = retry.iter().map(String::as_str).collect();
    if resent != wanted {
        let mut extra: Vec<&&str> = resent.difference(&wanted).collect();
        extra.sort();
        return Err(run.fail(format!(
            "expected only the 2 retryable items re-sent but observed the retry carry {} item(s), \
             e.g. {:?}",
            resent.len(),
            extra.first().or(resent.iter().next().as_ref())
        )));
    }
    let s = pipe.stats();
    if s.lost(DropReason::PermanentError) != 2 || s.failed_total() != 2 || s.dropped_total() != 0 {
        return Err(run.fail(format!(
            "expected exactly the 2 permanently refused items counted failed but observed failed {:?} dropped {:?}",
            s.failed, s.dropped
        )));
    }
    let total = expected.len() as u64 * pipe.events_per_span();
    check::delivered_count(run, &pipe, total - 2, "after flush")?;
    let (gone, kept): (Vec<ExpectedSpan>, Vec<ExpectedSpan>) = expected
        .into_iter()
        .partition(|e| perm.contains(&e.ended_identity()));
    check::spans_at_destination(run, &kept, &gone, "after the partial success").await?;
    let report = pipe.obs.shutdown(FLUSH).await;
    check::conserved(run, &pipe, "after shutdown")?;
    if report.pending() > 0 {
        return Err(run.fail(format!(
            "expected nothing pending after shutdown but observed:\n{report}"
        )));
    }
    Ok(())
}

/// One trace of a root and six children; children 1-2 (expected[1..3]) are
/// refused with 500, children 3-4 (expected[3..5]) with 400.
fn emit_partial_trace(run: &Run<'_>, pipe: &super::Pipe) -> Step<Vec<ExpectedSpan>> {
    use aiobs_core::{SpanOptions, SpanType};
    let mut root = pipe
        .obs
        .start_span(SpanOptions::new("partial", SpanType::AgentRun).input("partial"));
    let mut expected = vec![ExpectedSpan::of(&root, None, "partial")];
    let mut children = Vec::new();
    for i in 0..6 {
        let name = format!("partial/child-{i}");
        let child = root.child(SpanOptions::new(name.clone(), SpanType::ToolCall));
        expected.push(ExpectedSpan::of(&child, Some(&root), &name));
        children.push(child);
    }
    let mut refuse = HashMap::new();
    for e in &expected[1..3] {
        refuse.insert(e.id.to_string(), 500);
    }
    for e in &expected[3..5] {
        refuse.insert(e.id.to_string(), 400);
    }
    run.refuse_items(refuse)?;
    for mut c in children {
        c.end();
    }
    root.end();
    Ok(expected)
}

/// A destination that never answers. Flush returns on time with pending
/// reported; the hung call is abandoned (attempt timeout) and the events are
/// delivered once the destination answers again. Shutdown during a hang
/// returns on time, counts what it could not deliver, and leaves no export
/// call running.
pub(crate) async fn hung_destination(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    run.inject(&pipe, &[Fault::Hang]);
    let expected = emit_traces(&pipe.obs, "hung", 2, 1);
    let deadline = Duration::from_millis(500);
    let started = Instant::now();
    let report = pipe.obs.flush(deadline).await;
    let took = started.elapsed();
    if took > deadline + DEADLINE_SLACK {
        return Err(run.fail(format!(
            "expected flush({deadline:?}) on a hung destination to return within {:?} but observed {took:?}",
            deadline + DEADLINE_SLACK
        )));
    }
    if report.completed || report.pending() == 0 {
        return Err(run.fail(format!(
            "expected flush({deadline:?}) on a hung destination to report incomplete with events pending \
             but observed:\n{report}"
        )));
    }
    check::conserved(run, &pipe, "while the destination hangs")?;
    // The destination answers again; the hung call must be given up and retried.
    let report = pipe.obs.flush(FLUSH).await;
    check::flushed(run, &pipe, &report, "after the destination recovered")?;
    check::no_losses(run, &pipe, "after the destination recovered")?;
    let calls = pipe.log.calls();
    let abandoned = match calls.first().map(|c| &c.result) {
        // Dropped by the pipeline at its attempt timeout, or timed out by the exporter itself.
        Some(CallResult::Cancelled) => true,
        Some(CallResult::Err(class, _)) => class.is_retryable(),
        _ => false,
    };
    if !abandoned {
        return Err(run.fail(format!(
            "expected the hung export call abandoned (dropped at the attempt timeout, or timed out \
             as a retryable error) but observed {}",
            result_of(&calls, 0)
        )));
    }
    check::spans_at_destination(run, &expected, &[], "after the destination recovered").await?;

    // Shutdown while the destination hangs.
    run.inject(&pipe, &[Fault::Hang]);
    let stuck = emit_trace(&pipe.obs, "hung-at-shutdown", 0);
    let started = Instant::now();
    let report = pipe.obs.shutdown(deadline).await;
    let took = started.elapsed();
    if took > deadline + DEADLINE_SLACK {
        return Err(run.fail(format!(
            "expected shutdown({deadline:?}) on a hung destination to return within {:?} but observed {took:?}",
            deadline + DEADLINE_SLACK
        )));
    }
    check::conserved(run, &pipe, "after shutdown on a hung destination")?;
    let s = pipe.stats();
    let stuck_events = stuck.len() as u64 * pipe.events_per_span();
    if s.pending != 0 || s.lost(DropReason::FlushTimeout) != stuck_events {
        return Err(run.fail(format!(
            "expected the {stuck_events} event(s) of span {} counted flush_timeout after shutdown \
             but observed pending {} failed {:?} dropped {:?}\n{report}",
            stuck[0].id, s.pending, s.failed, s.dropped
        )));
    }
    let running = pipe.log.settle(Duration::from_secs(1)).await;
    if running > 0 {
        return Err(run.fail(format!(
            "expected no export call still running 1 s after shutdown returned but observed {running}: \
             the hung request leaked"
        )));
    }
    Ok(())
}
