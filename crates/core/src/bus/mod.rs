//! The pipeline: ingress → processors (once) → per-exporter queues → workers.
//!
//! ```text
//! span.end() ─push─► Ingress ─drain─► Router: processors, fan-out ─► Slot queue ─► Worker ─► Exporter::export
//!                                      ▲ flush/shutdown barrier travels the same path, behind the events
//! ```

mod ingress;
pub(crate) mod recycle;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::exporter::{Exporter, ExporterContext};
use crate::processor::{self, AsyncProcessor, SpanProcessor, Verdict};
use crate::stats::{
    Counters, DropReason, ExporterFlushReport, ExporterStats, FlushReport, PipelineStats, diff,
};

pub(crate) use ingress::{Ingress, Queued, Refused};
use worker::{Barrier, EventRef, Slot, Worker, WorkerMsg};

/// The counters at the previous report: pipeline drops and exporter stats.
type LastReport = (BTreeMap<DropReason, u64>, Vec<ExporterStats>);

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
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum RuntimeMode {
    /// A dedicated background thread with its own single-threaded tokio runtime (default):
    /// works from sync code and any async runtime, never loads the application's executor.
    #[default]
    BackgroundThread,
    /// Tasks spawned on a tokio runtime you own.
    Handle(tokio::runtime::Handle),
    /// No background work at all: `flush().await` routes and exports in the
    /// caller's task. For serverless isolates, where threads and timers do not
    /// run between requests. Call `flush` before every response.
    Inline,
}

enum Control {
    Barrier(Arc<Barrier>),
}

/// What the application threads, the router and the workers share.
pub(crate) struct Core {
    pub(crate) ingress: Ingress,
    /// Pipeline-level accounting (the ingress counts its own `accepted`).
    pub(crate) counters: Counters,
    pub(crate) ended_by_drop: AtomicU64,
    pub(crate) truncations: AtomicU64,
    slots: Vec<Arc<Slot>>,
    pub(crate) overflow: OverflowPolicy,
    background: bool,
    pub(crate) recycler: Arc<recycle::Recycler>,
}

/// The pipeline, owned by the `Observability` handles. Dropping it (without
/// shutdown) stops the background work; anything still pending is reported in a warning.
pub(crate) struct Pipeline {
    pub(crate) core: Arc<Core>,
    router: tokio::sync::Mutex<Option<Router>>,
    inline_workers: tokio::sync::Mutex<Vec<Worker>>,
    control: Option<mpsc::UnboundedSender<Control>>,
    runtime: Option<tokio::runtime::Handle>,
    stop_thread: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    worker_tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    last_report: std::sync::Mutex<Option<LastReport>>,
    shutdown_report: tokio::sync::Mutex<Option<FlushReport>>,
    /// Set once shutdown completed: the runtime may be gone, answer from here.
    final_report: std::sync::Mutex<Option<FlushReport>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field(
                "exporters",
                &self
                    .core
                    .slots
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("inline", &self.control.is_none())
            .finish()
    }
}

pub(crate) struct PipelineConfig {
    pub(crate) exporters: Vec<Arc<dyn Exporter>>,
    pub(crate) processors: Vec<Arc<dyn SpanProcessor>>,
    pub(crate) async_processors: Vec<Arc<dyn AsyncProcessor>>,
    pub(crate) ingress_capacity: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) mode: RuntimeMode,
    pub(crate) context: ExporterContext,
}

/// Drains the ingress, runs processors once per event, fans out to exporter queues.
struct Router {
    processors: Vec<Arc<dyn SpanProcessor>>,
    async_processors: Vec<Arc<dyn AsyncProcessor>>,
    scratch: Vec<Queued>,
}

impl Core {
    pub(crate) fn exporter_signals(&self) -> impl Iterator<Item = crate::event::Signals> + '_ {
        self.slots.iter().map(|s| s.signals)
    }

    /// Counts a pipeline-level loss of an event that never entered the ingress.
    pub(crate) fn lose_before_ingress(&self, reason: DropReason, n: u64) {
        self.counters.accept(n);
        self.counters.lose("pipeline", reason, n, None);
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
            spans_ended_by_drop: self.ended_by_drop.load(Ordering::Relaxed),
            payload_truncations: self.truncations.load(Ordering::Relaxed),
        };
        (pipeline, slot_stats)
    }
}

impl Pipeline {
    pub(crate) fn start(cfg: PipelineConfig) -> std::io::Result<Arc<Pipeline>> {
        let mut slots = Vec::new();
        let mut workers = Vec::new();
        let recycler = Arc::new(recycle::Recycler::default());
        for (i, e) in cfg.exporters.into_iter().enumerate() {
            let (slot, rx) = Slot::new(i, e, recycler.clone());
            workers.push(Worker::new(slot.clone(), rx, cfg.context.clone()));
            slots.push(slot);
        }
        let router = Router {
            processors: cfg.processors,
            async_processors: cfg.async_processors,
            scratch: Vec::new(),
        };
        let (runtime, stop) = match &cfg.mode {
            RuntimeMode::Inline => (None, None),
            RuntimeMode::Handle(h) => (Some(h.clone()), None),
            RuntimeMode::BackgroundThread => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = rt.handle().clone();
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name("aiobs-pipeline".into())
                    .spawn(move || {
                        // Runs until shutdown completes or every handle is gone.
                        if rt.block_on(stop_rx).is_err() {
                            // Every handle is gone without a shutdown: stop as well.
                        }
                    })?;
                (Some(handle), Some(stop_tx))
            }
        };
        let (control, control_rx) = match runtime {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let inline = runtime.is_none();
        let (inline_router, inline_workers, background) = if inline {
            (Some(router), workers, None)
        } else {
            (None, Vec::new(), Some((router, workers)))
        };
        let core = Arc::new(Core {
            ingress: Ingress::new(cfg.ingress_capacity),
            counters: Counters::default(),
            ended_by_drop: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            slots,
            overflow: cfg.overflow,
            background: !inline,
            recycler,
        });
        let pipeline = Arc::new(Pipeline {
            core: core.clone(),
            router: tokio::sync::Mutex::new(inline_router),
            inline_workers: tokio::sync::Mutex::new(inline_workers),
            control,
            runtime: runtime.clone(),
            stop_thread: std::sync::Mutex::new(stop),
            worker_tasks: std::sync::Mutex::new(Vec::new()),
            last_report: std::sync::Mutex::new(None),
            shutdown_report: tokio::sync::Mutex::new(None),
            final_report: std::sync::Mutex::new(None),
        });
        if let (Some(rt), Some(rx), Some((router, workers))) = (runtime, control_rx, background) {
            let mut tasks = Vec::new();
            for w in workers {
                tasks.push(rt.spawn(w.run()));
            }
            if let Ok(mut t) = pipeline.worker_tasks.lock() {
                *t = tasks;
            }
            // The router stops when the control channel closes (the pipeline was dropped).
            rt.spawn(router_loop(core, router, rx));
        }
        Ok(pipeline)
    }

    pub(crate) fn stats(&self) -> (PipelineStats, Vec<ExporterStats>) {
        self.core.stats()
    }

    /// Flush or shutdown: the barrier, the deadline, the report.
    pub(crate) async fn barrier(
        self: &Arc<Self>,
        timeout: Duration,
        shutdown: bool,
        trace: Option<crate::id::TraceId>,
    ) -> FlushReport {
        let start = Instant::now();
        let deadline = start + timeout;
        if shutdown {
            let mut done = self.shutdown_report.lock().await;
            if let Some(r) = done.as_ref() {
                return r.clone(); // shutdown is idempotent
            }
            self.core.ingress.close();
            let report = self.run_barrier(start, deadline, true, None).await;
            *done = Some(report.clone());
            if let Ok(mut f) = self.final_report.lock() {
                *f = Some(report.clone());
            }
            return report;
        }
        self.run_barrier(start, deadline, false, trace).await
    }

    async fn run_barrier(
        self: &Arc<Self>,
        start: Instant,
        deadline: Instant,
        shutdown: bool,
        trace: Option<crate::id::TraceId>,
    ) -> FlushReport {
        let barrier = Barrier::new(self.core.slots.len(), deadline, shutdown, trace);
        let completed = match &self.runtime {
            None => self.inline_flush(&barrier).await,
            Some(rt) => {
                let sent = self
                    .control
                    .as_ref()
                    .is_some_and(|c| c.send(Control::Barrier(barrier.clone())).is_ok());
                if sent {
                    self.core.ingress.wake.notify_one();
                    let b = barrier.clone();
                    // Wait on the pipeline's runtime: the caller may use any executor.
                    let waiter = rt.spawn(async move { b.wait().await });
                    waiter.await.unwrap_or(false)
                } else {
                    // Already shut down: nothing can be pending beyond what stats show.
                    self.core.slots.is_empty()
                }
            }
        };
        if shutdown {
            self.finish_shutdown(completed).await;
        }
        self.report(start, completed, &barrier)
    }

    async fn inline_flush(self: &Arc<Self>, barrier: &Arc<Barrier>) -> bool {
        let deadline = tokio::time::Instant::from_std(barrier.deadline);
        let work = async {
            if let Some(router) = self.router.lock().await.as_mut() {
                let _routed = router.route(&self.core).await;
            }
            let mut workers = self.inline_workers.lock().await;
            let pumps = workers.iter_mut().map(|w| w.pump(barrier));
            futures_util::future::join_all(pumps).await;
        };
        // On timeout, batches in flight stay in their worker and go out at the next flush.
        tokio::time::timeout_at(deadline, work).await.is_ok()
    }

    async fn finish_shutdown(self: &Arc<Self>, completed: bool) {
        // Events refused at the closed ingress were counted `AfterShutdown` at emit;
        // whatever a worker could not finish by the deadline is counted here.
        if !completed {
            let tasks: Vec<_> = self
                .worker_tasks
                .lock()
                .map(|mut t| std::mem::take(&mut *t))
                .unwrap_or_default();
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                let _aborted = tokio::time::timeout(Duration::from_millis(200), t).await;
            }
            let mut inline = self.inline_workers.lock().await;
            inline.clear();
        }
        for s in &self.core.slots {
            s.abandon_pending();
        }
        let (p, exporters) = self.stats();
        let lost: u64 = p
            .dropped
            .iter()
            .filter(|(r, _)| !r.is_intentional())
            .map(|(_, n)| n)
            .sum::<u64>()
            + exporters
                .iter()
                .map(|e| e.failed_total() + e.dropped_total())
                .sum::<u64>();
        if lost > 0 {
            tracing::warn!(target: "aiobs", ?p, ?exporters, "aiobs shut down; {lost} event(s) were lost over its lifetime");
        } else {
            tracing::debug!(target: "aiobs", delivered = exporters.iter().map(|e| e.delivered).sum::<u64>(), "aiobs shut down; nothing lost");
        }
        if let Ok(mut s) = self.stop_thread.lock()
            && let Some(tx) = s.take()
        {
            let _stopped = tx.send(());
        }
    }

    fn report(&self, start: Instant, completed: bool, barrier: &Barrier) -> FlushReport {
        let (pipeline, exporters) = self.stats();
        let mut last = self.last_report.lock().ok();
        let prev = last.as_mut().and_then(|l| l.take());
        let (prev_drops, prev_exp) = match &prev {
            Some((d, e)) => (Some(d), Some(e)),
            None => (None, None),
        };
        let reports = exporters
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let before = prev_exp.and_then(|p| p.get(i));
                let result = barrier.result(i);
                ExporterFlushReport {
                    name: s.name.clone(),
                    delivered: s.delivered - before.map_or(0, |b| b.delivered.min(s.delivered)),
                    failed: diff(&s.failed, before.map(|b| &b.failed)),
                    dropped: diff(&s.dropped, before.map(|b| &b.dropped)),
                    pending: s.pending,
                    completed: result.is_some(),
                    flush_error: result.flatten(),
                    totals: s.clone(),
                }
            })
            .collect();
        let report = FlushReport {
            completed,
            elapsed: start.elapsed(),
            pipeline_dropped: diff(&pipeline.dropped, prev_drops),
            pipeline: pipeline.clone(),
            exporters: reports,
        };
        if let Some(l) = last.as_mut() {
            **l = Some((pipeline.dropped, exporters));
        }
        report
    }

    /// After shutdown completed: the shutdown report again, or for a flush a
    /// report of the (final) stats. `None` while the pipeline runs.
    pub(crate) fn after_shutdown(&self, shutdown: bool) -> Option<FlushReport> {
        let done = self.final_report.lock().ok()?.clone()?;
        if shutdown {
            return Some(done);
        }
        let now = Instant::now();
        let barrier = Barrier::new(0, now, false, None);
        let mut report = self.report(now, true, &barrier);
        for e in &mut report.exporters {
            e.completed = true;
        }
        Some(report)
    }

    /// A report when the pipeline could not be reached (its runtime is gone).
    pub(crate) fn unreachable_report(&self) -> FlushReport {
        let now = Instant::now();
        let barrier = Barrier::new(self.core.slots.len(), now, false, None);
        self.report(now, false, &barrier)
    }

    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref()
    }
}

impl Router {
    /// One pass: everything in the ingress now goes to the exporter queues.
    async fn route(&mut self, p: &Core) -> usize {
        let mut events = std::mem::take(&mut self.scratch);
        if p.ingress.drain_into(&mut events) == 0 {
            self.scratch = events;
            return 0;
        }
        let total = events.len() as u64;
        let mut kept: Vec<EventRef> = Vec::with_capacity(events.len());
        let mut filtered = 0u64;
        let mut panicked = 0u64;
        for ev in events.drain(..) {
            let mut ev = Arc::new(ev.into_event());
            match self.run_processors(&mut ev) {
                Ok(Verdict::Keep) => kept.push(ev),
                Ok(Verdict::Drop) => filtered += 1,
                Err(()) => panicked += 1,
            }
        }
        self.scratch = events;
        for ap in &self.async_processors {
            let before = kept.len();
            if std::panic::AssertUnwindSafe(ap.process(&mut kept))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(target: "aiobs", processor = ap.name(), "async processor panicked; its batch passes unprocessed");
            }
            filtered += before.saturating_sub(kept.len()) as u64;
        }
        p.counters
            .lose("pipeline", DropReason::Filtered, filtered, None);
        p.counters
            .lose("pipeline", DropReason::ProcessorPanicked, panicked, None);
        for slot in &p.slots {
            let mine: Vec<EventRef> = kept
                .iter()
                .filter(|e| slot.signals.contains(e.signal()))
                .cloned()
                .collect();
            if !mine.is_empty() {
                enqueue(p, slot, mine).await;
            }
        }
        p.counters.pass(total - filtered - panicked);
        total as usize
    }

    fn run_processors(&self, ev: &mut EventRef) -> Result<Verdict, ()> {
        for proc in &self.processors {
            let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| processor::apply(&**proc, ev)))
                .map_err(|_| {
                    tracing::error!(target: "aiobs", processor = proc.name(), "processor panicked; event dropped");
                })?;
            if verdict == Verdict::Drop {
                return Ok(Verdict::Drop);
            }
        }
        Ok(Verdict::Keep)
    }
}

/// Hands events to an exporter's queue, honouring its capacity and the overflow policy.
async fn enqueue(p: &Core, slot: &Slot, mut events: Vec<EventRef>) {
    slot.counters.accept(events.len() as u64);
    let cap = slot.policy.queue_capacity;
    // Under `Block`, admit events piece by piece as the worker frees room
    // (a routed chunk may be larger than the whole queue).
    let until = match p.overflow {
        OverflowPolicy::Block { timeout } if p.background => Some(Instant::now() + timeout),
        _ => None,
    };
    while !events.is_empty() {
        let room = cap.saturating_sub(slot.queued.load(Ordering::Acquire));
        if room == 0 {
            match until {
                Some(t) if Instant::now() < t => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                _ => break,
            }
        }
        let rest = if room < events.len() {
            events.split_off(room)
        } else {
            Vec::new()
        };
        hand_to_worker(slot, std::mem::replace(&mut events, rest));
    }
    if !events.is_empty() {
        slot.counters.lose(
            &slot.name,
            DropReason::QueueFull,
            events.len() as u64,
            Some("exporter queue full"),
        );
    }
}

fn hand_to_worker(slot: &Slot, events: Vec<EventRef>) {
    let k = events.len();
    slot.queued.fetch_add(k, Ordering::AcqRel);
    if slot.tx.send(WorkerMsg::Events(events)).is_err() {
        // The worker is gone (aborted at a shutdown deadline).
        slot.queued.fetch_sub(k, Ordering::AcqRel);
        slot.counters.lose(
            &slot.name,
            DropReason::AfterShutdown,
            k as u64,
            Some("exporter worker stopped"),
        );
    }
}

/// How long the router lets events accumulate between passes while busy:
/// one wake-up per millisecond of traffic rather than one per event.
const ROUTER_LINGER: Duration = Duration::from_millis(1);

async fn router_loop(
    core: Arc<Core>,
    mut router: Router,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    loop {
        let busy = router.route(&core).await > 0;
        let woken = core.ingress.wake.notified();
        if !busy {
            // Going idle: producers wake us from now on. Drain once more for a
            // push that raced with the flag and skipped its wake-up.
            core.ingress.set_idle();
            if router.route(&core).await > 0 {
                continue;
            }
        }
        let pause = async {
            if busy {
                tokio::time::sleep(ROUTER_LINGER).await;
            } else {
                woken.await;
            }
        };
        tokio::select! {
            biased;
            c = control.recv() => match c {
                Some(Control::Barrier(b)) => {
                    // Everything emitted before the barrier is in the ingress: route it first.
                    router.route(&core).await;
                    for slot in &core.slots {
                        // A worker that is gone cannot pass the barrier; the report shows it incomplete.
                        let _delivered_to_worker = slot.tx.send(WorkerMsg::Barrier(b.clone())).is_ok();
                    }
                    if b.shutdown {
                        return;
                    }
                }
                None => return,
            },
            () = pause => {}
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Ok(tasks) = self.worker_tasks.get_mut() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        if let Ok(stop) = self.stop_thread.get_mut()
            && let Some(tx) = stop.take()
        {
            let _stopped = tx.send(());
        }
        let shut_down = self.shutdown_report.get_mut().is_some();
        let (p, exporters) = self.core.stats();
        let pending = p.pending + exporters.iter().map(|e| e.pending).sum::<u64>();
        if !shut_down && pending > 0 {
            tracing::warn!(
                target: "aiobs",
                pending,
                "aiobs dropped without shutdown: {pending} event(s) still pending are lost; call shutdown() or keep the ObservabilityGuard alive"
            );
        }
    }
}
