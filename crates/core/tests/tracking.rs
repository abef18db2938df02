//! `Tracking<T>` gathering: children wait for their root and go with it;
//! children whose root does not end here still go, at flush or past a bound;
//! held spans are pending (never delivered early) and settled exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiobs_core::tracking::Release;
use aiobs_core::{
    BatchPolicy, DropReason, ErrorClass, ExportError, ExportOutcome, ExporterContext,
    ItemRejection, Observability, RetryPolicy, Signals, SpanOptions, SpanType, TrackedEvent,
    Tracking, TrackingExporter, TrackingLimits, async_trait,
};

const T: Duration = Duration::from_secs(5);

/// One `export_tracked` call: (span name, release) per item.
type Call = Vec<(String, Option<Release>)>;

#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
    /// Refuse every item of calls that carry released spans, with this class.
    refuse_released: Mutex<Option<ErrorClass>>,
}

#[async_trait]
impl TrackingExporter for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default().with_max_wait(Duration::from_millis(5))
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .with_max_retries(1)
            .with_initial_backoff(Duration::from_millis(1))
    }
    async fn init(&self, _c: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export_tracked(&self, batch: &[TrackedEvent]) -> Result<ExportOutcome, ExportError> {
        let call: Call = batch
            .iter()
            .map(|t| (t.event.span().unwrap().name.to_string(), t.release))
            .collect();
        self.calls.lock().unwrap().push(call);
        let refuse = *self.refuse_released.lock().unwrap();
        match refuse {
            Some(class) if batch.iter().any(|t| t.release.is_some()) => Ok(ExportOutcome::partial(
                (0..batch.len())
                    .filter(|i| batch[*i].release.is_some())
                    .map(|index| ItemRejection {
                        index,
                        class,
                        message: "refused".into(),
                    })
                    .collect(),
            )),
            _ => Ok(ExportOutcome::all_delivered()),
        }
    }
    async fn flush(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _d: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

fn gathering(limits: TrackingLimits) -> (Arc<Tracking<Recorder>>, Observability) {
    let tracking = Arc::new(Tracking::with_limits(
        Recorder::default(),
        limits.with_gather(true),
    ));
    let obs = Observability::builder()
        .exporter(tracking.clone())
        .build()
        .unwrap();
    (tracking, obs)
}

fn calls(t: &Tracking<Recorder>) -> Vec<Call> {
    t.inner().calls.lock().unwrap().clone()
}

fn named(name: &str, release: Option<Release>) -> (String, Option<Release>) {
    (name.to_owned(), release)
}

/// Lets the worker export what is queued (its batch wait is 5 ms).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(60)).await;
}

#[tokio::test]
async fn children_wait_for_their_root_and_go_with_it() {
    let (tracking, obs) = gathering(TrackingLimits::default());
    let root = obs.start_span(SpanOptions::new("root", SpanType::AgentRun));
    root.child(SpanOptions::new("chat", SpanType::ModelGeneration))
        .end();
    root.child(SpanOptions::new("tool", SpanType::ToolCall))
        .end();
    settle().await;
    assert_eq!(tracking.held_spans(), 2);
    let s = &obs.stats().exporters[0];
    assert_eq!(
        (s.delivered, s.pending),
        (0, 2),
        "held spans are pending, not delivered"
    );
    drop(root);
    let report = obs.flush(T).await;
    assert!(report.is_success(), "{report}");
    let last = calls(&tracking).pop().unwrap();
    let mut got = last.clone();
    got.sort();
    assert_eq!(
        got,
        [
            named("chat", Some(Release::WithRoot)),
            named("root", None),
            named("tool", Some(Release::WithRoot)),
        ],
        "{last:?}"
    );
    assert_eq!(
        calls(&tracking).len(),
        1,
        "nothing was sent before the root ended"
    );
    let s = &obs.stats().exporters[0];
    assert_eq!((s.accepted, s.delivered, s.pending), (3, 3, 0));
    assert_eq!(tracking.held_spans(), 0);
}

#[tokio::test]
async fn open_root_at_flush_sends_its_children_and_late_children_pass_through() {
    let (tracking, obs) = gathering(TrackingLimits::default());
    let root = obs.start_span(SpanOptions::new("root", SpanType::AgentRun));
    root.child(SpanOptions::new("early", SpanType::ToolCall))
        .end();
    let report = obs.flush(T).await;
    assert!(report.is_success(), "flush sends held children: {report}");
    assert_eq!(
        calls(&tracking),
        [vec![named("early", Some(Release::Flush))]]
    );
    let late = root.child(SpanOptions::new("late", SpanType::ToolCall));
    drop(root);
    assert!(obs.flush(T).await.is_success());
    drop(late); // ends after its root ended
    assert!(obs.flush(T).await.is_success());
    let c = calls(&tracking);
    assert_eq!(c[1], [named("root", None)]);
    assert_eq!(c[2], [named("late", None)], "a late child is not held");
    assert_eq!(obs.stats().exporters[0].delivered, 3);
}

#[tokio::test]
async fn bounds_hand_spans_over_without_their_root() {
    let (tracking, obs) = gathering(TrackingLimits::default().with_max_held_spans_per_root(2));
    let root = obs.start_span(SpanOptions::new("root", SpanType::AgentRun));
    for i in 0..2 {
        root.child(SpanOptions::new(format!("c{i}"), SpanType::ToolCall))
            .end();
    }
    settle().await;
    assert_eq!(tracking.held_spans(), 2);
    root.child(SpanOptions::new("c2", SpanType::ToolCall)).end();
    settle().await;
    assert_eq!(tracking.held_spans(), 0);
    let mut c = calls(&tracking).pop().unwrap();
    c.sort();
    assert_eq!(
        c,
        [
            named("c0", Some(Release::OverLimit)),
            named("c1", Some(Release::OverLimit)),
            named("c2", Some(Release::OverLimit)),
        ]
    );
    assert_eq!(obs.stats().exporters[0].delivered, 3);
    drop(root);
    assert!(obs.flush(T).await.is_success());
}

#[tokio::test]
async fn held_spans_refused_are_counted_and_retryable_ones_stay_pending() {
    let (tracking, obs) = gathering(TrackingLimits::default());
    *tracking.inner().refuse_released.lock().unwrap() = Some(ErrorClass::Transient);
    let root = obs.start_span(SpanOptions::new("root", SpanType::AgentRun));
    root.child(SpanOptions::new("c", SpanType::ToolCall)).end();
    let report = obs.flush(T).await;
    assert!(!report.is_success(), "{report}");
    assert_eq!(report.pending(), 1, "{report}");
    assert_eq!(tracking.held_spans(), 1);

    *tracking.inner().refuse_released.lock().unwrap() = Some(ErrorClass::Permanent);
    let report = obs.flush(T).await;
    assert!(!report.is_success(), "{report}");
    let s = &obs.stats().exporters[0];
    assert_eq!(s.failed.get(&DropReason::PermanentError), Some(&1), "{s:?}");
    assert_eq!(s.pending, 0);
    assert!(s.is_conserved());
    drop(root);
    assert!(obs.flush(T).await.is_success());
}

#[tokio::test]
async fn bounds_on_roots_and_bytes_release_the_oldest_first() {
    let (tracking, obs) = gathering(TrackingLimits::default().with_max_traces(1));
    let a = obs.start_span(SpanOptions::new("a", SpanType::AgentRun));
    a.child(SpanOptions::new("a-child", SpanType::ToolCall))
        .end();
    settle().await;
    assert_eq!(tracking.held_spans(), 1);
    let b = obs.start_span(SpanOptions::new("b", SpanType::AgentRun));
    b.child(SpanOptions::new("b-child", SpanType::ToolCall))
        .end();
    settle().await;
    assert_eq!(tracking.held_spans(), 1, "only one root's spans are held");
    assert_eq!(
        calls(&tracking).pop().unwrap(),
        [named("a-child", Some(Release::OverLimit))],
        "the oldest root's spans went"
    );
    drop((a, b));
    assert!(obs.flush(T).await.is_success());

    let (tracking, obs) = gathering(TrackingLimits::default().with_max_held_bytes(1));
    let root = obs.start_span(SpanOptions::new("r", SpanType::AgentRun));
    root.child(SpanOptions::new("big", SpanType::ToolCall))
        .end();
    settle().await;
    assert_eq!(
        tracking.held_spans(),
        0,
        "over the byte bound: handed over at once"
    );
    assert_eq!(
        calls(&tracking).pop().unwrap(),
        [named("big", Some(Release::OverLimit))]
    );
    drop(root);
    assert!(obs.flush(T).await.is_success());
}
