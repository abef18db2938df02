//! Flush barriers: what one `flush`, `flush_trace` or `shutdown` call sends
//! down the pipeline, and how its caller waits for it.
//!
//! A barrier is *placed* by the router behind every event emitted before the
//! call (it takes its ledger accounts then, see `ledger.rs`), then travels each
//! exporter's queue; each worker *passes* it once everything ahead of it is
//! terminal and the exporter's own `flush` returned. The caller waits on the
//! barrier itself — a `Condvar` for blocking callers, a waker plus the
//! deadline thread for async ones — so no pipeline thread has to run for a
//! deadline to be kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::time::Instant;

use futures_util::task::AtomicWaker;

use super::ledger::{AccountRef, TraceCoverage, lock};
use super::timer::Timers;
use crate::id::TraceId;
use crate::stats::DropReason;

/// Wakes the caller waiting on a barrier: async or blocking.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    generation: AtomicU64,
    waker: AtomicWaker,
    mutex: Mutex<()>,
    cv: Condvar,
}

impl Signal {
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.waker.wake();
        let _held = lock(&self.mutex);
        self.cv.notify_all();
    }

    /// Waits until a notification after `seen`, or until `deadline`.
    pub(crate) async fn changed(&self, seen: u64, deadline: Instant, timers: Timers) {
        let changed = std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.generation() != seen {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let _either = timers.timeout_at(deadline, changed).await;
    }

    /// [`Signal::changed`] for blocking callers.
    pub(crate) fn changed_blocking(&self, seen: u64, deadline: Instant) {
        let mut held = lock(&self.mutex);
        while self.generation() == seen {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            held = self
                .cv
                .wait_timeout(held, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// How far one exporter got with a barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LaneResult {
    /// Not passed (yet).
    Pending,
    /// Everything ahead of the barrier is terminal and the exporter's own
    /// `flush`/`shutdown` returned (with this error, if any), or did not
    /// return before the deadline (`timed_out`).
    Passed {
        flush_error: Option<String>,
        timed_out: bool,
    },
    /// The exporter's worker is gone (stopped at an earlier shutdown).
    Stopped,
}

/// What the router did with a barrier.
#[derive(Debug)]
pub(crate) enum Placement {
    /// Not reached yet.
    Waiting,
    Placed(Placed),
    /// The caller stopped waiting before the router reached it: the router
    /// skips it, and its events belong to the next barrier.
    Abandoned,
    /// Its report was made: carried accounts now live in the ledgers.
    Reported,
}

/// The accounts a barrier took when it was placed.
#[derive(Debug, Default)]
pub(crate) struct Placed {
    /// Per exporter lane: the barrier's place in that lane's ledger.
    pub(crate) seqs: Vec<u64>,
    /// Per exporter lane (and, for trace barriers, the pipeline lane last).
    pub(crate) accounts: Vec<Option<AccountRef>>,
    /// Global barriers: pipeline losses since the previous global barrier.
    pub(crate) pipeline_lost: BTreeMap<DropReason, u64>,
    pub(crate) coverage: TraceCoverage,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) placement: Placement,
    pub(crate) lanes: Vec<LaneResult>,
}

/// One flush, `flush_trace` or shutdown on its way through the pipeline.
#[derive(Debug)]
pub(crate) struct Barrier {
    pub(crate) shutdown: bool,
    /// A request-scoped flush: this trace's events, and the trace ledger.
    pub(crate) trace: Option<TraceId>,
    /// Per exporter lane: whether this barrier concerns it.
    pub(crate) scope: Box<[bool]>,
    pub(crate) deadline: Instant,
    /// Per exporter lane: why the caller does not wait for it (decided when
    /// the call began: its destination was already known to be failing).
    pub(crate) not_waited: Box<[Option<String>]>,
    state: Mutex<State>,
    pub(crate) signal: Signal,
}

impl Barrier {
    pub(crate) fn new(
        shutdown: bool,
        trace: Option<TraceId>,
        scope: Box<[bool]>,
        not_waited: Box<[Option<String>]>,
        deadline: Instant,
    ) -> Arc<Self> {
        let lanes = scope.len();
        Arc::new(Self {
            shutdown,
            trace,
            scope,
            deadline,
            not_waited,
            state: Mutex::new(State {
                placement: Placement::Waiting,
                lanes: vec![LaneResult::Pending; lanes],
            }),
            signal: Signal::default(),
        })
    }

    pub(crate) fn in_scope(&self, lane: usize) -> bool {
        self.scope.get(lane).copied().unwrap_or(false)
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The router places the barrier with what `place` takes from the
    /// ledgers — unless the caller already gave up on it. Returns whether it
    /// was placed.
    pub(crate) fn place(&self, place: impl FnOnce() -> Placed) -> bool {
        let mut s = self.state();
        if !matches!(s.placement, Placement::Waiting) {
            return false;
        }
        s.placement = Placement::Placed(place());
        drop(s);
        self.signal.notify();
        true
    }

    pub(crate) fn is_placed(&self) -> bool {
        matches!(
            self.state().placement,
            Placement::Placed(_) | Placement::Reported
        )
    }

    /// A worker passed the barrier (or cannot).
    pub(crate) fn record(&self, lane: usize, result: LaneResult) {
        if let Some(l) = self.state().lanes.get_mut(lane) {
            *l = result;
        }
        self.signal.notify();
    }

    pub(crate) fn lane(&self, lane: usize) -> LaneResult {
        self.state()
            .lanes
            .get(lane)
            .cloned()
            .unwrap_or(LaneResult::Stopped)
    }
}

/// The barriers whose callers are waiting: woken when an exporter's health
/// changes, and visited when a lane is abandoned.
#[derive(Debug, Default)]
pub(crate) struct Barriers {
    live: Mutex<Vec<Arc<Barrier>>>,
}

impl Barriers {
    pub(crate) fn register(&self, b: &Arc<Barrier>) {
        lock(&self.live).push(b.clone());
    }

    pub(crate) fn unregister(&self, b: &Arc<Barrier>) {
        lock(&self.live).retain(|x| !Arc::ptr_eq(x, b));
    }

    /// Something a waiting caller decides on changed (an exporter entered backoff).
    pub(crate) fn notify_all(&self) {
        let live: Vec<Arc<Barrier>> = lock(&self.live).clone();
        for b in live {
            b.signal.notify();
        }
    }

    /// Accounts of `lane` held by placed barriers not yet reported.
    pub(crate) fn placed_accounts(&self, lane: usize) -> Vec<AccountRef> {
        let live: Vec<Arc<Barrier>> = lock(&self.live).clone();
        live.iter()
            .filter_map(|b| match &b.state().placement {
                Placement::Placed(p) => p.accounts.get(lane).cloned().flatten(),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_blocking_waiter_wakes_on_notify_and_on_its_deadline() {
        let s = Arc::new(Signal::default());
        let seen = s.generation();
        let s2 = s.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            s2.notify();
        });
        let start = Instant::now();
        s.changed_blocking(seen, start + Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(2));
        t.join().unwrap();
        let seen = s.generation();
        let start = Instant::now();
        s.changed_blocking(seen, start + Duration::from_millis(30));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn an_async_waiter_keeps_its_deadline_without_tokio() {
        let s = Signal::default();
        let seen = s.generation();
        let start = Instant::now();
        super::super::blocking::block_on(s.changed(
            seen,
            start + Duration::from_millis(30),
            Timers::DeadlineThread,
        ));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(30) && took < Duration::from_millis(500),
            "{took:?}"
        );
    }

    #[test]
    fn a_barrier_the_caller_gave_up_on_is_not_placed() {
        let b = Barrier::new(
            false,
            None,
            vec![true].into(),
            vec![None].into(),
            Instant::now(),
        );
        b.state().placement = Placement::Abandoned;
        assert!(!b.place(Placed::default));
        let b = Barrier::new(
            false,
            None,
            vec![true].into(),
            vec![None].into(),
            Instant::now(),
        );
        assert!(b.place(Placed::default));
        assert!(b.is_placed());
        b.record(
            0,
            LaneResult::Passed {
                flush_error: None,
                timed_out: false,
            },
        );
        assert_eq!(
            b.lane(0),
            LaneResult::Passed {
                flush_error: None,
                timed_out: false
            }
        );
    }
}
