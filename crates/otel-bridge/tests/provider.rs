//! Recording into an application's own `SdkTracerProvider`: the spans keep
//! their aiobs ids and parents, the flush reports the provider's
//! `force_flush()`, and a provider without `BridgeIdGenerator` is refused.

mod common;

use aiobs_core::{DropReason, Observability, SpanOptions, SpanType};
use aiobs_otel_bridge::{BridgeIdGenerator, OtelBridge, OtelProviderExporter};
use common::*;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

#[test]
fn spans_keep_their_ids_in_the_provider() {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_id_generator(BridgeIdGenerator::default())
        .with_simple_exporter(spans.clone())
        .build();
    let memory = aiobs_core::InMemoryExporter::new();
    let obs = Observability::builder()
        .exporter(OtelProviderExporter::new(provider.clone()))
        .exporter(memory.clone())
        .build()
        .unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");

    let recorded = spans.get_finished_spans().unwrap();
    let ours = memory.ended_spans();
    assert_eq!(recorded.len(), ours.len());
    for s in &ours {
        let r = recorded
            .iter()
            .find(|r| r.span_context.span_id().to_string() == s.span_id.to_string())
            .unwrap_or_else(|| panic!("{} not recorded with its id", s.name));
        assert_eq!(
            r.span_context.trace_id().to_string(),
            s.trace_id.to_string()
        );
        assert_eq!(
            Some(r.parent_span_id.to_string()).filter(|p| p != "0000000000000000"),
            s.parent_span_id.map(|p| p.to_string())
        );
        assert_eq!(r.start_time, std::time::SystemTime::from(s.start_time));
        assert_eq!(r.end_time, std::time::SystemTime::from(s.end_time.unwrap()));
    }
    let chat = recorded
        .iter()
        .find(|r| r.name == "chat gpt-4o-mini")
        .unwrap();
    assert_eq!(chat.span_kind, SpanKind::Client);
    let forecast = recorded
        .iter()
        .find(|r| r.name == "execute_tool get_forecast")
        .unwrap();
    assert!(
        matches!(&forecast.status, Status::Error { description } if description.contains("forecast service unavailable"))
    );
    assert_eq!(forecast.events.len(), 1);

    // Spans the application starts itself, inside an aiobs span, become its children
    // and get ids of their own.
    let run = obs.start_span(SpanOptions::new("outer", SpanType::AgentRun));
    let cx = OtelBridge::context(&run);
    let tracer = provider.tracer("app");
    let child = tracer.start_with_context("http call", &cx);
    let child_cx = child.span_context().clone();
    drop(child);
    assert_eq!(child_cx.trace_id().to_string(), run.trace_id().to_string());
    assert_ne!(child_cx.span_id().to_string(), run.span_id().to_string());
    let app_span = spans
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .find(|s| s.name == "http call")
        .unwrap();
    assert_eq!(
        app_span.parent_span_id.to_string(),
        run.span_id().to_string()
    );
    drop(run);
    assert!(obs.flush_blocking(FLUSH).is_success());
}

#[test]
fn a_provider_with_its_own_id_generator_is_refused() {
    let spans = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(spans)
        .build();
    let obs = Observability::builder()
        .exporter(OtelProviderExporter::new(provider).named("provider"))
        .build()
        .unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    assert!(!report.is_success());
    let stats = obs.stats().exporter("provider").cloned().unwrap();
    assert!(stats.disabled);
    assert_eq!(stats.lost(DropReason::ExporterDisabled), 4);
    assert!(
        stats
            .last_error
            .unwrap_or_default()
            .contains("BridgeIdGenerator")
    );
}

#[test]
fn the_flush_reports_the_providers_force_flush() {
    /// A span processor whose flush fails, as a broken export pipeline reports it.
    #[derive(Debug)]
    struct FailingFlush;
    impl opentelemetry_sdk::trace::SpanProcessor for FailingFlush {
        fn on_start(
            &self,
            _span: &mut opentelemetry_sdk::trace::Span,
            _cx: &opentelemetry::Context,
        ) {
        }
        fn on_end(&self, _span: opentelemetry_sdk::trace::SpanData) {}
        fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
            Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                "collector gone".into(),
            ))
        }
        fn shutdown_with_timeout(
            &self,
            _timeout: std::time::Duration,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }
    let provider = SdkTracerProvider::builder()
        .with_id_generator(BridgeIdGenerator::default())
        .with_span_processor(FailingFlush)
        .build();
    let obs = Observability::builder()
        .exporter(OtelProviderExporter::new(provider))
        .build()
        .unwrap();
    weather_trace(&obs);
    let report = obs.flush_blocking(FLUSH);
    let p = report.exporter("otel-provider").unwrap();
    assert_eq!(p.delivered, 4);
    assert!(
        p.flush_error
            .as_deref()
            .unwrap_or_default()
            .contains("collector gone"),
        "{report}"
    );
    assert!(
        !report.is_success(),
        "a failed force_flush is not a successful flush"
    );
}
