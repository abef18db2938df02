//! The ingress queue: where the application's threads hand events to the pipeline.
//!
//! It is sharded by thread so that emitting never contends on one global lock,
//! and the router drains every shard in one pass (a batch per wake-up rather
//! than a channel hop per event). Closing happens under each shard's lock, so
//! an event is either drained by the router or refused as `AfterShutdown`:
//! never stranded.

use std::sync::Mutex;

use super::ledger::lock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use std::sync::Arc;

use crate::event::{ObservabilityEvent, SpanEventKind};
use crate::span::ExportedSpan;

/// An event waiting in the ingress: spans (the hot path) inline, other records
/// boxed, so the queue moves 24 bytes per span rather than a 200-byte enum.
pub(crate) enum Queued {
    Span(SpanEventKind, Arc<ExportedSpan>),
    Record(Box<ObservabilityEvent>),
}

impl From<ObservabilityEvent> for Queued {
    fn from(event: ObservabilityEvent) -> Self {
        match event {
            ObservabilityEvent::Span { kind, span } => Queued::Span(kind, span),
            other => Queued::Record(Box::new(other)),
        }
    }
}

impl Queued {
    pub(crate) fn signal(&self) -> crate::event::Signal {
        match self {
            Queued::Span(SpanEventKind::Started, _) => crate::event::Signal::SpanStarted,
            Queued::Span(SpanEventKind::Updated, _) => crate::event::Signal::SpanUpdated,
            Queued::Span(SpanEventKind::Ended, _) => crate::event::Signal::SpanEnded,
            Queued::Record(event) => event.signal(),
        }
    }
    pub(crate) fn trace_id(&self) -> Option<crate::id::TraceId> {
        match self {
            Queued::Span(_, span) => Some(span.trace_id),
            Queued::Record(event) => event.trace_id(),
        }
    }
    pub(crate) fn into_event(self) -> ObservabilityEvent {
        match self {
            Queued::Span(kind, span) => ObservabilityEvent::Span { kind, span },
            Queued::Record(event) => *event,
        }
    }
}

#[derive(Default)]
struct Shard {
    events: Vec<Queued>,
    /// Events ever pushed into this shard (pipeline `accepted`, counted under the lock).
    pushed: u64,
    closed: bool,
}

/// Why a push was refused. The event comes back: a full queue's for the
/// `Block` policy to retry, either for its loss to be counted.
pub(crate) enum Refused {
    Full(Queued),
    Closed(Queued),
}

pub(crate) struct Ingress {
    shards: Box<[Mutex<Shard>]>,
    capacity_per_shard: usize,
    has_data: AtomicBool,
    pub(crate) wake: Notify,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress")
            .field("shards", &self.shards.len())
            .finish()
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
}

impl Ingress {
    pub(crate) fn new(capacity: usize) -> Self {
        let n = std::thread::available_parallelism()
            .map_or(4, |p| p.get() * 2)
            .next_power_of_two()
            .clamp(2, 64);
        Self {
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            capacity_per_shard: (capacity / n).max(1),
            has_data: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn shard(&self) -> &Mutex<Shard> {
        let i = THREAD_INDEX.with(|i| *i) & (self.shards.len() - 1);
        &self.shards[i]
    }

    pub(crate) fn push(&self, event: Queued) -> Result<(), Refused> {
        {
            let mut s = lock(self.shard());
            if s.closed {
                return Err(Refused::Closed(event));
            }
            if s.events.len() >= self.capacity_per_shard {
                return Err(Refused::Full(event));
            }
            s.events.push(event);
            s.pushed += 1;
        }
        // Wake the router once per batch, not once per event.
        if !self.has_data.load(Ordering::SeqCst) && !self.has_data.swap(true, Ordering::SeqCst) {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Retries a full push until `timeout` (the `Block` overflow policy).
    pub(crate) fn push_blocking(
        &self,
        mut event: Queued,
        timeout: Duration,
    ) -> Result<(), Refused> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            match self.push(event) {
                Err(Refused::Full(e)) if Instant::now() < deadline => {
                    event = e;
                    self.wake.notify_one();
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_millis(2));
                }
                other => return other,
            }
        }
    }

    /// Marks the router idle: the next push wakes it. The router must drain
    /// once more after this, so that a push racing with it is not stranded.
    pub(crate) fn set_idle(&self) {
        self.has_data.store(false, Ordering::SeqCst);
    }

    /// Moves every queued event into `out`. Returns how many.
    pub(crate) fn drain_into(&self, out: &mut Vec<Queued>) -> usize {
        let before = out.len();
        for shard in self.shards.iter() {
            out.append(&mut lock(shard).events);
        }
        out.len() - before
    }

    /// Refuses every later push. What is queued stays for the router's last drain.
    pub(crate) fn close(&self) {
        for shard in self.shards.iter() {
            lock(shard).closed = true;
        }
    }

    /// Events ever accepted into the queue.
    pub(crate) fn pushed(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).pushed).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TraceId;
    use crate::bus::test_support::ended;

    #[test]
    fn a_full_or_closed_ingress_hands_the_event_back_and_drains_what_it_took() {
        let ingress = Ingress::new(2);
        let per_shard = ingress.capacity_per_shard;
        let trace = TraceId::random();
        for _ in 0..per_shard {
            assert!(ingress.push(ended(trace, "ok")).is_ok());
        }
        match ingress.push(ended(trace, "one too many")) {
            Err(Refused::Full(q)) => assert_eq!(q.trace_id(), Some(trace)),
            _ => panic!("a full shard must refuse and hand the event back"),
        }
        ingress.close();
        match ingress.push(ended(trace, "late")) {
            Err(Refused::Closed(q)) => {
                assert_eq!(q.signal(), crate::Signal::SpanEnded);
            }
            _ => panic!("a closed ingress must refuse"),
        }
        let mut out = Vec::new();
        assert_eq!(
            ingress.drain_into(&mut out),
            per_shard,
            "what was taken before closing stays"
        );
        assert_eq!(ingress.pushed(), per_shard as u64);
    }
}
