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
use std::sync::{Arc, Mutex};

use crate::span::ExportedSpan;

/// Span allocations kept per thread for reuse.
const POOL_SIZE: usize = 1024;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Arc<ExportedSpan>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A span allocation to reuse, if this thread has one: its old content is
/// dropped when the caller overwrites it.
#[inline]
pub(crate) fn reuse(data: ExportedSpan) -> Arc<ExportedSpan> {
    let pooled = POOL.with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()));
    match pooled {
        Some(mut arc) => match Arc::get_mut(&mut arc) {
            Some(slot) => {
                *slot = data;
                arc
            }
            None => Arc::new(data),
        },
        None => Arc::new(data),
    }
}

/// Below this, emitting threads leave the bin alone.
const COLLECT_AT: usize = 512;
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

    /// Called on emitting threads: frees a full bin here.
    pub(crate) fn collect(&self) {
        if self.len.load(Ordering::Relaxed) < COLLECT_AT {
            return;
        }
        let mut taken = match self.bin.try_lock() {
            Ok(mut bin) => {
                self.len.store(0, Ordering::Relaxed);
                std::mem::take(&mut *bin)
            }
            Err(_) => return,
        };
        POOL.with(|p| {
            if let Ok(mut pool) = p.try_borrow_mut() {
                let room = POOL_SIZE.saturating_sub(pool.len());
                let keep = taken.len().min(room);
                pool.extend(taken.drain(..keep));
            }
        });
        // The rest is freed here, on the thread that most likely allocated it.
        drop(taken);
    }
}
