//! The exporter contract: what a destination implements, and nothing more.
//!
//! Queueing, batching, retry, flush barriers and drop accounting live once, in
//! the pipeline worker. An exporter only says how to *push one batch* and how
//! its own errors should be treated.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::bus::BlockingCalls;
use crate::bus::timer::Timers;
use crate::event::{ObservabilityEvent, Signals};

/// One batch handed to [`Exporter::export`].
pub type ExportBatch = [Arc<ObservabilityEvent>];

/// How the worker batches events for one exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchPolicy {
    /// Most events in one `export` call.
    pub max_events: usize,
    /// Most estimated bytes in one `export` call (a single larger event is sent alone).
    pub max_bytes: usize,
    /// Longest an event waits for its batch to fill. Flush ignores it.
    pub max_wait: Duration,
    /// Most events queued for this exporter; beyond it the overflow policy applies.
    pub queue_capacity: usize,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_bytes: 4 * 1024 * 1024,
            max_wait: Duration::from_secs(5),
            queue_capacity: 10_000,
        }
    }
}

impl BatchPolicy {
    /// Sets `max_events` (at least 1).
    pub fn with_max_events(mut self, n: usize) -> Self {
        self.max_events = n.max(1);
        self
    }
    /// Sets `max_bytes`.
    pub fn with_max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(1);
        self
    }
    /// Sets `max_wait`.
    pub fn with_max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }
    /// Sets `queue_capacity` (at least 1).
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }
}

/// How the worker retries failed exports.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub max_retries: u32,
    /// Backoff before the first retry; doubles each time.
    pub initial_backoff: Duration,
    /// Longest backoff (and longest `Retry-After` honoured).
    pub max_backoff: Duration,
    /// Random spread applied to each backoff, 0.0..=1.0 (0.2 = ±20 %).
    pub jitter: f64,
    /// Longest one `export` call may take before it counts as a transient failure.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Sets `max_retries`.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    /// Sets `initial_backoff`.
    pub fn with_initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }
    /// Sets `max_backoff`.
    pub fn with_max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }
    /// Sets `jitter` (clamped to 0.0..=1.0).
    pub fn with_jitter(mut self, j: f64) -> Self {
        self.jitter = if j.is_finite() {
            j.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }
    /// Sets `attempt_timeout`.
    pub fn with_attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }

    /// The backoff before retry number `retry` (0-based), with jitter applied.
    pub fn backoff(&self, retry: u32) -> Duration {
        let base = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let spread = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        base.mul_f64(spread.max(0.0)).min(self.max_backoff)
    }
}

/// How the worker should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Worth retrying with backoff (5xx, connection reset, timeout, locked database).
    Transient,
    /// The destination asked us to slow down; retry after this long if given.
    Throttled(Option<Duration>),
    /// Retrying cannot help (400, 422, schema mismatch): count as failed.
    Permanent,
    /// The exporter cannot work at all (401/403, bad credentials): it is
    /// disabled, and this and every later event is counted as dropped.
    Disabled,
}

impl ErrorClass {
    /// Whether the worker retries this class.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled(_))
    }
}

/// An export failure.
#[derive(Debug, thiserror::Error)]
#[error("{class:?}: {message}")]
pub struct ExportError {
    /// How to treat it.
    pub class: ErrorClass,
    /// What went wrong, for the flush report and logs.
    pub message: String,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ExportError {
    /// An error of this class.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            source: None,
        }
    }
    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }
    /// A throttling error.
    pub fn throttled(retry_after: Option<Duration>, message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Throttled(retry_after), message)
    }
    /// A permanent error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }
    /// An error that disables the exporter.
    pub fn disabled(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Disabled, message)
    }
    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

/// One item of a batch the destination refused while accepting the rest
/// (e.g. a Langfuse 207 multi-status).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRejection {
    /// Index of the event in the batch passed to `export`.
    pub index: usize,
    /// How to treat it: retryable classes are re-sent, others counted failed.
    pub class: ErrorClass,
    /// Why.
    pub message: String,
}

/// The result of a successful `export` call.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct ExportOutcome {
    /// Items the destination refused; every other item counts delivered,
    /// except the held ones.
    pub rejected: Vec<ItemRejection>,
    /// Items the exporter took into its own custody instead of sending them
    /// now (e.g. a child span kept until its root ends, to send them together).
    /// They stay *pending* in stats and flush reports until the exporter
    /// settles each one through the [`Custody`] of its [`ExporterContext`];
    /// its `flush` must send and settle them. An index listed both here and
    /// in `rejected` counts as rejected.
    pub held: Vec<usize>,
}

impl ExportOutcome {
    /// Every item was acknowledged.
    pub fn all_delivered() -> Self {
        Self::default()
    }
    /// Some items were refused.
    pub fn partial(rejected: Vec<ItemRejection>) -> Self {
        Self {
            rejected,
            held: Vec::new(),
        }
    }
    /// Marks these items as held by the exporter (see [`ExportOutcome::held`]).
    pub fn with_held(mut self, held: Vec<usize>) -> Self {
        self.held = held;
        self
    }
}

/// Settles events an exporter holds (see [`ExportOutcome::held`]): each held
/// event is pending until it is counted here exactly once, as delivered or
/// lost with a reason. Cheap to clone.
///
/// Prefer [`Custody::delivered_events`] and [`Custody::lost_events`], which
/// name the events (by the `Arc`s the exporter received in `export`): each
/// outcome then reaches the reports its event belongs to, so a
/// `flush_trace` of the event's trace stays exact. [`Custody::delivered`] and
/// [`Custody::lost`] settle by count, the events held longest first.
///
/// Events still held when shutdown ends are counted dropped (`FlushTimeout`)
/// by the pipeline, like any other pending event.
#[derive(Clone)]
pub struct Custody {
    settle: Option<Settle>,
}

/// Where a [`Custody`] reports (the exporter's accounting in the worker).
pub(crate) type Settle = Arc<dyn Fn(Settlement<'_>) + Send + Sync>;

/// One settlement of held events, as [`Custody`] reports it to the pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Settlement<'a> {
    /// The `n` events held longest.
    Oldest(usize, Outcome<'a>),
    /// These events.
    Events(&'a [Arc<ObservabilityEvent>], Outcome<'a>),
}

/// How held events ended.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    Delivered,
    Lost(crate::stats::DropReason, &'a str),
}

impl Custody {
    pub(crate) fn new(settle: Settle) -> Self {
        Self {
            settle: Some(settle),
        }
    }
    /// A custody that reports nowhere: what an exporter sees outside a pipeline.
    pub fn detached() -> Self {
        Self { settle: None }
    }
    /// `n` held events were acknowledged by the destination (the `n` held
    /// longest; more than are held counts as all of them).
    pub fn delivered(&self, n: usize) {
        if let (Some(s), true) = (&self.settle, n > 0) {
            s(Settlement::Oldest(n, Outcome::Delivered));
        }
    }
    /// `n` held events were lost for `reason` (`PermanentError` when the
    /// destination refused them, `RetriesExhausted` when it kept failing).
    pub fn lost(&self, reason: crate::stats::DropReason, n: usize, detail: &str) {
        if let (Some(s), true) = (&self.settle, n > 0) {
            s(Settlement::Oldest(n, Outcome::Lost(reason, detail)));
        }
    }
    /// These held events were acknowledged by the destination. Events not
    /// held (or already settled) are ignored.
    pub fn delivered_events(&self, events: &[Arc<ObservabilityEvent>]) {
        if let (Some(s), false) = (&self.settle, events.is_empty()) {
            s(Settlement::Events(events, Outcome::Delivered));
        }
    }
    /// These held events were lost for `reason`. Events not held (or
    /// already settled) are ignored.
    pub fn lost_events(
        &self,
        events: &[Arc<ObservabilityEvent>],
        reason: crate::stats::DropReason,
        detail: &str,
    ) {
        if let (Some(s), false) = (&self.settle, events.is_empty()) {
            s(Settlement::Events(events, Outcome::Lost(reason, detail)));
        }
    }
}

impl Debug for Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Custody")
            .field("attached", &self.settle.is_some())
            .finish()
    }
}

/// What an exporter is told when the pipeline starts ([`Exporter::init`]).
///
/// Keep a clone if the exporter calls blocking code: [`ExporterContext::run_blocking`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExporterContext {
    /// The service name configured on the builder.
    pub service_name: String,
    /// Where this exporter settles the events it holds (see [`ExportOutcome::held`]).
    pub custody: Custody,
    blocking: Arc<BlockingCalls>,
    attempt_timeout: Duration,
    timers: Timers,
}

impl ExporterContext {
    pub(crate) fn new(service_name: String) -> Self {
        Self {
            service_name,
            // Each worker attaches its own.
            custody: Custody::detached(),
            blocking: Arc::default(),
            attempt_timeout: RetryPolicy::default().attempt_timeout,
            timers: Timers::DeadlineThread,
        }
    }

    /// The context one exporter's worker hands to it.
    pub(crate) fn for_exporter(
        &self,
        custody: Custody,
        attempt_timeout: Duration,
        timers: Timers,
    ) -> Self {
        Self {
            service_name: self.service_name.clone(),
            custody,
            blocking: Arc::default(),
            attempt_timeout,
            timers,
        }
    }

    /// Runs blocking code — a synchronous vendor SDK call, a DNS lookup, a
    /// large compression — on a thread where blocking is allowed, and awaits
    /// its result without blocking the exporter's worker.
    ///
    /// The worker stays responsive meanwhile (its timers, its attempt
    /// timeout, and in [`RuntimeMode::Handle`](crate::RuntimeMode::Handle) and
    /// [`RuntimeMode::Inline`](crate::RuntimeMode::Inline) the other tasks on
    /// the same thread). The closure runs on tokio's blocking pool when a
    /// tokio runtime is current, else on a thread of its own.
    ///
    /// # Errors
    ///
    /// A [`Transient`](ErrorClass::Transient) error when the closure does not
    /// return within the exporter's [`RetryPolicy::attempt_timeout`] (it keeps
    /// running — a thread cannot be stopped — and its result is dropped), or
    /// when [`MAX_RUNNING_BLOCKING_CALLS`] calls of this exporter are already
    /// running (so a hung vendor call cannot make it start thread after
    /// thread). A panic in the closure resumes in the caller, where the
    /// worker counts the batch `ExporterPanicked`.
    ///
    /// ```
    /// use aiobs_core::{ExportError, ExporterContext};
    ///
    /// // In `Exporter::init`, keep the context: `self.ctx.set(ctx.clone())`.
    /// async fn send(ctx: &ExporterContext, body: Vec<u8>) -> Result<usize, ExportError> {
    ///     ctx.run_blocking(move || {
    ///         // e.g. a vendor SDK's synchronous `send_envelope(body)`
    ///         body.len()
    ///     })
    ///     .await
    /// }
    /// ```
    pub async fn run_blocking<R, F>(&self, f: F) -> Result<R, ExportError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.blocking
            .run(self.attempt_timeout, self.timers, f)
            .await
    }
}

/// At most this many [`ExporterContext::run_blocking`] calls of one exporter
/// run at once (the one awaited and those that outlived their timeout).
pub const MAX_RUNNING_BLOCKING_CALLS: usize = crate::bus::blocking::MAX_RUNNING_BLOCKING_CALLS;

/// A destination for events.
///
/// `export` must return only once the destination has acknowledged the batch
/// (HTTP 2xx, committed transaction, ...): the pipeline's promise that a
/// returned `flush` means *delivered* rests on it. `flush` and `shutdown` have
/// no default bodies on purpose: each exporter states what they mean for it.
#[async_trait]
pub trait Exporter: Send + Sync + Debug + 'static {
    /// A short stable name (`sqlite`, `langfuse`, ...), used in stats and as
    /// the metadata key for exporter-specific settings.
    fn name(&self) -> &str;

    /// The events this exporter wants; others never reach its queue.
    fn signals(&self) -> Signals;

    /// How to batch events for this exporter.
    fn batch_policy(&self) -> BatchPolicy;

    /// How to retry failed exports.
    fn retry_policy(&self) -> RetryPolicy;

    /// Called once before the first export (connect, migrate, probe `/info`).
    /// A `Disabled` error disables the exporter; others are retried at the first export.
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError>;

    /// Pushes one batch and returns when the destination acknowledged it.
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError>;

    /// Pushes anything the exporter itself still buffers (a vendor SDK queue)
    /// and returns when it is acknowledged, or the deadline passes.
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError>;

    /// Flushes, then releases resources. Called once.
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError>;
}

macro_rules! forward_exporter {
    ($ty:ty) => {
        #[async_trait]
        impl<E: Exporter + ?Sized> Exporter for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn signals(&self) -> Signals {
                (**self).signals()
            }
            fn batch_policy(&self) -> BatchPolicy {
                (**self).batch_policy()
            }
            fn retry_policy(&self) -> RetryPolicy {
                (**self).retry_policy()
            }
            async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
                (**self).init(ctx).await
            }
            async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
                (**self).export(batch).await
            }
            async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
                (**self).flush(deadline).await
            }
            async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
                (**self).shutdown(deadline).await
            }
        }
    };
}

// Every method is forwarded: a wrapper that silently drops `flush` is the bug
// this project exists to avoid.
forward_exporter!(Arc<E>);
forward_exporter!(Box<E>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default()
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(1))
            .with_jitter(0.0);
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
        assert_eq!(p.backoff(4), Duration::from_secs(1));
        assert_eq!(p.backoff(200), Duration::from_secs(1));
        let j = p.with_jitter(0.5);
        for _ in 0..100 {
            let b = j.backoff(1);
            assert!(
                b >= Duration::from_millis(100) && b <= Duration::from_millis(300),
                "{b:?}"
            );
        }
    }
}
