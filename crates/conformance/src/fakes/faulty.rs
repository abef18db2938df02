//! `FaultyExporter`: an exporter whose every `export` call does what a
//! decision says: deliver, fail, reject some items, wait, hang or panic.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    InMemoryExporter, ItemRejection, RetryPolicy, Signals, async_trait,
};

/// What one `export` call of a [`FaultyExporter`] does.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Decision {
    /// Forward the whole batch to the inner exporter and return its outcome.
    Deliver,
    /// Return an error of this class; nothing reaches the inner exporter.
    Fail(ErrorClass),
    /// Refuse the items at these batch indexes with these classes, forward
    /// the rest to the inner exporter (a 207 multi-status).
    Reject(Vec<(usize, ErrorClass)>),
    /// Return `Ok` without forwarding anything: a *broken* exporter that
    /// swallows events. For testing that tests catch it.
    Discard,
    /// Wait this long, then do the inner decision (artificial latency).
    Delay(Duration, Box<Decision>),
    /// Never return (until the pipeline gives up on the call and drops it).
    Hang,
    /// Panic inside `export`.
    Panic,
}

impl Decision {
    /// `Delay(after, then)`.
    pub fn delayed(after: Duration, then: Decision) -> Self {
        Self::Delay(after, Box::new(then))
    }
    /// `Fail(Transient)`.
    pub fn transient() -> Self {
        Self::Fail(ErrorClass::Transient)
    }
    /// `Fail(Permanent)`.
    pub fn permanent() -> Self {
        Self::Fail(ErrorClass::Permanent)
    }
    /// `Fail(Throttled(retry_after))`.
    pub fn throttled(retry_after: Option<Duration>) -> Self {
        Self::Fail(ErrorClass::Throttled(retry_after))
    }
}

/// What a decision function sees: which call this is and its batch.
#[derive(Debug)]
#[non_exhaustive]
pub struct ExportCall<'a> {
    /// 0 for the first `export` call, then 1, 2, ...
    pub index: usize,
    /// The batch passed to `export`.
    pub batch: &'a ExportBatch,
}

type DecideFn = dyn Fn(&ExportCall<'_>) -> Decision + Send + Sync;

/// Wraps an exporter (by default an [`InMemoryExporter`]) and decides, per
/// `export` call, what happens: first from a queue of scripted decisions,
/// then from a decision function (by default: deliver).
///
/// Clones share the queue, the counters and the inner exporter.
///
/// ```
/// use std::time::Duration;
/// use aiobs_conformance::fakes::{Decision, FaultyExporter};
/// use aiobs_conformance::kit_retry_policy;
/// use aiobs_core::{Observability, SpanOptions, SpanType};
///
/// // Two transient failures, then every call delivers to an in-memory store.
/// let faulty = FaultyExporter::in_memory().with_retry_policy(kit_retry_policy());
/// faulty.push(Decision::transient()).push(Decision::transient());
/// let obs = Observability::builder().exporter(faulty.clone()).build()?;
/// obs.start_span(SpanOptions::new("work", SpanType::Generic)).end();
/// let report = obs.flush_blocking(Duration::from_secs(10));
/// assert!(report.is_success(), "{report}");
/// assert_eq!(faulty.inner().ended_spans().len(), 1);
/// assert_eq!(faulty.calls(), 3);
/// # Ok::<(), aiobs_core::BuildError>(())
/// ```
#[derive(Clone)]
pub struct FaultyExporter<E: Exporter = InMemoryExporter> {
    inner: Arc<E>,
    queue: Arc<Mutex<VecDeque<Decision>>>,
    decide: Arc<DecideFn>,
    calls: Arc<AtomicUsize>,
    retry: Option<RetryPolicy>,
}

impl<E: Exporter> fmt::Debug for FaultyExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyExporter")
            .field("inner", &self.inner)
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl FaultyExporter<InMemoryExporter> {
    /// Delivers to a fresh [`InMemoryExporter`] (read it with [`FaultyExporter::inner`]).
    pub fn in_memory() -> Self {
        Self::wrap(InMemoryExporter::new())
    }
}

impl<E: Exporter> FaultyExporter<E> {
    /// Wraps `inner`; until told otherwise every call delivers.
    pub fn wrap(inner: E) -> Self {
        Self {
            inner: Arc::new(inner),
            queue: Arc::default(),
            decide: Arc::new(|_: &ExportCall<'_>| Decision::Deliver),
            calls: Arc::default(),
            retry: None,
        }
    }

    /// Decides with `f` whenever the queue of scripted decisions is empty.
    #[must_use]
    pub fn decide_with(
        mut self,
        f: impl Fn(&ExportCall<'_>) -> Decision + Send + Sync + 'static,
    ) -> Self {
        self.decide = Arc::new(f);
        self
    }

    /// Reports this retry policy instead of the inner exporter's (short
    /// backoffs keep tests fast).
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Queues a decision for the next call that has none.
    pub fn push(&self, decision: Decision) -> &Self {
        self.queue().push_back(decision);
        self
    }

    /// The wrapped exporter.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// How many times `export` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Decision>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_decision(&self, call: &ExportCall<'_>) -> Decision {
        let queued = self.queue().pop_front();
        queued.unwrap_or_else(|| (self.decide)(call))
    }

    async fn apply(
        &self,
        decision: Decision,
        batch: &ExportBatch,
    ) -> Result<ExportOutcome, ExportError> {
        let mut decision = decision;
        loop {
            match decision {
                Decision::Delay(after, then) => {
                    tokio::time::sleep(after).await;
                    decision = *then;
                }
                Decision::Deliver => return self.inner.export(batch).await,
                Decision::Fail(class) => {
                    return Err(ExportError::new(class, "injected failure (FaultyExporter)"));
                }
                Decision::Reject(rejections) => return self.reject(batch, rejections).await,
                Decision::Discard => return Ok(ExportOutcome::all_delivered()),
                Decision::Hang => return std::future::pending().await,
                Decision::Panic => panic!("injected panic (FaultyExporter)"),
            }
        }
    }

    /// Forwards the accepted items and reports the refused ones at their
    /// indexes in the original batch.
    async fn reject(
        &self,
        batch: &ExportBatch,
        rejections: Vec<(usize, ErrorClass)>,
    ) -> Result<ExportOutcome, ExportError> {
        let refused = |i: usize| rejections.iter().any(|(r, _)| *r == i);
        let kept: Vec<usize> = (0..batch.len()).filter(|i| !refused(*i)).collect();
        let accepted: Vec<_> = kept.iter().map(|i| batch[*i].clone()).collect();
        let mut rejected: Vec<ItemRejection> = rejections
            .iter()
            .filter(|(i, _)| *i < batch.len())
            .map(|(i, class)| ItemRejection {
                index: *i,
                class: *class,
                message: format!("injected rejection (FaultyExporter) of item {i}"),
            })
            .collect();
        if !accepted.is_empty() {
            let inner = self.inner.export(&accepted).await?;
            // The inner exporter's own rejections refer to `accepted`: map them back.
            rejected.extend(inner.rejected.into_iter().filter_map(|mut r| {
                r.index = *kept.get(r.index)?;
                Some(r)
            }));
        }
        Ok(ExportOutcome::partial(rejected))
    }
}

#[async_trait]
impl<E: Exporter> Exporter for FaultyExporter<E> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signals(&self) -> Signals {
        self.inner.signals()
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.inner.batch_policy()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or_else(|| self.inner.retry_policy())
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        self.inner.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let index = self.calls.fetch_add(1, Ordering::AcqRel);
        let decision = self.next_decision(&ExportCall { index, batch });
        self.apply(decision, batch).await
    }
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        self.inner.flush(deadline).await
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        self.inner.shutdown(deadline).await
    }
}
