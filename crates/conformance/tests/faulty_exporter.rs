//! FaultyExporter: each decision does what it says, seen through a real pipeline.

use std::time::{Duration, Instant};

use aiobs_conformance::fakes::{Decision, FaultyExporter};
use aiobs_conformance::kit_retry_policy;
use aiobs_core::{
    DropReason, ErrorClass, ExportBatch, Exporter, InMemoryExporter, Observability,
    ObservabilityEvent, Signals, SpanOptions, SpanType,
};
use std::sync::Arc;

fn faulty() -> FaultyExporter {
    FaultyExporter::wrap(InMemoryExporter::new().with_signals(Signals::ENDED_SPANS))
        .with_retry_policy(kit_retry_policy().with_attempt_timeout(Duration::from_millis(300)))
}

fn pipeline(f: &FaultyExporter, spans: usize) -> Observability {
    let obs = Observability::builder()
        .exporter(f.clone())
        .derive_metrics(false)
        .build()
        .unwrap();
    for i in 0..spans {
        obs.start_span(SpanOptions::new(format!("s{i}"), SpanType::Generic))
            .end();
    }
    obs
}

fn batch(n: usize) -> Vec<Arc<ObservabilityEvent>> {
    let obs = Observability::builder()
        .exporter(InMemoryExporter::new())
        .build()
        .unwrap();
    (0..n)
        .map(|i| {
            let s = obs.start_span(SpanOptions::new(format!("b{i}"), SpanType::Generic));
            Arc::new(ObservabilityEvent::Span {
                kind: aiobs_core::SpanEventKind::Ended,
                span: Arc::new(s.export().unwrap()),
            })
        })
        .collect()
}

#[tokio::test]
async fn deliver_forwards_and_fail_returns_the_class() {
    let f = faulty();
    f.push(Decision::permanent())
        .push(Decision::throttled(Some(Duration::from_secs(3))));
    let events = batch(2);
    let b: &ExportBatch = &events;
    let e = f.export(b).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Permanent);
    let e = f.export(b).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::Throttled(Some(Duration::from_secs(3))));
    assert!(f.inner().events().is_empty());
    let ok = f.export(b).await.unwrap();
    assert!(ok.rejected.is_empty());
    assert_eq!(f.inner().events().len(), 2);
    assert_eq!(f.calls(), 3);
}

#[tokio::test]
async fn reject_forwards_only_the_accepted_items_and_reports_original_indexes() {
    let f = faulty();
    f.push(Decision::Reject(vec![
        (1, ErrorClass::Transient),
        (3, ErrorClass::Permanent),
        (99, ErrorClass::Permanent), // out of range: ignored
    ]));
    let events = batch(4);
    let out = f.export(&events).await.unwrap();
    let got: Vec<(usize, ErrorClass)> = out.rejected.iter().map(|r| (r.index, r.class)).collect();
    assert_eq!(
        got,
        vec![(1, ErrorClass::Transient), (3, ErrorClass::Permanent)]
    );
    let stored: Vec<String> = f.inner().events().iter().map(|e| e.identity()).collect();
    assert_eq!(stored, vec![events[0].identity(), events[2].identity()]);
}

#[tokio::test]
async fn a_decision_function_sees_the_call_index_and_batch() {
    let f = faulty().decide_with(|call| {
        if call.index == 0 && call.batch.len() == 3 {
            Decision::transient()
        } else {
            Decision::Deliver
        }
    });
    let events = batch(3);
    assert!(f.export(&events).await.is_err());
    assert!(f.export(&events).await.is_ok());
}

#[tokio::test]
async fn delay_then_deliver_takes_the_delay() {
    let f = faulty();
    f.push(Decision::delayed(
        Duration::from_millis(150),
        Decision::Deliver,
    ));
    let started = Instant::now();
    assert!(f.export(&batch(1)).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_pipeline_retries_transients_and_abandons_a_hang() {
    let f = faulty();
    f.push(Decision::Hang).push(Decision::transient());
    let obs = pipeline(&f, 3);
    let report = obs.flush(Duration::from_secs(10)).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(f.calls(), 3);
    assert_eq!(f.inner().ended_spans().len(), 3);
    let s = obs.stats();
    assert_eq!(s.exporters[0].retries, 2);
}

#[tokio::test]
async fn discard_says_ok_and_loses_events() {
    let f = faulty();
    f.push(Decision::Discard);
    let obs = pipeline(&f, 2);
    let report = obs.flush(Duration::from_secs(5)).await;
    // The pipeline believes it: exactly the bug the kit's probes exist to catch.
    assert!(report.is_success(), "{report}");
    assert_eq!(obs.stats().exporters[0].delivered, 2);
    assert!(f.inner().events().is_empty());
}

#[tokio::test]
async fn a_panic_is_contained_and_counted() {
    let f = faulty();
    f.push(Decision::Panic);
    let obs = pipeline(&f, 2);
    let report = obs.flush(Duration::from_secs(5)).await;
    assert!(report.completed);
    let s = obs.stats();
    assert_eq!(s.exporters[0].lost(DropReason::ExporterPanicked), 2);
    assert!(s.is_conserved());
}
