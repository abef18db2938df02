//! Trace context both ways: aiobs spans that continue the current
//! OpenTelemetry context, and aiobs spans as OpenTelemetry contexts (so that
//! spans of OpenTelemetry-instrumented libraries become their children).

use std::sync::atomic::{AtomicBool, Ordering};

use aiobs_core::{Observability, Span, SpanId, SpanOptions, TraceId, TraceParent, TracingOptions};
use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId as OtelTraceId, TraceState,
};
use opentelemetry::{Context, ContextGuard};

/// Carries trace context between aiobs and OpenTelemetry.
///
/// - [`OtelBridge::start_span`] starts an aiobs root span that continues the
///   current OpenTelemetry context (`opentelemetry::Context::current()`):
///   same trace id, the OpenTelemetry span as its parent (exported as a
///   remote parent), the upstream sampling decision passed to aiobs's sampler.
///   [`OtelBridge::start_span_in`] takes the context explicitly.
/// - [`OtelBridge::context`] turns an aiobs span into an OpenTelemetry
///   [`Context`]; attach it ([`OtelBridge::attach`]) and the spans that
///   OpenTelemetry-instrumented code starts become the aiobs span's children.
///
/// A context without a valid span (no OpenTelemetry SDK installed, no span
/// started, or an all-zero id) is ignored — the aiobs span starts a trace of
/// its own — and a warning named `OtelBridge.InvalidParentContext` is logged
/// once per process.
///
/// ```
/// use aiobs_core::{InMemoryExporter, Observability, SpanOptions, SpanType};
/// use aiobs_otel_bridge::OtelBridge;
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
///
/// let obs = Observability::builder().exporter(InMemoryExporter::new()).build()?;
/// let bridge = OtelBridge::new(obs);
///
/// // An OpenTelemetry request span (here: a remote parent from a propagator).
/// let upstream = SpanContext::new(
///     TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736")?,
///     SpanId::from_hex("00f067aa0ba902b7")?,
///     TraceFlags::SAMPLED, true, TraceState::NONE,
/// );
/// let _request = opentelemetry::Context::new().with_remote_span_context(upstream).attach();
///
/// let run = bridge.start_span(SpanOptions::new("weather-agent", SpanType::AgentRun));
/// assert_eq!(run.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
///
/// // OpenTelemetry-instrumented code under the aiobs span sees it as the current span.
/// let _inside = OtelBridge::attach(&run);
/// let current = opentelemetry::Context::current();
/// assert_eq!(current.span().span_context().span_id().to_string(), run.span_id().to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct OtelBridge {
    obs: Observability,
}

/// Whether the invalid-context warning was logged.
static WARNED_INVALID: AtomicBool = AtomicBool::new(false);

impl OtelBridge {
    /// A bridge starting spans on `obs`.
    pub fn new(obs: Observability) -> Self {
        Self { obs }
    }

    /// The observability handle spans are started on.
    pub fn observability(&self) -> &Observability {
        &self.obs
    }

    /// Starts a root aiobs span continuing `opentelemetry::Context::current()`.
    pub fn start_span(&self, options: SpanOptions) -> Span {
        self.start_span_in(options, &Context::current())
    }

    /// Starts a root aiobs span continuing `cx`. Trace context given in
    /// `options` (an explicit trace id or `traceparent`) wins over `cx`; its
    /// tags, user, session and metadata are kept either way.
    pub fn start_span_in(&self, mut options: SpanOptions, cx: &Context) -> Span {
        let explicit = options
            .tracing
            .as_deref()
            .is_some_and(|t| t.trace_id.is_some());
        if !explicit && let Some(parent) = parent_of(cx) {
            let t = options.tracing.get_or_insert_with(Default::default);
            let tracing: &mut TracingOptions = t;
            tracing.trace_id = Some(parent.trace_id);
            tracing.parent_span_id = Some(parent.parent_span_id);
            tracing.parent_sampled = Some(parent.sampled);
        }
        self.obs.start_span(options)
    }

    /// `span` as an OpenTelemetry context: `Context::current()` with the
    /// aiobs span as its span (trace and span ids, sampled when aiobs records
    /// the span). OpenTelemetry spans started in it are the span's children.
    pub fn context(span: &Span) -> Context {
        let sc = SpanContext::new(
            OtelTraceId::from_bytes(span.trace_id().to_bytes()),
            opentelemetry::trace::SpanId::from_bytes(span.span_id().to_bytes()),
            if span.is_recording() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::NONE,
        );
        Context::current().with_remote_span_context(sc)
    }

    /// Makes [`OtelBridge::context`] of `span` the current OpenTelemetry
    /// context until the guard drops.
    pub fn attach(span: &Span) -> ContextGuard {
        Self::context(span).attach()
    }
}

/// The parent an OpenTelemetry context names, if its span context is valid;
/// otherwise `None`, with the once-per-process warning.
pub fn parent_of(cx: &Context) -> Option<TraceParent> {
    let sc = cx.span().span_context().clone();
    let ids = TraceId::from_u128(u128::from_be_bytes(sc.trace_id().to_bytes())).zip(
        SpanId::from_u64(u64::from_be_bytes(sc.span_id().to_bytes())),
    );
    match ids {
        Some((trace_id, parent_span_id)) if sc.is_valid() => Some(TraceParent {
            trace_id,
            parent_span_id,
            sampled: sc.is_sampled(),
        }),
        _ => {
            if !WARNED_INVALID.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    name: "OtelBridge.InvalidParentContext",
                    target: "aiobs",
                    trace_id = %sc.trace_id(),
                    span_id = %sc.span_id(),
                    "the OpenTelemetry context has no valid span (no SDK installed, no span started, or an all-zero id): \
                     starting a new aiobs trace instead of continuing it (logged once)"
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use aiobs_core::{InMemoryExporter, SpanType};
    use opentelemetry::trace::SpanId as OtelSpanId;

    use super::*;

    fn remote(trace: &str, span: &str, flags: TraceFlags) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            OtelTraceId::from_hex(trace).unwrap(),
            OtelSpanId::from_hex(span).unwrap(),
            flags,
            true,
            TraceState::NONE,
        ))
    }

    #[test]
    fn continues_a_valid_context_and_ignores_an_invalid_one() {
        let memory = InMemoryExporter::new();
        let obs = Observability::builder()
            .exporter(memory.clone())
            .build()
            .unwrap();
        let bridge = OtelBridge::new(obs.clone());
        let cx = remote(
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            TraceFlags::SAMPLED,
        );
        let mut a = bridge.start_span_in(
            SpanOptions::new("a", SpanType::AgentRun).tracing(TracingOptions::new().user_id("u-1")),
            &cx,
        );
        a.end();
        let zero = remote(
            "00000000000000000000000000000000",
            "0000000000000000",
            TraceFlags::SAMPLED,
        );
        let mut b = bridge.start_span_in(SpanOptions::new("b", SpanType::AgentRun), &zero);
        b.end();
        let mut c =
            bridge.start_span_in(SpanOptions::new("c", SpanType::AgentRun), &Context::new());
        c.end();
        assert!(
            obs.flush_blocking(std::time::Duration::from_secs(5))
                .is_success()
        );
        let spans = memory.ended_spans();
        let a = spans.iter().find(|s| s.name == "a").unwrap();
        assert_eq!(a.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            a.external_parent_span_id.map(|p| p.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(
            a.user_id.as_deref(),
            Some("u-1"),
            "the caller's trace options are kept"
        );
        for name in ["b", "c"] {
            let s = spans.iter().find(|s| s.name == name).unwrap();
            assert_ne!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_eq!(
                s.external_parent_span_id, None,
                "{name}: nothing propagated"
            );
        }
        assert!(WARNED_INVALID.load(Ordering::Relaxed));
    }

    #[test]
    fn an_unsampled_upstream_is_passed_to_the_sampler() {
        let memory = InMemoryExporter::new();
        let obs = Observability::builder()
            .exporter(memory.clone())
            .build()
            .unwrap();
        let bridge = OtelBridge::new(obs.clone());
        let cx = remote(
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            TraceFlags::default(),
        );
        let span = bridge.start_span_in(SpanOptions::new("a", SpanType::AgentRun), &cx);
        let cx = OtelBridge::context(&span);
        assert_eq!(
            cx.span().span_context().is_sampled(),
            span.is_recording(),
            "the context says what aiobs decided"
        );
        drop(span);
    }
}
