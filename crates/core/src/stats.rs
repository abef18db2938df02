//! Delivery accounting: every event ends delivered, failed or dropped with a reason.
//!
//! Two levels hold the conservation invariant `accepted == delivered + failed +
//! dropped + pending` (for the pipeline, `routed` takes the place of delivered
//! and failed):
//! - the **pipeline**: events emitted by the application, before they are
//!   routed to exporter queues (sampling, processors, the ingress queue);
//! - each **exporter**: events routed to its queue.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::event::Signal;
use crate::id::TraceId;

/// Why an event did not reach a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DropReason {
    /// A bounded queue was full (overflow policy `DropNewest`, or `Block` timed out).
    QueueFull,
    /// Emitted after `shutdown`.
    AfterShutdown,
    /// The destination refused it and retrying cannot help.
    PermanentError,
    /// Every retry failed.
    RetriesExhausted,
    /// Still pending when `shutdown` ended: its deadline passed, or its
    /// exporter was known to be failing (see [`FlushReport`]).
    FlushTimeout,
    /// It could not be serialised for the destination.
    Serialization,
    /// Its trace was not sampled.
    Sampled,
    /// A processor or span filter removed it.
    Filtered,
    /// No exporter is configured.
    NoExporter,
    /// The exporter was disabled (bad credentials, failed init).
    ExporterDisabled,
    /// The exporter panicked while exporting it.
    ExporterPanicked,
    /// A processor panicked on it.
    ProcessorPanicked,
    /// Still pending when the last `Observability` handle was dropped
    /// without `shutdown` (nor an `ObservabilityGuard`).
    DroppedWithoutShutdown,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 13] = [
        Self::QueueFull,
        Self::AfterShutdown,
        Self::PermanentError,
        Self::RetriesExhausted,
        Self::FlushTimeout,
        Self::Serialization,
        Self::Sampled,
        Self::Filtered,
        Self::NoExporter,
        Self::ExporterDisabled,
        Self::ExporterPanicked,
        Self::ProcessorPanicked,
        Self::DroppedWithoutShutdown,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// Whether an export was attempted and failed (counted as *failed*),
    /// rather than the event never being sent (counted as *dropped*).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::PermanentError
                | Self::RetriesExhausted
                | Self::ExporterPanicked
                | Self::Serialization
        )
    }

    /// Whether the user asked for it (sampling, filters): not a loss.
    pub fn is_intentional(self) -> bool {
        matches!(self, Self::Sampled | Self::Filtered)
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        let name = s.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown");
        f.write_str(name)
    }
}

const N: usize = DropReason::ALL.len();

/// Lock-free counters for one level of accounting.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    passed: AtomicU64,
    by_reason: [AtomicU64; N],
    warned: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    pub(crate) fn accept(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::AcqRel);
    }
    /// Delivered (exporter level) or routed (pipeline level).
    pub(crate) fn pass(&self, n: u64) {
        self.passed.fetch_add(n, Ordering::AcqRel);
    }
    /// Records `n` terminal losses. Warns once per counter set for unintended losses.
    pub(crate) fn lose(&self, who: &str, reason: DropReason, n: u64, detail: Option<&str>) {
        if n == 0 {
            return;
        }
        self.by_reason[reason.index()].fetch_add(n, Ordering::AcqRel);
        if let Some(d) = detail {
            self.set_error(d);
        }
        if !reason.is_intentional() && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "aiobs",
                exporter = who,
                %reason,
                detail = detail.unwrap_or(""),
                "aiobs lost {n} event(s); further losses are counted in stats() and summarised at shutdown"
            );
        }
    }
    /// Cumulative losses per reason, indexed as [`DropReason::ALL`].
    pub(crate) fn lost_by_reason(&self) -> [u64; N] {
        std::array::from_fn(|i| self.by_reason[i].load(Ordering::Acquire))
    }
    pub(crate) fn set_error(&self, msg: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(msg.chars().take(500).collect());
        }
    }
    pub(crate) fn snapshot(&self) -> Snapshot {
        // Terminal counters first, `accepted` last: an event is accepted before
        // it is terminal, so pending can never be computed negative.
        let passed = self.passed.load(Ordering::Acquire);
        let mut by_reason = BTreeMap::new();
        let mut lost = 0;
        for r in DropReason::ALL {
            let v = self.by_reason[r.index()].load(Ordering::Acquire);
            if v > 0 {
                by_reason.insert(r, v);
                lost += v;
            }
        }
        let accepted = self.accepted.load(Ordering::Acquire);
        Snapshot {
            accepted,
            passed,
            by_reason,
            pending: accepted.saturating_sub(passed + lost),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

pub(crate) struct Snapshot {
    pub(crate) accepted: u64,
    pub(crate) passed: u64,
    pub(crate) by_reason: BTreeMap<DropReason, u64>,
    pub(crate) pending: u64,
    pub(crate) last_error: Option<String>,
}

/// Accounting for one exporter: `accepted == delivered + failed + dropped + pending`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct ExporterStats {
    /// The exporter's name.
    pub name: String,
    /// Events routed to this exporter's queue.
    pub accepted: u64,
    /// Events the destination acknowledged.
    pub delivered: u64,
    /// Events whose export was attempted and failed, by reason.
    pub failed: BTreeMap<DropReason, u64>,
    /// Events never sent, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Events queued, batched or being retried.
    pub pending: u64,
    /// Export attempts made (first tries and retries).
    pub attempts: u64,
    /// Retries among the attempts.
    pub retries: u64,
    /// Whether the exporter was disabled (bad credentials, failed init).
    pub disabled: bool,
    /// The last error the exporter reported.
    pub last_error: Option<String>,
}

impl ExporterStats {
    /// Total failed.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }
    /// Total dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
    /// Whether `accepted == delivered + failed + dropped + pending` holds.
    pub fn is_conserved(&self) -> bool {
        self.accepted == self.delivered + self.failed_total() + self.dropped_total() + self.pending
    }
    /// Lost events of a reason (failed or dropped).
    pub fn lost(&self, reason: DropReason) -> u64 {
        self.failed
            .get(&reason)
            .or(self.dropped.get(&reason))
            .copied()
            .unwrap_or(0)
    }
    pub(crate) fn from_snapshot(
        name: &str,
        s: Snapshot,
        attempts: u64,
        retries: u64,
        disabled: bool,
    ) -> Self {
        let (failed, dropped) = s.by_reason.into_iter().partition(|(r, _)| r.is_failure());
        Self {
            name: name.to_owned(),
            accepted: s.accepted,
            delivered: s.passed,
            failed,
            dropped,
            pending: s.pending,
            attempts,
            retries,
            disabled,
            last_error: s.last_error,
        }
    }
}

/// Accounting before exporters: `accepted == routed + dropped + pending`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PipelineStats {
    /// Events the application emitted.
    pub accepted: u64,
    /// Events handed on to exporter queues.
    pub routed: u64,
    /// Events dropped before any exporter saw them (sampling, filters, full ingress, after shutdown), by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Events in the ingress queue or being processed.
    pub pending: u64,
    /// Spans ended by dropping their handle rather than calling `end()`.
    pub spans_ended_by_drop: u64,
    /// Payload fields that were cut or replaced by a marker to respect `SerializationLimits`.
    pub payload_truncations: u64,
}

impl PipelineStats {
    /// Total dropped.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().sum()
    }
    /// Whether `accepted == routed + dropped + pending` holds.
    pub fn is_conserved(&self) -> bool {
        self.accepted == self.routed + self.dropped_total() + self.pending
    }
}

/// A snapshot of all accounting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Before exporters.
    pub pipeline: PipelineStats,
    /// One entry per exporter, in the order they were added.
    pub exporters: Vec<ExporterStats>,
}

impl Stats {
    /// The stats of the exporter with this name.
    pub fn exporter(&self, name: &str) -> Option<&ExporterStats> {
        self.exporters.iter().find(|e| e.name == name)
    }
    /// Whether every level is conserved.
    pub fn is_conserved(&self) -> bool {
        self.pipeline.is_conserved() && self.exporters.iter().all(ExporterStats::is_conserved)
    }
}

/// Which events a flush concerns: everything (the default), one trace's
/// (`flush_trace`), and all exporters or only some.
///
/// ```
/// use aiobs_core::{FlushScope, TraceId};
/// let everything = FlushScope::all();
/// let one_request_on_sqlite = FlushScope::trace(TraceId::random()).only(["sqlite"]);
/// # let _ = (everything, one_request_on_sqlite);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct FlushScope {
    /// `Some`: a request-scoped flush of this trace's events; `None`: all events.
    pub trace: Option<TraceId>,
    /// `Some`: only these exporters (by name); `None`: every exporter.
    pub exporters: Option<Vec<String>>,
}

impl FlushScope {
    /// Every event, every exporter: what `flush` and `shutdown` use.
    pub fn all() -> Self {
        Self::default()
    }
    /// One trace's events, every exporter: what `flush_trace` uses.
    pub fn trace(trace_id: TraceId) -> Self {
        Self {
            trace: Some(trace_id),
            exporters: None,
        }
    }
    /// Only these exporters (by [`Exporter::name`](crate::Exporter::name)):
    /// the flush neither waits for nor reports the others.
    #[must_use]
    pub fn only<I, S>(mut self, exporters: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exporters = Some(exporters.into_iter().map(Into::into).collect());
        self
    }
}

/// How much of what it covers a [`FlushReport`] could count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Coverage {
    /// Every event the report covers is counted (delivered, lost by reason,
    /// or pending).
    Exact,
    /// Part of this trace's ledger was evicted before the report took it
    /// (the trace ledger is bounded, see
    /// [`ObservabilityBuilder::trace_ledger_capacity`](crate::ObservabilityBuilder::trace_ledger_capacity)):
    /// the counts are a lower bound. The global ledger still counts every event.
    TraceLedgerEvicted,
    /// The trace ledger is disabled (capacity 0): a `flush_trace` report
    /// counts no outcome; it only says whether the trace's events passed.
    TraceLedgerDisabled,
    /// The pipeline did not reach this call's barrier before the deadline
    /// (its router was busy or blocked): the report counts no outcome, and
    /// its `pending` is everything pending at the time.
    BarrierNotReached,
}

/// What one exporter did with the events a flush covers.
///
/// All counts are numbers of events (a span's start and end are two events
/// when the exporter subscribes to both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExporterFlushReport {
    /// The exporter's name.
    pub name: String,
    /// The report's events this exporter's destination acknowledged.
    pub delivered: u64,
    /// The report's events whose export was attempted and failed, by reason.
    pub failed: BTreeMap<DropReason, u64>,
    /// The report's events never sent, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// The report's events still pending when the call returned: 0 when
    /// `completed`.
    pub pending: u64,
    /// Whether this exporter passed the barrier within the deadline: every
    /// event the report covers is terminal here, and the exporter's own
    /// `flush` (or `shutdown`) returned `Ok` in time.
    pub completed: bool,
    /// The error returned by the exporter's own `flush` or `shutdown`, if any.
    pub flush_error: Option<String>,
    /// Why it did not complete (`None` when it did): the deadline passed
    /// with events pending, its destination was already known to be failing
    /// (with the last error), the exporter's own flush failed or hung…
    pub cause: Option<String>,
    /// Cumulative stats.
    pub totals: ExporterStats,
}

/// The result of `flush`, `flush_trace`, `shutdown` or a guard's drop.
///
/// # What a report covers
///
/// A report is *exact*: each count is a number of events, and each event the
/// call covers is counted once, as delivered, lost by reason, or pending.
/// Which events a call covers depends on the ledger it reads:
///
/// - **`flush`, `shutdown`, the guard (the global ledger).** Every event
///   belongs to the first global flush or shutdown placed behind it in the
///   pipeline, per exporter. A report covers its own events — all emitted
///   before the call (happens-before) and not already taken by an earlier
///   concurrent global flush — plus what happened since to events an earlier
///   report left pending. Concurrent global flushes therefore partition the
///   stream: their reports never share or double-count an outcome, and added
///   up they account for every event. A global flush cannot know which
///   events are *yours*: another caller's flush may report your losses.
/// - **`flush_trace(T)` (the trace ledger).** Every event of trace T belongs
///   to the first `flush_trace(T)` behind it. The report covers all of T's
///   events emitted before the call (since the previous `flush_trace(T)`),
///   whatever global flush also reported them: this is how a request learns
///   exactly what happened to its own events. Losses before any exporter
///   (a full ingress, a processor panic, after shutdown) are counted too;
///   sampling and filtering are not losses and are not counted per trace.
///
/// `pipeline_dropped` holds the losses before any exporter; `exporters` one
/// entry per exporter in scope.
///
/// # Deadlines
///
/// The call returns by its deadline plus a small ε (50 ms is the aim; it is
/// the time to wake the caller and read the ledgers), whatever the exporters
/// do: a blocked or hung exporter is reported incomplete with a `cause`. An
/// exporter whose destination is already known to be failing when the call
/// begins (two or more consecutive failed attempts), or whose next retry
/// falls after the deadline, is not waited for: it is reported at once as
/// pending, with its last error as the `cause`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[must_use = "a flush report says whether anything failed or is still pending"]
pub struct FlushReport {
    /// Whether every exporter in scope completed (see
    /// [`ExporterFlushReport::completed`]).
    pub completed: bool,
    /// How long the caller waited: from the call to its return.
    pub elapsed: Duration,
    /// Which events and exporters the call concerned.
    pub scope: FlushScope,
    /// Whether the counts are exact; see [`Coverage`].
    pub coverage: Coverage,
    /// Why the call could not do its work at all, if so (e.g. a blocking
    /// call on the thread that must run the pipeline, an unknown exporter
    /// name): the report then counts nothing and `completed` is false.
    pub cause: Option<String>,
    /// The report's events lost before reaching any exporter, by reason.
    pub pipeline_dropped: BTreeMap<DropReason, u64>,
    /// The report's events not yet past the pipeline's router when the call
    /// returned (0 once the barrier was placed).
    pub pipeline_pending: u64,
    /// Cumulative pipeline stats.
    pub pipeline: PipelineStats,
    /// One entry per exporter in scope.
    pub exporters: Vec<ExporterFlushReport>,
}

impl FlushReport {
    /// The report of the exporter with this name.
    pub fn exporter(&self, name: &str) -> Option<&ExporterFlushReport> {
        self.exporters.iter().find(|e| e.name == name)
    }
    /// The report's events still pending, anywhere.
    pub fn pending(&self) -> u64 {
        self.pipeline_pending + self.exporters.iter().map(|e| e.pending).sum::<u64>()
    }
    /// The report's events lost unintentionally (failures and drops other
    /// than sampling and filtering), anywhere.
    pub fn lost(&self) -> u64 {
        let unintended = |m: &BTreeMap<DropReason, u64>| {
            m.iter()
                .filter(|(r, _)| !r.is_intentional())
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        unintended(&self.pipeline_dropped)
            + self
                .exporters
                .iter()
                .map(|e| unintended(&e.failed) + unintended(&e.dropped))
                .sum::<u64>()
    }
    /// The names of the exporters that did not complete.
    pub fn incomplete(&self) -> Vec<&str> {
        self.exporters
            .iter()
            .filter(|e| !e.completed)
            .map(|e| e.name.as_str())
            .collect()
    }
    /// True when the call completed, its counts are exact, nothing it
    /// covers is pending, nothing it covers was lost, and every exporter's
    /// own flush (a vendor SDK's queue, an OpenTelemetry provider's
    /// `force_flush`) succeeded.
    pub fn is_success(&self) -> bool {
        self.completed
            && self.cause.is_none()
            && self.coverage == Coverage::Exact
            && self.pending() == 0
            && self.lost() == 0
            && self.exporters.iter().all(|e| e.flush_error.is_none())
    }
}

impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.scope.trace {
            Some(t) => format!("flush_trace({t})"),
            None => "flush".to_owned(),
        };
        writeln!(
            f,
            "{what} {} in {:?}{}: pipeline pending {}{}{}",
            if self.completed {
                "completed"
            } else {
                "NOT COMPLETED"
            },
            self.elapsed,
            match self.coverage {
                Coverage::Exact => String::new(),
                c => format!(
                    " (coverage: {})",
                    serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
            },
            self.pipeline_pending,
            fmt_map(" dropped", &self.pipeline_dropped),
            self.cause
                .as_deref()
                .map(|c| format!(" — {c}"))
                .unwrap_or_default(),
        )?;
        for e in &self.exporters {
            writeln!(
                f,
                "  {}: {}delivered {}{}{} pending {}{}{}",
                e.name,
                if e.completed { "" } else { "INCOMPLETE " },
                e.delivered,
                fmt_map(" failed", &e.failed),
                fmt_map(" dropped", &e.dropped),
                e.pending,
                e.cause
                    .as_deref()
                    .map(|x| format!(" cause: {x}"))
                    .unwrap_or_default(),
                e.totals
                    .last_error
                    .as_deref()
                    .filter(|_| e.cause.is_none() && (!e.failed.is_empty() || !e.dropped.is_empty()))
                    .map(|x| format!(" last error: {x}"))
                    .unwrap_or_default(),
            )?;
        }
        Ok(())
    }
}

fn fmt_map(label: &str, m: &BTreeMap<DropReason, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m.iter().map(|(r, n)| format!("{r}={n}")).collect();
    format!("{label} {{{}}}", parts.join(", "))
}

/// One counted loss, as told to the drop observer registered with
/// [`ObservabilityBuilder::on_drop`](crate::ObservabilityBuilder::on_drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedEvents<'a> {
    /// The exporter that lost them; `None` before any exporter (sampling,
    /// filters, a full ingress, after shutdown, no exporter configured).
    pub exporter: Option<&'a str>,
    /// What kind of events they were (a sampled-out or filtered span counts
    /// as its `SpanEnded`).
    pub signal: Signal,
    /// Why.
    pub reason: DropReason,
    /// How many events.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_conserve() {
        let c = Counters::default();
        c.accept(10);
        c.pass(4);
        c.lose("x", DropReason::QueueFull, 2, None);
        c.lose("x", DropReason::PermanentError, 1, Some("400 bad request"));
        let s = ExporterStats::from_snapshot("x", c.snapshot(), 5, 1, false);
        assert_eq!(s.pending, 3);
        assert_eq!(s.failed_total(), 1);
        assert_eq!(s.dropped_total(), 2);
        assert!(s.is_conserved());
        assert_eq!(s.last_error.as_deref(), Some("400 bad request"));
        assert_eq!(DropReason::QueueFull.to_string(), "queue_full");
    }
}
