//! One exporter's lane as the rest of the pipeline sees it: its queue, its
//! counters, its health, and the one place where an event's outcome is
//! counted ([`Slot::settle`]).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Notify, mpsc};

use super::Core;
use super::barrier::Barrier;
use super::ledger::{Account, TraceAccounts, lock};
use crate::event::{ObservabilityEvent, Signal, Signals};
use crate::exporter::{BatchPolicy, Exporter, Outcome as HeldOutcome, RetryPolicy, Settlement};
use crate::stats::{Counters, DropReason, ExporterStats};

pub(crate) type EventRef = Arc<ObservabilityEvent>;

/// The accounts an event's outcome is counted into (see `ledger.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Tag {
    /// Its global epoch at this exporter.
    pub(crate) epoch: Arc<Account>,
    /// Its trace's accounts (this exporter's is at the lane's index); none
    /// for records without a trace, or with the trace ledger disabled.
    pub(crate) trace: Option<TraceAccounts>,
}

/// An event routed to one exporter, with its tag.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) event: EventRef,
    pub(crate) tag: Tag,
}

/// A message on an exporter's queue.
pub(crate) enum WorkerMsg {
    Events(Vec<Routed>),
    Barrier(Arc<Barrier>),
}

/// How an event ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    Delivered,
    Lost(DropReason, Option<&'a str>),
}

/// A failure streak this long marks a destination *known to be failing*:
/// a flush called then does not wait for it (its report says why at once).
/// One failure alone does not: a single blip costs one backoff, not a report.
pub(crate) const FAILING_AFTER: u32 = 2;

/// What the worker knows of its destination's health.
#[derive(Debug, Default, Clone)]
pub(crate) struct Health {
    /// Consecutive export attempts that failed (reset by one that answered).
    pub(crate) failures: u32,
    pub(crate) last_error: Option<String>,
    /// When the next retry is due, while the worker waits in backoff.
    pub(crate) retry_at: Option<Instant>,
}

/// Tells a worker to stop at once (its lane was abandoned).
#[derive(Debug, Default)]
pub(crate) struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub(crate) fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
    pub(crate) fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
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
    pub(crate) attempts: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) disabled: AtomicBool,
    /// Events accepted and not yet settled, per signal (for the drop observer).
    unsettled: [AtomicU64; SIGNALS],
    /// Held while outcomes are counted; `Some(reason)` once the lane was
    /// abandoned (its worker's later outcomes are not counted again).
    abandoned: Mutex<Option<DropReason>>,
    pub(crate) health: Mutex<Health>,
    /// Events the exporter took into its custody (`ExportOutcome::held`):
    /// pending, with their tags, until it settles them.
    held: Mutex<Held>,
    pub(crate) tx: mpsc::UnboundedSender<WorkerMsg>,
    pub(crate) stop: Stop,
}

/// Held events in the order they were taken, findable by their `Arc`.
#[derive(Default)]
struct Held {
    next: u64,
    by_order: std::collections::BTreeMap<u64, (EventRef, Tag)>,
    by_event: std::collections::HashMap<usize, u64>,
}

impl Held {
    fn take(&mut self, order: u64) -> Option<(EventRef, Tag)> {
        let (event, tag) = self.by_order.remove(&order)?;
        self.by_event.remove(&(Arc::as_ptr(&event) as usize));
        Some((event, tag))
    }
}

/// How many kinds of event there are ([`SIGNAL_ORDER`]).
pub(crate) const SIGNALS: usize = 7;

/// A signal's index in [`SIGNAL_ORDER`].
pub(crate) fn signal_index(s: Signal) -> usize {
    match s {
        Signal::SpanStarted => 0,
        Signal::SpanUpdated => 1,
        Signal::SpanEnded => 2,
        Signal::Log => 3,
        Signal::Metric => 4,
        Signal::Score => 5,
        Signal::Feedback => 6,
    }
}

/// Every signal, in a fixed order (for per-signal counts).
pub(crate) const SIGNAL_ORDER: [Signal; SIGNALS] = [
    Signal::SpanStarted,
    Signal::SpanUpdated,
    Signal::SpanEnded,
    Signal::Log,
    Signal::Metric,
    Signal::Score,
    Signal::Feedback,
];

impl Slot {
    pub(crate) fn new(
        index: usize,
        exporter: Arc<dyn Exporter>,
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
            unsettled: Default::default(),
            abandoned: Mutex::new(None),
            health: Mutex::new(Health::default()),
            held: Mutex::default(),
            tx,
            stop: Stop::default(),
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

    pub(crate) fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    /// Counts routed events as accepted by this exporter. Returns them, or
    /// none if the lane was abandoned (they are then counted lost at once).
    pub(crate) fn admit(&self, core: &Core, routed: Vec<Routed>) -> Vec<Routed> {
        let lost = {
            let guard = lock(&self.abandoned);
            self.counters.accept(routed.len() as u64);
            let mut by_signal = [0u64; SIGNALS];
            let mut epoch_run: Option<(&Arc<Account>, u64)> = None;
            let mut trace_run: Option<(&TraceAccounts, u64)> = None;
            for r in &routed {
                by_signal[signal_index(r.event.signal())] += 1;
                epoch_run = match epoch_run {
                    Some((a, k)) if Arc::ptr_eq(a, &r.tag.epoch) => Some((a, k + 1)),
                    Some((a, k)) => {
                        a.accept(k);
                        Some((&r.tag.epoch, 1))
                    }
                    None => Some((&r.tag.epoch, 1)),
                };
                if let Some(t) = &r.tag.trace {
                    trace_run = match trace_run {
                        Some((a, k)) if Arc::ptr_eq(a, t) => Some((a, k + 1)),
                        Some((a, k)) => {
                            a[self.index].accept(k);
                            Some((t, 1))
                        }
                        None => Some((t, 1)),
                    };
                }
            }
            if let Some((a, k)) = epoch_run {
                a.accept(k);
            }
            if let Some((a, k)) = trace_run {
                a[self.index].accept(k);
            }
            for (i, n) in by_signal.iter().enumerate() {
                if *n > 0 {
                    self.unsettled[i].fetch_add(*n, Ordering::AcqRel);
                }
            }
            // An abandoned lane loses what reaches it at once.
            guard.map(|reason| {
                let outcome = Outcome::Lost(reason, None);
                (
                    self.count(routed.iter().map(|r| (&r.event, &r.tag)), outcome),
                    reason,
                )
            })
        };
        match lost {
            None => routed,
            Some((by_signal, reason)) => {
                self.tell_observer(core, &by_signal, Outcome::Lost(reason, None));
                Vec::new()
            }
        }
    }

    /// Counts the outcome of events this exporter accepted: in its
    /// cumulative counters, in each event's ledger accounts, and to the drop
    /// observer. The only place an event becomes terminal. Nothing is
    /// counted once the lane was abandoned (its events were counted then).
    pub(crate) fn settle<'a>(
        &self,
        core: &Core,
        items: impl IntoIterator<Item = (&'a EventRef, &'a Tag)>,
        outcome: Outcome<'_>,
    ) {
        let by_signal = {
            let guard = lock(&self.abandoned);
            if guard.is_some() {
                return;
            }
            self.count(items, outcome)
        };
        self.tell_observer(core, &by_signal, outcome);
    }

    /// [`Slot::settle`]'s counting, with the lane's lock held.
    fn count<'a>(
        &self,
        items: impl IntoIterator<Item = (&'a EventRef, &'a Tag)>,
        outcome: Outcome<'_>,
    ) -> [u64; SIGNALS] {
        let mut by_signal = [0u64; SIGNALS];
        let mut total = 0u64;
        let count = |a: &Account, n: u64| match outcome {
            Outcome::Delivered => a.deliver(n),
            Outcome::Lost(reason, _) => a.lose(reason, n),
        };
        let mut epoch_run: Option<(&Arc<Account>, u64)> = None;
        let mut trace_run: Option<(&TraceAccounts, u64)> = None;
        for (event, tag) in items {
            total += 1;
            by_signal[signal_index(event.signal())] += 1;
            epoch_run = match epoch_run {
                Some((a, k)) if Arc::ptr_eq(a, &tag.epoch) => Some((a, k + 1)),
                Some((a, k)) => {
                    count(a, k);
                    Some((&tag.epoch, 1))
                }
                None => Some((&tag.epoch, 1)),
            };
            if let Some(t) = &tag.trace {
                trace_run = match trace_run {
                    Some((a, k)) if Arc::ptr_eq(a, t) => Some((a, k + 1)),
                    Some((a, k)) => {
                        count(&a[self.index], k);
                        Some((t, 1))
                    }
                    None => Some((t, 1)),
                };
            }
        }
        if let Some((a, k)) = epoch_run {
            count(a, k);
        }
        if let Some((a, k)) = trace_run {
            count(&a[self.index], k);
        }
        for (i, n) in by_signal.iter().enumerate() {
            if *n > 0 {
                self.unsettled[i].fetch_sub(*n, Ordering::AcqRel);
            }
        }
        match outcome {
            Outcome::Delivered => self.counters.pass(total),
            Outcome::Lost(reason, detail) => {
                self.counters.lose(&self.name, reason, total, detail);
            }
        }
        by_signal
    }

    fn tell_observer(&self, core: &Core, by_signal: &[u64; SIGNALS], outcome: Outcome<'_>) {
        if let Outcome::Lost(reason, _) = outcome {
            for (i, n) in by_signal.iter().enumerate() {
                core.drops
                    .notify(Some(&self.name), SIGNAL_ORDER[i], reason, *n);
            }
        }
    }

    /// Gives up on everything this exporter still holds: counted lost for
    /// `reason` in its counters and in every ledger account, told to the
    /// drop observer; its worker is told to stop, and whatever it does later
    /// is not counted again. Returns how many events were given up.
    pub(crate) fn abandon(&self, core: &Core, reason: DropReason, detail: &str) -> u64 {
        let mut lost_by_signal = [0u64; SIGNALS];
        let lost = {
            let mut guard = lock(&self.abandoned);
            if guard.is_some() {
                return 0;
            }
            *guard = Some(reason);
            let accounts = core
                .global
                .accounts(self.index)
                .into_iter()
                .chain(core.traces.accounts(self.index))
                .chain(core.barriers.placed_accounts(self.index));
            for a in accounts {
                a.abandon(reason);
            }
            let pending = self.stats().pending;
            self.counters
                .lose(&self.name, reason, pending, Some(detail));
            for (i, n) in lost_by_signal.iter_mut().enumerate() {
                *n = self.unsettled[i].swap(0, Ordering::AcqRel);
            }
            pending
        };
        self.stop.stop();
        for (i, n) in lost_by_signal.iter().enumerate() {
            core.drops
                .notify(Some(&self.name), SIGNAL_ORDER[i], reason, *n);
        }
        lost
    }

    /// The exporter holds these events (they stay pending, counted in `queued`).
    pub(crate) fn hold(&self, events: impl IntoIterator<Item = (EventRef, Tag)>) {
        let mut h = lock(&self.held);
        for (event, tag) in events {
            let order = h.next;
            h.next += 1;
            h.by_event.insert(Arc::as_ptr(&event) as usize, order);
            h.by_order.insert(order, (event, tag));
        }
    }

    /// The exporter settles events it holds (through its `Custody`).
    pub(crate) fn settle_held(&self, core: &Core, settlement: Settlement<'_>) {
        let (taken, outcome) = {
            let mut h = lock(&self.held);
            match settlement {
                Settlement::Oldest(n, outcome) => {
                    let orders: Vec<u64> = h.by_order.keys().take(n).copied().collect();
                    let taken: Vec<_> = orders.into_iter().filter_map(|o| h.take(o)).collect();
                    (taken, outcome)
                }
                Settlement::Events(events, outcome) => {
                    let taken: Vec<_> = events
                        .iter()
                        .filter_map(|e| h.by_event.get(&(Arc::as_ptr(e) as usize)).copied())
                        .collect::<Vec<u64>>()
                        .into_iter()
                        .filter_map(|o| h.take(o))
                        .collect();
                    (taken, outcome)
                }
            }
        };
        if taken.is_empty() {
            return;
        }
        let outcome = match outcome {
            HeldOutcome::Delivered => Outcome::Delivered,
            HeldOutcome::Lost(reason, detail) => Outcome::Lost(reason, Some(detail)),
        };
        self.settle(core, taken.iter().map(|(e, t)| (e, t)), outcome);
        self.queued.fetch_sub(taken.len(), Ordering::AcqRel);
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        lock(&self.abandoned).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::ledger::Account;
    use crate::bus::test_support;
    use crate::{InMemoryExporter, TraceId};

    fn routed(core: &Core, n: usize, trace: TraceId) -> Vec<Routed> {
        let epoch = core.global.current(0);
        let accounts = core.traces.lock().accounts(trace);
        (0..n)
            .map(|_| Routed {
                event: Arc::new(test_support::ended(trace, "s").into_event()),
                tag: Tag {
                    epoch: epoch.clone(),
                    trace: accounts.clone(),
                },
            })
            .collect()
    }

    #[test]
    fn an_outcome_is_counted_once_in_the_counters_and_in_both_accounts() {
        let (core, _rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let slot = &core.slots[0];
        let trace = TraceId::random();
        let events = slot.admit(&core, routed(&core, 5, trace));
        assert_eq!(events.len(), 5);
        slot.settle(
            &core,
            events[..3].iter().map(|r| (&r.event, &r.tag)),
            Outcome::Delivered,
        );
        slot.settle(
            &core,
            events[3..].iter().map(|r| (&r.event, &r.tag)),
            Outcome::Lost(DropReason::PermanentError, Some("400")),
        );
        let s = slot.stats();
        assert_eq!(
            (s.accepted, s.delivered, s.failed_total(), s.pending),
            (5, 3, 2, 0)
        );
        let epoch: &Account = &events[0].tag.epoch;
        let t = epoch.tally();
        assert_eq!((t.accepted, t.delivered, t.lost_total()), (5, 3, 2));
        let per_trace = events[0].tag.trace.as_ref().unwrap()[0].tally();
        assert_eq!(per_trace, t);
    }

    #[test]
    fn an_abandoned_lane_counts_its_pending_once_and_ignores_later_outcomes() {
        let (core, _rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let slot = &core.slots[0];
        let events = slot.admit(&core, routed(&core, 4, TraceId::random()));
        slot.settle(
            &core,
            events[..1].iter().map(|r| (&r.event, &r.tag)),
            Outcome::Delivered,
        );
        assert_eq!(slot.abandon(&core, DropReason::FlushTimeout, "test"), 3);
        assert!(slot.stop.is_stopped());
        // The worker wakes up later and delivers: nothing is counted twice.
        slot.settle(
            &core,
            events[1..].iter().map(|r| (&r.event, &r.tag)),
            Outcome::Delivered,
        );
        let s = slot.stats();
        assert_eq!(
            (s.delivered, s.lost(DropReason::FlushTimeout), s.pending),
            (1, 3, 0)
        );
        assert!(s.is_conserved());
        assert_eq!(events[0].tag.epoch.tally().pending(), 0);
        // Events routed to it afterwards are lost at once.
        let late = slot.admit(&core, routed(&core, 2, TraceId::random()));
        assert!(late.is_empty());
        assert_eq!(slot.stats().lost(DropReason::FlushTimeout), 5);
        assert_eq!(slot.abandon(&core, DropReason::FlushTimeout, "again"), 0);
    }
}
