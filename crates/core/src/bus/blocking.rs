//! Blocking on the edges of the pipeline: which threads must never wait for
//! it, running an exporter's blocking vendor code off its worker, and a
//! minimal executor for driving a future on the calling thread.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::timer::Timers;
use crate::exporter::ExportError;

thread_local! {
    static PIPELINE_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as one of the pipeline's own (router or worker).
pub(crate) fn mark_pipeline_thread() {
    PIPELINE_THREAD.with(|t| t.set(true));
}

/// Whether this thread is one the pipeline needs to make progress: waiting
/// for a flush here would wait for ourselves.
pub(crate) fn on_pipeline_thread() -> bool {
    PIPELINE_THREAD.with(Cell::get)
}

/// Why a blocking call (`flush_blocking`, `shutdown_blocking`, guard drop)
/// cannot wait on this thread, if it cannot.
pub(crate) fn cannot_block_here(handle: Option<&tokio::runtime::Handle>) -> Option<String> {
    if on_pipeline_thread() {
        return Some(
            "called on one of the pipeline's own threads (from an exporter or processor): \
             waiting there would wait for itself"
                .into(),
        );
    }
    let pipeline = handle?;
    let current = tokio::runtime::Handle::try_current().ok()?;
    (current.id() == pipeline.id()
        && pipeline.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
        .then(|| {
            "called on the thread that runs the pipeline's current_thread runtime \
             (RuntimeMode::Handle): nothing can be delivered while this call blocks it; \
             await flush()/shutdown() on that runtime instead, or use RuntimeMode::BackgroundThread"
                .into()
        })
}

/// Runs `wait` on this thread, first telling a multi-thread tokio runtime
/// (if this is one of its workers) to move its other tasks elsewhere.
pub(crate) fn wait_here<R>(wait: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// Drives a future to completion on this thread (no I/O reactor, no tokio timer).
#[cfg(test)]
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The blocking calls of one exporter still running, including those that
/// outlived their attempt timeout (a thread cannot be stopped): bounded, so a
/// hung vendor SDK cannot make the pipeline start thread after thread.
#[derive(Debug, Default)]
pub(crate) struct BlockingCalls {
    running: AtomicUsize,
}

/// At most this many blocking calls of one exporter run at once (the one
/// being waited for and those abandoned at their timeout); beyond it new
/// calls fail at once with a transient error.
pub(crate) const MAX_RUNNING_BLOCKING_CALLS: usize = 4;

impl BlockingCalls {
    /// Runs `f` on a thread where blocking is allowed; see
    /// [`ExporterContext::run_blocking`](crate::ExporterContext::run_blocking).
    pub(crate) async fn run<R, F>(
        self: &Arc<Self>,
        timeout: Duration,
        timers: Timers,
        f: F,
    ) -> Result<R, ExportError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let stuck = self.running.load(Ordering::Acquire);
        if stuck >= MAX_RUNNING_BLOCKING_CALLS {
            return Err(ExportError::transient(format!(
                "{stuck} earlier blocking call(s) of this exporter are still running past their \
                 timeout; not starting another"
            )));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let calls = self.clone();
        let job = move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if let Err(unsent) = tx.send(result) {
                // The caller gave up on it: it no longer counts as running.
                drop(unsent);
                calls.running.fetch_sub(1, Ordering::AcqRel);
            }
        };
        let spawned = match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                drop(h.spawn_blocking(job));
                Ok(())
            }
            Err(_) => std::thread::Builder::new()
                .name("aiobs-blocking".into())
                .spawn(job)
                .map(drop),
        };
        if let Err(e) = spawned {
            return Err(ExportError::transient(format!(
                "could not start a thread for a blocking call: {e}"
            )));
        }
        // Counted while it runs; un-counted when its result is taken, or by
        // the job itself when it ends after the caller gave up on it.
        self.running.fetch_add(1, Ordering::AcqRel);
        let mut rx = rx;
        match timers.timeout_at(Instant::now() + timeout, &mut rx).await {
            Ok(Ok(result)) => {
                self.running.fetch_sub(1, Ordering::AcqRel);
                result.map_err(|panic| std::panic::resume_unwind(panic))
            }
            Ok(Err(_)) => {
                self.running.fetch_sub(1, Ordering::AcqRel);
                Err(ExportError::transient(
                    "the blocking call's thread ended without a result",
                ))
            }
            Err(_) => {
                // Closing the receiver makes the job un-count itself when it ends.
                rx.close();
                if let Ok(result) = rx.try_recv() {
                    self.running.fetch_sub(1, Ordering::AcqRel);
                    return result.map_err(|panic| std::panic::resume_unwind(panic));
                }
                Err(ExportError::transient(format!(
                    "blocking call did not return within the attempt timeout ({timeout:?})"
                )))
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn a_blocking_call_runs_off_the_caller_and_returns_its_value() {
        let calls = Arc::new(BlockingCalls::default());
        let caller = std::thread::current().id();
        let ran_on = block_on(calls.run(
            Duration::from_secs(5),
            Timers::DeadlineThread,
            move || std::thread::current().id(),
        ))
        .unwrap();
        assert_ne!(ran_on, caller);
        assert_eq!(calls.running(), 0);
    }

    #[test]
    fn a_call_past_its_timeout_is_abandoned_and_too_many_are_refused() {
        let calls = Arc::new(BlockingCalls::default());
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(std::sync::Mutex::new(gate));
        for _ in 0..MAX_RUNNING_BLOCKING_CALLS {
            let gate = gate.clone();
            let start = Instant::now();
            let r = block_on(calls.run(
                Duration::from_millis(20),
                Timers::DeadlineThread,
                move || {
                    let _released = gate.lock().unwrap().recv();
                },
            ));
            let e = r.unwrap_err();
            assert_eq!(e.class, crate::exporter::ErrorClass::Transient);
            assert!(start.elapsed() < Duration::from_secs(2));
        }
        assert_eq!(calls.running(), MAX_RUNNING_BLOCKING_CALLS);
        let refused = block_on(calls.run(Duration::from_secs(5), Timers::DeadlineThread, || ()));
        assert!(refused.unwrap_err().message.contains("still running"));
        for _ in 0..MAX_RUNNING_BLOCKING_CALLS {
            release.send(()).unwrap();
        }
        let until = Instant::now() + Duration::from_secs(5);
        while calls.running() > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            calls.running(),
            0,
            "abandoned calls un-count themselves when they end"
        );
        assert!(block_on(calls.run(Duration::from_secs(5), Timers::DeadlineThread, || 1)).is_ok());
    }

    #[test]
    fn a_panic_in_the_blocking_call_resumes_in_the_caller() {
        let calls = Arc::new(BlockingCalls::default());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on(
                calls.run(Duration::from_secs(5), Timers::DeadlineThread, || -> u8 {
                    panic!("vendor SDK bug")
                }),
            )
        }));
        assert!(r.is_err());
        assert_eq!(calls.running(), 0);
    }
}
