//! `TrackingExporter` and the `Tracking<T>` adapter: the per-trace state machine
//! that stateful vendors (run trees, transactions, trace objects) need, written once.
//!
//! The adapter annotates each event with what came before it in its trace —
//! whether the trace is new, whether the span's start and its parent were seen,
//! whether the root already ended — and keeps that state bounded in count and
//! age. Because an `Ended` event carries the complete span, a vendor mapping
//! never has to wait for a start that may never come (durable replay, another
//! process): it uses the annotations to choose between "create" and "update".
//!
//! With [`TrackingLimits::gather`] on, the adapter also *gathers*: a child
//! span that ends while its root is open is held (pending in stats, through
//! the pipeline's [`Custody`]) and handed to the vendor together with its root
//! when the root ends, so a vendor that sends a trace as one document (a
//! Sentry transaction) gets all of it at once. Held spans are bounded in roots,
//! spans per root and bytes; past a bound, on `flush`, and after `max_idle`
//! they are handed over without their root ([`Release`]), so nothing waits for
//! a root that may never end here (durable replay, a root still running).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::event::{ObservabilityEvent, Signals, SpanEventKind};
use crate::exporter::{
    BatchPolicy, Custody, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter,
    ExporterContext, ItemRejection, RetryPolicy,
};
use crate::id::{SpanId, TraceId};
use crate::stats::DropReason;

/// An event and what the adapter knows of its place in the trace.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TrackedEvent {
    /// The event.
    pub event: Arc<ObservabilityEvent>,
    /// The first event of its trace this exporter sees (create the trace object).
    pub first_in_trace: bool,
    /// For span events: the span's `Started` event was exported before.
    /// `false` on an `Ended` event means "end without start": create the whole span from it.
    pub start_seen: bool,
    /// For span events with a parent: the parent was seen before (started or ended).
    /// `false` means the child arrived before its parent.
    pub parent_seen: bool,
    /// The trace's root had already ended: a late child.
    pub after_root_end: bool,
    /// Set when the event was held by the adapter (gathering) and is handed
    /// over now, and why.
    pub release: Option<Release>,
}

/// Why a held span is handed to the vendor now (see [`TrackingLimits::gather`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Release {
    /// Its root ended: it goes with the root, in the same call.
    WithRoot,
    /// A flush or shutdown came while its root had not ended in this process
    /// (still running, or ended in another process after a durable replay).
    Flush,
    /// A bound on held spans (roots, spans per root, bytes) was reached.
    OverLimit,
    /// It was held longer than [`TrackingLimits::max_idle`].
    Expired,
}

/// Bounds on the per-trace state the adapter keeps.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TrackingLimits {
    /// Most traces tracked at once; the least recently seen is forgotten first.
    pub max_traces: usize,
    /// How long a trace is kept after its root ended, for late children.
    pub grace: Duration,
    /// How long a trace with no activity is kept, and the longest a gathered
    /// span is held waiting for its root.
    pub max_idle: Duration,
    /// Hold child spans until their root ends and hand them over together
    /// (off by default). Held spans stay *pending* until the vendor settles them.
    pub gather: bool,
    /// Most spans held for one root; reaching it hands that root's spans over.
    pub max_held_spans_per_root: usize,
    /// Most estimated bytes held in all; past it the oldest roots' spans are handed over.
    pub max_held_bytes: usize,
}

impl Default for TrackingLimits {
    fn default() -> Self {
        Self {
            max_traces: 10_000,
            grace: Duration::from_secs(60),
            max_idle: Duration::from_secs(30 * 60),
            gather: false,
            max_held_spans_per_root: 1000,
            max_held_bytes: 16 * 1024 * 1024,
        }
    }
}

impl TrackingLimits {
    /// Turns gathering on or off (see [`TrackingLimits::gather`]).
    pub fn with_gather(mut self, on: bool) -> Self {
        self.gather = on;
        self
    }
    /// Sets `max_traces` (at least 1); it also bounds how many roots have held spans.
    pub fn with_max_traces(mut self, n: usize) -> Self {
        self.max_traces = n.max(1);
        self
    }
    /// Sets `max_idle`.
    pub fn with_max_idle(mut self, d: Duration) -> Self {
        self.max_idle = d;
        self
    }
    /// Sets `max_held_spans_per_root` (at least 1).
    pub fn with_max_held_spans_per_root(mut self, n: usize) -> Self {
        self.max_held_spans_per_root = n.max(1);
        self
    }
    /// Sets `max_held_bytes`.
    pub fn with_max_held_bytes(mut self, n: usize) -> Self {
        self.max_held_bytes = n;
        self
    }
}

/// An exporter for a vendor with per-trace state. Wrap it in [`Tracking`] to
/// get an [`Exporter`].
///
/// Mappings must be idempotent on retry: after a partial failure an event may
/// be re-sent with different annotations (e.g. `first_in_trace` false).
#[async_trait]
pub trait TrackingExporter: Send + Sync + Debug + 'static {
    /// See [`Exporter::name`].
    fn name(&self) -> &str;
    /// See [`Exporter::signals`].
    fn signals(&self) -> Signals;
    /// See [`Exporter::batch_policy`].
    fn batch_policy(&self) -> BatchPolicy;
    /// See [`Exporter::retry_policy`].
    fn retry_policy(&self) -> RetryPolicy;
    /// See [`Exporter::init`].
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError>;
    /// Pushes one batch; rejections index into `batch`.
    async fn export_tracked(&self, batch: &[TrackedEvent]) -> Result<ExportOutcome, ExportError>;
    /// See [`Exporter::flush`].
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError>;
    /// See [`Exporter::shutdown`].
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError>;
}

#[derive(Debug)]
struct TraceState {
    started: HashSet<SpanId>,
    seen: HashSet<SpanId>,
    root_ended_at: Option<Instant>,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Table {
    traces: HashMap<TraceId, TraceState>,
}

/// Spans gathered for one root, in arrival order.
#[derive(Debug)]
struct HeldRoot {
    events: Vec<Arc<ObservabilityEvent>>,
    bytes: usize,
    since: Instant,
}

/// Gathered spans by (trace, root span).
#[derive(Debug, Default)]
struct HeldSpans {
    roots: HashMap<(TraceId, SpanId), HeldRoot>,
    bytes: usize,
}

impl HeldSpans {
    fn count(&self) -> usize {
        self.roots.values().map(|r| r.events.len()).sum()
    }
}

/// Where an item handed to the vendor came from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// Index in the worker's batch.
    Batch(usize),
    /// A span held earlier, for this root.
    Held((TraceId, SpanId)),
}

/// Adapts a [`TrackingExporter`] into an [`Exporter`].
#[derive(Debug)]
pub struct Tracking<T> {
    inner: T,
    limits: TrackingLimits,
    table: Mutex<Table>,
    held: Mutex<HeldSpans>,
    custody: Mutex<Custody>,
}

impl<T: TrackingExporter> Tracking<T> {
    /// Wraps `inner` with default limits.
    pub fn new(inner: T) -> Self {
        Self::with_limits(inner, TrackingLimits::default())
    }
    /// Wraps `inner` with these limits.
    pub fn with_limits(inner: T, limits: TrackingLimits) -> Self {
        Self {
            inner,
            limits,
            table: Mutex::new(Table::default()),
            held: Mutex::new(HeldSpans::default()),
            custody: Mutex::new(Custody::detached()),
        }
    }
    /// The wrapped exporter.
    pub fn inner(&self) -> &T {
        &self.inner
    }
    /// The limits in force.
    pub fn limits(&self) -> TrackingLimits {
        self.limits
    }
    /// How many traces are tracked now.
    pub fn tracked_traces(&self) -> usize {
        self.table().traces.len()
    }
    /// How many spans are held now, waiting for their root (gathering).
    pub fn held_spans(&self) -> usize {
        self.held().count()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn held(&self) -> std::sync::MutexGuard<'_, HeldSpans> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn custody(&self) -> Custody {
        self.custody
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn annotate(&self, batch: &ExportBatch) -> Vec<TrackedEvent> {
        let table = self.table();
        // Overlay: what earlier events in this batch add to the table.
        let mut new_traces: HashSet<TraceId> = HashSet::new();
        let mut started: HashSet<(TraceId, SpanId)> = HashSet::new();
        let mut seen: HashSet<(TraceId, SpanId)> = HashSet::new();
        let mut root_ended: HashSet<TraceId> = HashSet::new();
        batch
            .iter()
            .map(|e| {
                let Some(tid) = e.trace_id() else {
                    return plain(e.clone());
                };
                let known = table.traces.get(&tid);
                let first_in_trace = known.is_none() && new_traces.insert(tid);
                let mut t = TrackedEvent {
                    event: e.clone(),
                    first_in_trace,
                    start_seen: false,
                    parent_seen: true,
                    after_root_end: known.is_some_and(|k| k.root_ended_at.is_some())
                        || root_ended.contains(&tid),
                    release: None,
                };
                if let ObservabilityEvent::Span { kind, span } = &**e {
                    let sid = span.span_id;
                    t.start_seen = known.is_some_and(|k| k.started.contains(&sid))
                        || started.contains(&(tid, sid));
                    if let Some(p) = span.parent_span_id {
                        t.parent_seen =
                            known.is_some_and(|k| k.seen.contains(&p)) || seen.contains(&(tid, p));
                    }
                    if *kind == SpanEventKind::Started {
                        started.insert((tid, sid));
                    }
                    seen.insert((tid, sid));
                    if *kind == SpanEventKind::Ended && span.is_root {
                        root_ended.insert(tid);
                    }
                }
                t
            })
            .collect()
    }

    /// Records delivered events in the table and forgets finished or idle traces.
    fn commit(&self, batch: &ExportBatch, rejected: &HashSet<usize>) {
        let mut table = self.table();
        let now = Instant::now();
        for (i, event) in batch.iter().enumerate() {
            if rejected.contains(&i) {
                continue;
            }
            let Some(tid) = event.trace_id() else {
                continue;
            };
            let st = table.traces.entry(tid).or_insert_with(|| TraceState {
                started: HashSet::new(),
                seen: HashSet::new(),
                root_ended_at: None,
                last_seen: now,
            });
            st.last_seen = now;
            if let ObservabilityEvent::Span { kind, span } = &**event {
                st.seen.insert(span.span_id);
                match kind {
                    SpanEventKind::Started => {
                        st.started.insert(span.span_id);
                    }
                    SpanEventKind::Ended => {
                        st.started.remove(&span.span_id);
                        if span.is_root && st.root_ended_at.is_none() {
                            st.root_ended_at = Some(now);
                        }
                    }
                    SpanEventKind::Updated => {}
                }
            }
        }
        let limits = self.limits;
        table.traces.retain(|_, s| {
            let finished = s
                .root_ended_at
                .is_some_and(|at| now.duration_since(at) > limits.grace);
            let idle = now.duration_since(s.last_seen) > limits.max_idle;
            !(finished || idle)
        });
        if table.traces.len() > limits.max_traces {
            let mut by_age: VecDeque<(Instant, TraceId)> = table
                .traces
                .iter()
                .map(|(id, s)| (s.last_seen, *id))
                .collect();
            by_age.make_contiguous().sort();
            let excess = table.traces.len() - limits.max_traces;
            for (_, id) in by_age.into_iter().take(excess) {
                table.traces.remove(&id);
            }
        }
    }
}

fn plain(event: Arc<ObservabilityEvent>) -> TrackedEvent {
    TrackedEvent {
        event,
        first_in_trace: false,
        start_seen: false,
        parent_seen: true,
        after_root_end: false,
        release: None,
    }
}

/// The root a span belongs to: the first of its ancestry, else its parent.
fn root_of(span: &crate::span::ExportedSpan) -> Option<SpanId> {
    span.ancestry
        .first()
        .map(|a| a.span_id)
        .or(span.parent_span_id)
}

/// A held span handed over without its root, or with it.
fn released(event: Arc<ObservabilityEvent>, why: Release) -> TrackedEvent {
    TrackedEvent {
        release: Some(why),
        ..plain(event)
    }
}

/// What one `export` call hands the vendor, and what it keeps back.
struct Plan {
    items: Vec<TrackedEvent>,
    origins: Vec<Origin>,
    /// Batch indices held now, with their root.
    hold: Vec<(usize, (TraceId, SpanId))>,
}

type RootKey = (TraceId, SpanId);

impl<T: TrackingExporter> Tracking<T> {
    /// Splits an annotated batch into what goes to the vendor now (with
    /// spans held earlier whose root ends now, or that must go now) and what
    /// is held. Changes nothing: the plan is committed once the vendor answered.
    fn plan(&self, tracked: Vec<TrackedEvent>) -> Plan {
        let mut plan = Plan {
            items: Vec::with_capacity(tracked.len()),
            origins: Vec::with_capacity(tracked.len()),
            hold: Vec::new(),
        };
        if !self.limits.gather {
            plan.origins = (0..tracked.len()).map(Origin::Batch).collect();
            plan.items = tracked;
            return plan;
        }
        let ended_roots: HashSet<RootKey> = tracked
            .iter()
            .filter_map(|t| match &*t.event {
                ObservabilityEvent::Span {
                    kind: SpanEventKind::Ended,
                    span,
                } if span.is_root => Some((span.trace_id, span.span_id)),
                _ => None,
            })
            .collect();
        // Children of roots that have not ended (here, so far) are candidates to hold.
        let mut candidates: Vec<(usize, RootKey, TrackedEvent)> = Vec::new();
        for (i, t) in tracked.into_iter().enumerate() {
            let key = match &*t.event {
                ObservabilityEvent::Span {
                    kind: SpanEventKind::Ended,
                    span,
                } if !span.is_root && !t.after_root_end => {
                    root_of(span).map(|r| (span.trace_id, r))
                }
                _ => None,
            };
            match key {
                Some(key) if !ended_roots.contains(&key) => candidates.push((i, key, t)),
                _ => {
                    plan.items.push(t);
                    plan.origins.push(Origin::Batch(i));
                }
            }
        }
        let held = self.held();
        let release = self.releases(&held, &ended_roots, &candidates);
        for (key, why) in &release {
            if let Some(r) = held.roots.get(key) {
                for e in &r.events {
                    plan.items.push(released(e.clone(), *why));
                    plan.origins.push(Origin::Held(*key));
                }
            }
        }
        drop(held);
        for (i, key, t) in candidates {
            match release.get(&key) {
                Some(why) => {
                    plan.items.push(TrackedEvent {
                        release: Some(*why),
                        ..t
                    });
                    plan.origins.push(Origin::Batch(i));
                }
                None => plan.hold.push((i, key)),
            }
        }
        plan
    }

    /// Which roots' held spans go now, and why: their root ended, or a bound
    /// (spans per root, age, roots, bytes) is reached counting this batch's candidates.
    fn releases(
        &self,
        held: &HeldSpans,
        ended_roots: &HashSet<RootKey>,
        candidates: &[(usize, RootKey, TrackedEvent)],
    ) -> HashMap<RootKey, Release> {
        let now = Instant::now();
        let mut release: HashMap<RootKey, Release> = ended_roots
            .iter()
            .filter(|k| held.roots.contains_key(k))
            .map(|k| (*k, Release::WithRoot))
            .collect();
        let mut added: HashMap<RootKey, (usize, usize)> = HashMap::new();
        for (_, key, t) in candidates {
            let a = added.entry(*key).or_default();
            a.0 += 1;
            a.1 += t.event.estimated_size();
        }
        for (key, (n, _)) in &added {
            let before = held.roots.get(key).map_or(0, |r| r.events.len());
            if before + n > self.limits.max_held_spans_per_root {
                release.insert(*key, Release::OverLimit);
            }
        }
        for (key, r) in &held.roots {
            if now.duration_since(r.since) > self.limits.max_idle {
                release.entry(*key).or_insert(Release::Expired);
            }
        }
        // Oldest first: the roots and bytes that would be held after this batch.
        let mut kept: Vec<(Instant, RootKey, usize)> = held
            .roots
            .iter()
            .map(|(k, r)| (r.since, *k, r.bytes + added.get(k).map_or(0, |a| a.1)))
            .chain(
                added
                    .iter()
                    .filter(|(k, _)| !held.roots.contains_key(k))
                    .map(|(k, (_, b))| (now, *k, *b)),
            )
            .filter(|(_, k, _)| !release.contains_key(k))
            .collect();
        kept.sort_by_key(|(since, _, _)| *since);
        let mut bytes: usize = kept.iter().map(|(_, _, b)| b).sum();
        let mut count = kept.len();
        for (_, key, b) in kept {
            if count <= self.limits.max_traces && bytes <= self.limits.max_held_bytes {
                break;
            }
            release.insert(key, Release::OverLimit);
            bytes = bytes.saturating_sub(b);
            count -= 1;
        }
        release
    }

    /// Applies the vendor's answer: rejections of batch items go back to the
    /// worker; held spans handed over are settled through the custody (a
    /// retryable refusal keeps them held, for the next flush); this batch's
    /// held spans are stored and reported held.
    fn settle(&self, batch: &ExportBatch, plan: Plan, outcome: ExportOutcome) -> ExportOutcome {
        let mut rejected: Vec<ItemRejection> = Vec::new();
        let mut refused: HashMap<usize, &ItemRejection> = HashMap::new();
        for r in &outcome.rejected {
            if r.index < plan.items.len() {
                refused.entry(r.index).or_insert(r);
            }
        }
        let inner_held: HashSet<usize> = outcome.held.iter().copied().collect();
        let mut worker_held: Vec<usize> = Vec::new();
        let mut done: Vec<(usize, RootKey)> = Vec::new(); // (plan index, root) to forget
        let (mut delivered, mut lost, mut lost_msg) = (Vec::new(), Vec::new(), String::new());
        for (k, origin) in plan.origins.iter().enumerate() {
            match (*origin, refused.get(&k)) {
                (Origin::Batch(i), Some(r)) => rejected.push(ItemRejection {
                    index: i,
                    class: r.class,
                    message: r.message.clone(),
                }),
                (Origin::Batch(i), None) if inner_held.contains(&k) => worker_held.push(i),
                (Origin::Batch(_), None) => {}
                (Origin::Held(_), Some(r)) if r.class.is_retryable() => {}
                (Origin::Held(key), Some(r)) => {
                    lost.push(plan.items[k].event.clone());
                    lost_msg.clone_from(&r.message);
                    done.push((k, key));
                }
                (Origin::Held(key), None) => {
                    // Handed over (or taken into the vendor's own custody).
                    if !inner_held.contains(&k) {
                        delivered.push(plan.items[k].event.clone());
                    }
                    done.push((k, key));
                }
            }
        }
        // Named events: each outcome reaches its own trace's report.
        let custody = self.custody();
        custody.delivered_events(&delivered);
        custody.lost_events(&lost, DropReason::PermanentError, &lost_msg);
        let rejected_idx: HashSet<usize> = rejected.iter().map(|r| r.index).collect();
        {
            let mut held = self.held();
            for (k, key) in done {
                held.forget(key, &plan.items[k].event);
            }
            let now = Instant::now();
            for (i, key) in &plan.hold {
                let event = batch[*i].clone();
                let size = event.estimated_size();
                let root = held.roots.entry(*key).or_insert_with(|| HeldRoot {
                    events: Vec::new(),
                    bytes: 0,
                    since: now,
                });
                root.events.push(event);
                root.bytes += size;
                held.bytes += size;
                worker_held.push(*i);
            }
        }
        self.commit(batch, &rejected_idx);
        ExportOutcome::partial(rejected).with_held(worker_held)
    }

    /// Hands every held span to the vendor (their roots have not ended here),
    /// retrying per the vendor's retry policy until `deadline`. Spans refused
    /// for good are counted lost; spans still refused stay held (pending).
    async fn release_all(&self, deadline: Instant) -> Result<(), ExportError> {
        let policy = self.inner.retry_policy();
        let mut attempt = 0u32;
        loop {
            let (items, origins): (Vec<TrackedEvent>, Vec<Origin>) = {
                let held = self.held();
                held.roots
                    .iter()
                    .flat_map(|(k, r)| {
                        r.events
                            .iter()
                            .map(|e| (released(e.clone(), Release::Flush), Origin::Held(*k)))
                    })
                    .unzip()
            };
            if items.is_empty() {
                return Ok(());
            }
            let n = items.len();
            let call = self.inner.export_tracked(&items);
            let error =
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), call).await
                {
                    Err(_) => {
                        return Err(ExportError::transient(format!(
                            "the deadline passed while sending {n} held span(s); they stay pending"
                        )));
                    }
                    Ok(Ok(outcome)) => {
                        let plan = Plan {
                            items,
                            origins,
                            hold: Vec::new(),
                        };
                        let retry: Vec<ItemRejection> = outcome
                            .rejected
                            .iter()
                            .filter(|r| r.class.is_retryable())
                            .cloned()
                            .collect();
                        // No batch items here: nothing goes back to the worker.
                        let to_worker = self.settle(&[], plan, outcome);
                        debug_assert!(to_worker.rejected.is_empty() && to_worker.held.is_empty());
                        match retry.first() {
                            None => return Ok(()),
                            Some(r) => ExportError::new(r.class, r.message.clone()),
                        }
                    }
                    Ok(Err(e)) if !e.class.is_retryable() => {
                        let reason = if e.class == ErrorClass::Disabled {
                            DropReason::ExporterDisabled
                        } else {
                            DropReason::PermanentError
                        };
                        let all = self.held().take_all();
                        self.custody().lost_events(&all, reason, &e.message);
                        return Err(e);
                    }
                    Ok(Err(e)) => e,
                };
            if attempt >= policy.max_retries {
                return Err(error);
            }
            let wait = match error.class {
                ErrorClass::Throttled(Some(after)) => after.min(policy.max_backoff),
                _ => policy.backoff(attempt),
            };
            if Instant::now() + wait >= deadline {
                return Err(error);
            }
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

impl HeldSpans {
    /// Takes every held span out (to settle them all at once).
    fn take_all(&mut self) -> Vec<Arc<ObservabilityEvent>> {
        self.bytes = 0;
        self.roots.drain().flat_map(|(_, r)| r.events).collect()
    }

    /// Forgets one handed-over span of `key`.
    fn forget(&mut self, key: RootKey, event: &Arc<ObservabilityEvent>) {
        let Some(root) = self.roots.get_mut(&key) else {
            return;
        };
        if let Some(pos) = root.events.iter().position(|e| Arc::ptr_eq(e, event)) {
            let e = root.events.swap_remove(pos);
            let size = e.estimated_size();
            root.bytes = root.bytes.saturating_sub(size);
            self.bytes = self.bytes.saturating_sub(size);
        }
        if root.events.is_empty() {
            self.roots.remove(&key);
        }
    }
}

#[async_trait]
impl<T: TrackingExporter> Exporter for Tracking<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signals(&self) -> Signals {
        self.inner.signals()
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.inner.batch_policy()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy()
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        *self.custody.lock().unwrap_or_else(PoisonError::into_inner) = ctx.custody.clone();
        self.inner.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let tracked = self.annotate(batch);
        let plan = self.plan(tracked);
        let outcome = if plan.items.is_empty() {
            // Everything was held: nothing to send now.
            ExportOutcome::all_delivered()
        } else {
            self.inner.export_tracked(&plan.items).await?
        };
        Ok(self.settle(batch, plan, outcome))
    }
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        let sent = self.release_all(deadline).await;
        let flushed = self.inner.flush(deadline).await;
        sent.and(flushed)
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        let sent = self.release_all(deadline).await;
        if let Err(e) = &sent {
            // Nothing will send them now: count them, with the cause.
            let all = self.held().take_all();
            self.custody()
                .lost_events(&all, DropReason::RetriesExhausted, &e.message);
        }
        let r = self.inner.shutdown(deadline).await;
        self.table().traces.clear();
        sent.and(r)
    }
}
