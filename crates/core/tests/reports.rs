//! Per-caller truth: each `FlushReport` accounts for its own events.
//!
//! - `flush_trace(T)` reports every outcome of trace T's events emitted before
//!   it (since the previous `flush_trace(T)`), whatever other callers flushed
//!   in between.
//! - Global `flush`/`shutdown` reports partition the event stream: each event
//!   belongs to the first global barrier behind it, so concurrent global
//!   reports never share or double-count an outcome.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aiobs_core::{
    BatchPolicy, DropReason, Observability, OverflowPolicy, SpanOptions, SpanType, TraceId,
};
use common::{Scripted, Step, acked_in_trace};

const SECS10: Duration = Duration::from_secs(10);

/// Emits a root with `children` children, all ended; returns the trace id.
fn emit_request(obs: &Observability, label: &str, children: usize) -> TraceId {
    let mut root = obs.start_span(SpanOptions::new(label.to_owned(), SpanType::AgentRun));
    for i in 0..children {
        root.child(SpanOptions::new(format!("{label}/{i}"), SpanType::ToolCall))
            .end();
    }
    root.end();
    root.trace_id()
}

fn small_queue(name: &str, capacity: usize) -> Scripted {
    Scripted::new(name, |_, _| Step::Slow(Duration::from_millis(2))).with_policy(
        BatchPolicy::default()
            .with_queue_capacity(capacity)
            .with_max_events(5)
            .with_max_wait(Duration::from_millis(5)),
    )
}

/// The first case: another task's `flush` must not take request A's losses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_learns_its_own_losses_even_after_another_callers_flush() {
    let exporter = small_queue("small-queue", 10);
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    let trace_a = emit_request(&obs, "request-a", 49);
    let other = {
        let obs = obs.clone();
        tokio::spawn(async move { obs.flush(SECS10).await })
    };
    let other = other.await.unwrap();
    let mine = obs.flush_trace(trace_a, SECS10).await;

    let at_destination = acked_in_trace(&exporter, trace_a) as u64;
    assert!(at_destination < 50, "the queue did not overflow: {mine}");
    let e = mine.exporter("small-queue").unwrap();
    assert!(mine.completed, "{mine}");
    assert_eq!(e.delivered, at_destination, "{mine}");
    assert_eq!(
        e.dropped.get(&DropReason::QueueFull).copied().unwrap_or(0),
        50 - at_destination,
        "request A's flush_trace must report A's own losses:\n{mine}\nother flush:\n{other}"
    );
    assert_eq!(mine.lost(), 50 - at_destination, "{mine}");
    assert!(!mine.is_success(), "{mine}");
    // The global report is the global ledger's: it, too, saw these losses, once.
    assert_eq!(other.lost(), 50 - at_destination, "{other}");
}

/// The 200-task run, with the request-scoped API: every task's report
/// says exactly what happened to its own spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_requests_each_learn_exactly_their_own_losses() {
    let exporter = small_queue("small-queue", 200);
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..200 {
        let obs = obs.clone();
        tasks.push(tokio::spawn(async move {
            let trace = emit_request(&obs, &format!("task-{t}"), 19);
            (trace, obs.flush_trace(trace, SECS10).await)
        }));
    }
    let mut lost_total = 0;
    let mut lossy = 0;
    for t in tasks {
        let (trace, report) = t.await.unwrap();
        assert!(report.completed, "{report}");
        let e = report.exporter("small-queue").unwrap();
        let at_destination = acked_in_trace(&exporter, trace) as u64;
        assert_eq!(e.delivered, at_destination, "{report}");
        assert_eq!(
            e.delivered + report.lost(),
            20,
            "a request's report must account for each of its 20 spans:\n{report}"
        );
        assert_eq!(
            report.is_success(),
            at_destination == 20,
            "is_success() must say whether this request's spans all arrived ({at_destination}/20):\n{report}"
        );
        lost_total += report.lost();
        lossy += u64::from(at_destination < 20);
    }
    let stats = obs.stats();
    let s = stats.exporter("small-queue").unwrap();
    assert_eq!(
        lost_total,
        s.dropped_total() + s.failed_total(),
        "the requests' reports together must cover every loss exactly once"
    );
    assert!(lossy > 0, "nothing overflowed: {stats:?}");
}

/// Concurrent global flushes partition the losses: their sum is the total,
/// none is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_global_flushes_never_share_or_double_count_a_loss() {
    let exporter = small_queue("small-queue", 10);
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..40 {
        let obs = obs.clone();
        tasks.push(tokio::spawn(async move {
            emit_request(&obs, &format!("task-{t}"), 9);
            obs.flush(SECS10).await
        }));
    }
    let mut lost = 0;
    let mut delivered = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert!(r.completed, "{r}");
        assert_eq!(r.pending(), 0, "{r}");
        lost += r.lost();
        delivered += r.exporter("small-queue").unwrap().delivered;
    }
    let stats = obs.stats();
    let s = stats.exporter("small-queue").unwrap();
    assert!(s.dropped_total() > 0, "nothing overflowed: {s:?}");
    assert_eq!(lost, s.dropped_total() + s.failed_total(), "{s:?}");
    assert_eq!(delivered, s.delivered, "{s:?}");
    assert_eq!(s.delivered + s.dropped_total(), 400);
}

/// Losses at the ingress (before any exporter) belong to the request too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_learns_of_its_events_refused_at_the_ingress() {
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let g = gate.clone();
    let exporter = Scripted::new("gated", move |_, _| {
        while !g.load(std::sync::atomic::Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Step::Ok
    });
    let obs = Observability::builder()
        .exporter(exporter.clone())
        .ingress_capacity(8)
        .overflow(OverflowPolicy::DropNewest)
        .build()
        .unwrap();
    // Flood the ingress from this thread faster than the router drains it.
    let mut traces = Vec::new();
    for t in 0..200 {
        traces.push(emit_request(&obs, &format!("burst-{t}"), 4));
    }
    gate.store(true, std::sync::atomic::Ordering::Release);
    let stats = obs.stats();
    let refused = stats
        .pipeline
        .dropped
        .get(&DropReason::QueueFull)
        .copied()
        .unwrap_or(0);
    let mut reported = 0;
    for t in traces {
        let r = obs.flush_trace(t, SECS10).await;
        assert!(r.completed, "{r}");
        let delivered = r.exporter("gated").unwrap().delivered;
        assert_eq!(delivered, acked_in_trace(&exporter, t) as u64, "{r}");
        assert_eq!(delivered + r.lost(), 5, "{r}");
        reported += r
            .pipeline_dropped
            .get(&DropReason::QueueFull)
            .copied()
            .unwrap_or(0);
    }
    assert_eq!(
        reported, refused,
        "every ingress loss reported to its request"
    );
}
