//! The live span handle the application holds.

use std::sync::{Arc, OnceLock};

use chrono::Utc;
use serde::Serialize;
use serde_json::{Map, Value};

use super::model::{
    Ancestor, ExportedSpan, SpanAttributes, SpanError, SpanStatus, SpanType, TraceContext,
    default_trace_context,
};
use super::options::{SpanOptions, TracingOptions};
use super::usage::Usage;
use crate::event::SpanEventKind;
use crate::id::{SpanId, TraceId, TraceParent};
use crate::observability::Shared;
use crate::sampling::SamplingInput;

/// What a whole trace shares in this process: set at the root (or restored
/// by a rebuild), inherited by every span.
#[derive(Debug)]
pub(crate) struct TraceScope {
    pub(crate) tags: Arc<[String]>,
    pub(crate) user_id: Option<Arc<str>>,
    pub(crate) session_id: Option<Arc<str>>,
    /// What travels with `export` and reaches exporters.
    pub(crate) context: Arc<TraceContext>,
}

impl TraceScope {
    /// The scope of a span exported elsewhere: everything it carried.
    fn of(span: &ExportedSpan) -> Self {
        Self {
            tags: span.tags.clone(),
            user_id: span.user_id.clone(),
            session_id: span.session_id.clone(),
            context: span.trace_context.clone(),
        }
    }
}

/// The context of every unsampled trace: what an unsampled span exports.
fn unsampled_context() -> Arc<TraceContext> {
    static UNSAMPLED: std::sync::LazyLock<Arc<TraceContext>> = std::sync::LazyLock::new(|| {
        Arc::new(TraceContext {
            sampled: false,
            ..TraceContext::default()
        })
    });
    UNSAMPLED.clone()
}

/// Removes what the trace's privacy flags forbid: however a span was built
/// (started here, rebuilt from another process, changed on the way), a
/// hidden input or output never leaves it.
fn enforce_privacy(data: &mut ExportedSpan) {
    if data.trace_context.hide_input {
        data.input = None;
    }
    if data.trace_context.hide_output {
        data.output = None;
    }
}

/// A span being recorded. End it with [`Span::end`] (or [`Span::error`]);
/// dropping it unended ends it with status `Dropped`, counted in stats.
///
/// A span of an unsampled trace is a cheap no-op that still carries its ids,
/// so context propagates.
#[derive(Debug)]
#[must_use = "a span records nothing until it is ended; dropping it ends it as `Dropped`"]
pub struct Span {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Recorded: running while `data` is `Some`; once ended the data went to
    /// the pipeline and the lineage remains for late children.
    Live(Live),
    /// Not recorded (unsampled trace, or observability disabled).
    NotRecorded {
        shared: Option<Arc<Shared>>,
        trace_id: TraceId,
        span_id: SpanId,
    },
}

/// What children need from their parent; kept after the parent ends.
#[derive(Debug)]
struct Live {
    shared: Arc<Shared>,
    /// The span's data: `Some` while running. Allocated once, at start, and
    /// handed to the pipeline as is at the end (no copy).
    data: Option<Arc<ExportedSpan>>,
    trace_id: TraceId,
    span_id: SpanId,
    span_type: SpanType,
    parent_span_id: Option<SpanId>,
    external_parent_span_id: Option<SpanId>,
    start_time: chrono::DateTime<Utc>,
    /// The clock reading of the start, when it happened in this process:
    /// the end is the start plus the monotonic time elapsed since.
    started: Option<crate::clock::Stamp>,
    ancestry: Arc<[Ancestor]>,
    entity: Option<Arc<super::model::EntityInfo>>,
    trace: Arc<TraceScope>,
    /// Excluded by type or filter: not emitted; children attach to its parent.
    exported: bool,
    /// The ancestry this span's children share, built on first use.
    child_ancestry: OnceLock<Arc<[Ancestor]>>,
}

impl Live {
    fn new(
        shared: &Arc<Shared>,
        data: Arc<ExportedSpan>,
        trace: Arc<TraceScope>,
        started: Option<crate::clock::Stamp>,
    ) -> Live {
        let exported = shared.is_exported(&data);
        Live {
            shared: shared.clone(),
            trace_id: data.trace_id,
            span_id: data.span_id,
            span_type: data.span_type,
            parent_span_id: data.parent_span_id,
            external_parent_span_id: data.external_parent_span_id,
            start_time: data.start_time,
            started,
            ancestry: data.ancestry.clone(),
            entity: data.entity.clone(),
            data: Some(data),
            trace,
            exported,
            child_ancestry: OnceLock::new(),
        }
    }

    /// The running span's data, to change it (unique until the end, so no copy).
    fn data(&mut self) -> Option<&mut ExportedSpan> {
        self.data.as_mut().map(Arc::make_mut)
    }
}

impl Span {
    pub(crate) fn start_root(shared: &Arc<Shared>, opts: SpanOptions) -> Span {
        let no_tracing = TracingOptions::default();
        let t = opts.tracing.as_deref().unwrap_or(&no_tracing);
        let trace_id = t.trace_id.unwrap_or_else(TraceId::random);
        let span_id = SpanId::random();
        let sampled = shared.config.sampler.should_sample(&SamplingInput {
            trace_id,
            name: &opts.name,
            span_type: opts.span_type,
            parent_sampled: t.parent_sampled,
        });
        if !sampled {
            shared.count_unsampled();
            return Span {
                state: State::NotRecorded {
                    shared: Some(shared.clone()),
                    trace_id,
                    span_id,
                },
            };
        }
        let context = TraceContext {
            metadata: t.metadata.clone(),
            hide_input: t.hide_input,
            hide_output: t.hide_output,
            continued: t.trace_id.is_some() || t.parent_span_id.is_some(),
            sampled: true,
        };
        let trace = Arc::new(TraceScope {
            tags: if t.tags.is_empty() {
                super::model::no_tags()
            } else {
                Arc::from(t.tags.clone())
            },
            user_id: t.user_id.as_deref().map(Arc::from),
            session_id: t.session_id.as_deref().map(Arc::from),
            // Most traces set none of it: share one default, no allocation.
            context: if context.is_default() {
                default_trace_context()
            } else {
                Arc::new(context)
            },
        });
        let external = t.parent_span_id;
        Self::start(
            shared,
            opts,
            trace,
            trace_id,
            span_id,
            None,
            external,
            super::model::no_ancestors(),
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        shared: &Arc<Shared>,
        opts: SpanOptions,
        trace: Arc<TraceScope>,
        trace_id: TraceId,
        span_id: SpanId,
        parent: Option<SpanId>,
        external_parent: Option<SpanId>,
        ancestry: Arc<[Ancestor]>,
        inherited_entity: Option<Arc<super::model::EntityInfo>>,
    ) -> Span {
        // A pooled allocation of this thread if there is one (see `recycle`):
        // its fields are overwritten in place, each old value freed as its
        // replacement arrives, and the span is not copied around whole.
        let mut data = crate::bus::recycle::pooled().unwrap_or_else(|| {
            Arc::new(ExportedSpan::placeholder(
                trace_id,
                span_id,
                std::borrow::Cow::Borrowed(""),
                opts.span_type,
            ))
        });
        // Every field is named, so a field added to `ExportedSpan` cannot be
        // forgotten here (and keep a previous span's value).
        let ExportedSpan {
            trace_id: d_trace_id,
            span_id: d_span_id,
            parent_span_id: d_parent_span_id,
            external_parent_span_id: d_external_parent_span_id,
            name: d_name,
            span_type: d_span_type,
            attributes: d_attributes,
            metadata: d_metadata,
            tags: d_tags,
            user_id: d_user_id,
            session_id: d_session_id,
            entity: d_entity,
            input: d_input,
            output: d_output,
            error: d_error,
            start_time: d_start_time,
            end_time: d_end_time,
            is_event: d_is_event,
            is_root: d_is_root,
            status: d_status,
            ancestry: d_ancestry,
            trace_context: d_trace_context,
        } = Arc::make_mut(&mut data);
        let now = crate::clock::stamp();
        *d_trace_id = trace_id;
        *d_span_id = span_id;
        *d_parent_span_id = parent;
        *d_external_parent_span_id = external_parent;
        *d_name = opts.name;
        *d_span_type = opts.span_type;
        *d_attributes = opts.attributes;
        *d_metadata = opts.metadata;
        *d_tags = trace.tags.clone();
        *d_user_id = trace.user_id.clone();
        *d_session_id = trace.session_id.clone();
        *d_entity = opts.entity.or(inherited_entity);
        *d_input = match opts.input {
            Some(v) if !trace.context.hide_input => Some(shared.bound(v)),
            _ => None,
        };
        *d_output = None;
        *d_error = None;
        *d_start_time = now.wall;
        *d_end_time = None;
        *d_is_event = false;
        *d_is_root = parent.is_none();
        *d_status = SpanStatus::Running;
        *d_ancestry = ancestry;
        *d_trace_context = trace.context.clone();
        shared.count_truncations(opts.truncations);
        let live = Live::new(shared, data, trace, Some(now));
        if live.exported
            && shared.wants_started()
            && let Some(d) = &live.data
        {
            shared.emit_span(SpanEventKind::Started, Arc::new((**d).clone()));
        }
        Span {
            state: State::Live(live),
        }
    }

    /// Rebuilds a span exported in another process (durable execution). Ending
    /// it here emits a complete `Ended` event. The trace context it carries
    /// comes back whole: trace metadata, privacy flags (a hidden input or
    /// output present in the data is removed here), continuation, and the
    /// sampling decision (an unsampled span rebuilds as one that records nothing).
    pub(crate) fn rebuild(shared: &Arc<Shared>, mut data: ExportedSpan) -> Span {
        if !data.trace_context.sampled {
            shared.count_unsampled();
            return Span {
                state: State::NotRecorded {
                    shared: Some(shared.clone()),
                    trace_id: data.trace_id,
                    span_id: data.span_id,
                },
            };
        }
        enforce_privacy(&mut data);
        let trace = Arc::new(TraceScope::of(&data));
        Span {
            state: State::Live(Live::new(shared, Arc::new(data), trace, None)),
        }
    }

    pub(crate) fn not_recorded(shared: Option<Arc<Shared>>) -> Span {
        Span {
            state: State::NotRecorded {
                shared,
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
            },
        }
    }

    /// Starts a child span.
    pub fn child(&self, opts: SpanOptions) -> Span {
        match &self.state {
            State::NotRecorded {
                shared, trace_id, ..
            } => {
                if let Some(s) = shared {
                    s.count_unsampled();
                }
                Span {
                    state: State::NotRecorded {
                        shared: shared.clone(),
                        trace_id: *trace_id,
                        span_id: SpanId::random(),
                    },
                }
            }
            State::Live(p) => {
                // Children of an excluded span attach to the nearest exported ancestor.
                let (parent, ancestry) = if p.exported {
                    let anc = p
                        .child_ancestry
                        .get_or_init(|| {
                            // One allocation: the iterator knows its exact length.
                            p.ancestry
                                .iter()
                                .copied()
                                .chain(std::iter::once(Ancestor::new(
                                    p.span_id,
                                    p.start_time,
                                    p.span_type,
                                )))
                                .collect()
                        })
                        .clone();
                    (Some(p.span_id), anc)
                } else {
                    (p.parent_span_id, p.ancestry.clone())
                };
                let external = if parent.is_none() {
                    p.external_parent_span_id
                } else {
                    None
                };
                Self::start(
                    &p.shared,
                    opts,
                    p.trace.clone(),
                    p.trace_id,
                    SpanId::random(),
                    parent,
                    external,
                    ancestry,
                    p.entity.clone(),
                )
            }
        }
    }

    /// Records a point-in-time event under this span (emitted at once).
    pub fn event(&self, opts: SpanOptions) {
        let mut e = self.child(opts);
        if let State::Live(l) = &mut e.state
            && let Some(d) = l.data()
        {
            d.is_event = true;
            d.end_time = Some(d.start_time);
        }
        e.end();
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        match &self.state {
            State::Live(l) => l.trace_id,
            State::NotRecorded { trace_id, .. } => *trace_id,
        }
    }

    /// The span id.
    pub fn span_id(&self) -> SpanId {
        match &self.state {
            State::Live(l) => l.span_id,
            State::NotRecorded { span_id, .. } => *span_id,
        }
    }

    /// Whether this span is recorded (its trace was sampled).
    pub fn is_recording(&self) -> bool {
        matches!(self.state, State::Live(_))
    }

    /// The W3C `traceparent` to send downstream.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id(),
            parent_span_id: self.span_id(),
            sampled: self.is_recording(),
        }
    }

    /// The span while it runs (not yet ended).
    fn live(&mut self) -> Option<&mut Live> {
        match &mut self.state {
            State::Live(l) if l.data.is_some() => Some(l),
            _ => None,
        }
    }

    /// The running span's data and what is needed to fill it.
    fn running(&mut self) -> Option<(&mut ExportedSpan, &Shared, &TraceScope)> {
        let l = self.live()?;
        let shared = &*l.shared;
        let trace = &*l.trace;
        let data = l.data.as_mut().map(Arc::make_mut)?;
        Some((data, shared, trace))
    }

    /// Sets the input (ignored when the trace hides inputs).
    pub fn set_input(&mut self, input: impl Serialize) {
        if let Some((data, shared, trace)) = self.running()
            && !trace.context.hide_input
        {
            data.input = Some(shared.capture(&input));
        }
    }

    /// Sets the output (ignored when the trace hides outputs).
    pub fn set_output(&mut self, output: impl Serialize) {
        if let Some((data, shared, trace)) = self.running()
            && !trace.context.hide_output
        {
            data.output = Some(shared.capture(&output));
        }
    }

    /// Adds one metadata entry.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Serialize) {
        if let Some((data, shared, _)) = self.running() {
            data.metadata.insert(key.into(), shared.capture(&value));
        }
    }

    /// Replaces the typed attributes.
    pub fn set_attributes(&mut self, attributes: impl Into<SpanAttributes>) {
        if let Some((data, _, _)) = self.running() {
            data.attributes = attributes.into();
        }
    }

    /// Sets the usage of a model span (ignored on other types).
    pub fn set_usage(&mut self, usage: Usage) {
        if let Some((data, _, _)) = self.running() {
            match &mut data.attributes {
                SpanAttributes::Model(m) => m.usage = Some(usage),
                SpanAttributes::None if data.span_type.is_model() => {
                    data.attributes = super::model::ModelAttributes::default()
                        .with_usage(usage)
                        .into();
                }
                _ => {}
            }
        }
    }

    /// Renames the span.
    pub fn set_name(&mut self, name: impl Into<std::borrow::Cow<'static, str>>) {
        if let Some((data, _, _)) = self.running() {
            data.name = name.into();
        }
    }

    /// Records an error without ending the span.
    pub fn record_error(&mut self, error: SpanError) {
        if let Some((data, _, _)) = self.running() {
            data.error = Some(Box::new(error));
            data.status = SpanStatus::Error;
        }
    }

    /// Emits an `Updated` event with what the span holds now (exporters that
    /// subscribe to updates see it; others see everything at the end).
    pub fn update(&mut self) {
        if let Some(l) = self.live()
            && let (true, Some(d)) = (l.exported && l.shared.wants_updated(), &l.data)
        {
            l.shared
                .emit_span(SpanEventKind::Updated, Arc::new((**d).clone()));
        }
    }

    /// A serialisable copy of the span as it is now, to resume it in another
    /// process with `Observability::rebuild_span` (durable execution).
    ///
    /// It carries everything that applies to the trace
    /// ([`ExportedSpan::trace_context`]: trace metadata and exporter
    /// directives, hide-input/hide-output, continuation, the sampling
    /// decision) besides tags, user and session, so the rebuilt span behaves
    /// as this one would have. A span of an unsampled trace exports a token
    /// with its ids that rebuilds as a span recording nothing. `None` once
    /// the span ended.
    pub fn export(&self) -> Option<ExportedSpan> {
        match &self.state {
            State::Live(l) => l.data.as_ref().map(|d| (**d).clone()),
            State::NotRecorded {
                trace_id, span_id, ..
            } => {
                let mut token = ExportedSpan::placeholder(
                    *trace_id,
                    *span_id,
                    std::borrow::Cow::Borrowed(""),
                    SpanType::Generic,
                );
                token.trace_context = unsampled_context();
                Some(token)
            }
        }
    }

    /// Ends the span. Idempotent: a second call does nothing.
    pub fn end(&mut self) {
        self.finish(SpanStatus::Ok);
    }

    /// Sets the output and ends the span.
    pub fn end_with_output(&mut self, output: impl Serialize) {
        self.set_output(output);
        self.end();
    }

    /// Records the error and ends the span.
    pub fn error(&mut self, error: SpanError) {
        self.record_error(error);
        self.end();
    }

    fn finish(&mut self, status: SpanStatus) {
        let Some(l) = self.live() else { return };
        let Some(mut arc) = l.data.take() else { return };
        let data = Arc::make_mut(&mut arc);
        let end = match data.end_time {
            Some(t) if data.is_event => t,
            _ => crate::clock::end_after(data.start_time, l.started.as_ref()),
        };
        // `end >= start` for every span, whatever set the times.
        data.end_time = Some(end.max(data.start_time));
        if data.status != SpanStatus::Error {
            data.status = status;
        }
        if l.exported {
            enforce_privacy(data);
            merge_missing(&mut data.metadata, &l.trace.context.metadata);
            l.shared.span_ended(arc);
        } else {
            l.shared.count_filtered();
        }
    }
}

/// Adds the trace-level metadata the span does not set itself. Objects merge
/// key by key, so a span's `metadata.langfuse.prompt` and the trace's
/// `metadata.langfuse.traceName` both survive; where both set a value, the span wins.
fn merge_missing(span: &mut Map<String, Value>, trace: &Map<String, Value>) {
    for (k, v) in trace {
        match (span.get_mut(k), v) {
            (None, _) => {
                span.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(mine)), Value::Object(theirs)) => merge_missing(mine, theirs),
            (Some(_), _) => {}
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(l) = self.live() {
            l.shared.count_ended_by_drop();
            self.finish(SpanStatus::Dropped);
        }
    }
}
