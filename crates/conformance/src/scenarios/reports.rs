//! Per-caller reports: concurrent requests flushing their own traces while
//! others flush everything, after the exporter's queue overflowed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aiobs_core::{FlushReport, TraceId};

use super::emit::{ExpectedSpan, emit_trace, span_identity};
use super::{Run, Step, check};
use crate::instrument::Tuning;

const REQUESTS: usize = 12;
const GLOBAL_FLUSHERS: usize = 3;
const QUEUE: usize = 8;
const FLUSH: Duration = Duration::from_secs(10);

/// With the exporter's queue bounded to 8 events and its destination held
/// back, 12 requests emit a trace of 4 spans each: some events are admitted,
/// the rest dropped (`queue_full`). Then, all at once, each request calls
/// `flush_trace` for its own trace and 3 other tasks call `flush`. Each
/// request's report must count exactly its own events — as many delivered as
/// the destination acknowledged of that trace, the rest lost — and say
/// `is_success()` only if all of them arrived; the global reports together
/// must count every loss exactly once.
pub(crate) async fn concurrent_flushers(run: &Run<'_>) -> Step {
    let tuning = Tuning {
        queue_capacity: Some(QUEUE),
        ..Tuning::default()
    };
    let pipe = run.pipe(tuning)?;
    run.require_spans(&pipe)?;
    pipe.log.close_gate();
    let mut requests: Vec<(TraceId, Vec<ExpectedSpan>)> = Vec::new();
    for i in 0..REQUESTS {
        let spans = emit_trace(&pipe.obs, &format!("concurrent-flushers-{i}"), 2);
        requests.push((spans[0].trace, spans));
    }
    let events = requests.iter().map(|(_, s)| s.len() as u64).sum::<u64>() * pipe.events_per_span();
    let until = Instant::now() + Duration::from_secs(5);
    while pipe.stats().accepted < events && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pipe.log.open_gate();

    let mut tasks = Vec::new();
    for (trace, _) in &requests {
        let obs = pipe.obs.clone();
        let trace = *trace;
        tasks.push(tokio::spawn(async move {
            (Some(trace), obs.flush_trace(trace, FLUSH).await)
        }));
    }
    for _ in 0..GLOBAL_FLUSHERS {
        let obs = pipe.obs.clone();
        tasks.push(tokio::spawn(async move { (None, obs.flush(FLUSH).await) }));
    }
    let mut per_trace: HashMap<TraceId, FlushReport> = HashMap::new();
    let mut global = Vec::new();
    for t in tasks {
        match t.await {
            Ok((Some(trace), r)) => {
                per_trace.insert(trace, r);
            }
            Ok((None, r)) => global.push(r),
            Err(e) => {
                return Err(run.fail(format!(
                    "expected every flushing task to finish but observed: {e}"
                )));
            }
        }
    }
    check::conserved(run, &pipe, "after the concurrent flushes")?;

    // What the destination acknowledged, per trace.
    let trace_of: HashMap<String, TraceId> = requests
        .iter()
        .flat_map(|(t, spans)| spans.iter().map(move |s| (s.id.to_string(), *t)))
        .collect();
    let mut acked: HashMap<TraceId, u64> = HashMap::new();
    for call in pipe.log.calls() {
        for identity in call.delivered() {
            if let Some(trace) = span_identity(identity).and_then(|(id, _)| trace_of.get(&id)) {
                *acked.entry(*trace).or_default() += 1;
            }
        }
    }
    let mut lossy = 0;
    for (trace, spans) in &requests {
        let per_request = spans.len() as u64 * pipe.events_per_span();
        let Some(report) = per_trace.get(trace) else {
            continue;
        };
        let arrived = acked.get(trace).copied().unwrap_or(0);
        let own = report.exporter(&pipe.name);
        let delivered = own.map_or(0, |e| e.delivered);
        let who = format!(
            "request `{}` (trace {trace})",
            spans.first().map_or("?", |s| s.name.as_str())
        );
        if !report.completed || delivered != arrived || delivered + report.lost() != per_request {
            return Err(run.fail(format!(
                "{who}: expected its flush_trace report to count its {per_request} event(s) — \
                 {arrived} delivered (as the destination acknowledged), the rest lost — but observed \
                 delivered {delivered}, lost {}:\n{report}",
                report.lost()
            )));
        }
        if report.is_success() != (arrived == per_request) {
            return Err(run.fail(format!(
                "{who}: expected is_success() to be {} ({arrived} of its {per_request} event(s) \
                 arrived) but observed {}:\n{report}",
                arrived == per_request,
                report.is_success()
            )));
        }
        lossy += usize::from(arrived < per_request);
    }
    let s = pipe.stats();
    let global_lost: u64 = global.iter().map(FlushReport::lost).sum();
    if global_lost != s.failed_total() + s.dropped_total() {
        return Err(run.fail(format!(
            "expected the {GLOBAL_FLUSHERS} concurrent global flushes to report every loss once \
             ({} in stats) but observed {global_lost} in total",
            s.failed_total() + s.dropped_total()
        )));
    }
    if lossy == 0 {
        run.note("no request lost events (the queue did not overflow): losses were not exercised");
    }
    let report = pipe.obs.shutdown(FLUSH).await;
    check::conserved(run, &pipe, "after shutdown")?;
    if report.pending() > 0 {
        return Err(run.fail(format!(
            "expected nothing pending after shutdown but observed:\n{report}"
        )));
    }
    Ok(())
}
