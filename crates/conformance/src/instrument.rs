//! The wrapper the kit puts around every exporter under test: it applies the
//! kit's short retry and batch timings, can hold `export` calls behind a gate,
//! and records every call for the scenario checks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    RetryPolicy, Signals, async_trait,
};
use tokio::sync::watch;

/// The retry policy the kit imposes on every exporter under test: four
/// retries, 10 ms doubling backoff without jitter, at most 1.5 s between
/// attempts (so a `Retry-After: 1` is honoured, not cut), and 2 s per attempt.
pub fn kit_retry_policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(4)
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(1500))
        .with_jitter(0.0)
        .with_attempt_timeout(Duration::from_secs(2))
}

/// How a scenario tunes the exporter's batch policy (its `max_events` and
/// `max_bytes` are kept: they belong to the destination).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub(crate) max_wait: Duration,
    pub(crate) queue_capacity: Option<usize>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_millis(20),
            queue_capacity: None,
        }
    }
}

/// How an `export` call ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallResult {
    Running,
    /// Returned `Ok`, with these rejections (index, class).
    Ok(Vec<(usize, ErrorClass)>),
    Err(ErrorClass, String),
    /// Dropped before returning (timed out or aborted by the pipeline).
    Cancelled,
}

/// One `export` call.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    pub(crate) started: Instant,
    /// `event.identity()` of each item, in batch order.
    pub(crate) items: Vec<String>,
    pub(crate) result: CallResult,
}

impl CallRecord {
    /// Identities the exporter reported delivered in this call.
    pub(crate) fn delivered(&self) -> Vec<&str> {
        match &self.result {
            CallResult::Ok(rejected) => self
                .items
                .iter()
                .enumerate()
                .filter(|(i, _)| !rejected.iter().any(|(r, _)| r == i))
                .map(|(_, id)| id.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// What the kit observed of one exporter.
#[derive(Debug)]
pub(crate) struct CallLog {
    calls: Mutex<Vec<CallRecord>>,
    in_flight: AtomicUsize,
    flushes: AtomicUsize,
    shutdowns: AtomicUsize,
    exports_after_shutdown: AtomicUsize,
    gate: watch::Sender<bool>,
}

impl CallLog {
    fn calls_mut(&self) -> MutexGuard<'_, Vec<CallRecord>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn calls(&self) -> Vec<CallRecord> {
        self.calls_mut().clone()
    }
    /// `export` calls that have not returned nor been dropped.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
    pub(crate) fn flushes(&self) -> usize {
        self.flushes.load(Ordering::Acquire)
    }
    pub(crate) fn shutdowns(&self) -> usize {
        self.shutdowns.load(Ordering::Acquire)
    }
    pub(crate) fn exports_after_shutdown(&self) -> usize {
        self.exports_after_shutdown.load(Ordering::Acquire)
    }
    /// Holds every later `export` call until [`CallLog::open_gate`].
    pub(crate) fn close_gate(&self) {
        self.gate.send_replace(false);
    }
    pub(crate) fn open_gate(&self) {
        self.gate.send_replace(true);
    }
    /// Waits up to `timeout` for every `export` call to end; returns how many still run.
    pub(crate) async fn settle(&self, timeout: Duration) -> usize {
        let until = Instant::now() + timeout;
        while self.in_flight() > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.in_flight()
    }
}

/// Marks a call `Cancelled` if its future is dropped before it returns.
struct InFlight<'a> {
    log: &'a CallLog,
    index: usize,
}

impl InFlight<'_> {
    fn finish(self, result: CallResult) {
        if let Some(c) = self.log.calls_mut().get_mut(self.index) {
            c.result = result;
        }
        // Drop runs next and only decrements.
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.log.calls_mut().get_mut(self.index)
            && c.result == CallResult::Running
        {
            c.result = CallResult::Cancelled;
        }
        self.log.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The exporter under test, as the kit hands it to the pipeline.
#[derive(Debug)]
pub(crate) struct Instrumented {
    inner: Arc<dyn Exporter>,
    batch: BatchPolicy,
    retry: RetryPolicy,
    log: Arc<CallLog>,
}

impl Instrumented {
    pub(crate) fn new(inner: Arc<dyn Exporter>, tuning: Tuning) -> Self {
        let mut batch = inner.batch_policy().with_max_wait(tuning.max_wait);
        if let Some(cap) = tuning.queue_capacity {
            batch = batch.with_queue_capacity(cap);
        }
        Self {
            inner,
            batch,
            retry: kit_retry_policy(),
            log: Arc::new(CallLog {
                calls: Mutex::default(),
                in_flight: AtomicUsize::new(0),
                flushes: AtomicUsize::new(0),
                shutdowns: AtomicUsize::new(0),
                exports_after_shutdown: AtomicUsize::new(0),
                gate: watch::Sender::new(true),
            }),
        }
    }

    pub(crate) fn log(&self) -> Arc<CallLog> {
        self.log.clone()
    }
}

#[async_trait]
impl Exporter for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signals(&self) -> Signals {
        self.inner.signals()
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.batch
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        self.inner.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        if self.log.shutdowns() > 0 {
            self.log
                .exports_after_shutdown
                .fetch_add(1, Ordering::AcqRel);
        }
        let index = {
            let mut calls = self.log.calls_mut();
            calls.push(CallRecord {
                started: Instant::now(),
                items: batch.iter().map(|e| e.identity()).collect(),
                result: CallResult::Running,
            });
            calls.len() - 1
        };
        self.log.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight {
            log: &self.log,
            index,
        };
        let mut gate = self.log.gate.subscribe();
        // The gate only holds calls back: a closed channel lets them pass too.
        let _gate_passed = gate.wait_for(|open| *open).await.is_ok();
        let result = self.inner.export(batch).await;
        guard.finish(match &result {
            Ok(o) => CallResult::Ok(o.rejected.iter().map(|r| (r.index, r.class)).collect()),
            Err(e) => CallResult::Err(e.class, e.message.clone()),
        });
        result
    }
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        self.log.flushes.fetch_add(1, Ordering::AcqRel);
        self.inner.flush(deadline).await
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        self.log.shutdowns.fetch_add(1, Ordering::AcqRel);
        self.inner.shutdown(deadline).await
    }
}
