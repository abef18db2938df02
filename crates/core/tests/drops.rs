//! Loss visible without `tracing`: the drop observer hears of every counted
//! loss — at the ingress, at an exporter, at a shutdown deadline, and when the
//! pipeline is dropped without shutdown — and its counts match the stats.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiobs_core::{
    BatchPolicy, DropReason, ExportError, InMemoryExporter, Observability, OverflowPolicy, Sampler,
    Signal, SpanOptions, SpanType,
};
use common::{Scripted, Step};

type Heard = Arc<Mutex<BTreeMap<(Option<String>, Signal, DropReason), u64>>>;

fn listening() -> (
    Heard,
    impl Fn(&aiobs_core::DroppedEvents<'_>) + Send + Sync + 'static,
) {
    let heard: Heard = Arc::default();
    let h = heard.clone();
    (heard, move |d: &aiobs_core::DroppedEvents<'_>| {
        *h.lock()
            .unwrap()
            .entry((d.exporter.map(str::to_owned), d.signal, d.reason))
            .or_default() += d.count;
    })
}

fn heard_total(heard: &Heard, exporter: Option<&str>, reason: DropReason) -> u64 {
    heard
        .lock()
        .unwrap()
        .iter()
        .filter(|((e, _, r), _)| e.as_deref() == exporter && *r == reason)
        .map(|(_, n)| n)
        .sum()
}

fn emit_spans(obs: &Observability, n: usize) {
    for i in 0..n {
        obs.start_span(SpanOptions::new(format!("span-{i}"), SpanType::ToolCall))
            .end();
    }
}

#[tokio::test]
async fn the_observer_hears_every_loss_an_exporter_counts() {
    let (heard, observer) = listening();
    let failing = Scripted::new("failing", |_, _| {
        Step::Err(ExportError::permanent("400 bad request"))
    });
    let obs = Observability::builder()
        .exporter(failing)
        .on_drop(observer)
        .build()
        .unwrap();
    emit_spans(&obs, 7);
    let report = obs.flush(Duration::from_secs(5)).await;
    assert_eq!(report.lost(), 7, "{report}");
    assert_eq!(
        heard_total(&heard, Some("failing"), DropReason::PermanentError),
        7
    );
    let signals: Vec<Signal> = heard.lock().unwrap().keys().map(|(_, s, _)| *s).collect();
    assert!(
        signals.iter().all(|s| *s == Signal::SpanEnded),
        "{signals:?}"
    );
}

#[tokio::test]
async fn the_observer_hears_pipeline_losses_including_intentional_ones() {
    let (heard, observer) = listening();
    let obs = Observability::builder()
        .exporter(InMemoryExporter::new())
        .sampler(Sampler::Never)
        .on_drop(observer)
        .build()
        .unwrap();
    emit_spans(&obs, 3);
    let report = obs.shutdown(Duration::from_secs(5)).await;
    assert!(report.completed, "{report}");
    assert_eq!(heard_total(&heard, None, DropReason::Sampled), 3);
    // After shutdown, every event is a loss the observer hears of.
    let obs2 = Observability::builder()
        .exporter(InMemoryExporter::new())
        .on_drop({
            let h = heard.clone();
            move |d| {
                *h.lock()
                    .unwrap()
                    .entry((d.exporter.map(str::to_owned), d.signal, d.reason))
                    .or_default() += d.count;
            }
        })
        .build()
        .unwrap();
    let report = obs2.shutdown(Duration::from_secs(5)).await;
    assert!(report.is_success(), "{report}");
    obs2.log(aiobs_core::LogRecord::new(
        aiobs_core::LogLevel::Info,
        "late",
    ));
    assert_eq!(heard_total(&heard, None, DropReason::AfterShutdown), 1);
    assert!(
        heard
            .lock()
            .unwrap()
            .contains_key(&(None, Signal::Log, DropReason::AfterShutdown))
    );
}

#[test]
fn dropping_without_shutdown_tells_the_observer_what_was_lost() {
    let (heard, observer) = listening();
    // The exporter never answers, so everything stays pending.
    let hung = Scripted::new("hung", |_, _| Step::Hang)
        .with_policy(BatchPolicy::default().with_max_wait(Duration::from_millis(5)));
    let obs = Observability::builder()
        .exporter(hung)
        .on_drop(observer)
        .build()
        .unwrap();
    emit_spans(&obs, 12);
    std::thread::sleep(Duration::from_millis(100));
    let pending = obs.stats().exporter("hung").unwrap().pending;
    assert_eq!(pending, 12);
    drop(obs);
    assert_eq!(
        heard_total(&heard, Some("hung"), DropReason::DroppedWithoutShutdown),
        12,
        "{:?}",
        heard.lock().unwrap()
    );
}

#[tokio::test]
async fn the_observer_hears_what_a_shutdown_deadline_gives_up() {
    let (heard, observer) = listening();
    let hung = Scripted::new("hung", |_, _| Step::Hang);
    let obs = Observability::builder()
        .exporter(hung)
        .exporter(InMemoryExporter::new())
        .on_drop(observer)
        .build()
        .unwrap();
    emit_spans(&obs, 4);
    let report = obs.shutdown(Duration::from_millis(300)).await;
    assert_eq!(report.incomplete(), ["hung"], "{report}");
    assert_eq!(
        heard_total(&heard, Some("hung"), DropReason::FlushTimeout),
        4
    );
    assert_eq!(
        report
            .exporter("hung")
            .unwrap()
            .dropped
            .get(&DropReason::FlushTimeout),
        Some(&4),
        "{report}"
    );
}

#[test]
fn the_observer_hears_a_full_queue_and_a_panicking_observer_changes_nothing() {
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = calls.clone();
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let g = gate.clone();
    let slow = Scripted::new("gated", move |_, _| {
        while !g.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Step::Ok
    })
    .with_policy(
        BatchPolicy::default()
            .with_queue_capacity(5)
            .with_max_events(5),
    );
    let obs = Observability::builder()
        .exporter(slow)
        .overflow(OverflowPolicy::DropNewest)
        .on_drop(move |d| {
            c.fetch_add(d.count, std::sync::atomic::Ordering::Relaxed);
            panic!("observer bug");
        })
        .build()
        .unwrap();
    emit_spans(&obs, 50);
    std::thread::sleep(Duration::from_millis(100));
    gate.store(true, std::sync::atomic::Ordering::Release);
    let report = obs.flush_blocking(Duration::from_secs(5));
    assert!(report.completed, "{report}");
    let stats = obs.stats();
    assert!(stats.is_conserved());
    let lost = stats.exporter("gated").unwrap().dropped_total()
        + stats.pipeline.dropped.values().sum::<u64>();
    assert!(lost > 0);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), lost);
}
