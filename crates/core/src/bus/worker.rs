//! One exporter's queue and worker: batching, retry, flush barriers, accounting.
//!
//! This is the only place where events reach a terminal state. Every event in
//! an exporter's queue is counted `accepted`; the worker moves it to
//! delivered, failed or dropped, and nowhere else does.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{Notify, mpsc};

use crate::event::{ObservabilityEvent, Signals};
use crate::exporter::{
    BatchPolicy, Custody, ErrorClass, ExportError, Exporter, ExporterContext, RetryPolicy,
    Settlement,
};
use crate::stats::{Counters, DropReason, ExporterStats};

pub(crate) type EventRef = Arc<ObservabilityEvent>;

/// A message on an exporter's queue.
pub(crate) enum WorkerMsg {
    Events(Vec<EventRef>),
    Barrier(Arc<Barrier>),
}

/// A flush or shutdown travelling behind the events emitted before it.
pub(crate) struct Barrier {
    pub(crate) deadline: Instant,
    pub(crate) shutdown: bool,
    /// A request-scoped flush: only this trace's events must pass.
    pub(crate) trace: Option<crate::id::TraceId>,
    remaining: AtomicUsize,
    /// Per exporter: `None` until it completed; then the error of its own flush, if any.
    results: Mutex<Vec<Option<Option<String>>>>,
    done: Notify,
}

impl Barrier {
    pub(crate) fn new(
        exporters: usize,
        deadline: Instant,
        shutdown: bool,
        trace: Option<crate::id::TraceId>,
    ) -> Arc<Self> {
        Arc::new(Self {
            deadline,
            shutdown,
            trace,
            remaining: AtomicUsize::new(exporters),
            results: Mutex::new(vec![None; exporters]),
            done: Notify::new(),
        })
    }
    fn complete(&self, index: usize, flush_error: Option<String>) {
        if let Ok(mut r) = self.results.lock()
            && let Some(slot) = r.get_mut(index)
        {
            *slot = Some(flush_error);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
            self.done.notify_one();
        }
    }
    /// Waits until every exporter passed the barrier, or the deadline.
    pub(crate) async fn wait(&self) -> bool {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        loop {
            let notified = self.done.notified();
            if self.remaining.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.remaining.load(Ordering::Acquire) == 0;
            }
        }
    }
    pub(crate) fn result(&self, index: usize) -> Option<Option<String>> {
        self.results
            .lock()
            .ok()
            .and_then(|r| r.get(index).cloned().flatten())
    }
}

/// The shared half of an exporter's lane: what the router, stats and flush see.
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) exporter: Arc<dyn Exporter>,
    pub(crate) signals: Signals,
    pub(crate) policy: BatchPolicy,
    pub(crate) retry: RetryPolicy,
    pub(crate) counters: Counters,
    /// Events in the queue, the batch buffer or in flight.
    pub(crate) queued: AtomicUsize,
    attempts: AtomicU64,
    retries: AtomicU64,
    disabled: AtomicBool,
    /// Events the exporter holds (see `ExportOutcome::held`), not yet settled.
    held: AtomicUsize,
    pub(crate) tx: mpsc::UnboundedSender<WorkerMsg>,
    pub(crate) recycler: Arc<super::recycle::Recycler>,
}

impl Slot {
    pub(crate) fn new(
        index: usize,
        exporter: Arc<dyn Exporter>,
        recycler: Arc<super::recycle::Recycler>,
    ) -> (Arc<Slot>, mpsc::UnboundedReceiver<WorkerMsg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let slot = Arc::new(Slot {
            index,
            name: exporter.name().to_owned(),
            signals: exporter.signals(),
            policy: exporter.batch_policy(),
            retry: exporter.retry_policy(),
            exporter,
            counters: Counters::default(),
            queued: AtomicUsize::new(0),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            disabled: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            tx,
            recycler,
        });
        (slot, rx)
    }

    pub(crate) fn stats(&self) -> ExporterStats {
        ExporterStats::from_snapshot(
            &self.name,
            self.counters.snapshot(),
            self.attempts.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.disabled.load(Ordering::Relaxed),
        )
    }

    fn settle(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    fn lose(&self, reason: DropReason, n: usize, detail: Option<&str>) {
        self.counters.lose(&self.name, reason, n as u64, detail);
        self.settle(n);
    }

    fn deliver(&self, n: usize) {
        self.counters.pass(n as u64);
        self.settle(n);
    }

    /// Takes up to `n` held events out of custody; returns how many were held
    /// (an exporter that settles more than it holds must not corrupt accounting).
    fn release_held(&self, n: usize) -> usize {
        let mut taken = 0;
        let updated = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                taken = n.min(h);
                Some(h - taken)
            });
        if updated.is_ok() { taken } else { 0 }
    }

    /// Counts events that will never be exported (shutdown deadline passed).
    pub(crate) fn abandon_pending(&self) {
        let pending = self.stats().pending;
        if pending > 0 {
            self.counters.lose(
                &self.name,
                DropReason::FlushTimeout,
                pending,
                Some("still pending when the shutdown deadline passed"),
            );
        }
    }
}

/// The worker half: owns the queue's receiving end and the batch buffer.
pub(crate) struct Worker {
    pub(crate) slot: Arc<Slot>,
    rx: mpsc::UnboundedReceiver<WorkerMsg>,
    /// Events waiting for a batch, with their estimated sizes.
    buffer: std::collections::VecDeque<(EventRef, usize)>,
    buffer_bytes: usize,
    oldest: Option<Instant>,
    /// The batch being exported. Kept here, not in a local, so that a
    /// cancelled export (inline mode's deadline) leaves it to be sent next time.
    inflight: Vec<EventRef>,
    ctx: ExporterContext,
    initialized: bool,
    spent: Vec<Arc<crate::span::ExportedSpan>>,
}

impl Worker {
    pub(crate) fn new(
        slot: Arc<Slot>,
        rx: mpsc::UnboundedReceiver<WorkerMsg>,
        mut ctx: ExporterContext,
    ) -> Self {
        // Events the exporter holds stay counted in `queued` (pending) until
        // it settles them here.
        let held_by = Arc::downgrade(&slot);
        ctx.custody = Custody::new(Arc::new(move |s: Settlement<'_>| {
            let Some(slot) = held_by.upgrade() else {
                return;
            };
            match s {
                Settlement::Delivered(n) => slot.deliver(slot.release_held(n)),
                Settlement::Lost(reason, n, detail) => {
                    slot.lose(reason, slot.release_held(n), Some(detail));
                }
            }
        }));
        Self {
            slot,
            rx,
            buffer: std::collections::VecDeque::new(),
            buffer_bytes: 0,
            oldest: None,
            inflight: Vec::new(),
            ctx,
            initialized: false,
            spent: Vec::new(),
        }
    }

    /// The background loop: runs until a shutdown barrier passes or the queue closes.
    pub(crate) async fn run(mut self) {
        loop {
            let msg = match self.oldest {
                None => self.rx.recv().await,
                Some(oldest) => {
                    let at = tokio::time::Instant::from_std(oldest + self.slot.policy.max_wait);
                    tokio::select! {
                        m = self.rx.recv() => m,
                        () = tokio::time::sleep_until(at) => {
                            self.export_buffered().await;
                            continue;
                        }
                    }
                }
            };
            match msg {
                Some(WorkerMsg::Events(events)) => self.take(events).await,
                Some(WorkerMsg::Barrier(b)) => {
                    let shutdown = b.shutdown;
                    self.pass_barrier(&b).await;
                    if shutdown {
                        return;
                    }
                }
                None => {
                    self.export_buffered().await;
                    return;
                }
            }
        }
    }

    /// Inline mode: processes everything queued now, up to and including `barrier`.
    pub(crate) async fn pump(&mut self, barrier: &Barrier) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                WorkerMsg::Events(events) => self.take(events).await,
                // Barriers of inline flushes are passed directly below.
                WorkerMsg::Barrier(b) => self.pass_barrier(&b).await,
            }
        }
        self.pass_barrier(barrier).await;
    }

    async fn take(&mut self, events: Vec<EventRef>) {
        if self.buffer.is_empty() {
            self.oldest = Some(Instant::now());
        }
        for e in events {
            let size = e.estimated_size();
            self.buffer_bytes += size;
            self.buffer.push_back((e, size));
        }
        while self.buffer.len() >= self.slot.policy.max_events
            || self.buffer_bytes >= self.slot.policy.max_bytes
        {
            self.export_one_batch().await;
        }
    }

    async fn pass_barrier(&mut self, barrier: &Barrier) {
        match barrier.trace {
            None => self.export_buffered().await,
            Some(trace) => self.export_trace(trace).await,
        }
        let deadline = barrier.deadline;
        let exporter = &self.slot.exporter;
        let call = async {
            if barrier.shutdown {
                exporter.shutdown(deadline).await
            } else {
                exporter.flush(deadline).await
            }
        };
        let flush_error = match tokio::time::timeout_at(
            tokio::time::Instant::from_std(deadline),
            AssertUnwindSafe(call).catch_unwind(),
        )
        .await
        {
            Ok(Ok(Ok(()))) => None,
            Ok(Ok(Err(e))) => Some(e.to_string()),
            Ok(Err(_)) => Some(format!(
                "exporter {} panicked in flush/shutdown",
                self.slot.name
            )),
            Err(_) => Some(format!(
                "exporter {} did not finish flush/shutdown before the deadline",
                self.slot.name
            )),
        };
        if let Some(e) = &flush_error {
            self.slot.counters.set_error(e);
        }
        barrier.complete(self.slot.index, flush_error);
    }

    /// Exports one trace's buffered events now, ahead of the rest (which keep
    /// waiting for their batch): a request-scoped flush.
    async fn export_trace(&mut self, trace: crate::id::TraceId) {
        if !self.inflight.is_empty() {
            self.deliver_inflight().await;
        }
        let (mine, rest): (std::collections::VecDeque<_>, _) = std::mem::take(&mut self.buffer)
            .into_iter()
            // Records with no trace (a log, a metric) may belong to this
            // request: they go too, rather than wait for a full flush that a
            // frozen serverless isolate may never run.
            .partition(|(e, _)| e.trace_id().is_none_or(|t| t == trace));
        self.buffer = rest;
        self.buffer_bytes = self.buffer.iter().map(|(_, size)| size).sum();
        if self.buffer.is_empty() {
            self.oldest = None;
        }
        let mut mine: Vec<EventRef> = mine.into_iter().map(|(e, _)| e).collect();
        while !mine.is_empty() {
            let n = mine.len().min(self.slot.policy.max_events);
            self.inflight = mine.drain(..n).collect();
            self.deliver_inflight().await;
        }
    }

    async fn export_buffered(&mut self) {
        while !self.inflight.is_empty() || !self.buffer.is_empty() {
            self.export_one_batch().await;
        }
        self.oldest = None;
    }

    /// Cuts one batch off the buffer (respecting max events and bytes) and delivers it.
    async fn export_one_batch(&mut self) {
        if self.inflight.is_empty() {
            let policy = self.slot.policy;
            let mut bytes = 0;
            while let Some((_, size)) = self.buffer.front() {
                let n = self.inflight.len();
                if n > 0 && (n >= policy.max_events || bytes + size > policy.max_bytes) {
                    break;
                }
                bytes += size;
                if let Some((e, _)) = self.buffer.pop_front() {
                    self.inflight.push(e);
                }
            }
            self.buffer_bytes = self.buffer_bytes.saturating_sub(bytes);
            if self.buffer.is_empty() {
                self.oldest = None;
            }
        }
        self.deliver_inflight().await;
    }

    /// Exports `inflight` with retries until every item is terminal.
    async fn deliver_inflight(&mut self) {
        let slot = self.slot.clone();
        let mut retry = 0u32;
        while !self.inflight.is_empty() {
            if slot.disabled.load(Ordering::Acquire) {
                let n = self.inflight.len();
                self.retire_inflight();
                slot.lose(DropReason::ExporterDisabled, n, None);
                return;
            }
            slot.attempts.fetch_add(1, Ordering::Relaxed);
            if retry > 0 {
                slot.retries.fetch_add(1, Ordering::Relaxed);
            }
            let class = match self.attempt().await {
                Attempt::Done => return,
                Attempt::Retry(class) => class,
            };
            if retry >= slot.retry.max_retries {
                let n = self.inflight.len();
                self.retire_inflight();
                slot.lose(DropReason::RetriesExhausted, n, None);
                return;
            }
            let wait = match class {
                ErrorClass::Throttled(Some(after)) => after.min(slot.retry.max_backoff),
                _ => slot.retry.backoff(retry),
            };
            retry += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// One export call. Settles what it can; leaves retryable items in `inflight`.
    async fn attempt(&mut self) -> Attempt {
        let slot = self.slot.clone();
        let timeout = slot.retry.attempt_timeout;
        if !self.initialized {
            let init = AssertUnwindSafe(slot.exporter.init(&self.ctx)).catch_unwind();
            match tokio::time::timeout(timeout, init).await {
                Ok(Ok(Ok(()))) => self.initialized = true,
                Ok(Ok(Err(e))) => return self.failed(e),
                Ok(Err(_)) => {
                    return self.failed(ExportError::disabled("exporter panicked in init"));
                }
                Err(_) => return self.failed(ExportError::transient("exporter init timed out")),
            }
        }
        let call = AssertUnwindSafe(slot.exporter.export(&self.inflight)).catch_unwind();
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(Ok(outcome))) => {
                let total = self.inflight.len();
                let mut retry_idx = Vec::new();
                let mut retry_class = ErrorClass::Transient;
                let mut failed = 0;
                let mut failed_msg = None;
                let mut retry_msg = None;
                if outcome.rejected.is_empty() && outcome.held.is_empty() {
                    slot.deliver(total);
                    self.retire_inflight();
                    return Attempt::Done;
                }
                let mut seen = vec![false; total];
                for r in outcome.rejected {
                    if r.index >= total || seen[r.index] {
                        continue; // an exporter bug must not corrupt accounting
                    }
                    seen[r.index] = true;
                    if r.class.is_retryable() {
                        if let ErrorClass::Throttled(_) = r.class {
                            retry_class = r.class;
                        }
                        retry_idx.push(r.index);
                        retry_msg = Some(r.message);
                    } else {
                        failed += 1;
                        failed_msg = Some(r.message);
                    }
                }
                // Held items stay pending (counted in `queued`) until the
                // exporter settles them through its `Custody`.
                let mut held = 0;
                for i in outcome.held {
                    if i < total && !seen[i] {
                        seen[i] = true;
                        held += 1;
                    }
                }
                slot.held.fetch_add(held, Ordering::AcqRel);
                let delivered = total - failed - retry_idx.len() - held;
                slot.deliver(delivered);
                if failed > 0 {
                    slot.lose(DropReason::PermanentError, failed, failed_msg.as_deref());
                } else if let Some(m) = &retry_msg {
                    slot.counters.set_error(m);
                }
                if retry_idx.is_empty() {
                    self.retire_inflight();
                    return Attempt::Done;
                }
                let keep: Vec<EventRef> = retry_idx
                    .iter()
                    .map(|i| self.inflight[*i].clone())
                    .collect();
                let done = std::mem::replace(&mut self.inflight, keep);
                self.retire(done);
                Attempt::Retry(retry_class)
            }
            Ok(Ok(Err(e))) => self.failed(e),
            Ok(Err(_)) => {
                let n = self.inflight.len();
                self.retire_inflight();
                let msg = format!("exporter {} panicked in export", slot.name);
                tracing::error!(target: "aiobs", exporter = %slot.name, "{msg}; {n} event(s) counted as failed");
                slot.lose(DropReason::ExporterPanicked, n, Some(&msg));
                Attempt::Done
            }
            Err(_) => self.failed(ExportError::transient(format!(
                "export did not answer within {timeout:?}"
            ))),
        }
    }

    /// Hands the spans of terminal events to the recycler (see `recycle.rs`).
    fn retire_inflight(&mut self) {
        let done = std::mem::take(&mut self.inflight);
        self.retire(done);
    }

    fn retire(&mut self, mut done: Vec<EventRef>) {
        for ev in done.drain(..) {
            // The last holder of an event unwraps it; the event shell was
            // allocated on this thread and is freed here.
            if let Some(ObservabilityEvent::Span { span, .. }) = Arc::into_inner(ev) {
                self.spent.push(span);
            }
        }
        self.slot.recycler.put(&mut self.spent);
        // Keep the allocation for the next batch.
        if self.inflight.capacity() == 0 {
            self.inflight = done;
        }
    }

    fn failed(&mut self, e: ExportError) -> Attempt {
        let slot = self.slot.clone();
        let msg = e.to_string();
        match e.class {
            ErrorClass::Permanent => {
                let n = self.inflight.len();
                self.retire_inflight();
                slot.lose(DropReason::PermanentError, n, Some(&msg));
                Attempt::Done
            }
            ErrorClass::Disabled => {
                if !slot.disabled.swap(true, Ordering::AcqRel) {
                    tracing::error!(target: "aiobs", exporter = %slot.name, error = %msg, "exporter disabled; its events are counted as dropped");
                }
                let n = self.inflight.len();
                self.retire_inflight();
                slot.lose(DropReason::ExporterDisabled, n, Some(&msg));
                Attempt::Done
            }
            class => {
                slot.counters.set_error(&msg);
                tracing::debug!(target: "aiobs", exporter = %slot.name, error = %msg, "export failed; will retry");
                Attempt::Retry(class)
            }
        }
    }
}

enum Attempt {
    Done,
    Retry(ErrorClass),
}
