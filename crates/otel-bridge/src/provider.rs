//! Recording aiobs spans into an OpenTelemetry `SdkTracerProvider` of the
//! application's own, with their aiobs ids.
//!
//! The SDK's tracer always takes span and trace ids from the provider's
//! `IdGenerator`, so the provider must be built with [`BridgeIdGenerator`]:
//! it hands out the ids of the aiobs span being recorded (and random ids to
//! every other span). A provider built without it would give the recorded
//! spans ids of its own and break the trace tree; the exporter checks the
//! first span it records and disables itself with a clear error instead.

use std::cell::Cell;
use std::time::Instant;

use aiobs_core::semconv::AttributeOptions;
use aiobs_core::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ObservabilityEvent, RetryPolicy, Signals, SpanEventKind,
};
use opentelemetry::Context;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, SdkTracer, SdkTracerProvider, SpanData,
};

use crate::mapping::Mapper;
use crate::offload;

thread_local! {
    /// The ids the next span started on this thread must get.
    static NEXT_IDS: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// The `IdGenerator` a provider needs for [`OtelProviderExporter`] to record
/// aiobs spans with their own ids. Spans the application starts itself get
/// random ids, as with the SDK's default generator.
///
/// ```
/// use aiobs_otel_bridge::BridgeIdGenerator;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
///
/// let provider = SdkTracerProvider::builder()
///     .with_id_generator(BridgeIdGenerator::default())
///     .build();
/// # drop(provider);
/// ```
#[derive(Debug, Default, Clone)]
pub struct BridgeIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for BridgeIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        let (trace, span) = NEXT_IDS.get();
        match trace {
            Some(t) => {
                NEXT_IDS.set((None, span));
                t
            }
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        let (trace, span) = NEXT_IDS.get();
        match span {
            Some(s) => {
                NEXT_IDS.set((trace, None));
                s
            }
            None => self.random.new_span_id(),
        }
    }
}

/// An aiobs exporter that records every ended aiobs span into an
/// `SdkTracerProvider` of the application's own — so the spans reach
/// whatever processors and exporters that provider has, with their aiobs
/// trace, span and parent ids, times, kind, status, events and GenAI
/// attributes (the same mapping as [`OtelExporter`](crate::OtelExporter)).
///
/// **What flush means here.** `export` hands the spans to the provider's
/// span processors (off the pipeline thread); a flush of the pipeline then
/// calls the provider's `force_flush()`, and its result is this exporter's
/// flush result in the `FlushReport`. That is all aiobs can know: **a
/// `BatchSpanProcessor` in that provider drops spans when its queue is full
/// and still answers `force_flush()` with `Ok`.** Spans that must not be
/// lost belong in an [`OtelExporter`](crate::OtelExporter), which has no
/// such queue. The provider's sampler still decides: a span it drops is
/// counted delivered here (the provider accepted it).
///
/// The provider must be built with [`BridgeIdGenerator`]. Shutting the
/// pipeline down flushes the provider but does not shut it down: it is the
/// application's.
///
/// ```
/// use std::time::Duration;
/// use aiobs_core::{Observability, SpanOptions, SpanType};
/// use aiobs_otel_bridge::{BridgeIdGenerator, OtelProviderExporter};
/// use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
///
/// let spans = InMemorySpanExporter::default();
/// let provider = SdkTracerProvider::builder()
///     .with_id_generator(BridgeIdGenerator::default())
///     .with_simple_exporter(spans.clone())
///     .build();
/// let obs = Observability::builder()
///     .exporter(OtelProviderExporter::new(provider.clone()))
///     .build()?;
/// let run = obs.start_span(SpanOptions::new("weather-agent", SpanType::AgentRun));
/// let id = run.span_id().to_string();
/// drop(run);
/// let report = obs.flush_blocking(Duration::from_secs(5));
/// assert!(report.is_success(), "{report}");
/// let recorded = spans.get_finished_spans()?;
/// assert_eq!(recorded[0].span_context.span_id().to_string(), id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct OtelProviderExporter {
    name: String,
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    mapper: Mapper,
    ctx: offload::Context,
}

impl OtelProviderExporter {
    /// Records into `provider` (built with [`BridgeIdGenerator`]), with the
    /// content-capture and semconv switches read from the environment
    /// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`,
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`).
    pub fn new(provider: SdkTracerProvider) -> Self {
        let mapper = Mapper::new(AttributeOptions::from_env());
        let tracer = provider.tracer_with_scope(mapper.scope.clone());
        Self {
            name: "otel-provider".into(),
            provider,
            tracer,
            mapper,
            ctx: offload::Context::new(),
        }
    }

    /// Replaces the content-capture and semconv options.
    #[must_use]
    pub fn with_options(mut self, options: AttributeOptions) -> Self {
        self.mapper.options = options;
        self
    }

    /// Renames the exporter (default `otel-provider`).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

/// Records one span through the tracer; `false` if the provider gave it ids
/// other than its own (no [`BridgeIdGenerator`]).
fn record(tracer: &SdkTracer, d: SpanData) -> bool {
    let trace_id = d.span_context.trace_id();
    let span_id = d.span_context.span_id();
    let parent_cx = if d.parent_span_id == SpanId::INVALID {
        Context::new()
    } else {
        Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            d.parent_span_id,
            TraceFlags::SAMPLED,
            d.parent_span_is_remote,
            TraceState::NONE,
        ))
    };
    NEXT_IDS.set((Some(trace_id), Some(span_id)));
    let mut span = tracer
        .span_builder(d.name)
        .with_kind(d.span_kind)
        .with_start_time(d.start_time)
        .with_attributes(d.attributes)
        .start_with_context(tracer, &parent_cx);
    NEXT_IDS.set((None, None));
    let ours =
        span.span_context().span_id() == span_id && span.span_context().trace_id() == trace_id;
    for ev in d.events.events {
        span.add_event_with_timestamp(ev.name, ev.timestamp, ev.attributes);
    }
    span.set_status(d.status);
    span.end_with_timestamp(d.end_time);
    ours
}

#[async_trait::async_trait]
impl Exporter for OtelProviderExporter {
    fn name(&self) -> &str {
        &self.name
    }

    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }

    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
            .with_max_events(512)
            .with_max_wait(std::time::Duration::from_millis(200))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        let _first_init_wins = self.ctx.set(ctx.clone());
        Ok(())
    }

    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let data: Vec<SpanData> = batch
            .iter()
            .filter_map(|e| match &**e {
                ObservabilityEvent::Span {
                    kind: SpanEventKind::Ended,
                    span,
                } => Some(self.mapper.span_data(span)),
                _ => None,
            })
            .collect();
        let tracer = self.tracer.clone();
        // A SimpleSpanProcessor exports inside `end()`, blocking: off the
        // worker. Stops at the first span given ids of its own. (The attempt
        // timeout bounds the wait; no deadline is tighter.)
        let far = Instant::now() + self.retry_policy().attempt_timeout;
        let all_ours = offload::run_blocking(
            &self.ctx,
            far,
            "recording into the SdkTracerProvider",
            move || data.into_iter().all(|d| record(&tracer, d)),
        )
        .await?;
        if all_ours {
            Ok(ExportOutcome::all_delivered())
        } else {
            Err(ExportError::disabled(
                "the SdkTracerProvider gave the recorded spans ids of its own: build it with \
                 `.with_id_generator(aiobs_otel_bridge::BridgeIdGenerator::default())`",
            ))
        }
    }

    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        let provider = self.provider.clone();
        offload::run_blocking(
            &self.ctx,
            deadline,
            "SdkTracerProvider::force_flush",
            move || provider.force_flush(),
        )
        .await?
        .map_err(|e| ExportError::transient(format!("SdkTracerProvider::force_flush failed: {e}")))
    }

    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        // The provider is the application's: flush it, leave it running.
        self.flush(deadline).await
    }
}
