//! Timers the pipeline can rely on whatever runtime it runs on.
//!
//! On the runtimes the pipeline builds itself (its own threads) tokio's timer
//! is used. On a runtime it does not own ([`RuntimeMode::Handle`],
//! [`RuntimeMode::Inline`], or no tokio runtime at all) tokio's timer may be
//! disabled — and calling it then panics — so the pipeline uses the *deadline
//! thread* instead: one process-wide thread that sleeps until the earliest
//! registered deadline and wakes its future. It runs no user code, so no
//! exporter or processor can stop it from firing: every caller-side deadline
//! (`flush`, `shutdown`, `flush_trace`) is enforced by it or by a `Condvar`.
//!
//! [`RuntimeMode::Handle`]: super::RuntimeMode::Handle
//! [`RuntimeMode::Inline`]: super::RuntimeMode::Inline

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Which timer a piece of the pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timers {
    /// tokio's timer: only on runtimes the pipeline built with `enable_time`.
    Tokio,
    /// The process-wide deadline thread: works on any executor.
    DeadlineThread,
}

/// The deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

impl Timers {
    /// Completes at `at`.
    pub(crate) fn sleep_until(self, at: Instant) -> Sleep {
        match self {
            Timers::Tokio => Sleep::Tokio(Box::pin(tokio::time::sleep_until(
                tokio::time::Instant::from_std(at),
            ))),
            Timers::DeadlineThread => Sleep::Thread(ThreadSleep { at, id: None }),
        }
    }

    /// Runs `f` until it completes or `at` passes.
    pub(crate) async fn timeout_at<F: Future>(
        self,
        at: Instant,
        f: F,
    ) -> Result<F::Output, Elapsed> {
        let f = std::pin::pin!(f);
        let sleep = self.sleep_until(at);
        match futures_util::future::select(f, sleep).await {
            futures_util::future::Either::Left((out, _)) => Ok(out),
            futures_util::future::Either::Right(((), _)) => Err(Elapsed),
        }
    }
}

/// A sleep on either timer.
pub(crate) enum Sleep {
    Tokio(Pin<Box<tokio::time::Sleep>>),
    Thread(ThreadSleep),
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut() {
            Sleep::Tokio(s) => s.as_mut().poll(cx),
            Sleep::Thread(s) => Pin::new(s).poll(cx),
        }
    }
}

/// A sleep registered with the deadline thread; unregistered when dropped.
pub(crate) struct ThreadSleep {
    at: Instant,
    id: Option<u64>,
}

impl Future for ThreadSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.at {
            if let Some(id) = self.id.take() {
                deadline_thread().cancel(self.at, id);
            }
            return Poll::Ready(());
        }
        let Some(thread) = deadline_thread_started() else {
            // The thread could not start (resource limits): never wait
            // forever — the deadline counts as passed.
            return Poll::Ready(());
        };
        let id = *self.id.get_or_insert_with(|| thread.next_id());
        thread.register(self.at, id, cx.waker());
        Poll::Pending
    }
}

impl Drop for ThreadSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            deadline_thread().cancel(self.at, id);
        }
    }
}

/// The process-wide deadline thread's state.
struct DeadlineThread {
    wakers: Mutex<BTreeMap<(Instant, u64), Waker>>,
    changed: Condvar,
    ids: AtomicU64,
    started: OnceLock<bool>,
}

fn deadline_thread() -> &'static DeadlineThread {
    static THREAD: DeadlineThread = DeadlineThread {
        wakers: Mutex::new(BTreeMap::new()),
        changed: Condvar::new(),
        ids: AtomicU64::new(0),
        started: OnceLock::new(),
    };
    &THREAD
}

/// The deadline thread, started on first use; `None` if it could not start.
fn deadline_thread_started() -> Option<&'static DeadlineThread> {
    let t = deadline_thread();
    let started = *t.started.get_or_init(|| {
        std::thread::Builder::new()
            .name("aiobs-deadlines".into())
            .spawn(|| deadline_thread().run())
            .is_ok()
    });
    started.then_some(t)
}

impl DeadlineThread {
    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    fn register(&self, at: Instant, id: u64, waker: &Waker) {
        let mut w = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let earliest = w.keys().next().map(|(t, _)| *t);
        match w.get_mut(&(at, id)) {
            Some(old) if old.will_wake(waker) => return,
            Some(old) => old.clone_from(waker),
            None => {
                w.insert((at, id), waker.clone());
            }
        }
        if earliest.is_none_or(|e| at < e) {
            self.changed.notify_one();
        }
    }

    fn cancel(&self, at: Instant, id: u64) {
        let mut w = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        w.remove(&(at, id));
    }

    fn run(&self) {
        let mut due = Vec::new();
        let mut w = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = Instant::now();
            while let Some(entry) = w.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                // Wake outside the lock: a waker may run user code.
                drop(w);
                for waker in due.drain(..) {
                    waker.wake();
                }
                w = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            w = match w.keys().next().map(|(t, _)| *t) {
                None => self.changed.wait(w).unwrap_or_else(PoisonError::into_inner),
                Some(at) => {
                    self.changed
                        .wait_timeout(w, at.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_deadline_thread_fires_without_any_tokio_runtime() {
        let start = Instant::now();
        let at = start + Duration::from_millis(30);
        crate::bus::blocking::block_on(Timers::DeadlineThread.sleep_until(at));
        let late = start.elapsed().saturating_sub(Duration::from_millis(30));
        assert!(Instant::now() >= at);
        assert!(late < Duration::from_millis(200), "fired {late:?} late");
    }

    #[test]
    fn a_timeout_returns_the_value_when_it_is_ready_first_and_unregisters() {
        let at = Instant::now() + Duration::from_secs(60);
        let v = crate::bus::blocking::block_on(Timers::DeadlineThread.timeout_at(at, async { 7 }));
        assert_eq!(v, Ok(7));
        let pending = crate::bus::blocking::block_on(Timers::DeadlineThread.timeout_at(
            Instant::now() + Duration::from_millis(10),
            std::future::pending::<()>(),
        ));
        assert_eq!(pending, Err(Elapsed));
        let registered = deadline_thread()
            .wakers
            .lock()
            .unwrap()
            .keys()
            .filter(|(t, _)| *t == at)
            .count();
        assert_eq!(
            registered, 0,
            "a finished timeout left its deadline registered"
        );
    }
}
