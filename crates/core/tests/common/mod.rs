//! A scriptable exporter for the pipeline tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ObservabilityEvent, RetryPolicy, Signals, async_trait,
};

/// What the script tells one export call to do.
pub enum Step {
    Ok,
    Err(ExportError),
    Partial(ExportOutcome),
    Panic,
    /// Never answer.
    Hang,
    /// Acknowledge after this long.
    Slow(Duration),
    /// Block the calling thread this long (a synchronous vendor SDK call, a
    /// DNS lookup, a large compression), then acknowledge.
    Block(Duration),
}

type Script = dyn Fn(u64, &ExportBatch) -> Step + Send + Sync;

/// Stores what it acknowledged; its behaviour per call comes from a script.
#[derive(Clone)]
pub struct Scripted {
    pub name: String,
    pub signals: Signals,
    pub policy: BatchPolicy,
    pub retry: RetryPolicy,
    pub script: Arc<Script>,
    pub calls: Arc<AtomicU64>,
    pub acked: Arc<Mutex<Vec<Arc<ObservabilityEvent>>>>,
    /// How the exporter's own `flush`/`shutdown` behave.
    pub on_flush: FlushBehaviour,
}

/// What the exporter's own `flush` and `shutdown` do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushBehaviour {
    #[default]
    Ok,
    /// `shutdown` never returns (an SDK waiting for a dead connection).
    HangOnShutdown,
    /// `flush` and `shutdown` block their thread this long.
    Block(Duration),
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scripted({})", self.name)
    }
}

impl Scripted {
    pub fn new(
        name: &str,
        script: impl Fn(u64, &ExportBatch) -> Step + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            signals: Signals::ENDED_SPANS,
            policy: BatchPolicy::default().with_max_wait(Duration::from_millis(20)),
            retry: RetryPolicy::default()
                .with_max_retries(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50))
                .with_attempt_timeout(Duration::from_secs(60)),
            script: Arc::new(script),
            calls: Arc::default(),
            acked: Arc::default(),
            on_flush: FlushBehaviour::Ok,
        }
    }
    pub fn ok(name: &str) -> Self {
        Self::new(name, |_, _| Step::Ok)
    }
    pub fn with_policy(mut self, policy: BatchPolicy) -> Self {
        self.policy = policy;
        self
    }
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    pub fn on_flush(mut self, b: FlushBehaviour) -> Self {
        self.on_flush = b;
        self
    }
    pub fn with_signals(mut self, s: Signals) -> Self {
        self.signals = s;
        self
    }
    pub fn acked_len(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
    pub fn acked(&self) -> Vec<Arc<ObservabilityEvent>> {
        self.acked.lock().unwrap().clone()
    }
}

#[async_trait]
impl Exporter for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn signals(&self) -> Signals {
        self.signals
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.policy
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match (self.script)(call, batch) {
            Step::Ok => {}
            Step::Err(e) => return Err(e),
            Step::Partial(o) => {
                let rejected: Vec<usize> = o.rejected.iter().map(|r| r.index).collect();
                let mut acked = self.acked.lock().unwrap();
                for (i, e) in batch.iter().enumerate() {
                    if !rejected.contains(&i) {
                        acked.push(e.clone());
                    }
                }
                return Ok(o);
            }
            Step::Panic => panic!("scripted exporter panics on call {call}"),
            Step::Hang => std::future::pending::<()>().await,
            Step::Slow(d) => tokio::time::sleep(d).await,
            Step::Block(d) => std::thread::sleep(d),
        }
        self.acked.lock().unwrap().extend(batch.iter().cloned());
        Ok(ExportOutcome::all_delivered())
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        if let FlushBehaviour::Block(d) = self.on_flush {
            std::thread::sleep(d);
        }
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        match self.on_flush {
            FlushBehaviour::Ok => {}
            FlushBehaviour::HangOnShutdown => std::future::pending::<()>().await,
            FlushBehaviour::Block(d) => std::thread::sleep(d),
        }
        Ok(())
    }
}

/// Spans of one trace the exporter acknowledged (ended spans only).
pub fn acked_in_trace(e: &Scripted, trace: aiobs_core::TraceId) -> usize {
    e.acked()
        .iter()
        .filter(|ev| ev.span().is_some_and(|s| s.trace_id == trace))
        .count()
}
