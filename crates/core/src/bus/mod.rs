//! The pipeline, one file per stage:
//!
//! ```text
//! span.end() ─push─► ingress ─drain─► router: processors, tags, fan-out ─► queue ─► worker ─► Exporter::export
//!                                        ▲ barrier placed behind the events     │ settle: counters + ledgers
//! flush() ── barrier ─► router ─► every queue ─► worker passes it ─► caller wakes ─► report
//! ```
//!
//! - `ingress.rs`: the sharded queue application threads push into.
//! - `router.rs`: drains it, runs processors once, tags each event with its
//!   ledger accounts, fans out to exporter queues, places barriers.
//! - `queue.rs`: one exporter's lane as others see it (queue, counters,
//!   health) and [`queue::Slot::settle`], where every outcome is counted.
//! - `worker.rs`: one exporter's worker: batching, retry, passing barriers.
//! - `barrier.rs`, `ledger.rs`, `report.rs`: what a flush sends down the
//!   pipeline, the two ledgers it is accounted in, and its report.
//! - `lifecycle.rs`: starting the threads or tasks, flush, shutdown, drop.
//! - `timer.rs`, `blocking.rs`: deadlines no blocked thread can stop, and
//!   blocking safely at the pipeline's edges.
//! - `recycle.rs`: spent span allocations handed back to emitting threads.
//!
//! The threading model and report semantics are explained in
//! `docs/architecture.md` and decided in `docs/adr/`.

mod barrier;
pub(crate) mod blocking;
mod ingress;
mod ledger;
mod lifecycle;
mod queue;
pub(crate) mod recycle;
mod report;
mod router;
pub(crate) mod timer;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::event::{ObservabilityEvent, Signal};
use crate::id::TraceId;
use crate::stats::{Counters, DropReason, DroppedEvents, ExporterStats, PipelineStats};

pub(crate) use blocking::BlockingCalls;
pub(crate) use ingress::{Ingress, Queued, Refused};
pub(crate) use lifecycle::{Pipeline, PipelineConfig};

/// What happens when a queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the new event and count it (`QueueFull`). Never blocks the application.
    #[default]
    DropNewest,
    /// Block the emitting thread up to `timeout` for room, then drop and count.
    /// Back-pressure reaches the application; use it where losing events is worse
    /// than slowing down (batch jobs, benchmarks), never on a latency-critical path.
    Block {
        /// Longest wait.
        timeout: Duration,
    },
}

/// Where the pipeline's work runs.
///
/// | mode | router | each exporter | a blocking exporter stalls |
/// |---|---|---|---|
/// | `BackgroundThread` | its own thread | a thread of its own | only itself |
/// | `Handle` | a task on your runtime | a task on your runtime | the runtime thread it runs on |
/// | `Inline` | the flushing task | the flushing task | the flush that drives it |
///
/// In every mode a `flush`/`shutdown` deadline is kept from the caller's side
/// (a `Condvar`, or a process-wide deadline thread for `.await`), and the
/// pipeline never uses tokio's timer on a runtime it does not own, so a
/// runtime built without `enable_time` works. Exporters that call blocking
/// vendor code should do it through
/// [`ExporterContext::run_blocking`](crate::ExporterContext::run_blocking),
/// which keeps `Handle` and `Inline` modes responsive too.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum RuntimeMode {
    /// Dedicated background threads (default): one for the router, one per
    /// exporter, each with its own single-threaded tokio runtime. Works from
    /// sync code and any async runtime, never loads the application's
    /// executor, and isolates exporters from one another.
    #[default]
    BackgroundThread,
    /// Tasks spawned on a tokio runtime you own (no threads of ours, no
    /// isolation between exporters beyond tasks). On a `current_thread`
    /// runtime, blocking calls (`flush_blocking`, `shutdown_blocking`,
    /// dropping the guard) made on that runtime's own thread return at once
    /// with a report saying why: await `flush`/`shutdown` there instead.
    Handle(tokio::runtime::Handle),
    /// No background work at all: `flush().await` routes and exports in the
    /// caller's task. For serverless isolates, where threads and timers do not
    /// run between requests. Call `flush` before every response.
    Inline,
}

/// The application's drop observer (see `ObservabilityBuilder::on_drop`).
pub(crate) type DropObserver = Arc<dyn Fn(&DroppedEvents<'_>) + Send + Sync>;

/// Tells the drop observer about every counted loss.
#[derive(Default)]
pub(crate) struct Drops {
    observer: Option<DropObserver>,
    panicked: std::sync::atomic::AtomicBool,
}

impl Drops {
    pub(crate) fn notify(
        &self,
        exporter: Option<&str>,
        signal: Signal,
        reason: DropReason,
        count: u64,
    ) {
        let Some(observer) = &self.observer else {
            return;
        };
        if count == 0 {
            return;
        }
        let event = DroppedEvents {
            exporter,
            signal,
            reason,
            count,
        };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| observer(&event))).is_err()
            && !self
                .panicked
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::error!(name: "aiobs.DropObserverPanicked", target: "aiobs", "the drop observer panicked; it is still called for later losses");
        }
    }
}

/// What the application threads, the router and the workers share.
pub(crate) struct Core {
    pub(crate) ingress: Ingress,
    /// Pipeline-level accounting (the ingress counts its own `accepted`).
    pub(crate) counters: Counters,
    pub(crate) ended_by_drop: AtomicU64,
    pub(crate) truncations: AtomicU64,
    pub(crate) slots: Vec<Arc<queue::Slot>>,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) background: bool,
    pub(crate) recycler: Arc<recycle::Recycler>,
    pub(crate) returned: recycle::Returned,
    pub(crate) global: ledger::GlobalLedger,
    pub(crate) traces: ledger::TraceLedger,
    pub(crate) barriers: barrier::Barriers,
    pub(crate) drops: Drops,
    /// Stops the router (shutdown ended, or the pipeline was dropped).
    pub(crate) halt: queue::Stop,
}

impl Core {
    pub(crate) fn exporter_signals(&self) -> impl Iterator<Item = crate::event::Signals> + '_ {
        self.slots.iter().map(|s| s.signals)
    }

    /// Counts a pipeline-level loss of one event that never entered the
    /// ingress (or a span never recorded: sampled out, filtered at start).
    pub(crate) fn lose_at_emit(&self, reason: DropReason, signal: Signal, trace: Option<TraceId>) {
        self.counters.accept(1);
        self.counters.lose("pipeline", reason, 1, None);
        if let Some(t) = trace.filter(|_| !reason.is_intentional()) {
            self.traces.lose_in_pipeline(t, reason, 1);
        }
        self.drops.notify(None, signal, reason, 1);
    }

    /// Counts pipeline-level losses at the router (the ingress counted them accepted).
    pub(crate) fn lose_routed(&self, reason: DropReason, signal: Signal, n: u64) {
        if n > 0 {
            self.counters.lose("pipeline", reason, n, None);
            self.drops.notify(None, signal, reason, n);
        }
    }

    /// Takes whatever waits in the ingress and counts it lost for `reason`
    /// (it will never be routed). Returns how many.
    pub(crate) fn abandon_ingress(&self, reason: DropReason) -> u64 {
        let mut left = Vec::new();
        self.ingress.close();
        self.ingress.drain_into(&mut left);
        let n = left.len() as u64;
        for q in left {
            let event: ObservabilityEvent = q.into_event();
            self.counters.lose("pipeline", reason, 1, None);
            if let Some(t) = event.trace_id() {
                self.traces.lose_in_pipeline(t, reason, 1);
            }
            self.drops.notify(None, event.signal(), reason, 1);
        }
        n
    }

    pub(crate) fn stats(&self) -> (PipelineStats, Vec<ExporterStats>) {
        // Terminal counters first, `accepted` last, so pending is never negative.
        let snap = self.counters.snapshot();
        let slot_stats: Vec<ExporterStats> = self.slots.iter().map(|s| s.stats()).collect();
        let accepted = snap.accepted + self.ingress.pushed();
        let lost: u64 = snap.by_reason.values().sum();
        let pipeline = PipelineStats {
            accepted,
            routed: snap.passed,
            pending: accepted.saturating_sub(snap.passed + lost),
            dropped: snap.by_reason,
            spans_ended_by_drop: self
                .ended_by_drop
                .load(std::sync::atomic::Ordering::Relaxed),
            payload_truncations: self.truncations.load(std::sync::atomic::Ordering::Relaxed),
        };
        (pipeline, slot_stats)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A `Core` with real lanes, for the stages' unit tests.

    use std::sync::Arc;

    use super::*;

    /// A core whose lanes are these exporters (their workers are not started).
    pub(crate) fn core(
        exporters: Vec<Arc<dyn crate::Exporter>>,
    ) -> (
        Arc<Core>,
        Vec<tokio::sync::mpsc::UnboundedReceiver<queue::WorkerMsg>>,
    ) {
        let mut slots = Vec::new();
        let mut receivers = Vec::new();
        for (i, e) in exporters.into_iter().enumerate() {
            let (slot, rx) = queue::Slot::new(i, e);
            slots.push(slot);
            receivers.push(rx);
        }
        let lanes = slots.len();
        let core = Arc::new(Core {
            ingress: Ingress::new(1024),
            counters: Counters::default(),
            ended_by_drop: Default::default(),
            truncations: Default::default(),
            slots,
            overflow: OverflowPolicy::DropNewest,
            background: true,
            recycler: Arc::default(),
            returned: Default::default(),
            global: ledger::GlobalLedger::new(lanes),
            traces: ledger::TraceLedger::new(lanes, 64),
            barriers: Default::default(),
            drops: Drops::default(),
            halt: Default::default(),
        });
        (core, receivers)
    }

    /// An ended span of `trace` as the ingress holds it.
    pub(crate) fn ended(trace: crate::TraceId, name: &'static str) -> Queued {
        let span = crate::span::ExportedSpan::new(
            trace,
            crate::SpanId::random(),
            std::borrow::Cow::Borrowed(name),
            crate::SpanType::ToolCall,
        );
        Queued::Span(crate::SpanEventKind::Ended, Arc::new(span))
    }
}
