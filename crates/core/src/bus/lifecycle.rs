//! Starting the pipeline (threads or tasks), flush, shutdown, and drop.
//!
//! A flush is: decide which exporters the caller will not wait for (known to
//! be failing), send a barrier, wait for it on the caller's side (so a blocked
//! pipeline thread cannot hold the caller past its deadline), then read the
//! report from the ledgers. Shutdown is a flush of everything that closes the
//! ingress first and, at its end, gives up on what did not complete.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::barrier::{Barrier, LaneResult, Signal};
use super::blocking::{cannot_block_here, mark_pipeline_thread, on_pipeline_thread, wait_here};
use super::ledger::{GlobalLedger, TraceLedger, lock};
use super::queue::{FAILING_AFTER, Slot};
use super::router::{Control, Router, router_loop};
use super::timer::Timers;
use super::worker::Worker;
use super::{Core, DropObserver, Drops, OverflowPolicy, RuntimeMode, report};
use crate::exporter::{Exporter, ExporterContext};
use crate::processor::{AsyncProcessor, SpanProcessor};
use crate::stats::{Counters, DropReason, ExporterStats, FlushReport, FlushScope, PipelineStats};

pub(crate) struct PipelineConfig {
    pub(crate) exporters: Vec<Arc<dyn Exporter>>,
    pub(crate) processors: Vec<Arc<dyn SpanProcessor>>,
    pub(crate) async_processors: Vec<Arc<dyn AsyncProcessor>>,
    pub(crate) ingress_capacity: usize,
    pub(crate) overflow: OverflowPolicy,
    pub(crate) mode: RuntimeMode,
    pub(crate) context: ExporterContext,
    pub(crate) trace_ledger_capacity: usize,
    pub(crate) on_drop: Option<DropObserver>,
}

/// Where the router and the workers live.
enum Engine {
    /// Threads or tasks; barriers go to the router through `control`.
    Background {
        control: mpsc::UnboundedSender<Control>,
        /// `RuntimeMode::Handle`: the runtime they run on.
        handle: Option<tokio::runtime::Handle>,
    },
    /// `flush` drives them in the caller's task.
    Inline {
        router: tokio::sync::Mutex<Router>,
        workers: tokio::sync::Mutex<Vec<Worker>>,
    },
}

enum Shutdown {
    NotStarted,
    Running,
    Done(Box<FlushReport>),
}

/// The pipeline, owned by the `Observability` handles. Dropping it (without
/// shutdown) stops the background work and counts what was still pending as
/// lost (`DroppedWithoutShutdown`), telling the drop observer.
pub(crate) struct Pipeline {
    pub(crate) core: Arc<Core>,
    engine: Engine,
    shutdown: Mutex<Shutdown>,
    shutdown_done: Signal,
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
            .field("inline", &matches!(self.engine, Engine::Inline { .. }))
            .finish()
    }
}

impl Pipeline {
    pub(crate) fn start(cfg: PipelineConfig) -> std::io::Result<Arc<Pipeline>> {
        let timers = match cfg.mode {
            // Our own runtimes have tokio's timer; others may not.
            RuntimeMode::BackgroundThread => Timers::Tokio,
            RuntimeMode::Handle(_) | RuntimeMode::Inline => Timers::DeadlineThread,
        };
        let mut slots = Vec::new();
        let mut receivers = Vec::new();
        for (i, e) in cfg.exporters.into_iter().enumerate() {
            let (slot, rx) = Slot::new(i, e);
            slots.push(slot);
            receivers.push(rx);
        }
        let lanes = slots.len();
        let inline = matches!(cfg.mode, RuntimeMode::Inline);
        let core = Arc::new(Core {
            ingress: super::Ingress::new(cfg.ingress_capacity),
            counters: Counters::default(),
            ended_by_drop: Default::default(),
            truncations: Default::default(),
            slots,
            overflow: cfg.overflow,
            background: !inline,
            recycler: Arc::default(),
            returned: Default::default(),
            global: GlobalLedger::new(lanes),
            traces: TraceLedger::new(lanes, cfg.trace_ledger_capacity),
            barriers: Default::default(),
            drops: Drops {
                observer: cfg.on_drop,
                panicked: Default::default(),
            },
            halt: Default::default(),
        });
        let workers: Vec<Worker> = core
            .slots
            .iter()
            .zip(receivers)
            .map(|(slot, rx)| {
                Worker::new(slot.clone(), core.clone(), rx, cfg.context.clone(), timers)
            })
            .collect();
        let router = Router::new(cfg.processors, cfg.async_processors, timers);
        let engine = match cfg.mode {
            RuntimeMode::Inline => Engine::Inline {
                router: tokio::sync::Mutex::new(router),
                workers: tokio::sync::Mutex::new(workers),
            },
            RuntimeMode::Handle(handle) => {
                let (control, rx) = mpsc::unbounded_channel();
                handle.spawn(router_loop(core.clone(), router, rx));
                for w in workers {
                    handle.spawn(w.run());
                }
                Engine::Background {
                    control,
                    handle: Some(handle),
                }
            }
            RuntimeMode::BackgroundThread => {
                let (control, rx) = mpsc::unbounded_channel();
                let c = core.clone();
                spawn_on_own_runtime("aiobs-router".into(), router_loop(c, router, rx))?;
                for w in workers {
                    let name = format!("aiobs-{}", w.name());
                    spawn_on_own_runtime(name, w.run())?;
                }
                Engine::Background {
                    control,
                    handle: None,
                }
            }
        };
        Ok(Arc::new(Pipeline {
            core,
            engine,
            shutdown: Mutex::new(Shutdown::NotStarted),
            shutdown_done: Signal::default(),
        }))
    }

    pub(crate) fn stats(&self) -> (PipelineStats, Vec<ExporterStats>) {
        self.core.stats()
    }

    pub(crate) fn is_inline(&self) -> bool {
        matches!(self.engine, Engine::Inline { .. })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        match &self.engine {
            Engine::Background { handle, .. } => handle.as_ref(),
            Engine::Inline { .. } => None,
        }
    }

    /// `flush`, `flush_trace` or `shutdown`, awaited.
    pub(crate) async fn flush(
        self: &Arc<Self>,
        scope: FlushScope,
        timeout: Duration,
        shutdown: bool,
    ) -> FlushReport {
        let start = Instant::now();
        let deadline = start + timeout;
        let barrier = match self.begin(&scope, shutdown, start, deadline) {
            Ok(b) => b,
            Err(Early::Report(r)) => return *r,
            Err(Early::ShutdownRunning) => {
                self.shutdown_done
                    .changed(
                        self.shutdown_done.generation(),
                        deadline,
                        Timers::DeadlineThread,
                    )
                    .await;
                return self.shutdown_report_or_busy(scope, start);
            }
        };
        // If this future is dropped before its report, the barrier's
        // accounts go to the next report rather than nowhere.
        let cancel = CancelGuard {
            pipeline: self,
            barrier: Some(barrier.clone()),
        };
        if on_pipeline_thread() && !self.is_inline() {
            let why = "called on one of the pipeline's own threads (from an exporter or \
                       processor): waiting there would wait for itself";
            cancel.disarm();
            return self.end(&barrier, scope, start, Some(why.into()));
        }
        match &self.engine {
            Engine::Inline { router, workers } => {
                let work = async {
                    {
                        let mut router = router.lock().await;
                        router.route(&self.core).await;
                        Router::place(&self.core, &barrier);
                    }
                    let mut workers = workers.lock().await;
                    let pumps = workers
                        .iter_mut()
                        .filter(|w| {
                            let i = w.index();
                            barrier.in_scope(i) && barrier.not_waited[i].is_none()
                        })
                        .map(|w| w.pump(&barrier));
                    futures_util::future::join_all(pumps).await;
                };
                // On timeout, batches in flight stay in their worker and go out at the next flush.
                let _in_time = Timers::DeadlineThread.timeout_at(deadline, work).await;
            }
            Engine::Background { .. } => {
                self.send(&barrier);
                loop {
                    let seen = barrier.signal.generation();
                    if self.resolved(&barrier) || Instant::now() >= deadline {
                        break;
                    }
                    barrier
                        .signal
                        .changed(seen, deadline, Timers::DeadlineThread)
                        .await;
                }
            }
        }
        cancel.disarm();
        self.end(&barrier, scope, start, None)
    }

    /// A flush whose caller went away before its report: its accounts are
    /// carried whole to the next report of their ledger (a shutdown ends as
    /// if its deadline had passed).
    fn cancelled(&self, b: &Arc<Barrier>) {
        if b.shutdown {
            let _report = self.end(
                b,
                FlushScope::all(),
                Instant::now(),
                Some("cancelled".into()),
            );
            return;
        }
        let placed = {
            let mut s = b.state();
            match std::mem::replace(&mut s.placement, super::barrier::Placement::Abandoned) {
                super::barrier::Placement::Placed(p) => Some(p),
                _ => None,
            }
        };
        if let Some(p) = placed {
            for (lane, account) in p.accounts.into_iter().enumerate() {
                let (Some(account), Some(seq)) =
                    (account, p.seqs.get(lane).or(p.seqs.first()).copied())
                else {
                    continue;
                };
                match b.trace {
                    None => self.core.global.carry_unreported(lane, seq, account),
                    Some(t) => self.core.traces.carry_unreported(t, lane, seq, account),
                }
            }
        }
        self.core.barriers.unregister(b);
    }

    /// `flush_blocking`, `shutdown_blocking`, and the guard's drop.
    pub(crate) fn flush_blocking(
        self: &Arc<Self>,
        scope: FlushScope,
        timeout: Duration,
        shutdown: bool,
    ) -> FlushReport {
        let start = Instant::now();
        let deadline = start + timeout;
        if let Some(why) = cannot_block_here(self.handle()) {
            return report::refused(&self.core, scope, start, why);
        }
        if self.is_inline() {
            // Drive the inline pipeline on a scoped thread with a runtime of
            // its own (the exporters' I/O needs one), whatever this thread is in.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let report = std::thread::scope(|s| {
                s.spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map(|rt| rt.block_on(self.flush(scope.clone(), remaining, shutdown)))
                })
                .join()
            });
            return match report {
                Ok(Ok(mut r)) => {
                    r.elapsed = start.elapsed();
                    r
                }
                Ok(Err(e)) => report::refused(
                    &self.core,
                    scope,
                    start,
                    format!("could not start a runtime to flush on: {e}"),
                ),
                Err(_) => {
                    report::refused(&self.core, scope, start, "the flush thread panicked".into())
                }
            };
        }
        let barrier = match self.begin(&scope, shutdown, start, deadline) {
            Ok(b) => b,
            Err(Early::Report(r)) => return *r,
            Err(Early::ShutdownRunning) => {
                let seen = self.shutdown_done.generation();
                wait_here(|| self.shutdown_done.changed_blocking(seen, deadline));
                return self.shutdown_report_or_busy(scope, start);
            }
        };
        self.send(&barrier);
        wait_here(|| {
            loop {
                let seen = barrier.signal.generation();
                if self.resolved(&barrier) || Instant::now() >= deadline {
                    break;
                }
                barrier.signal.changed_blocking(seen, deadline);
            }
        });
        self.end(&barrier, scope, start, None)
    }

    /// Checks the scope, answers at once what needs no barrier, and makes the barrier.
    fn begin(
        &self,
        scope: &FlushScope,
        shutdown: bool,
        start: Instant,
        deadline: Instant,
    ) -> Result<Arc<Barrier>, Early> {
        if shutdown {
            let mut s = lock(&self.shutdown);
            match &*s {
                Shutdown::Done(r) => return Err(Early::Report(r.clone())),
                Shutdown::Running => return Err(Early::ShutdownRunning),
                Shutdown::NotStarted => *s = Shutdown::Running,
            }
            self.core.ingress.close();
        } else if matches!(*lock(&self.shutdown), Shutdown::Done(_)) {
            return Err(Early::Report(Box::new(report::after_shutdown(
                &self.core,
                scope.clone(),
                start,
            ))));
        }
        let slots = &self.core.slots;
        let scope_lanes: Box<[bool]> = match &scope.exporters {
            None => vec![true; slots.len()].into(),
            Some(names) => {
                if let Some(unknown) = names.iter().find(|n| !slots.iter().any(|s| &s.name == *n)) {
                    let known: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
                    let why = format!("no exporter is named {unknown:?} (exporters: {known:?})");
                    return Err(Early::Report(Box::new(report::refused(
                        &self.core,
                        scope.clone(),
                        start,
                        why,
                    ))));
                }
                slots.iter().map(|s| names.contains(&s.name)).collect()
            }
        };
        let not_waited: Box<[Option<String>]> = slots
            .iter()
            .map(|s| {
                let h = s.health();
                (scope_lanes[s.index] && h.failures >= FAILING_AFTER).then(|| {
                    format!(
                        "not waited for: its destination was already failing when this call began \
                         ({} consecutive failed attempts); last error: {}",
                        h.failures,
                        h.last_error.as_deref().unwrap_or("unknown")
                    )
                })
            })
            .collect();
        let barrier = Barrier::new(shutdown, scope.trace, scope_lanes, not_waited, deadline);
        self.core.barriers.register(&barrier);
        Ok(barrier)
    }

    fn send(&self, barrier: &Arc<Barrier>) {
        if let Engine::Background { control, .. } = &self.engine {
            if control.send(Control::Barrier(barrier.clone())).is_ok() {
                self.core.ingress.wake.notify_one();
            } else {
                for slot in &self.core.slots {
                    barrier.record(slot.index, LaneResult::Stopped);
                }
            }
        }
    }

    /// Whether the caller can stop waiting: the barrier was placed and every
    /// exporter in scope passed it, or is not waited for.
    fn resolved(&self, b: &Barrier) -> bool {
        if !b.is_placed() {
            return false;
        }
        self.core
            .slots
            .iter()
            .filter(|s| b.in_scope(s.index))
            .all(|s| {
                b.lane(s.index) != LaneResult::Pending
                    || b.not_waited[s.index].is_some()
                    || s.health().retry_at.is_some_and(|at| at > b.deadline)
            })
    }

    /// The wait is over: for a shutdown, give up on what did not complete;
    /// then the report.
    fn end(
        &self,
        b: &Arc<Barrier>,
        scope: FlushScope,
        start: Instant,
        why: Option<String>,
    ) -> FlushReport {
        if b.shutdown {
            self.give_up(b);
        }
        let mut report = report::assemble(&self.core, b, scope, start);
        self.core.barriers.unregister(b);
        if let Some(why) = why {
            report.completed = false;
            report.cause = Some(why);
        }
        if b.shutdown {
            self.core.halt.stop();
            self.summarise();
            *lock(&self.shutdown) = Shutdown::Done(Box::new(report.clone()));
            self.shutdown_done.notify();
        }
        report
    }

    /// At the end of shutdown: whatever is still pending (a lane that did
    /// not complete, events an exporter still holds) is given up, counted
    /// `FlushTimeout`, and every worker is stopped.
    fn give_up(&self, b: &Barrier) {
        if !b.is_placed() {
            self.core.abandon_ingress(DropReason::FlushTimeout);
        }
        for slot in &self.core.slots {
            slot.abandon(
                &self.core,
                DropReason::FlushTimeout,
                "still pending when shutdown ended",
            );
        }
    }

    fn shutdown_report_or_busy(&self, scope: FlushScope, start: Instant) -> FlushReport {
        match &*lock(&self.shutdown) {
            Shutdown::Done(r) => (**r).clone(),
            _ => report::refused(
                &self.core,
                scope,
                start,
                "another shutdown is in progress and did not finish before this call's deadline"
                    .into(),
            ),
        }
    }

    fn summarise(&self) {
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
    }
}

/// Hands a barrier's accounts on if its `flush` future is dropped early.
struct CancelGuard<'a> {
    pipeline: &'a Pipeline,
    barrier: Option<Arc<Barrier>>,
}

impl CancelGuard<'_> {
    fn disarm(mut self) {
        self.barrier = None;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.barrier.take() {
            self.pipeline.cancelled(&b);
        }
    }
}

/// A call answered without (or before) a barrier.
enum Early {
    Report(Box<FlushReport>),
    /// Another caller's shutdown is running: wait for its report.
    ShutdownRunning,
}

/// Runs `task` to completion on a new thread with its own current-thread runtime.
fn spawn_on_own_runtime<F>(name: String, task: F) -> std::io::Result<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new().name(name).spawn(move || {
        mark_pipeline_thread();
        rt.block_on(task);
    })?;
    Ok(())
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let shut_down = matches!(
            self.shutdown
                .get_mut()
                .map(|s| matches!(s, Shutdown::Done(_))),
            Ok(true)
        );
        if !shut_down {
            let reason = DropReason::DroppedWithoutShutdown;
            let mut lost = self.core.abandon_ingress(reason);
            for slot in &self.core.slots {
                lost += slot.abandon(
                    &self.core,
                    reason,
                    "still pending when aiobs was dropped without shutdown",
                );
            }
            if lost > 0 {
                tracing::warn!(
                    target: "aiobs",
                    lost,
                    "aiobs dropped without shutdown: {lost} event(s) still pending are lost; call shutdown() or keep the ObservabilityGuard alive"
                );
            }
        }
        self.core.halt.stop();
        for slot in &self.core.slots {
            slot.stop.stop();
        }
    }
}
