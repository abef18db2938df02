//! Turning a barrier and the ledgers into the caller's [`FlushReport`].

use std::collections::BTreeMap;
use std::time::Instant;

use super::Core;
use super::barrier::{Barrier, LaneResult, Placement};
use super::ledger::{Taken, Tally};
use crate::stats::{Coverage, DropReason, ExporterFlushReport, FlushReport, FlushScope};

/// The report of a barrier whose wait is over. Takes the barrier's accounts
/// (and carried ones) out of the ledgers: call it once per barrier.
pub(crate) fn assemble(core: &Core, b: &Barrier, scope: FlushScope, start: Instant) -> FlushReport {
    let (pipeline, totals) = core.stats();
    let now = Instant::now();
    let (placed, lanes) = {
        let mut s = b.state();
        let placed = match std::mem::replace(&mut s.placement, Placement::Reported) {
            Placement::Placed(p) => Some(p),
            _ => {
                // Not reached in time: the router will skip it, and its
                // events belong to the next barrier.
                s.placement = Placement::Abandoned;
                None
            }
        };
        (placed, s.lanes.clone())
    };
    let mut exporters = Vec::new();
    for slot in core.slots.iter().filter(|s| b.in_scope(s.index)) {
        let i = slot.index;
        let stats = totals[i].clone();
        let (taken, coverage_ok) = match &placed {
            None => (
                Taken {
                    outcomes: Tally::default(),
                    pending: stats.pending,
                },
                false,
            ),
            Some(p) => {
                let own = p.accounts.get(i).cloned().flatten();
                let own = own.as_ref().map(|a| (a, a.tally()));
                let seq = p.seqs.get(i).copied().unwrap_or(0);
                let taken = match b.trace {
                    None => core.global.report(i, seq, own),
                    Some(t) => core.traces.report(t, i, seq, own),
                };
                (taken, true)
            }
        };
        let result = lanes.get(i).cloned().unwrap_or(LaneResult::Stopped);
        let flush_error = match &result {
            LaneResult::Passed { flush_error, .. } => flush_error.clone(),
            _ => None,
        };
        let completed = coverage_ok
            && taken.pending == 0
            && matches!(
                result,
                LaneResult::Passed {
                    flush_error: None,
                    timed_out: false
                }
            );
        let cause = (!completed).then(|| cause(core, b, i, &result, placed.is_some(), &taken, now));
        let (failed, dropped) = split(taken.outcomes.lost);
        exporters.push(ExporterFlushReport {
            name: slot.name.clone(),
            delivered: taken.outcomes.delivered,
            failed,
            dropped,
            pending: taken.pending,
            completed,
            flush_error,
            cause,
            totals: stats,
        });
    }
    let (pipeline_dropped, pipeline_pending, coverage) = match &placed {
        None => (
            BTreeMap::new(),
            pipeline.pending,
            Coverage::BarrierNotReached,
        ),
        Some(p) => match b.trace {
            None => (p.pipeline_lost.clone(), 0, Coverage::Exact),
            Some(t) => {
                let lane = core.traces.pipeline_lane();
                let own = p.accounts.get(lane).cloned().flatten();
                let own = own.as_ref().map(|a| (a, a.tally()));
                let seq = p.seqs.first().copied().unwrap_or(0);
                let taken = core.traces.report(t, lane, seq, own);
                let coverage = if !core.traces.is_enabled() {
                    Coverage::TraceLedgerDisabled
                } else if p.coverage.evicted {
                    Coverage::TraceLedgerEvicted
                } else {
                    Coverage::Exact
                };
                (taken.outcomes.lost, 0, coverage)
            }
        },
    };
    FlushReport {
        completed: placed.is_some() && exporters.iter().all(|e| e.completed),
        elapsed: start.elapsed(),
        scope,
        coverage,
        cause: None,
        pipeline_dropped,
        pipeline_pending,
        pipeline,
        exporters,
    }
}

/// A report for a call that could not do its work at all: it says why,
/// counts nothing, and lists everything pending.
pub(crate) fn refused(core: &Core, scope: FlushScope, start: Instant, why: String) -> FlushReport {
    let (pipeline, totals) = core.stats();
    let exporters = without_outcomes(totals, &scope, |t| Lane {
        pending: t.pending,
        completed: false,
        cause: Some(why.clone()),
    });
    FlushReport {
        completed: false,
        elapsed: start.elapsed(),
        scope,
        coverage: Coverage::BarrierNotReached,
        cause: Some(why),
        pipeline_dropped: BTreeMap::new(),
        pipeline_pending: pipeline.pending,
        pipeline,
        exporters,
    }
}

/// How an exporter stands in a report that counts no outcome.
struct Lane {
    pending: u64,
    completed: bool,
    cause: Option<String>,
}

/// Per exporter in `scope`: no outcome counted, the rest from `lane`.
fn without_outcomes(
    totals: Vec<crate::stats::ExporterStats>,
    scope: &FlushScope,
    lane: impl Fn(&crate::stats::ExporterStats) -> Lane,
) -> Vec<ExporterFlushReport> {
    totals
        .into_iter()
        .filter(|t| {
            scope
                .exporters
                .as_ref()
                .is_none_or(|names| names.contains(&t.name))
        })
        .map(|t| {
            let Lane {
                pending,
                completed,
                cause,
            } = lane(&t);
            ExporterFlushReport {
                name: t.name.clone(),
                delivered: 0,
                failed: BTreeMap::new(),
                dropped: BTreeMap::new(),
                pending,
                completed,
                flush_error: None,
                cause,
                totals: t,
            }
        })
        .collect()
}

/// After shutdown: nothing more can be delivered, but losses since (events
/// emitted after shutdown) are reported once, to the first report after them.
pub(crate) fn after_shutdown(core: &Core, scope: FlushScope, start: Instant) -> FlushReport {
    let (pipeline, totals) = core.stats();
    let pipeline_dropped = match scope.trace {
        None => core
            .global
            .pipeline_since_last(core.counters.lost_by_reason()),
        Some(t) => {
            let take = core.traces.take(t, &[]);
            let lane = core.traces.pipeline_lane();
            let own = take.accounts.get(lane).cloned().flatten();
            let own = own.as_ref().map(|a| (a, a.tally()));
            core.traces.report(t, lane, take.seq, own).outcomes.lost
        }
    };
    let exporters = without_outcomes(totals, &scope, |_| Lane {
        pending: 0,
        completed: true,
        cause: None,
    });
    FlushReport {
        completed: true,
        elapsed: start.elapsed(),
        scope,
        coverage: Coverage::Exact,
        cause: None,
        pipeline_dropped,
        pipeline_pending: 0,
        pipeline,
        exporters,
    }
}

/// Why lane `i` did not complete.
fn cause(
    core: &Core,
    b: &Barrier,
    i: usize,
    result: &LaneResult,
    placed: bool,
    taken: &Taken,
    now: Instant,
) -> String {
    let slot = &core.slots[i];
    let health = slot.health();
    let last = health
        .last_error
        .as_deref()
        .map(|e| format!("; last error: {e}"))
        .unwrap_or_default();
    if !placed {
        return "the pipeline did not reach this call before its deadline (its router is busy \
                or blocked in a processor)"
            .into();
    }
    if let Some(why) = b.not_waited.get(i).cloned().flatten() {
        return why;
    }
    match result {
        LaneResult::Stopped => "the exporter's worker has stopped (after shutdown)".into(),
        LaneResult::Passed {
            flush_error: Some(e),
            ..
        } => e.clone(),
        LaneResult::Passed { .. } => format!("{} event(s) still pending{last}", taken.pending),
        LaneResult::Pending => match health.retry_at {
            Some(at) if at > b.deadline => format!(
                "not waited for: its next retry is due in {:?}, after the deadline{last}",
                at.saturating_duration_since(now)
            ),
            _ if slot.is_abandoned() => "given up at shutdown".into(),
            _ => format!(
                "the deadline passed with {} event(s) pending{}",
                taken.pending,
                if health.failures > 0 {
                    last
                } else {
                    String::new()
                }
            ),
        },
    }
}

/// Lost counts split into failed (an export was attempted) and dropped.
fn split(
    lost: BTreeMap<DropReason, u64>,
) -> (BTreeMap<DropReason, u64>, BTreeMap<DropReason, u64>) {
    lost.into_iter().partition(|(r, _)| r.is_failure())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::InMemoryExporter;
    use crate::bus::barrier::Placed;
    use crate::bus::ledger::AccountRef;
    use crate::bus::test_support;

    fn barrier() -> Arc<Barrier> {
        Barrier::new(
            false,
            None,
            vec![true].into(),
            vec![None].into(),
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[test]
    fn a_passed_barrier_reports_its_accounts_outcomes() {
        let (core, _rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        core.global.current(0).accept(3);
        let b = barrier();
        assert!(b.place(|| {
            let (seq, own) = core.global.rotate(0);
            own.deliver(2);
            own.lose(DropReason::QueueFull, 1);
            Placed {
                seqs: vec![seq],
                accounts: vec![Some(AccountRef::One(own))],
                ..Placed::default()
            }
        }));
        b.record(
            0,
            LaneResult::Passed {
                flush_error: None,
                timed_out: false,
            },
        );
        let r = assemble(&core, &b, FlushScope::all(), Instant::now());
        assert!(r.completed, "{r}");
        let e = r.exporter("memory").unwrap();
        assert_eq!((e.delivered, e.pending), (2, 0));
        assert_eq!(e.dropped.get(&DropReason::QueueFull), Some(&1));
        assert_eq!(r.coverage, Coverage::Exact);
        assert!(!r.is_success());
    }

    #[test]
    fn an_unplaced_barrier_claims_nothing_and_says_why() {
        let (core, _rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let b = barrier();
        let r = assemble(&core, &b, FlushScope::all(), Instant::now());
        assert!(!r.completed);
        assert_eq!(r.coverage, Coverage::BarrierNotReached);
        assert!(
            r.exporters[0]
                .cause
                .as_deref()
                .unwrap()
                .contains("did not reach")
        );
        // The router will now skip it.
        assert!(!b.place(Placed::default));
    }

    #[test]
    fn a_lane_whose_own_flush_failed_is_not_completed() {
        let (core, _rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let b = barrier();
        assert!(b.place(Placed::default));
        b.record(
            0,
            LaneResult::Passed {
                flush_error: Some("vendor flush: 503".into()),
                timed_out: false,
            },
        );
        let r = assemble(&core, &b, FlushScope::all(), Instant::now());
        assert_eq!(r.incomplete(), ["memory"]);
        assert_eq!(r.exporters[0].cause.as_deref(), Some("vendor flush: 503"));
    }
}
