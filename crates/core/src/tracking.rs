//! `TrackingExporter` and the `Tracking<T>` adapter: the per-trace state machine
//! that stateful vendors (run trees, transactions, trace objects) need, written once.
//!
//! The adapter annotates each event with what came before it in its trace —
//! whether the trace is new, whether the span's start and its parent were seen,
//! whether the root already ended — and keeps that state bounded in count and
//! age. Because an `Ended` event carries the complete span, a vendor mapping
//! never has to wait for a start that may never come (durable replay, another
//! process): it uses the annotations to choose between "create" and "update".

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::event::{ObservabilityEvent, Signals, SpanEventKind};
use crate::exporter::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext, RetryPolicy,
};
use crate::id::{SpanId, TraceId};

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
}

/// Bounds on the per-trace state the adapter keeps.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TrackingLimits {
    /// Most traces tracked at once; the least recently seen is forgotten first.
    pub max_traces: usize,
    /// How long a trace is kept after its root ended, for late children.
    pub grace: Duration,
    /// How long a trace with no activity is kept.
    pub max_idle: Duration,
}

impl Default for TrackingLimits {
    fn default() -> Self {
        Self {
            max_traces: 10_000,
            grace: Duration::from_secs(60),
            max_idle: Duration::from_secs(30 * 60),
        }
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

/// Adapts a [`TrackingExporter`] into an [`Exporter`].
#[derive(Debug)]
pub struct Tracking<T> {
    inner: T,
    limits: TrackingLimits,
    table: Mutex<Table>,
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
        }
    }
    /// The wrapped exporter.
    pub fn inner(&self) -> &T {
        &self.inner
    }
    /// How many traces are tracked now.
    pub fn tracked_traces(&self) -> usize {
        self.table.lock().map(|t| t.traces.len()).unwrap_or(0)
    }

    fn annotate(&self, batch: &ExportBatch) -> Vec<TrackedEvent> {
        let Ok(table) = self.table.lock() else {
            return batch.iter().map(|e| plain(e.clone())).collect();
        };
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
    fn commit(&self, tracked: &[TrackedEvent], rejected: &HashSet<usize>) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        let now = Instant::now();
        for (i, t) in tracked.iter().enumerate() {
            if rejected.contains(&i) {
                continue;
            }
            let Some(tid) = t.event.trace_id() else {
                continue;
            };
            let st = table.traces.entry(tid).or_insert_with(|| TraceState {
                started: HashSet::new(),
                seen: HashSet::new(),
                root_ended_at: None,
                last_seen: now,
            });
            st.last_seen = now;
            if let ObservabilityEvent::Span { kind, span } = &*t.event {
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
        self.inner.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let tracked = self.annotate(batch);
        let outcome = self.inner.export_tracked(&tracked).await?;
        let rejected: HashSet<usize> = outcome.rejected.iter().map(|r| r.index).collect();
        self.commit(&tracked, &rejected);
        Ok(outcome)
    }
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        self.inner.flush(deadline).await
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        let r = self.inner.shutdown(deadline).await;
        if let Ok(mut t) = self.table.lock() {
            t.traces.clear();
        }
        r
    }
}
