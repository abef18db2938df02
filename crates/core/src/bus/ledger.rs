//! The ledgers flush reports are read from.
//!
//! Every event routed to an exporter is tagged with two [`Account`]s, and its
//! terminal state (delivered, failed or dropped by reason) is counted into
//! both by the worker that settles it — the status travels with the event:
//!
//! - **The global ledger.** Per exporter, the router keeps one open account;
//!   every event routed to that exporter goes into it, until a global barrier
//!   (`flush`, `shutdown`, the guard) that includes the exporter is placed in
//!   the stream: the barrier takes the account as its own and a fresh one
//!   opens. So each event belongs to the first global barrier behind it, the
//!   accounts partition the stream, and concurrent global reports never share
//!   an outcome.
//! - **The trace ledger.** Per trace and exporter, an account that a
//!   `flush_trace(T)` barrier takes the same way. A request's report counts
//!   every outcome of its trace's events emitted before it, whatever global
//!   flush reported them too. Trace accounts are bounded in number: the least
//!   recently active is evicted first, and a later report for it says so.
//!
//! A report that returns with events still pending hands its account on
//! (*carries* it) with what it already reported; the next report of the same
//! ledger (a later barrier) reports what happened to them since. Each outcome
//! is therefore reported exactly once per ledger.
//!
//! Pipeline-level losses (before any exporter: a full ingress, sampling,
//! processors) are counted in cumulative counters; a global barrier takes the
//! difference since the previous one when it is placed, which attributes each
//! of them to the first barrier after it. Unintended pipeline losses of a
//! trace's events also go to the trace's pipeline account.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::id::TraceId;
use crate::stats::DropReason;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outcomes of one set of events at one lane (an exporter, or the
/// pipeline before exporters).
#[derive(Debug, Default)]
pub(crate) struct Account {
    accepted: AtomicU64,
    delivered: AtomicU64,
    lost: Mutex<BTreeMap<DropReason, u64>>,
}

impl Account {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }
    pub(crate) fn accept(&self, n: u64) {
        if n > 0 {
            self.accepted.fetch_add(n, Ordering::AcqRel);
        }
    }
    pub(crate) fn deliver(&self, n: u64) {
        if n > 0 {
            self.delivered.fetch_add(n, Ordering::AcqRel);
        }
    }
    pub(crate) fn lose(&self, reason: DropReason, n: u64) {
        if n > 0 {
            *lock(&self.lost).entry(reason).or_default() += n;
        }
    }
    /// The account now. Terminal counts are read before `accepted`, so
    /// pending is never negative.
    pub(crate) fn tally(&self) -> Tally {
        let lost = lock(&self.lost).clone();
        let delivered = self.delivered.load(Ordering::Acquire);
        let accepted = self.accepted.load(Ordering::Acquire);
        Tally {
            accepted,
            delivered,
            lost,
        }
    }
    /// Counts everything still pending as lost for `reason` (the lane was
    /// abandoned: its worker will count nothing more). Returns how many.
    pub(crate) fn abandon(&self, reason: DropReason) -> u64 {
        let mut lost = lock(&self.lost);
        let terminal = self.delivered.load(Ordering::Acquire) + lost.values().sum::<u64>();
        let pending = self
            .accepted
            .load(Ordering::Acquire)
            .saturating_sub(terminal);
        if pending > 0 {
            *lost.entry(reason).or_default() += pending;
        }
        pending
    }
}

/// One lane's account of a trace: the trace's accounts of every lane live in
/// one allocation.
pub(crate) type TraceAccounts = Arc<[Account]>;

/// An account held by a ledger or a barrier: a lane's own, or one lane of a
/// trace's set.
#[derive(Debug, Clone)]
pub(crate) enum AccountRef {
    One(Arc<Account>),
    Lane(TraceAccounts, usize),
}

impl std::ops::Deref for AccountRef {
    type Target = Account;
    fn deref(&self) -> &Account {
        match self {
            AccountRef::One(a) => a,
            AccountRef::Lane(set, i) => &set[*i],
        }
    }
}

fn new_trace_accounts(lanes: usize, spare: &mut Vec<TraceAccounts>) -> TraceAccounts {
    spare
        .pop()
        .unwrap_or_else(|| (0..=lanes).map(|_| Account::default()).collect())
}

/// Spare trace account sets kept for reuse (an evicted trace's, when no event
/// refers to it any more): a trace then costs no allocation.
const SPARE_TRACE_ACCOUNTS: usize = 256;

/// What an account holds at one moment, or a difference of two such moments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) accepted: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: BTreeMap<DropReason, u64>,
}

impl Tally {
    pub(crate) fn lost_total(&self) -> u64 {
        self.lost.values().sum()
    }
    pub(crate) fn pending(&self) -> u64 {
        self.accepted
            .saturating_sub(self.delivered + self.lost_total())
    }
    /// What happened between `earlier` and `self` (of the same account).
    pub(crate) fn since(&self, earlier: &Tally) -> Tally {
        Tally {
            accepted: self.accepted.saturating_sub(earlier.accepted),
            delivered: self.delivered.saturating_sub(earlier.delivered),
            lost: self
                .lost
                .iter()
                .filter_map(|(r, n)| {
                    let d = n.saturating_sub(earlier.lost.get(r).copied().unwrap_or(0));
                    (d > 0).then_some((*r, d))
                })
                .collect(),
        }
    }
    pub(crate) fn add(&mut self, other: &Tally) {
        self.accepted += other.accepted;
        self.delivered += other.delivered;
        for (r, n) in &other.lost {
            *self.lost.entry(*r).or_default() += n;
        }
    }
}

/// An account whose report has been made (or given up) while some of its
/// events were still pending: the next report of its ledger takes what
/// happened to it since `reported`.
#[derive(Debug)]
pub(crate) struct Carried {
    /// The place of the barrier that owned it.
    seq: u64,
    account: AccountRef,
    reported: Tally,
}

/// What a report takes from a ledger for one lane.
#[derive(Debug, Default, Clone)]
pub(crate) struct Taken {
    /// Outcomes reported now (for carried accounts: since their last report).
    pub(crate) outcomes: Tally,
    /// Events of the taken accounts still pending.
    pub(crate) pending: u64,
}

/// Takes, from `carried`, what happened since their last report to the
/// accounts of barriers placed before `before`; keeps those still pending.
fn adopt(carried: &mut Vec<Carried>, before: u64, into: &mut Taken) {
    carried.retain_mut(|c| {
        if c.seq >= before {
            return true;
        }
        let now = c.account.tally();
        into.outcomes.add(&now.since(&c.reported));
        let pending = now.pending();
        into.pending += pending;
        c.reported = now;
        pending > 0
    });
}

/// One exporter's part of the global ledger.
#[derive(Debug)]
struct GlobalLane {
    /// Global barriers placed for this lane so far.
    seq: u64,
    /// The account of events routed since the last global barrier.
    current: Arc<Account>,
    carried: Vec<Carried>,
}

/// The global ledger: one lane per exporter.
#[derive(Debug)]
pub(crate) struct GlobalLedger {
    lanes: Box<[Mutex<GlobalLane>]>,
    /// Cumulative pipeline losses at the last global barrier (see the module docs).
    pipeline_mark: Mutex<[u64; DropReason::ALL.len()]>,
}

impl GlobalLedger {
    pub(crate) fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes)
                .map(|_| {
                    Mutex::new(GlobalLane {
                        seq: 0,
                        current: Account::new(),
                        carried: Vec::new(),
                    })
                })
                .collect(),
            pipeline_mark: Mutex::new([0; DropReason::ALL.len()]),
        }
    }

    /// The open account of `lane`, which routed events go into.
    pub(crate) fn current(&self, lane: usize) -> Arc<Account> {
        lock(&self.lanes[lane]).current.clone()
    }

    /// A global barrier is placed: it takes the open account of `lane`.
    pub(crate) fn rotate(&self, lane: usize) -> (u64, Arc<Account>) {
        let mut l = lock(&self.lanes[lane]);
        l.seq += 1;
        let own = std::mem::replace(&mut l.current, Account::new());
        (l.seq, own)
    }

    /// Pipeline losses since the previous call, from cumulative counts.
    pub(crate) fn pipeline_since_last(
        &self,
        cumulative: [u64; DropReason::ALL.len()],
    ) -> BTreeMap<DropReason, u64> {
        let mut mark = lock(&self.pipeline_mark);
        let mut out = BTreeMap::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            let d = cumulative[i].saturating_sub(mark[i]);
            if d > 0 {
                out.insert(*r, d);
            }
            mark[i] = mark[i].max(cumulative[i]);
        }
        out
    }

    /// The report of the barrier at `seq` takes the carried accounts of
    /// earlier barriers; then its own account (already tallied as `own`) is
    /// carried if events of it are still pending.
    pub(crate) fn report(&self, lane: usize, seq: u64, own: Option<(&AccountRef, Tally)>) -> Taken {
        let mut l = lock(&self.lanes[lane]);
        let mut taken = Taken::default();
        adopt(&mut l.carried, seq, &mut taken);
        if let Some((account, tally)) = own {
            taken.pending += tally.pending();
            taken.outcomes.add(&tally);
            if tally.pending() > 0 {
                l.carried.push(Carried {
                    seq,
                    account: account.clone(),
                    reported: tally,
                });
            }
        }
        taken
    }

    /// A barrier placed at `seq` will never be reported (its caller gave up
    /// before the report): its account is carried whole.
    pub(crate) fn carry_unreported(&self, lane: usize, seq: u64, account: AccountRef) {
        lock(&self.lanes[lane]).carried.push(Carried {
            seq,
            account,
            reported: Tally::default(),
        });
    }

    /// Every account of `lane` the ledger holds (open and carried).
    pub(crate) fn accounts(&self, lane: usize) -> Vec<AccountRef> {
        let l = lock(&self.lanes[lane]);
        std::iter::once(AccountRef::One(l.current.clone()))
            .chain(l.carried.iter().map(|c| c.account.clone()))
            .collect()
    }
}

/// A hasher for ids that are already random (trace ids): no SipHash.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 ^= v;
    }
}

type IdMap<V> = HashMap<TraceId, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<TraceId, BuildHasherDefault<IdHasher>>;

/// How much of a trace's ledger a report could read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TraceCoverage {
    /// An account of this trace was evicted before this report took it.
    pub(crate) evicted: bool,
}

#[derive(Debug)]
struct TraceEntry {
    /// The open accounts: per exporter lane, then the pipeline lane last.
    accounts: Option<TraceAccounts>,
    /// `flush_trace` barriers placed for this trace.
    seq: u64,
    /// (lane, account) of earlier reports with events still pending.
    carried: Vec<(usize, Carried)>,
    /// An earlier account of this trace was evicted.
    evicted: bool,
    /// Activity since the eviction clock last passed (second chance).
    referenced: bool,
}

impl TraceEntry {
    fn is_idle(&self) -> bool {
        self.carried.is_empty() && self.accounts.is_none()
    }
}

/// What a `flush_trace` barrier takes when it is placed.
#[derive(Debug)]
pub(crate) struct TraceTake {
    pub(crate) seq: u64,
    /// Per exporter lane, then the pipeline lane last.
    pub(crate) accounts: Vec<Option<AccountRef>>,
    pub(crate) coverage: TraceCoverage,
}

/// The trace ledger: bounded per-trace accounts.
#[derive(Debug)]
pub(crate) struct TraceLedger {
    /// Exporter lanes (the pipeline lane is one more).
    lanes: usize,
    capacity: usize,
    table: Mutex<TraceTable>,
}

#[derive(Debug, Default)]
pub(crate) struct TraceTable {
    entries: IdMap<TraceEntry>,
    /// Eviction order (a CLOCK: a referenced entry gets a second chance).
    clock: VecDeque<TraceId>,
    /// Traces evicted lately, so that their later reports say so.
    evicted: IdSet,
    evicted_order: VecDeque<TraceId>,
    /// More traces were evicted than `evicted` remembers.
    forgot: bool,
    spare: Vec<TraceAccounts>,
}

/// Evicted trace ids remembered, per unit of capacity.
const EVICTED_REMEMBERED_PER_TRACE: usize = 4;

impl TraceLedger {
    pub(crate) fn new(lanes: usize, capacity: usize) -> Self {
        let mut table = TraceTable::default();
        // Room for the churn of one-off traces without growing or rehashing often.
        table.entries.reserve(capacity + capacity / 2);
        Self {
            lanes,
            capacity,
            table: Mutex::new(table),
        }
    }

    /// The pipeline lane's index in a trace's accounts.
    pub(crate) fn pipeline_lane(&self) -> usize {
        self.lanes
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Locks the table for a batch of [`TraceLedger::account`] calls.
    pub(crate) fn lock(&self) -> TraceGuard<'_> {
        TraceGuard {
            ledger: self,
            table: lock(&self.table),
        }
    }

    /// Counts `n` of `trace`'s events lost before any exporter.
    pub(crate) fn lose_in_pipeline(&self, trace: TraceId, reason: DropReason, n: u64) {
        if let Some(a) = self.lock().accounts(trace) {
            a[self.lanes].lose(reason, n);
        }
    }

    /// A `flush_trace(trace)` barrier is placed: it takes the trace's
    /// accounts of the lanes in `scope` (exporter lanes; the pipeline lane
    /// always).
    pub(crate) fn take(&self, trace: TraceId, scope: &[bool]) -> TraceTake {
        let mut t = lock(&self.table);
        let forgot = t.forgot;
        let was_evicted = t.evicted.contains(&trace);
        let lanes = self.lanes;
        let Some(entry) = t.entries.get_mut(&trace) else {
            return TraceTake {
                seq: 0,
                accounts: vec![None; lanes + 1],
                coverage: TraceCoverage {
                    evicted: was_evicted || forgot,
                },
            };
        };
        entry.seq += 1;
        let seq = entry.seq;
        let set = entry.accounts.take();
        let mut accounts = vec![None; lanes + 1];
        if let Some(set) = set {
            for (i, slot) in accounts.iter_mut().enumerate() {
                let lane = AccountRef::Lane(set.clone(), i);
                if i == lanes || scope.get(i).copied().unwrap_or(false) {
                    *slot = Some(lane);
                } else if lane.tally() != Tally::default() {
                    // Out of this call's scope: the next flush_trace covering it reports it.
                    entry.carried.push((
                        i,
                        Carried {
                            seq,
                            account: lane,
                            reported: Tally::default(),
                        },
                    ));
                }
            }
        }
        let take = TraceTake {
            seq,
            accounts,
            coverage: TraceCoverage {
                evicted: entry.evicted,
            },
        };
        entry.evicted = false;
        take
    }

    /// The report of a `flush_trace` barrier at `seq` for one lane: takes
    /// carried accounts of earlier reports, then carries its own if pending.
    pub(crate) fn report(
        &self,
        trace: TraceId,
        lane: usize,
        seq: u64,
        own: Option<(&AccountRef, Tally)>,
    ) -> Taken {
        let mut t = lock(&self.table);
        let mut taken = Taken::default();
        let mut own = own;
        if let Some(entry) = t.entries.get_mut(&trace) {
            let mut mine: Vec<Carried> = Vec::new();
            let mut rest = Vec::new();
            for (l, c) in entry.carried.drain(..) {
                if l == lane {
                    mine.push(c);
                } else {
                    rest.push((l, c));
                }
            }
            adopt(&mut mine, seq, &mut taken);
            entry.carried = rest;
            entry.carried.extend(mine.into_iter().map(|c| (lane, c)));
            if let Some((account, tally)) = own.take() {
                taken.pending += tally.pending();
                taken.outcomes.add(&tally);
                if tally.pending() > 0 {
                    entry.carried.push((
                        lane,
                        Carried {
                            seq,
                            account: account.clone(),
                            reported: tally,
                        },
                    ));
                }
            }
            if entry.is_idle() {
                t.entries.remove(&trace);
            }
        }
        if let Some((_, tally)) = own {
            // The entry was evicted meanwhile: report what the account holds.
            taken.pending += tally.pending();
            taken.outcomes.add(&tally);
        }
        taken
    }

    /// A `flush_trace` barrier placed at `seq` will never be reported (its
    /// caller gave up before the report): its account is carried whole.
    pub(crate) fn carry_unreported(
        &self,
        trace: TraceId,
        lane: usize,
        seq: u64,
        account: AccountRef,
    ) {
        let mut t = lock(&self.table);
        if let Some(entry) = t.entries.get_mut(&trace) {
            entry.carried.push((
                lane,
                Carried {
                    seq,
                    account,
                    reported: Tally::default(),
                },
            ));
        }
    }

    /// Every trace account of `lane` the ledger holds (open and carried).
    pub(crate) fn accounts(&self, lane: usize) -> Vec<AccountRef> {
        let t = lock(&self.table);
        t.entries
            .values()
            .flat_map(|e| {
                e.accounts
                    .iter()
                    .map(|set| AccountRef::Lane(set.clone(), lane))
                    .chain(
                        e.carried
                            .iter()
                            .filter(|(l, _)| *l == lane)
                            .map(|(_, c)| c.account.clone()),
                    )
            })
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.table).entries.len()
    }
}

/// The locked trace table, for the router's per-event lookups.
pub(crate) struct TraceGuard<'a> {
    ledger: &'a TraceLedger,
    table: MutexGuard<'a, TraceTable>,
}

impl TraceGuard<'_> {
    /// The open accounts of `trace` (every lane), created if needed
    /// (evicting the least recently active trace when the ledger is full).
    /// `None` when the trace ledger is disabled.
    pub(crate) fn accounts(&mut self, trace: TraceId) -> Option<TraceAccounts> {
        let capacity = self.ledger.capacity;
        if capacity == 0 {
            return None;
        }
        let lanes = self.ledger.lanes;
        let t = &mut *self.table;
        if let Some(entry) = t.entries.get_mut(&trace) {
            // Seen again: a second chance at the next eviction. A new
            // trace has none, so one-off traces are evicted first.
            entry.referenced = true;
        } else {
            while t.entries.len() >= capacity {
                t.evict_one(capacity);
            }
            let evicted = t.evicted.remove(&trace);
            t.entries.insert(
                trace,
                TraceEntry {
                    accounts: None,
                    seq: 0,
                    carried: Vec::new(),
                    evicted,
                    referenced: false,
                },
            );
            t.clock.push_back(trace);
            if t.clock.len() > 2 * capacity + 16 {
                let entries = &t.entries;
                let mut seen = IdSet::default();
                t.clock
                    .retain(|id| entries.contains_key(id) && seen.insert(*id));
            }
        }
        let entry = t.entries.get_mut(&trace)?;
        Some(
            entry
                .accounts
                .get_or_insert_with(|| new_trace_accounts(lanes, &mut t.spare))
                .clone(),
        )
    }
}

impl TraceTable {
    fn evict_one(&mut self, capacity: usize) {
        while let Some(id) = self.clock.pop_front() {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue; // removed since
            };
            if entry.referenced {
                entry.referenced = false;
                self.clock.push_back(id);
                continue;
            }
            if let Some(mut set) = self.entries.remove(&id).and_then(|e| e.accounts)
                && self.spare.len() < SPARE_TRACE_ACCOUNTS
                && let Some(accounts) = Arc::get_mut(&mut set)
            {
                accounts.fill_with(Account::default);
                self.spare.push(set);
            }
            if self.evicted.insert(id) {
                self.evicted_order.push_back(id);
            }
            let remember = EVICTED_REMEMBERED_PER_TRACE * capacity;
            while self.evicted_order.len() > remember {
                if let Some(old) = self.evicted_order.pop_front() {
                    self.evicted.remove(&old);
                    self.forgot = true;
                }
            }
            return;
        }
        // The clock was empty: nothing is left to evict.
        if let Some(id) = self.entries.keys().next().copied() {
            self.entries.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(n: u128) -> TraceId {
        TraceId::from_u128(n + 1).unwrap()
    }

    #[test]
    fn a_global_barrier_takes_what_was_routed_before_it_and_nothing_after() {
        let g = GlobalLedger::new(1);
        g.current(0).accept(3);
        let (seq, own) = g.rotate(0);
        g.current(0).accept(5); // after the barrier
        own.deliver(2);
        own.lose(DropReason::QueueFull, 1);
        let own = AccountRef::One(own);
        let t = g.report(0, seq, Some((&own, own.tally())));
        assert_eq!(t.outcomes.delivered, 2);
        assert_eq!(t.outcomes.lost_total(), 1);
        assert_eq!(t.pending, 0);
    }

    #[test]
    fn a_pending_account_is_carried_to_the_next_report_once() {
        let g = GlobalLedger::new(1);
        g.current(0).accept(4);
        let (s1, a1) = g.rotate(0);
        let a1 = AccountRef::One(a1);
        a1.deliver(1);
        let first = g.report(0, s1, Some((&a1, a1.tally())));
        assert_eq!((first.outcomes.delivered, first.pending), (1, 3));
        // Later outcomes of a1 go to the next report, not back to the first.
        a1.deliver(2);
        a1.lose(DropReason::RetriesExhausted, 1);
        let (s2, a2) = g.rotate(0);
        let a2 = AccountRef::One(a2);
        let second = g.report(0, s2, Some((&a2, a2.tally())));
        assert_eq!(second.outcomes.delivered, 2);
        assert_eq!(second.outcomes.lost_total(), 1);
        assert_eq!(second.pending, 0);
        let (s3, a3) = g.rotate(0);
        let a3 = AccountRef::One(a3);
        let third = g.report(0, s3, Some((&a3, a3.tally())));
        assert_eq!(third.outcomes, Tally::default());
    }

    #[test]
    fn a_report_never_takes_the_account_of_a_later_barrier() {
        let g = GlobalLedger::new(1);
        g.current(0).accept(1);
        let (s1, a1) = g.rotate(0);
        let a1 = AccountRef::One(a1);
        g.current(0).accept(1);
        let (s2, a2) = g.rotate(0);
        let a2 = AccountRef::One(a2);
        // The later barrier reports first, with its event pending.
        let late = g.report(0, s2, Some((&a2, a2.tally())));
        assert_eq!(late.pending, 1);
        a1.lose(DropReason::QueueFull, 1);
        a2.deliver(1);
        // The earlier one still reports its own loss, and only that.
        let early = g.report(0, s1, Some((&a1, a1.tally())));
        assert_eq!(early.outcomes.lost_total(), 1);
        assert_eq!(early.outcomes.delivered, 0);
    }

    #[test]
    fn pipeline_losses_go_to_the_first_barrier_after_them() {
        let g = GlobalLedger::new(0);
        let mut c = [0; DropReason::ALL.len()];
        c[0] = 3;
        assert_eq!(g.pipeline_since_last(c).values().sum::<u64>(), 3);
        assert!(g.pipeline_since_last(c).is_empty());
        c[0] = 5;
        assert_eq!(g.pipeline_since_last(c).values().sum::<u64>(), 2);
    }

    #[test]
    fn a_trace_barrier_takes_its_traces_accounts_and_later_events_open_new_ones() {
        let t = TraceLedger::new(1, 8);
        let a = t.lock().accounts(tid(1)).unwrap();
        a[0].accept(2);
        a[0].deliver(1);
        a[0].lose(DropReason::QueueFull, 1);
        let take = t.take(tid(1), &[true]);
        let own = take.accounts[0].clone().unwrap();
        let later = t.lock().accounts(tid(1)).unwrap();
        assert!(!Arc::ptr_eq(&a, &later));
        let r = t.report(tid(1), 0, take.seq, Some((&own, own.tally())));
        assert_eq!(
            (r.outcomes.delivered, r.outcomes.lost_total(), r.pending),
            (1, 1, 0)
        );
        assert!(!take.coverage.evicted);
    }

    #[test]
    fn the_trace_ledger_is_bounded_and_says_when_a_trace_was_evicted() {
        let t = TraceLedger::new(1, 4);
        for i in 0..10 {
            t.lock().accounts(tid(i)).unwrap()[0].accept(1);
        }
        assert!(t.len() <= 4);
        let take = t.take(tid(0), &[true]);
        assert!(take.coverage.evicted, "trace 0 was evicted");
        let take = t.take(tid(9), &[true]);
        assert!(!take.coverage.evicted);
        // An evicted trace that emits again gets a fresh account, marked.
        t.lock().accounts(tid(1)).unwrap()[0].accept(1);
        assert!(t.take(tid(1), &[true]).coverage.evicted);
    }

    #[test]
    fn an_active_trace_survives_eviction_of_idle_ones() {
        let t = TraceLedger::new(1, 4);
        let busy = tid(100);
        for i in 0..40 {
            t.lock().accounts(busy).unwrap()[0].accept(1);
            t.lock().accounts(tid(i)).unwrap()[0].accept(1);
        }
        assert!(!t.take(busy, &[true]).coverage.evicted);
    }

    #[test]
    fn abandoning_an_account_turns_its_pending_events_into_losses() {
        let a = Account::new();
        a.accept(5);
        a.deliver(2);
        assert_eq!(a.abandon(DropReason::FlushTimeout), 3);
        assert_eq!(a.tally().pending(), 0);
        assert_eq!(a.abandon(DropReason::FlushTimeout), 0);
    }
}
