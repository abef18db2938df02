//! Spent span data goes back to be freed by an application thread.
//!
//! Measured (docs/benchmarks.md): freeing on the pipeline thread what an
//! application thread allocated made glibc's allocator serialise both threads
//! on one arena lock (futex storms), and made mimalloc fault in fresh pages on
//! the application side. Emitting threads already touch this bin's length on
//! every push; when it is worth it they take the bin and keep the span
//! allocations in a small per-thread pool, so the next spans they start reuse
//! them instead of asking the allocator again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::event::ObservabilityEvent;
use crate::span::ExportedSpan;

/// Span allocations kept per thread for reuse.
const POOL_SIZE: usize = 1024;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Arc<ExportedSpan>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A pooled span allocation of this thread, if it has one that nobody else
/// holds. The caller overwrites its fields in place: each old value is freed
/// just before a new one takes its place, so the allocator hands the freed
/// memory straight back (glibc's per-thread cache holds only a few chunks of
/// each size, and freeing a thousand spans at once overflows it).
#[inline]
pub(crate) fn pooled() -> Option<Arc<ExportedSpan>> {
    let mut arc = POOL.with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))?;
    Arc::get_mut(&mut arc).is_some().then_some(arc)
}

/// Below this, emitting threads leave the bin alone.
const COLLECT_AT: usize = 512;
/// From this, an emitting thread frees what its pool has no room for.
const FREE_AT: usize = 4096;
/// Above this the pipeline frees spans itself (nobody is emitting).
const MAX_HELD: usize = 16_384;

#[derive(Debug, Default)]
pub(crate) struct Recycler {
    bin: Mutex<Vec<Arc<ExportedSpan>>>,
    len: AtomicUsize,
}

impl Recycler {
    /// Called by workers with spans whose export is terminal.
    pub(crate) fn put(&self, spans: &mut Vec<Arc<ExportedSpan>>) {
        if spans.is_empty() {
            return;
        }
        if self.len.load(Ordering::Relaxed) >= MAX_HELD {
            spans.clear();
            return;
        }
        if let Ok(mut bin) = self.bin.lock() {
            bin.append(spans);
            self.len.store(bin.len(), Ordering::Relaxed);
        }
        spans.clear();
    }

    /// Called on emitting threads: moves spans from the bin into this
    /// thread's pool, as many as it has room for. The rest stay in the bin for
    /// later calls, unless the bin holds `FREE_AT` or more (this thread ends
    /// more spans than it starts): then they are freed here.
    pub(crate) fn collect(&self) {
        let len = self.len.load(Ordering::Relaxed);
        if len < COLLECT_AT {
            return;
        }
        let room = POOL.with(|p| {
            p.try_borrow()
                .map_or(0, |p| POOL_SIZE.saturating_sub(p.len()))
        });
        let free_rest = len >= FREE_AT;
        if room < COLLECT_AT && !free_rest {
            return;
        }
        let mut taken = match self.bin.try_lock() {
            Ok(mut bin) => {
                let from = if free_rest {
                    0
                } else {
                    bin.len().saturating_sub(room)
                };
                let taken = bin.split_off(from);
                self.len.store(bin.len(), Ordering::Relaxed);
                taken
            }
            Err(_) => return,
        };
        POOL.with(|p| {
            if let Ok(mut pool) = p.try_borrow_mut() {
                let keep = taken.len().min(room);
                pool.extend(taken.drain(..keep));
            }
        });
        // The rest is freed here, on the thread that most likely allocated it.
        drop(taken);
    }
}

/// Events whose export is terminal, handed back by the workers to be freed
/// on the router's thread, which allocated their shells: freeing them on a
/// worker's thread would make glibc lock the router's arena for every event.
#[derive(Debug, Default)]
pub(crate) struct Returned {
    bin: Mutex<Vec<Arc<ObservabilityEvent>>>,
    len: AtomicUsize,
}

/// From this many events held, a worker wakes the router to free them.
const RETURN_WAKE_AT: usize = 8192;

impl Returned {
    /// A worker hands back events it is done with. Returns whether the
    /// router should be woken to free them.
    pub(crate) fn put(&self, events: &mut Vec<Arc<ObservabilityEvent>>) -> bool {
        if events.is_empty() {
            return false;
        }
        let mut bin = self.bin.lock().unwrap_or_else(PoisonError::into_inner);
        if bin.is_empty() {
            // Keep the worker's allocation: it is refilled next batch.
            std::mem::swap(&mut *bin, events);
        } else {
            bin.append(events);
        }
        let len = bin.len();
        self.len.store(len, Ordering::Relaxed);
        len >= RETURN_WAKE_AT
    }

    /// The router frees what was handed back; span allocations go on to the
    /// recycler for the emitting threads.
    pub(crate) fn free(&self, recycler: &Recycler, scratch: &mut Vec<Arc<ObservabilityEvent>>) {
        if self.len.load(Ordering::Relaxed) == 0 {
            return;
        }
        {
            let mut bin = self.bin.lock().unwrap_or_else(PoisonError::into_inner);
            std::mem::swap(&mut *bin, scratch);
            self.len.store(0, Ordering::Relaxed);
        }
        let mut spent = Vec::with_capacity(scratch.len());
        for ev in scratch.drain(..) {
            // The last holder of an event unwraps it.
            if let Some(ObservabilityEvent::Span { span, .. }) = Arc::into_inner(ev) {
                spent.push(span);
            }
        }
        recycler.put(&mut spent);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::id::{SpanId, TraceId};
    use crate::span::SpanType;

    fn spans(n: usize) -> Vec<Arc<ExportedSpan>> {
        (0..n)
            .map(|_| {
                Arc::new(ExportedSpan::new(
                    TraceId::random(),
                    SpanId::random(),
                    Cow::Borrowed("s"),
                    SpanType::ToolCall,
                ))
            })
            .collect()
    }

    #[test]
    fn returned_events_are_freed_by_the_router_and_their_spans_recycled() {
        let returned = Returned::default();
        let recycler = Recycler::default();
        let mut events: Vec<Arc<ObservabilityEvent>> = spans(3)
            .into_iter()
            .map(|span| {
                Arc::new(ObservabilityEvent::Span {
                    kind: crate::event::SpanEventKind::Ended,
                    span,
                })
            })
            .collect();
        let shared = events[0].clone(); // another exporter still holds it
        assert!(!returned.put(&mut events));
        assert!(events.is_empty());
        let mut scratch = Vec::new();
        returned.free(&recycler, &mut scratch);
        assert_eq!(
            recycler.len.load(Ordering::Relaxed),
            2,
            "the shared one is not the last holder"
        );
        drop(shared);
    }

    fn pool_len() -> usize {
        POOL.with(|p| p.borrow().len())
    }

    #[test]
    fn a_thread_takes_what_its_pool_holds_and_frees_only_a_large_remainder() {
        std::thread::spawn(|| {
            let r = Recycler::default();
            r.put(&mut spans(COLLECT_AT - 1));
            r.collect();
            assert_eq!(pool_len(), 0, "below COLLECT_AT the bin is left alone");

            r.put(&mut spans(POOL_SIZE + 1));
            r.collect();
            assert_eq!(pool_len(), POOL_SIZE);
            let left = COLLECT_AT;
            assert_eq!(
                r.len.load(Ordering::Relaxed),
                left,
                "the rest waits in the bin"
            );

            // A full pool takes nothing more until the bin reaches FREE_AT...
            r.collect();
            assert_eq!(r.len.load(Ordering::Relaxed), left);
            // ...and then frees the remainder on this thread.
            r.put(&mut spans(FREE_AT));
            r.collect();
            assert_eq!(r.len.load(Ordering::Relaxed), 0);
            assert_eq!(pool_len(), POOL_SIZE);

            // Pooled allocations are handed out only when nobody else holds them.
            let shared = POOL.with(|p| p.borrow().last().cloned()).unwrap();
            assert!(
                pooled().is_none(),
                "a span still held elsewhere is not reused"
            );
            drop(shared);
            assert!(pooled().is_some());
        })
        .join()
        .unwrap();
    }
}
