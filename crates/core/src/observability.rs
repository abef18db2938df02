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
use crate::stats::{DropReason, FlushReport, Stats};

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
            core.lose_before_ingress(DropReason::NoExporter, 1);
            return;
        }
        let reason = match core.ingress.push(Queued::from(event)) {
            Ok(()) => {
                core.recycler.collect();
                return;
            }
            Err(Refused::Closed) => DropReason::AfterShutdown,
            Err(Refused::Full(event)) => match core.overflow {
                OverflowPolicy::Block { timeout } if self.pipeline.runtime().is_some() => {
                    match core.ingress.push_blocking(event, timeout) {
                        Ok(()) => return,
                        Err(Refused::Closed) => DropReason::AfterShutdown,
                        Err(Refused::Full(_)) => DropReason::QueueFull,
                    }
                }
                _ => DropReason::QueueFull,
            },
        };
        core.lose_before_ingress(reason, 1);
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
        self.core().lose_before_ingress(DropReason::Sampled, 1);
    }

    pub(crate) fn count_filtered(&self) {
        self.core().lose_before_ingress(DropReason::Filtered, 1);
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
    /// (covering the whole call) passes: the report then lists what is pending.
    ///
    /// Works from any async runtime. In [`RuntimeMode::Inline`] it does the
    /// delivery itself, in this task, and needs a tokio runtime.
    pub async fn flush(&self, timeout: Duration) -> FlushReport {
        self.barrier(timeout, false).await
    }

    /// Flushes, then stops the pipeline. Idempotent: later calls return the
    /// first report. Events emitted afterwards are counted `AfterShutdown`;
    /// events still pending at the deadline are counted `FlushTimeout`.
    pub async fn shutdown(&self, timeout: Duration) -> FlushReport {
        self.barrier(timeout, true).await
    }

    /// A request-scoped flush: returns once every event of `trace_id` emitted
    /// before this call is terminal at every exporter, exporting that trace's
    /// events ahead of unrelated ones still waiting for their batch. For
    /// serverless handlers, call it before sending the response. Records with
    /// no trace id (a log or metric emitted outside any trace) go too.
    ///
    /// The report covers everything (its `pending` may count other traces'
    /// events); `completed` says whether this trace's events all reached a
    /// terminal state within `timeout`.
    pub async fn flush_trace(&self, trace_id: TraceId, timeout: Duration) -> FlushReport {
        self.barrier_on(timeout, false, Some(trace_id)).await
    }

    async fn barrier(&self, timeout: Duration, shutdown: bool) -> FlushReport {
        self.barrier_on(timeout, shutdown, None).await
    }

    async fn barrier_on(
        &self,
        timeout: Duration,
        shutdown: bool,
        trace: Option<TraceId>,
    ) -> FlushReport {
        let pipeline = self.shared.pipeline.clone();
        if let Some(r) = pipeline.after_shutdown(shutdown) {
            return r;
        }
        match pipeline.runtime().cloned() {
            // Run on the pipeline's own runtime: the caller may use any executor.
            Some(rt) => {
                let task =
                    rt.spawn(async move { pipeline.barrier(timeout, shutdown, trace).await });
                match task.await {
                    Ok(r) => r,
                    Err(_) => self.shared.pipeline.unreachable_report(),
                }
            }
            None => pipeline.barrier(timeout, shutdown, trace).await,
        }
    }

    /// [`Observability::flush`] for synchronous code. Blocks this thread; do
    /// not call it on the runtime passed as [`RuntimeMode::Handle`].
    pub fn flush_blocking(&self, timeout: Duration) -> FlushReport {
        self.barrier_blocking(timeout, false)
    }

    /// [`Observability::shutdown`] for synchronous code.
    pub fn shutdown_blocking(&self, timeout: Duration) -> FlushReport {
        self.barrier_blocking(timeout, true)
    }

    fn barrier_blocking(&self, timeout: Duration, shutdown: bool) -> FlushReport {
        let pipeline = self.shared.pipeline.clone();
        if let Some(r) = pipeline.after_shutdown(shutdown) {
            return r;
        }
        match pipeline.runtime().cloned() {
            Some(rt) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let p = pipeline.clone();
                rt.spawn(async move {
                    let _receiver_waits = tx.send(p.barrier(timeout, shutdown, None).await);
                });
                // Never wait forever, even if the pipeline runtime is stuck.
                rx.recv_timeout(timeout + Duration::from_millis(500))
                    .unwrap_or_else(|_| pipeline.unreachable_report())
            }
            // Inline mode: drive the flush on a scoped thread with its own runtime,
            // which works whether or not this thread is inside a runtime.
            None => std::thread::scope(|s| {
                s.spawn(|| {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(pipeline.barrier(timeout, shutdown, None)),
                        Err(_) => pipeline.unreachable_report(),
                    }
                })
                .join()
                .unwrap_or_else(|_| pipeline.unreachable_report())
            }),
        }
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
}

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
            context: ExporterContext {
                service_name: self.service_name,
                // Each worker attaches its own.
                custody: crate::exporter::Custody::detached(),
            },
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
