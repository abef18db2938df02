//! Spent span data goes back to be freed by an application thread.
//!
//! Measured (docs/benchmarks.md): freeing on the pipeline thread what an
//! application thread allocated made glibc's allocator serialise both threads
//! on one arena lock (futex storms), and made mimalloc fault in fresh pages on
//! the application side. Emitting threads already touch this bin's length on
//! every push; when it is worth it they take the bin and drop it themselves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::span::ExportedSpan;

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
        let taken = match self.bin.try_lock() {
            Ok(mut bin) => {
                self.len.store(0, Ordering::Relaxed);
                std::mem::take(&mut *bin)
            }
            Err(_) => return,
        };
        drop(taken);
    }
}
