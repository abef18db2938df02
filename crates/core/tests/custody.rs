//! Events an exporter holds stay pending until it settles them: stats and
//! flush reports never call them delivered early, and an exporter that
//! settles more than it holds cannot corrupt the accounting.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, Custody, DropReason, ExportBatch, ExportError, ExportOutcome, Exporter,
    ExporterContext, Observability, RetryPolicy, Signals, SpanOptions, SpanType, async_trait,
};

const T: Duration = Duration::from_secs(5);

/// Holds every event it is given; `flush` settles them as told.
#[derive(Debug)]
struct Holder {
    custody: Mutex<Custody>,
    held: Mutex<usize>,
    /// What `flush` does with the held events: deliver, lose, or keep them.
    on_flush: Mutex<&'static str>,
}

impl Holder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            custody: Mutex::new(Custody::detached()),
            held: Mutex::new(0),
            on_flush: Mutex::new("keep"),
        })
    }
}

#[async_trait]
impl Exporter for Holder {
    fn name(&self) -> &str {
        "holder"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default().with_max_wait(Duration::from_millis(5))
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        *self.custody.lock().unwrap() = ctx.custody.clone();
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        *self.held.lock().unwrap() += batch.len();
        Ok(ExportOutcome::all_delivered().with_held((0..batch.len()).collect()))
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        let custody = self.custody.lock().unwrap().clone();
        let mut held = self.held.lock().unwrap();
        match *self.on_flush.lock().unwrap() {
            "deliver" => {
                // Settling more than is held is clamped to what is held.
                custody.delivered(*held + 10);
                *held = 0;
            }
            "lose" => {
                custody.lost(DropReason::PermanentError, *held, "refused");
                *held = 0;
            }
            _ => return Err(ExportError::transient("still holding")),
        }
        Ok(())
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        self.flush(deadline).await
    }
}

fn emit(obs: &Observability, n: usize) {
    for i in 0..n {
        obs.start_span(SpanOptions::new(format!("s{i}"), SpanType::ToolCall))
            .end();
    }
}

#[tokio::test]
async fn held_events_are_pending_until_settled_delivered() {
    let holder = Holder::new();
    let obs = Observability::builder()
        .exporter(holder.clone())
        .build()
        .unwrap();
    emit(&obs, 3);
    let report = obs.flush(T).await;
    assert!(
        !report.is_success(),
        "held events are not delivered: {report}"
    );
    assert_eq!(report.pending(), 3, "{report}");
    let s = &obs.stats().exporters[0];
    assert_eq!((s.delivered, s.pending), (0, 3));
    assert!(s.is_conserved());

    *holder.on_flush.lock().unwrap() = "deliver";
    let report = obs.flush(T).await;
    assert!(report.is_success(), "{report}");
    let s = &obs.stats().exporters[0];
    assert_eq!((s.accepted, s.delivered, s.pending), (3, 3, 0));
    assert!(s.is_conserved());
}

#[tokio::test]
async fn held_events_lost_are_counted_with_their_reason() {
    let holder = Holder::new();
    *holder.on_flush.lock().unwrap() = "lose";
    let obs = Observability::builder()
        .exporter(holder.clone())
        .build()
        .unwrap();
    emit(&obs, 2);
    let report = obs.flush(T).await;
    assert!(!report.is_success(), "{report}");
    let s = &obs.stats().exporters[0];
    assert_eq!(s.failed.get(&DropReason::PermanentError), Some(&2));
    assert_eq!((s.delivered, s.pending), (0, 0));
    assert!(s.is_conserved());
}

#[tokio::test]
async fn events_still_held_at_shutdown_are_counted_dropped() {
    let holder = Holder::new();
    let obs = Observability::builder()
        .exporter(holder.clone())
        .build()
        .unwrap();
    emit(&obs, 4);
    let report = obs.shutdown(T).await;
    assert!(!report.is_success(), "{report}");
    let s = &obs.stats().exporters[0];
    assert_eq!(s.dropped.get(&DropReason::FlushTimeout), Some(&4), "{s:?}");
    assert_eq!(s.pending, 0);
    assert!(s.is_conserved());
}
