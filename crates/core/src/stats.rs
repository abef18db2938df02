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
    /// Still pending when `shutdown`'s deadline passed.
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
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 12] = [
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

/// What one exporter did during a flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ExporterFlushReport {
    /// The exporter's name.
    pub name: String,
    /// Events delivered since the previous report.
    pub delivered: u64,
    /// Events failed since the previous report, by reason.
    pub failed: BTreeMap<DropReason, u64>,
    /// Events dropped since the previous report, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
    /// Events still pending when the flush returned (0 unless it timed out).
    pub pending: u64,
    /// Whether the flush barrier completed for this exporter within the deadline.
    pub completed: bool,
    /// The error returned by the exporter's own `flush`, if any.
    pub flush_error: Option<String>,
    /// Cumulative stats.
    pub totals: ExporterStats,
}

/// The result of `flush` or `shutdown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[must_use = "a flush report says whether anything failed or is still pending"]
pub struct FlushReport {
    /// Whether every exporter completed the barrier before the deadline.
    pub completed: bool,
    /// How long the call took.
    pub elapsed: Duration,
    /// Pipeline-level drops since the previous report, by reason.
    pub pipeline_dropped: BTreeMap<DropReason, u64>,
    /// Cumulative pipeline stats.
    pub pipeline: PipelineStats,
    /// One entry per exporter.
    pub exporters: Vec<ExporterFlushReport>,
}

impl FlushReport {
    /// The report of the exporter with this name.
    pub fn exporter(&self, name: &str) -> Option<&ExporterFlushReport> {
        self.exporters.iter().find(|e| e.name == name)
    }
    /// Events still pending anywhere.
    pub fn pending(&self) -> u64 {
        self.pipeline.pending + self.exporters.iter().map(|e| e.pending).sum::<u64>()
    }
    /// Events lost unintentionally since the previous report (failures and
    /// drops other than sampling and filtering), anywhere.
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
    /// True when the flush completed, nothing is pending, nothing was lost
    /// since the previous report, and every exporter's own flush (a vendor
    /// SDK's queue, an OpenTelemetry provider's `force_flush`) succeeded.
    pub fn is_success(&self) -> bool {
        self.completed
            && self.pending() == 0
            && self.lost() == 0
            && self.exporters.iter().all(|e| e.flush_error.is_none())
    }
}

impl fmt::Display for FlushReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "flush {} in {:?}: pipeline accepted {} routed {} pending {}{}",
            if self.completed {
                "completed"
            } else {
                "TIMED OUT"
            },
            self.elapsed,
            self.pipeline.accepted,
            self.pipeline.routed,
            self.pipeline.pending,
            fmt_map(" dropped", &self.pipeline_dropped),
        )?;
        for e in &self.exporters {
            writeln!(
                f,
                "  {}: delivered {}{}{} pending {}{}{}",
                e.name,
                e.delivered,
                fmt_map(" failed", &e.failed),
                fmt_map(" dropped", &e.dropped),
                e.pending,
                e.flush_error
                    .as_deref()
                    .map(|x| format!(" flush error: {x}"))
                    .unwrap_or_default(),
                e.totals
                    .last_error
                    .as_deref()
                    .filter(|_| !e.failed.is_empty() || !e.dropped.is_empty())
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

pub(crate) fn diff(
    now: &BTreeMap<DropReason, u64>,
    before: Option<&BTreeMap<DropReason, u64>>,
) -> BTreeMap<DropReason, u64> {
    now.iter()
        .filter_map(|(r, n)| {
            let d = n - before.and_then(|b| b.get(r)).copied().unwrap_or(0).min(*n);
            (d > 0).then_some((*r, d))
        })
        .collect()
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
