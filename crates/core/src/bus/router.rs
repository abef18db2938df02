//! The router: drains the ingress, runs processors once per event, tags each
//! event with its ledger accounts, fans it out to the exporters' queues, and
//! places barriers behind everything emitted before them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::Core;
use super::OverflowPolicy;
use super::barrier::{Barrier, LaneResult, Placed};
use super::ingress::Queued;
use super::ledger::{Account, AccountRef, TraceAccounts};
use super::queue::{
    EventRef, Outcome, Routed, SIGNAL_ORDER, SIGNALS, Slot, Tag, WorkerMsg, signal_index,
};
use super::timer::Timers;
use crate::id::TraceId;
use crate::processor::{self, AsyncProcessor, SpanProcessor, Verdict};
use crate::stats::DropReason;

/// A message for the router, besides events.
pub(crate) enum Control {
    Barrier(Arc<Barrier>),
}

/// Drains the ingress, runs processors once per event, fans out to exporter queues.
pub(crate) struct Router {
    processors: Vec<Arc<dyn SpanProcessor>>,
    async_processors: Vec<Arc<dyn AsyncProcessor>>,
    scratch: Vec<Queued>,
    returned: Vec<EventRef>,
    timers: Timers,
}

/// How long the router lets events accumulate between passes while busy:
/// one wake-up per millisecond of traffic rather than one per event.
const ROUTER_LINGER: Duration = Duration::from_millis(1);

impl Router {
    pub(crate) fn new(
        processors: Vec<Arc<dyn SpanProcessor>>,
        async_processors: Vec<Arc<dyn AsyncProcessor>>,
        timers: Timers,
    ) -> Self {
        Self {
            processors,
            async_processors,
            scratch: Vec::new(),
            returned: Vec::new(),
            timers,
        }
    }

    /// One pass: everything in the ingress now goes to the exporter queues.
    pub(crate) async fn route(&mut self, core: &Core) -> usize {
        core.returned.free(&core.recycler, &mut self.returned);
        let mut events = std::mem::take(&mut self.scratch);
        if core.ingress.drain_into(&mut events) == 0 {
            self.scratch = events;
            return 0;
        }
        let total = events.len() as u64;
        let mut kept: Vec<EventRef> = Vec::with_capacity(events.len());
        let mut filtered = [0u64; SIGNALS];
        let mut panicked = [0u64; SIGNALS];
        for ev in events.drain(..) {
            let mut ev = Arc::new(ev.into_event());
            match self.run_processors(&mut ev) {
                Ok(Verdict::Keep) => kept.push(ev),
                Ok(Verdict::Drop) => filtered[signal_index(ev.signal())] += 1,
                Err(()) => {
                    panicked[signal_index(ev.signal())] += 1;
                    if let Some(t) = ev.trace_id() {
                        core.traces
                            .lose_in_pipeline(t, DropReason::ProcessorPanicked, 1);
                    }
                }
            }
        }
        self.scratch = events;
        for ap in &self.async_processors {
            let before = count_signals(&kept);
            if std::panic::AssertUnwindSafe(ap.process(&mut kept))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(target: "aiobs", processor = ap.name(), "async processor panicked; its batch passes unprocessed");
            }
            let after = count_signals(&kept);
            for i in 0..SIGNALS {
                filtered[i] += before[i].saturating_sub(after[i]);
            }
        }
        for (i, s) in SIGNAL_ORDER.iter().enumerate() {
            core.lose_routed(DropReason::Filtered, *s, filtered[i]);
            core.lose_routed(DropReason::ProcessorPanicked, *s, panicked[i]);
        }
        let routed = self.tag(core, &kept);
        drop(kept);
        for (slot, routed) in core.slots.iter().zip(routed) {
            if !routed.is_empty() {
                self.enqueue(core, slot, routed).await;
            }
        }
        let lost: u64 = filtered.iter().chain(&panicked).sum();
        core.counters.pass(total.saturating_sub(lost));
        total as usize
    }

    /// Per exporter, the events it subscribed to, each tagged with its
    /// accounts: the exporter's open global account and its trace's account.
    fn tag(&self, core: &Core, kept: &[EventRef]) -> Vec<Vec<Routed>> {
        let slots = &core.slots;
        let epochs: Vec<Arc<Account>> =
            slots.iter().map(|s| core.global.current(s.index)).collect();
        let mut routed: Vec<Vec<Routed>> = slots
            .iter()
            .map(|_| Vec::with_capacity(kept.len()))
            .collect();
        // Events of one trace tend to come together: remember the last one's accounts.
        let mut last: Option<(TraceId, Option<TraceAccounts>)> = None;
        let mut traces = core.traces.lock();
        for ev in kept {
            let signal = ev.signal();
            let accounts = match ev.trace_id() {
                None => None,
                Some(t) => match &last {
                    Some((lt, a)) if *lt == t => a.clone(),
                    _ => {
                        let a = traces.accounts(t);
                        last = Some((t, a.clone()));
                        a
                    }
                },
            };
            for (i, slot) in slots.iter().enumerate() {
                if slot.signals.contains(signal) {
                    routed[i].push(Routed {
                        event: ev.clone(),
                        tag: Tag {
                            epoch: epochs[i].clone(),
                            trace: accounts.clone(),
                        },
                    });
                }
            }
        }
        routed
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

    /// Hands events to an exporter's queue, honouring its capacity and the overflow policy.
    async fn enqueue(&self, core: &Core, slot: &Slot, routed: Vec<Routed>) {
        let mut routed = slot.admit(core, routed);
        let cap = slot.policy.queue_capacity;
        // Under `Block`, admit events piece by piece as the worker frees room
        // (a routed chunk may be larger than the whole queue).
        let until = match core.overflow {
            OverflowPolicy::Block { timeout } if core.background => Some(Instant::now() + timeout),
            _ => None,
        };
        while !routed.is_empty() {
            let room = cap.saturating_sub(slot.queued.load(std::sync::atomic::Ordering::Acquire));
            if room == 0 {
                match until {
                    Some(t) if Instant::now() < t => {
                        self.timers
                            .sleep_until(Instant::now() + Duration::from_millis(1))
                            .await;
                        continue;
                    }
                    _ => break,
                }
            }
            let rest = if room < routed.len() {
                routed.split_off(room)
            } else {
                Vec::new()
            };
            hand_to_worker(core, slot, std::mem::replace(&mut routed, rest));
        }
        if !routed.is_empty() {
            slot.settle(
                core,
                routed.iter().map(|r| (&r.event, &r.tag)),
                Outcome::Lost(DropReason::QueueFull, Some("exporter queue full")),
            );
        }
    }

    /// Places a barrier behind everything routed so far: it takes its
    /// accounts from the ledgers. Returns whether it was placed (not if its
    /// caller already gave up on it).
    pub(crate) fn place(core: &Core, b: &Barrier) -> bool {
        b.place(|| {
            let lanes = core.slots.len();
            let mut placed = Placed::default();
            match b.trace {
                None => {
                    for lane in 0..lanes {
                        if b.in_scope(lane) {
                            let (seq, own) = core.global.rotate(lane);
                            placed.seqs.push(seq);
                            placed.accounts.push(Some(AccountRef::One(own)));
                        } else {
                            placed.seqs.push(0);
                            placed.accounts.push(None);
                        }
                    }
                    placed.pipeline_lost = core
                        .global
                        .pipeline_since_last(core.counters.lost_by_reason());
                }
                Some(t) => {
                    let take = core.traces.take(t, &b.scope);
                    placed.seqs = vec![take.seq; lanes];
                    placed.accounts = take.accounts;
                    placed.coverage = take.coverage;
                }
            }
            placed
        })
    }

    /// Background modes: routes what is ahead of the barrier, places it and
    /// sends it down every exporter queue it concerns.
    async fn pass_on(&mut self, core: &Core, b: &Arc<Barrier>) {
        // Everything emitted before the barrier is in the ingress: route it first.
        self.route(core).await;
        if !Self::place(core, b) {
            return;
        }
        for slot in &core.slots {
            if b.in_scope(slot.index) && slot.tx.send(WorkerMsg::Barrier(b.clone())).is_err() {
                b.record(slot.index, LaneResult::Stopped);
            }
        }
    }
}

fn hand_to_worker(core: &Core, slot: &Slot, events: Vec<Routed>) {
    let k = events.len();
    slot.queued
        .fetch_add(k, std::sync::atomic::Ordering::AcqRel);
    if let Err(mpsc::error::SendError(msg)) = slot.tx.send(WorkerMsg::Events(events)) {
        // The worker is gone (stopped at a shutdown deadline).
        slot.queued
            .fetch_sub(k, std::sync::atomic::Ordering::AcqRel);
        if let WorkerMsg::Events(events) = msg {
            slot.settle(
                core,
                events.iter().map(|r| (&r.event, &r.tag)),
                Outcome::Lost(DropReason::AfterShutdown, Some("exporter worker stopped")),
            );
        }
    }
}

fn count_signals(events: &[EventRef]) -> [u64; SIGNALS] {
    let mut n = [0u64; SIGNALS];
    for e in events {
        n[signal_index(e.signal())] += 1;
    }
    n
}

/// The background router task: routes while events arrive, lingers while
/// busy, sleeps while idle, and places barriers as they come.
pub(crate) async fn router_loop(
    core: Arc<Core>,
    mut router: Router,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let halt = std::pin::pin!(core.halt.wait());
    let run = std::pin::pin!(async {
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
            let timers = router.timers;
            let pause = async {
                if busy {
                    timers.sleep_until(Instant::now() + ROUTER_LINGER).await;
                } else {
                    woken.await;
                }
            };
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Barrier(b)) => {
                        router.pass_on(&core, &b).await;
                        if b.shutdown && b.is_placed() {
                            return;
                        }
                    }
                    None => return,
                },
                () = pause => {}
            }
        }
    });
    let _either = futures_util::future::select(halt, run).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::barrier::Placement;
    use crate::bus::test_support;
    use crate::{InMemoryExporter, Signal, Signals, TraceId};

    fn barrier(trace: Option<TraceId>, lanes: usize) -> Arc<Barrier> {
        Barrier::new(
            false,
            trace,
            vec![true; lanes].into(),
            vec![None; lanes].into(),
            Instant::now() + Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn routing_fans_out_by_signal_and_tags_each_event_with_its_accounts() {
        let spans = InMemoryExporter::new()
            .named("spans")
            .with_signals(Signals::ENDED_SPANS);
        let logs = InMemoryExporter::new()
            .named("logs")
            .with_signals(Signals::NONE.with(Signal::Log));
        let (core, mut rx) = test_support::core(vec![Arc::new(spans), Arc::new(logs)]);
        let mut router = Router::new(Vec::new(), Vec::new(), Timers::DeadlineThread);
        let trace = TraceId::random();
        for name in ["a", "b"] {
            assert!(core.ingress.push(test_support::ended(trace, name)).is_ok());
        }
        assert_eq!(router.route(&core).await, 2);
        let Ok(WorkerMsg::Events(events)) = rx[0].try_recv() else {
            panic!("the span exporter got nothing");
        };
        assert_eq!(events.len(), 2);
        assert!(rx[1].try_recv().is_err(), "the log exporter got spans");
        assert!(Arc::ptr_eq(&events[0].tag.epoch, &core.global.current(0)));
        let t = events[0].tag.trace.as_ref().unwrap();
        assert!(Arc::ptr_eq(t, events[1].tag.trace.as_ref().unwrap()));
        assert_eq!(t[0].tally().accepted, 2);
        assert_eq!(core.counters.snapshot().passed, 2);
    }

    #[tokio::test]
    async fn a_placed_barrier_takes_the_open_accounts_and_later_events_open_new_ones() {
        let (core, mut rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let mut router = Router::new(Vec::new(), Vec::new(), Timers::DeadlineThread);
        let trace = TraceId::random();
        assert!(
            core.ingress
                .push(test_support::ended(trace, "before"))
                .is_ok()
        );
        let global = barrier(None, 1);
        let traced = barrier(Some(trace), 1);
        router.pass_on(&core, &global).await;
        router.pass_on(&core, &traced).await;
        let Ok(WorkerMsg::Events(before)) = rx[0].try_recv() else {
            panic!("no events");
        };
        match &global.state().placement {
            Placement::Placed(p) => {
                let own = p.accounts[0].as_ref().unwrap();
                assert!(std::ptr::eq(&**own, &*before[0].tag.epoch));
            }
            other => panic!("not placed: {other:?}"),
        }
        match &traced.state().placement {
            Placement::Placed(p) => {
                let own = p.accounts[0].as_ref().unwrap();
                assert_eq!(own.tally().accepted, 1);
            }
            other => panic!("not placed: {other:?}"),
        }
        // Both barriers went down the queue, behind the event.
        assert!(matches!(rx[0].try_recv(), Ok(WorkerMsg::Barrier(_))));
        assert!(matches!(rx[0].try_recv(), Ok(WorkerMsg::Barrier(_))));
        assert!(
            core.ingress
                .push(test_support::ended(trace, "after"))
                .is_ok()
        );
        router.route(&core).await;
        let Ok(WorkerMsg::Events(after)) = rx[0].try_recv() else {
            panic!("no events");
        };
        assert!(!Arc::ptr_eq(&after[0].tag.epoch, &before[0].tag.epoch));
    }

    #[tokio::test]
    async fn a_barrier_its_caller_gave_up_on_is_neither_placed_nor_sent() {
        let (core, mut rx) = test_support::core(vec![Arc::new(InMemoryExporter::new())]);
        let mut router = Router::new(Vec::new(), Vec::new(), Timers::DeadlineThread);
        let b = barrier(None, 1);
        b.state().placement = Placement::Abandoned;
        router.pass_on(&core, &b).await;
        assert!(rx[0].try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_queue_counts_what_it_refuses_in_the_events_accounts() {
        let small = InMemoryExporter::new()
            .with_batch_policy(crate::BatchPolicy::default().with_queue_capacity(3));
        let (core, _rx) = test_support::core(vec![Arc::new(small)]);
        let mut router = Router::new(Vec::new(), Vec::new(), Timers::DeadlineThread);
        let trace = TraceId::random();
        for _ in 0..5 {
            assert!(core.ingress.push(test_support::ended(trace, "s")).is_ok());
        }
        router.route(&core).await;
        let s = core.slots[0].stats();
        assert_eq!(
            (s.accepted, s.lost(DropReason::QueueFull), s.pending),
            (5, 2, 3)
        );
        let epoch = core.global.current(0).tally();
        assert_eq!(epoch.lost.get(&DropReason::QueueFull), Some(&2));
    }
}
