//! `Observability`: the handle applications hold, its builder, and its guard.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::bus::{Core, OverflowPolicy, Pipeline, PipelineConfig, Queued, Refused, RuntimeMode};
use crate::event::{
    FeedbackRecord, LogRecord, MetricKind, MetricRecord, ObservabilityEvent, ScoreRecord, Signal,
    Signals, SpanEventKind,
};
use crate::exporter::{Exporter, ExporterContext};
use crate::id::TraceId;
use crate::payload::{SerializationLimits, bound_value, capture};
use crate::processor::{AsyncProcessor, SpanProcessor};
use crate::sampling::Sampler;
use crate::span::{ExportedSpan, Span, SpanOptions, SpanType};
use crate::stats::{DropReason, DroppedEvents, FlushReport, FlushScope, Stats};

/// A predicate deciding, when a span starts, whether it is exported.
pub type SpanFilter = Arc<dyn Fn(&ExportedSpan) -> bool + Send + Sync>;

/// Why `build` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The background thread or runtime could not start.
    #[error("could not start the aiobs pipeline thread: {0}")]
    Runtime(#[from] std::io::Error),
    /// Two exporters share a name (stats and metadata are keyed by it).
    #[error("two exporters are named {0:?}; exporter names must be unique")]
    DuplicateExporter(String),
}

pub(crate) struct Config {
    pub(crate) sampler: Sampler,
    limits: SerializationLimits,
    excluded: [bool; SpanType::ALL.len()],
    span_filter: Option<SpanFilter>,
    derive_metrics: bool,
}

/// What span handles and `Observability` share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pipeline: Arc<Pipeline>,
    wants: Signals,
    no_exporter: bool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn core(&self) -> &Core {
        &self.pipeline.core
    }

    fn emit(&self, event: ObservabilityEvent) {
        let core = self.core();
        if self.no_exporter {
            core.lose_at_emit(DropReason::NoExporter, event.signal(), event.trace_id());
            return;
        }
        let (reason, refused) = match core.ingress.push(Queued::from(event)) {
            Ok(()) => {
                core.recycler.collect();
                return;
            }
            Err(Refused::Closed(event)) => (DropReason::AfterShutdown, event),
            Err(Refused::Full(event)) => match core.overflow {
                OverflowPolicy::Block { timeout } if !self.pipeline.is_inline() => {
                    match core.ingress.push_blocking(event, timeout) {
                        Ok(()) => return,
                        Err(Refused::Closed(event)) => (DropReason::AfterShutdown, event),
                        Err(Refused::Full(event)) => (DropReason::QueueFull, event),
                    }
                }
                _ => (DropReason::QueueFull, event),
            },
        };
        core.lose_at_emit(reason, refused.signal(), refused.trace_id());
    }

    fn wants(&self, s: Signal) -> bool {
        self.no_exporter || self.wants.contains(s)
    }

    pub(crate) fn wants_started(&self) -> bool {
        !self.no_exporter && self.wants.contains(Signal::SpanStarted)
    }

    pub(crate) fn wants_updated(&self) -> bool {
        !self.no_exporter && self.wants.contains(Signal::SpanUpdated)
    }

    pub(crate) fn emit_span(&self, kind: SpanEventKind, span: Arc<ExportedSpan>) {
        self.emit(ObservabilityEvent::Span { kind, span });
    }

    pub(crate) fn span_ended(&self, span: Arc<ExportedSpan>) {
        if self.config.derive_metrics && !self.no_exporter && self.wants.contains(Signal::Metric) {
            for m in derived_metrics(&span) {
                self.emit(ObservabilityEvent::Metric(m));
            }
        }
        if self.wants(Signal::SpanEnded) {
            self.emit_span(SpanEventKind::Ended, span);
        }
    }

    pub(crate) fn count_unsampled(&self) {
        self.core()
            .lose_at_emit(DropReason::Sampled, Signal::SpanEnded, None);
    }

    pub(crate) fn count_filtered(&self) {
        self.core()
            .lose_at_emit(DropReason::Filtered, Signal::SpanEnded, None);
    }

    pub(crate) fn count_ended_by_drop(&self) {
        self.core()
            .ended_by_drop
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn count_truncations(&self, n: u32) {
        if n > 0 {
            self.core()
                .truncations
                .fetch_add(n.into(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn capture<T: Serialize + ?Sized>(&self, v: &T) -> Value {
        let c = capture(v, &self.config.limits);
        self.count_truncations(c.truncations);
        c.value
    }

    /// Re-bounds a value captured with the default limits when ours are different.
    pub(crate) fn bound(&self, v: Value) -> Value {
        if self.config.limits == SerializationLimits::default() {
            return v;
        }
        let c = bound_value(&v, &self.config.limits);
        self.count_truncations(c.truncations);
        c.value
    }

    pub(crate) fn is_exported(&self, span: &ExportedSpan) -> bool {
        let idx = SpanType::ALL
            .iter()
            .position(|t| *t == span.span_type)
            .unwrap_or(0);
        if self.config.excluded[idx] {
            return false;
        }
        match &self.config.span_filter {
            None => true,
            Some(f) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(span)))
                .unwrap_or_else(|_| {
                    tracing::warn!(target: "aiobs", "span_filter panicked; span kept");
                    true
                }),
        }
    }
}

/// Duration and token metrics derived from an ended span.
fn derived_metrics(span: &ExportedSpan) -> Vec<MetricRecord> {
    let mut out = Vec::new();
    let labelled = |name: &str, kind: MetricKind, value: f64| {
        let mut m = MetricRecord::new(name, kind, value);
        m.trace_id = Some(span.trace_id);
        m.span_id = Some(span.span_id);
        m.labels
            .insert("span_type".into(), span.span_type.as_str().into());
        m.labels
            .insert("span_name".into(), span.name.clone().into());
        if let Some(model) = span.attributes.model().and_then(|a| a.model.clone()) {
            m.labels.insert("model".into(), model.into());
        }
        m
    };
    if let Some(d) = span.duration() {
        out.push(labelled(
            "aiobs.span.duration_ms",
            MetricKind::Histogram,
            d.as_secs_f64() * 1000.0,
        ));
    }
    if let Some(u) = span.attributes.usage() {
        out.push(labelled(
            "aiobs.tokens.input",
            MetricKind::Counter,
            u.input_tokens as f64,
        ));
        out.push(labelled(
            "aiobs.tokens.output",
            MetricKind::Counter,
            u.output_tokens as f64,
        ));
        if let Some(c) = u.input_details.cache_read {
            out.push(labelled(
                "aiobs.tokens.cache_read",
                MetricKind::Counter,
                c as f64,
            ));
        }
        if let Some(r) = u.output_details.reasoning {
            out.push(labelled(
                "aiobs.tokens.reasoning",
                MetricKind::Counter,
                r as f64,
            ));
        }
    }
    out
}

/// The entry point: start spans, record logs, metrics, scores and feedback,
/// flush, and read the accounting. Cheap to clone; every clone shares one pipeline.
///
/// ```
/// use std::time::Duration;
/// use aiobs_core::{InMemoryExporter, Observability, SpanOptions, SpanType};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let memory = InMemoryExporter::new();
/// let obs = Observability::builder().exporter(memory.clone()).build().unwrap();
/// let mut run = obs.start_span(SpanOptions::new("weather-agent", SpanType::AgentRun).input("Paris?"));
/// run.end_with_output("18°C");
/// let report = obs.flush(Duration::from_secs(5)).await;
/// assert!(report.is_success());
/// assert_eq!(memory.ended_spans().len(), 1);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Observability {
    shared: Arc<Shared>,
}

impl Observability {
    /// Starts configuring.
    pub fn builder() -> ObservabilityBuilder {
        ObservabilityBuilder::default()
    }

    /// Starts a root span (a new trace, or a continued one per `opts.tracing`).
    pub fn start_span(&self, opts: SpanOptions) -> Span {
        Span::start_root(&self.shared, opts)
    }

    /// Resumes a span exported in another process with `Span::export`
    /// (durable execution): ending it emits a complete `Ended` event.
    pub fn rebuild_span(&self, span: ExportedSpan) -> Span {
        Span::rebuild(&self.shared, span)
    }

    /// A span that records nothing (for code paths without an `Observability`).
    pub fn noop_span() -> Span {
        Span::not_recorded(None)
    }

    fn record(&self, signal: Signal, event: ObservabilityEvent) {
        if self.shared.wants(signal) {
            self.shared.emit(event);
        }
    }

    /// Records a log line.
    pub fn log(&self, log: LogRecord) {
        self.record(Signal::Log, ObservabilityEvent::Log(log));
    }

    /// Records a metric.
    pub fn metric(&self, metric: MetricRecord) {
        self.record(Signal::Metric, ObservabilityEvent::Metric(metric));
    }

    /// Records a score.
    pub fn score(&self, score: ScoreRecord) {
        self.record(Signal::Score, ObservabilityEvent::Score(score));
    }

    /// Records feedback.
    pub fn feedback(&self, feedback: FeedbackRecord) {
        self.record(Signal::Feedback, ObservabilityEvent::Feedback(feedback));
    }

    /// Delivers everything emitted before this call and returns when every
    /// event reached a terminal state at every exporter, or when `timeout`
    /// (covering the whole call) passes: the report then lists what is pending
    /// and why.
    ///
    /// The report is the *global ledger's* (see [`FlushReport`]): it counts
    /// the events that belong to this flush — everything emitted before it
    /// that an earlier concurrent flush did not already take — so concurrent
    /// flushes never report an outcome twice. To learn exactly what happened
    /// to one request's events, use [`Observability::flush_trace`].
    ///
    /// Works from any executor (it needs no tokio timer: the deadline is kept
    /// from the caller's side). In [`RuntimeMode::Inline`] it does the
    /// delivery itself, in this task.
    pub async fn flush(&self, timeout: Duration) -> FlushReport {
        self.flush_scoped(FlushScope::all(), timeout).await
    }

    /// Flushes, then stops the pipeline. Idempotent: later calls return the
    /// first report. Events emitted afterwards are counted `AfterShutdown`;
    /// events still pending when it ends (its deadline, or an exporter known
    /// to be failing) are counted `FlushTimeout`, and the report names the
    /// exporters that did not complete.
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        self.shared
            .pipeline
            .flush(FlushScope::all(), timeout, true)
            .await
    }

    /// A request-scoped flush: returns once every event of `trace_id` emitted
    /// before this call is terminal at every exporter, exporting that trace's
    /// events ahead of unrelated ones still waiting for their batch. Records
    /// with no trace id (a log or metric emitted outside any trace) go too.
    ///
    /// The report is the *trace ledger's*: it counts every outcome of this
    /// trace's events emitted before the call (since the previous
    /// `flush_trace` of this trace) — delivered, lost by reason including
    /// losses before any exporter, or pending — whatever other callers
    /// flushed meanwhile. `is_success()` therefore says whether *this
    /// request's* events all arrived.
    ///
    /// # When a server needs it
    ///
    /// In the default [`RuntimeMode::BackgroundThread`] a long-running server
    /// does not need to flush per request: each exporter delivers within its
    /// batch's `max_wait`, and shutdown (or the guard) flushes the rest. Call
    /// `flush_trace` before responding only when the response must wait for
    /// the trace to be acknowledged (the client reads the trace next; the
    /// process may be frozen or killed after responding, as in serverless —
    /// then use [`RuntimeMode::Inline`] too). An exporter whose destination is
    /// known to be failing costs such a request nothing: it is reported at
    /// once as pending with its last error (see [`FlushReport`]); with
    /// [`Observability::flush_scoped`] a request can also wait only for the
    /// exporters it cares about.
    pub async fn flush_trace(&self, trace_id: TraceId, timeout: Duration) -> FlushReport {
        self.flush_scoped(FlushScope::trace(trace_id), timeout)
            .await
    }

    /// [`Observability::flush`] or [`Observability::flush_trace`] limited to
    /// some exporters: the call neither waits for nor reports the others.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use aiobs_core::{FlushScope, InMemoryExporter, Observability, SpanOptions, SpanType};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = InMemoryExporter::new().named("store");
    /// let obs = Observability::builder().exporter(store.clone()).build().unwrap();
    /// let mut run = obs.start_span(SpanOptions::new("request", SpanType::AgentRun));
    /// run.end();
    /// let scope = FlushScope::trace(run.trace_id()).only(["store"]);
    /// let report = obs.flush_scoped(scope, Duration::from_secs(2)).await;
    /// assert!(report.is_success(), "{report}");
    /// # }
    /// ```
    ///
    /// A name no exporter has gives a report at once whose `cause` says so.
    pub async fn flush_scoped(&self, scope: FlushScope, timeout: Duration) -> FlushReport {
        self.shared.pipeline.flush(scope, timeout, false).await
    }

    /// [`Observability::flush`] for synchronous code: blocks this thread up
    /// to `timeout` (plus a small ε), whatever the exporters do.
    ///
    /// On a multi-thread tokio runtime's worker it first moves that worker's
    /// other tasks elsewhere (`block_in_place`). Where waiting cannot work —
    /// on the thread that runs the pipeline's own `current_thread` runtime
    /// ([`RuntimeMode::Handle`]), or from inside an exporter or processor —
    /// it returns at once with a report whose `cause` says why.
    pub fn flush_blocking(&self, timeout: Duration) -> FlushReport {
        self.flush_scoped_blocking(FlushScope::all(), timeout)
    }

    /// [`Observability::flush_scoped`] for synchronous code (see
    /// [`Observability::flush_blocking`]).
    pub fn flush_scoped_blocking(&self, scope: FlushScope, timeout: Duration) -> FlushReport {
        self.shared.pipeline.flush_blocking(scope, timeout, false)
    }

    /// [`Observability::shutdown`] for synchronous code (see
    /// [`Observability::flush_blocking`] for where it cannot wait).
    pub fn shutdown_blocking(&self, timeout: Duration) -> FlushReport {
        self.shared
            .pipeline
            .flush_blocking(FlushScope::all(), timeout, true)
    }

    /// The accounting now.
    pub fn stats(&self) -> Stats {
        let (pipeline, exporters) = self.shared.pipeline.stats();
        Stats {
            pipeline,
            exporters,
        }
    }

    /// A guard that shuts down (with `timeout`) when dropped.
    ///
    /// Dropping it blocks the dropping thread up to `timeout` (plus a small
    /// ε) — see [`Observability::shutdown_blocking`]. If the shutdown does not
    /// deliver everything, it logs the report (`tracing`) and the drop
    /// observer ([`ObservabilityBuilder::on_drop`]) is told of every loss.
    ///
    /// With [`RuntimeMode::Handle`] on a `current_thread` runtime, a guard
    /// dropped on that runtime's thread (say, at the end of
    /// `#[tokio::main(flavor = "current_thread")] async fn main`) cannot wait:
    /// nothing can be delivered while it blocks the only thread that would
    /// deliver. It returns at once and says so in its log; end such a `main`
    /// with `obs.shutdown(timeout).await` instead.
    pub fn guard(&self, timeout: Duration) -> ObservabilityGuard {
        ObservabilityGuard {
            obs: self.clone(),
            timeout,
        }
    }
}

/// Shuts the pipeline down when dropped, blocking up to its timeout, so a
/// `main` that returns does not lose what it emitted. A process killed by a
/// signal or `std::process::exit` skips destructors: call `shutdown` there.
/// See [`Observability::guard`] for the one place it cannot wait.
#[must_use = "the guard shuts down when dropped; bind it to a variable that lives until the end of main"]
#[derive(Debug)]
pub struct ObservabilityGuard {
    obs: Observability,
    timeout: Duration,
}

impl ObservabilityGuard {
    /// The guarded handle.
    pub fn observability(&self) -> &Observability {
        &self.obs
    }
}

impl Drop for ObservabilityGuard {
    fn drop(&mut self) {
        let report = self.obs.shutdown_blocking(self.timeout);
        if !report.is_success() {
            tracing::warn!(target: "aiobs", %report, "aiobs shutdown (guard) did not deliver everything");
        }
    }
}

/// Configures an [`Observability`].
#[must_use]
pub struct ObservabilityBuilder {
    service_name: String,
    exporters: Vec<Arc<dyn Exporter>>,
    processors: Vec<Arc<dyn SpanProcessor>>,
    async_processors: Vec<Arc<dyn AsyncProcessor>>,
    sampler: Sampler,
    limits: SerializationLimits,
    excluded: Vec<SpanType>,
    span_filter: Option<SpanFilter>,
    ingress_capacity: usize,
    overflow: OverflowPolicy,
    mode: RuntimeMode,
    derive_metrics: bool,
    trace_ledger_capacity: usize,
    on_drop: Option<crate::bus::DropObserver>,
}

/// Traces whose per-trace accounts are kept by default (see
/// [`ObservabilityBuilder::trace_ledger_capacity`]).
pub const DEFAULT_TRACE_LEDGER_CAPACITY: usize = 4096;

impl Default for ObservabilityBuilder {
    fn default() -> Self {
        Self {
            service_name: "aiobs".into(),
            exporters: Vec::new(),
            processors: Vec::new(),
            async_processors: Vec::new(),
            sampler: Sampler::Always,
            limits: SerializationLimits::default(),
            excluded: Vec::new(),
            span_filter: None,
            ingress_capacity: 65_536,
            overflow: OverflowPolicy::DropNewest,
            mode: RuntimeMode::BackgroundThread,
            derive_metrics: true,
            trace_ledger_capacity: DEFAULT_TRACE_LEDGER_CAPACITY,
            on_drop: None,
        }
    }
}

impl std::fmt::Debug for ObservabilityBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservabilityBuilder")
            .field("service_name", &self.service_name)
            .field("exporters", &self.exporters)
            .field("sampler", &self.sampler)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl ObservabilityBuilder {
    /// Names the service (passed to exporters).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }
    /// Adds an exporter.
    pub fn exporter(mut self, exporter: impl Exporter) -> Self {
        self.exporters.push(Arc::new(exporter));
        self
    }
    /// Adds a shared exporter.
    pub fn exporter_arc(mut self, exporter: Arc<dyn Exporter>) -> Self {
        self.exporters.push(exporter);
        self
    }
    /// Adds a synchronous processor (run in the order added).
    pub fn processor(mut self, processor: impl SpanProcessor) -> Self {
        self.processors.push(Arc::new(processor));
        self
    }
    /// Adds an asynchronous processor (run after the synchronous ones).
    pub fn async_processor(mut self, processor: impl AsyncProcessor) -> Self {
        self.async_processors.push(Arc::new(processor));
        self
    }
    /// Sets the sampler.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }
    /// Sets the payload limits.
    pub fn serialization_limits(mut self, limits: SerializationLimits) -> Self {
        self.limits = limits;
        self
    }
    /// Does not export spans of these types; their children attach to the
    /// nearest exported ancestor.
    pub fn exclude_span_types(mut self, types: impl IntoIterator<Item = SpanType>) -> Self {
        self.excluded.extend(types);
        self
    }
    /// Exports only spans for which `filter` returns true, judged when the span
    /// starts (name, type, attributes, metadata known then). Children of a
    /// filtered span attach to the nearest exported ancestor.
    pub fn span_filter(
        mut self,
        filter: impl Fn(&ExportedSpan) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.span_filter = Some(Arc::new(filter));
        self
    }
    /// Bounds the ingress queue (events between the application and the router).
    pub fn ingress_capacity(mut self, events: usize) -> Self {
        self.ingress_capacity = events.max(1);
        self
    }
    /// What to do when a queue is full.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }
    /// Where the pipeline runs.
    pub fn runtime(mut self, mode: RuntimeMode) -> Self {
        self.mode = mode;
        self
    }
    /// Inline mode: no background thread, `flush().await` delivers (serverless).
    pub fn inline(self) -> Self {
        self.runtime(RuntimeMode::Inline)
    }
    /// Whether to emit duration and token metrics when spans end (default on;
    /// only emitted when an exporter subscribes to metrics).
    pub fn derive_metrics(mut self, on: bool) -> Self {
        self.derive_metrics = on;
        self
    }

    /// Bounds the trace ledger (what `flush_trace` reports from): per-trace
    /// accounts are kept for at most this many traces at once (default
    /// [`DEFAULT_TRACE_LEDGER_CAPACITY`], a few hundred bytes each); the least
    /// recently active trace is evicted first, and a later `flush_trace` of
    /// an evicted trace says so ([`Coverage::TraceLedgerEvicted`](crate::Coverage)).
    /// 0 disables per-trace accounting: `flush_trace` then still delivers,
    /// but its report counts no outcome.
    pub fn trace_ledger_capacity(mut self, traces: usize) -> Self {
        self.trace_ledger_capacity = traces;
        self
    }
    /// Registers a drop observer: called for every counted loss — at the
    /// ingress, at the router, at an exporter, at a shutdown deadline, and
    /// for what is still pending when the last handle is dropped without
    /// shutdown — so losses are visible without a `tracing` subscriber.
    ///
    /// It is called on whichever thread counted the loss (an application
    /// thread, a pipeline thread) and must be cheap and must not block; a
    /// panic in it is caught. Intentional drops (sampling, filters) are told
    /// too: check [`DropReason::is_intentional`].
    ///
    /// ```
    /// # use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
    /// # use aiobs_core::{InMemoryExporter, Observability};
    /// let lost = Arc::new(AtomicU64::new(0));
    /// let counter = lost.clone();
    /// let obs = Observability::builder()
    ///     .exporter(InMemoryExporter::new())
    ///     .on_drop(move |d| {
    ///         if !d.reason.is_intentional() {
    ///             counter.fetch_add(d.count, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// # drop(obs);
    /// ```
    pub fn on_drop(
        mut self,
        observer: impl Fn(&DroppedEvents<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_drop = Some(Arc::new(observer));
        self
    }

    /// Starts the pipeline.
    pub fn build(self) -> Result<Observability, BuildError> {
        let mut names = std::collections::HashSet::new();
        for e in &self.exporters {
            if !names.insert(e.name().to_owned()) {
                return Err(BuildError::DuplicateExporter(e.name().to_owned()));
            }
        }
        let mut excluded = [false; SpanType::ALL.len()];
        for t in &self.excluded {
            excluded[t.index()] = true;
        }
        let no_exporter = self.exporters.is_empty();
        if no_exporter {
            tracing::warn!(target: "aiobs", "no exporter configured: events are counted as dropped (no_exporter)");
        }
        let pipeline = Pipeline::start(PipelineConfig {
            exporters: self.exporters,
            processors: self.processors,
            async_processors: self.async_processors,
            ingress_capacity: self.ingress_capacity,
            overflow: self.overflow,
            mode: self.mode,
            context: ExporterContext::new(self.service_name),
            trace_ledger_capacity: self.trace_ledger_capacity,
            on_drop: self.on_drop,
        })?;
        let wants = pipeline
            .core
            .exporter_signals()
            .fold(Signals::NONE, Signals::union);
        Ok(Observability {
            shared: Arc::new(Shared {
                config: Config {
                    sampler: self.sampler,
                    limits: self.limits,
                    excluded,
                    span_filter: self.span_filter,
                    derive_metrics: self.derive_metrics,
                },
                pipeline,
                wants,
                no_exporter,
            }),
        })
    }
}
