//! One exporter's worker: batching, retry, passing barriers.
//!
//! It runs on a thread of its own (the default runtime mode), so an exporter
//! that blocks its thread or burns CPU stalls only itself. Every outcome it
//! reaches is counted through [`Slot::settle`], with the event's tag, so the
//! status travels with the event into both ledgers.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::Core;
use super::barrier::{Barrier, LaneResult};
use super::ledger::lock;
use super::queue::{EventRef, Outcome, Routed, Slot, Tag, WorkerMsg};
use super::timer::Timers;
use crate::exporter::{Custody, ErrorClass, ExportError, ExporterContext, Settlement};
use crate::stats::DropReason;

/// An event waiting for its batch.
struct Item {
    event: EventRef,
    size: usize,
    tag: Tag,
}

/// The worker half of a lane: owns the queue's receiving end and the batch buffer.
pub(crate) struct Worker {
    slot: Arc<Slot>,
    core: Arc<Core>,
    rx: mpsc::UnboundedReceiver<WorkerMsg>,
    buffer: VecDeque<Item>,
    buffer_bytes: usize,
    oldest: Option<Instant>,
    /// The batch being exported, and its tags. Kept here, not in a local, so
    /// that a cancelled export (inline mode's deadline) leaves it to be sent next time.
    inflight: Vec<EventRef>,
    inflight_tags: Vec<Tag>,
    ctx: ExporterContext,
    initialized: bool,
    timers: Timers,
    /// Inline mode: the deadline of the flush driving this worker; a retry
    /// due after it is left for the next flush.
    give_up_at: Option<Instant>,
}

enum Attempt {
    Done,
    Retry(ErrorClass),
}

impl Worker {
    pub(crate) fn new(
        slot: Arc<Slot>,
        core: Arc<Core>,
        rx: mpsc::UnboundedReceiver<WorkerMsg>,
        ctx: ExporterContext,
        timers: Timers,
    ) -> Self {
        // The exporter settles the events it holds here, into their accounts.
        let held_by = Arc::downgrade(&core);
        let index = slot.index;
        let custody = Custody::new(Arc::new(move |s: Settlement<'_>| {
            if let Some(core) = held_by.upgrade()
                && let Some(slot) = core.slots.get(index)
            {
                slot.settle_held(&core, s);
            }
        }));
        let ctx = ctx.for_exporter(custody, slot.retry.attempt_timeout, timers);
        Self {
            slot,
            core,
            rx,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            oldest: None,
            inflight: Vec::new(),
            inflight_tags: Vec::new(),
            ctx,
            initialized: false,
            timers,
            give_up_at: None,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.slot.name
    }

    pub(crate) fn index(&self) -> usize {
        self.slot.index
    }

    /// The background loop: runs until a shutdown barrier passes, the queue
    /// closes, or the lane is abandoned (then whatever it was doing is dropped).
    pub(crate) async fn run(mut self) {
        let slot = self.slot.clone();
        let stop = std::pin::pin!(slot.stop.wait());
        let serve = std::pin::pin!(self.serve());
        let _either = futures_util::future::select(stop, serve).await;
    }

    async fn serve(&mut self) {
        loop {
            let msg = match self.oldest {
                None => self.rx.recv().await,
                Some(oldest) => {
                    let at = oldest + self.slot.policy.max_wait;
                    let timer = self.timers.sleep_until(at);
                    tokio::select! {
                        biased;
                        m = self.rx.recv() => m,
                        () = timer => {
                            self.export_buffered().await;
                            continue;
                        }
                    }
                }
            };
            match msg {
                Some(WorkerMsg::Events(events)) => self.take(events).await,
                Some(WorkerMsg::Barrier(b)) => {
                    self.pass_barrier(&b).await;
                    if b.shutdown {
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

    /// Inline mode: processes everything queued now, then passes `barrier`.
    pub(crate) async fn pump(&mut self, barrier: &Barrier) {
        self.give_up_at = Some(barrier.deadline);
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                WorkerMsg::Events(events) => self.take(events).await,
                WorkerMsg::Barrier(b) => self.pass_barrier(&b).await,
            }
        }
        self.pass_barrier(barrier).await;
        self.give_up_at = None;
    }

    async fn take(&mut self, events: Vec<Routed>) {
        if self.buffer.is_empty() {
            self.oldest = Some(Instant::now());
        }
        for r in events {
            let size = r.event.estimated_size();
            self.buffer_bytes += size;
            self.buffer.push_back(Item {
                event: r.event,
                size,
                tag: r.tag,
            });
        }
        while self.buffer.len() >= self.slot.policy.max_events
            || self.buffer_bytes >= self.slot.policy.max_bytes
        {
            self.export_one_batch().await;
            if !self.inflight.is_empty() {
                return; // inline mode gave up until the next flush
            }
        }
    }

    async fn pass_barrier(&mut self, barrier: &Barrier) {
        match barrier.trace {
            None => self.export_buffered().await,
            Some(trace) => self.export_trace(trace).await,
        }
        if !self.inflight.is_empty() {
            // Inline mode gave up on a retry due after the deadline: not passed.
            return;
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
        let (flush_error, timed_out) = match self
            .timers
            .timeout_at(deadline, AssertUnwindSafe(call).catch_unwind())
            .await
        {
            Ok(Ok(Ok(()))) => (None, false),
            Ok(Ok(Err(e))) => (Some(e.to_string()), false),
            Ok(Err(_)) => (
                Some(format!(
                    "exporter {} panicked in flush/shutdown",
                    self.slot.name
                )),
                false,
            ),
            Err(_) => (
                Some(format!(
                    "exporter {}'s own {} did not return before the deadline",
                    self.slot.name,
                    if barrier.shutdown {
                        "shutdown"
                    } else {
                        "flush"
                    }
                )),
                true,
            ),
        };
        if let Some(e) = &flush_error {
            self.slot.counters.set_error(e);
        }
        barrier.record(
            self.slot.index,
            LaneResult::Passed {
                flush_error,
                timed_out,
            },
        );
    }

    /// Exports one trace's buffered events now, ahead of the rest (which keep
    /// waiting for their batch): a request-scoped flush.
    async fn export_trace(&mut self, trace: crate::id::TraceId) {
        if !self.inflight.is_empty() {
            self.deliver_inflight().await;
            if !self.inflight.is_empty() {
                return;
            }
        }
        let (mine, rest): (VecDeque<Item>, VecDeque<Item>) = std::mem::take(&mut self.buffer)
            .into_iter()
            // Records with no trace (a log, a metric) may belong to this
            // request: they go too, rather than wait for a full flush that a
            // frozen serverless isolate may never run.
            .partition(|i| i.event.trace_id().is_none_or(|t| t == trace));
        self.buffer = rest;
        self.buffer_bytes = self.buffer.iter().map(|i| i.size).sum();
        if self.buffer.is_empty() {
            self.oldest = None;
        }
        let mut mine = mine;
        while !mine.is_empty() {
            let n = mine.len().min(self.slot.policy.max_events);
            for item in mine.drain(..n) {
                self.inflight.push(item.event);
                self.inflight_tags.push(item.tag);
            }
            self.deliver_inflight().await;
            if !self.inflight.is_empty() {
                // Gave up (inline): what is left waits in the buffer again.
                for item in mine.into_iter().rev() {
                    self.buffer_bytes += item.size;
                    self.buffer.push_front(item);
                }
                return;
            }
        }
    }

    async fn export_buffered(&mut self) {
        while !self.inflight.is_empty() || !self.buffer.is_empty() {
            self.export_one_batch().await;
            if !self.inflight.is_empty() {
                return; // inline mode gave up until the next flush
            }
        }
        self.oldest = None;
    }

    /// Cuts one batch off the buffer (respecting max events and bytes) and delivers it.
    async fn export_one_batch(&mut self) {
        if self.inflight.is_empty() {
            let policy = self.slot.policy;
            let mut bytes = 0;
            while let Some(item) = self.buffer.front() {
                let n = self.inflight.len();
                if n > 0 && (n >= policy.max_events || bytes + item.size > policy.max_bytes) {
                    break;
                }
                bytes += item.size;
                if let Some(item) = self.buffer.pop_front() {
                    self.inflight.push(item.event);
                    self.inflight_tags.push(item.tag);
                }
            }
            self.buffer_bytes = self.buffer_bytes.saturating_sub(bytes);
            if self.buffer.is_empty() {
                self.oldest = None;
            }
        }
        self.deliver_inflight().await;
    }

    /// Exports `inflight` with retries until every item is terminal (or,
    /// inline, until the next retry would fall after the flush's deadline).
    async fn deliver_inflight(&mut self) {
        let slot = self.slot.clone();
        let mut retry = 0u32;
        while !self.inflight.is_empty() {
            if slot.disabled.load(Ordering::Acquire) {
                self.settle_all(Outcome::Lost(DropReason::ExporterDisabled, None));
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
                self.settle_all(Outcome::Lost(DropReason::RetriesExhausted, None));
                return;
            }
            let wait = match class {
                ErrorClass::Throttled(Some(after)) => after.min(slot.retry.max_backoff),
                _ => slot.retry.backoff(retry),
            };
            let at = Instant::now() + wait;
            if self.give_up_at.is_some_and(|limit| at > limit) {
                lock(&slot.health).retry_at = Some(at);
                return;
            }
            retry += 1;
            lock(&slot.health).retry_at = Some(at);
            // Callers waiting on a flush decide whether a retry this late is worth waiting for.
            self.core.barriers.notify_all();
            self.timers.sleep_until(at).await;
            lock(&slot.health).retry_at = None;
        }
    }

    /// One export call. Settles what it can; leaves retryable items in `inflight`.
    async fn attempt(&mut self) -> Attempt {
        let slot = self.slot.clone();
        let timeout = slot.retry.attempt_timeout;
        if !self.initialized {
            let init = AssertUnwindSafe(slot.exporter.init(&self.ctx)).catch_unwind();
            match self.timers.timeout_at(Instant::now() + timeout, init).await {
                Ok(Ok(Ok(()))) => self.initialized = true,
                Ok(Ok(Err(e))) => return self.failed(e),
                Ok(Err(_)) => {
                    return self.failed(ExportError::disabled("exporter panicked in init"));
                }
                Err(_) => return self.failed(ExportError::transient("exporter init timed out")),
            }
        }
        let call = AssertUnwindSafe(slot.exporter.export(&self.inflight)).catch_unwind();
        match self.timers.timeout_at(Instant::now() + timeout, call).await {
            Ok(Ok(Ok(outcome))) => {
                self.answered();
                if outcome.rejected.is_empty() && outcome.held.is_empty() {
                    self.settle_all(Outcome::Delivered);
                    return Attempt::Done;
                }
                let total = self.inflight.len();
                let mut seen = vec![false; total];
                let mut retry_idx = Vec::new();
                let mut failed_idx = Vec::new();
                let mut retry_class = ErrorClass::Transient;
                let mut failed_msg = None;
                let mut retry_msg = None;
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
                        failed_idx.push(r.index);
                        failed_msg = Some(r.message);
                    }
                }
                // Held items stay pending until the exporter settles them
                // through its `Custody`.
                let mut held_idx = Vec::new();
                for i in outcome.held {
                    if i < total && !seen[i] {
                        seen[i] = true;
                        held_idx.push(i);
                    }
                }
                slot.hold(
                    held_idx
                        .iter()
                        .map(|i| (self.inflight[*i].clone(), self.inflight_tags[*i].clone())),
                );
                let delivered: Vec<usize> = (0..total).filter(|i| !seen[*i]).collect();
                self.settle_some(&delivered, Outcome::Delivered);
                self.settle_some(
                    &failed_idx,
                    Outcome::Lost(DropReason::PermanentError, failed_msg.as_deref()),
                );
                if failed_idx.is_empty()
                    && let Some(m) = &retry_msg
                {
                    slot.counters.set_error(m);
                }
                self.keep_only(&retry_idx);
                if self.inflight.is_empty() {
                    Attempt::Done
                } else {
                    Attempt::Retry(retry_class)
                }
            }
            Ok(Ok(Err(e))) => self.failed(e),
            Ok(Err(_)) => {
                let n = self.inflight.len();
                let msg = format!("exporter {} panicked in export", slot.name);
                tracing::error!(target: "aiobs", exporter = %slot.name, "{msg}; {n} event(s) counted as failed");
                self.settle_all(Outcome::Lost(DropReason::ExporterPanicked, Some(&msg)));
                Attempt::Done
            }
            Err(_) => self.failed(ExportError::transient(format!(
                "export did not answer within {timeout:?}"
            ))),
        }
    }

    /// The destination answered: whatever it said, it is reachable.
    fn answered(&self) {
        let mut h = lock(&self.slot.health);
        h.failures = 0;
        h.retry_at = None;
    }

    fn failed(&mut self, e: ExportError) -> Attempt {
        let slot = self.slot.clone();
        let msg = e.to_string();
        match e.class {
            ErrorClass::Permanent => {
                self.answered();
                self.settle_all(Outcome::Lost(DropReason::PermanentError, Some(&msg)));
                Attempt::Done
            }
            ErrorClass::Disabled => {
                if !slot.disabled.swap(true, Ordering::AcqRel) {
                    tracing::error!(target: "aiobs", exporter = %slot.name, error = %msg, "exporter disabled; its events are counted as dropped");
                }
                self.settle_all(Outcome::Lost(DropReason::ExporterDisabled, Some(&msg)));
                Attempt::Done
            }
            class => {
                slot.counters.set_error(&msg);
                {
                    let mut h = lock(&slot.health);
                    h.failures = h.failures.saturating_add(1);
                    h.last_error = Some(msg.chars().take(500).collect());
                }
                tracing::debug!(target: "aiobs", exporter = %slot.name, error = %msg, "export failed; will retry");
                Attempt::Retry(class)
            }
        }
    }

    /// Every item in flight reached `outcome`.
    fn settle_all(&mut self, outcome: Outcome<'_>) {
        let n = self.inflight.len();
        self.slot.settle(
            &self.core,
            self.inflight.iter().zip(&self.inflight_tags),
            outcome,
        );
        self.slot.queued.fetch_sub(n, Ordering::AcqRel);
        self.inflight_tags.clear();
        let done = std::mem::take(&mut self.inflight);
        self.retire(done);
    }

    /// The items in flight at these indices reached `outcome` (they stay in
    /// `inflight` until [`Worker::keep_only`]).
    fn settle_some(&mut self, idx: &[usize], outcome: Outcome<'_>) {
        if idx.is_empty() {
            return;
        }
        self.slot.settle(
            &self.core,
            idx.iter()
                .map(|i| (&self.inflight[*i], &self.inflight_tags[*i])),
            outcome,
        );
        self.slot.queued.fetch_sub(idx.len(), Ordering::AcqRel);
    }

    /// Keeps only these items in flight (to retry); the rest were settled.
    fn keep_only(&mut self, keep: &[usize]) {
        let events: Vec<EventRef> = keep.iter().map(|i| self.inflight[*i].clone()).collect();
        let tags: Vec<Tag> = keep
            .iter()
            .map(|i| self.inflight_tags[*i].clone())
            .collect();
        self.inflight_tags = tags;
        let done = std::mem::replace(&mut self.inflight, events);
        self.retire(done);
    }

    /// Hands terminal events back to the router's thread to be freed (see `recycle.rs`).
    fn retire(&mut self, mut done: Vec<EventRef>) {
        if self.core.returned.put(&mut done) {
            self.core.ingress.wake.notify_one();
        }
        // Keep an allocation for the next batch.
        if self.inflight.capacity() == 0 {
            done.clear();
            self.inflight = done;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bus::barrier::Placed;
    use crate::bus::test_support;
    use crate::{InMemoryExporter, TraceId};

    #[tokio::test]
    async fn a_worker_delivers_what_is_ahead_of_a_barrier_then_passes_it() {
        let memory = InMemoryExporter::new();
        let (core, mut rx) = test_support::core(vec![Arc::new(memory.clone())]);
        let slot = core.slots[0].clone();
        let epoch = core.global.current(0);
        let trace = TraceId::random();
        let routed: Vec<Routed> = (0..3)
            .map(|_| Routed {
                event: Arc::new(test_support::ended(trace, "s").into_event()),
                tag: Tag {
                    epoch: epoch.clone(),
                    trace: None,
                },
            })
            .collect();
        let routed = slot.admit(&core, routed);
        slot.queued.fetch_add(routed.len(), Ordering::AcqRel);
        let mut worker = Worker::new(
            slot.clone(),
            core.clone(),
            rx.remove(0),
            ExporterContext::new("test".into()),
            Timers::DeadlineThread,
        );
        worker.take(routed).await;
        let barrier = Barrier::new(
            false,
            None,
            vec![true].into(),
            vec![None].into(),
            Instant::now() + Duration::from_secs(5),
        );
        assert!(barrier.place(Placed::default));
        worker.pass_barrier(&barrier).await;
        assert_eq!(
            barrier.lane(0),
            LaneResult::Passed {
                flush_error: None,
                timed_out: false
            }
        );
        assert_eq!(memory.ended_spans().len(), 3);
        assert_eq!(epoch.tally().delivered, 3);
        let s = slot.stats();
        assert_eq!((s.delivered, s.pending), (3, 0));
        assert_eq!(slot.queued.load(Ordering::Acquire), 0);
    }
}
