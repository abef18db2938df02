//! A model-based test of the accounting: random requests emitting spans,
//! global flushes, `flush_trace` calls, a destination that refuses some items,
//! and a stalled exporter whose small queue overflows. After every step:
//!
//! - conservation holds (`accepted == delivered + failed + dropped + pending`);
//! - every report covers exactly its own events: a global flush reports the
//!   fate of every event emitted since the previous global flush, a
//!   `flush_trace(T)` that of every event of T emitted since the previous
//!   `flush_trace(T)` — delivered, refused, or dropped because the queue was
//!   full — nothing more, nothing less;
//! - at the end, the global reports added up equal the totals: no outcome
//!   reported twice, none missed.
//!
//! Each event's true fate is read from the exporter afterwards: acknowledged,
//! refused (its name asks for it), or never seen (dropped before it).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, DropReason, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter,
    ExporterContext, FlushReport, ItemRejection, Observability, RetryPolicy, Signals, Span,
    SpanOptions, SpanType, TraceId, async_trait,
};
use proptest::prelude::*;

const NAME: &str = "model";
const QUEUE: usize = 6;
const DEADLINE: Duration = Duration::from_secs(10);

/// The destination: refuses (permanently) items whose name says so; can be
/// held (stalled) so that its queue fills.
#[derive(Debug, Clone)]
struct Destination {
    acked: Arc<Mutex<HashSet<String>>>,
    refused: Arc<Mutex<HashSet<String>>>,
    open: tokio::sync::watch::Sender<bool>,
}

impl Destination {
    fn new() -> Self {
        Self {
            acked: Arc::default(),
            refused: Arc::default(),
            open: tokio::sync::watch::Sender::new(true),
        }
    }
    fn fate(&self, identity: &str) -> Fate {
        if self.acked.lock().unwrap().contains(identity) {
            Fate::Delivered
        } else if self.refused.lock().unwrap().contains(identity) {
            Fate::Refused
        } else {
            Fate::Dropped
        }
    }
}

#[async_trait]
impl Exporter for Destination {
    fn name(&self) -> &str {
        NAME
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default()
            .with_max_events(4)
            .with_queue_capacity(QUEUE)
            .with_max_wait(Duration::from_secs(3600))
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default().with_max_retries(0)
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut open = self.open.subscribe();
        let _opened = open.wait_for(|o| *o).await;
        let mut rejected = Vec::new();
        for (i, e) in batch.iter().enumerate() {
            let id = e.identity();
            if e.span().is_some_and(|s| s.name.ends_with("refuse")) {
                self.refused.lock().unwrap().insert(id);
                rejected.push(ItemRejection {
                    index: i,
                    class: ErrorClass::Permanent,
                    message: "400 invalid item".into(),
                });
            } else {
                self.acked.lock().unwrap().insert(id);
            }
        }
        Ok(ExportOutcome::partial(rejected))
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Delivered,
    Refused,
    Dropped,
}

#[derive(Debug, Clone)]
enum Op {
    /// Request `k` emits `n` child spans (some asking to be refused).
    Emit {
        k: usize,
        n: usize,
        refuse: bool,
    },
    /// Request `k` ends its root span.
    End {
        k: usize,
    },
    Flush,
    /// Two global flushes at once: together they report the interval's
    /// events, each of them once.
    TwoFlushes,
    FlushTrace {
        k: usize,
    },
    /// The destination stops answering (its queue fills) until the next flush.
    Stall,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 1..8usize, any::<bool>()).prop_map(|(k, n, refuse)| Op::Emit { k, n, refuse }),
        1 => (0..3usize).prop_map(|k| Op::End { k }),
        2 => Just(Op::Flush),
        1 => Just(Op::TwoFlushes),
        2 => (0..3usize).prop_map(|k| Op::FlushTrace { k }),
        1 => Just(Op::Stall),
    ]
}

/// One emitted event and the reports it belongs to.
struct Emitted {
    identity: String,
    trace: TraceId,
    /// Index of the global interval (between two global flushes) it was emitted in.
    global: usize,
    /// Index of its trace's interval (between two `flush_trace` of it).
    trace_interval: usize,
}

struct Model {
    obs: Observability,
    dest: Destination,
    inline: bool,
    roots: HashMap<usize, Span>,
    emitted: Vec<Emitted>,
    global: usize,
    trace_intervals: HashMap<TraceId, usize>,
    global_reports: Vec<FlushReport>,
    stalled: bool,
}

impl Model {
    fn new(inline: bool) -> Self {
        let dest = Destination::new();
        let mut b = Observability::builder()
            .exporter(dest.clone())
            .derive_metrics(false);
        if inline {
            b = b.inline();
        }
        Self {
            obs: b.build().unwrap(),
            dest,
            inline,
            roots: HashMap::new(),
            emitted: Vec::new(),
            global: 0,
            trace_intervals: HashMap::new(),
            global_reports: Vec::new(),
            stalled: false,
        }
    }

    fn record(&mut self, span: &Span) {
        let trace = span.trace_id();
        self.emitted.push(Emitted {
            identity: format!("span:{}:ended", span.span_id()),
            trace,
            global: self.global,
            trace_interval: self.trace_intervals.get(&trace).copied().unwrap_or(0),
        });
    }

    fn root(&mut self, k: usize) -> &Span {
        let obs = self.obs.clone();
        self.roots.entry(k).or_insert_with(|| {
            obs.start_span(SpanOptions::new(format!("request-{k}"), SpanType::AgentRun))
        })
    }

    /// Waits until the router handed everything to the exporter's queue, so
    /// overflow happens while the destination is stalled.
    fn settle_routing(&self) {
        if self.inline {
            return;
        }
        let until = Instant::now() + Duration::from_secs(5);
        while self.obs.stats().pipeline.pending > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn release(&mut self) {
        self.stalled = false;
        self.dest.open.send_replace(true);
    }

    fn step(&mut self, rt: &tokio::runtime::Runtime, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Emit { k, n, refuse } => {
                for i in 0..*n {
                    let suffix = if *refuse && i % 2 == 0 {
                        "refuse"
                    } else {
                        "keep"
                    };
                    let mut child = self.root(*k).child(SpanOptions::new(
                        format!("child-{i}-{suffix}"),
                        SpanType::ToolCall,
                    ));
                    child.end();
                    self.record(&child);
                }
                if self.stalled {
                    self.settle_routing();
                }
            }
            Op::End { k } => {
                if let Some(mut root) = self.roots.remove(k) {
                    root.end();
                    self.record(&root);
                }
            }
            Op::Stall => {
                self.stalled = true;
                self.dest.open.send_replace(false);
            }
            Op::Flush => {
                self.release();
                let report = rt.block_on(self.obs.flush(DEADLINE));
                let mine: Vec<&Emitted> = self
                    .emitted
                    .iter()
                    .filter(|e| e.global == self.global)
                    .collect();
                self.check(&report, &mine, "flush")?;
                self.global_reports.push(report);
                self.global += 1;
            }
            Op::TwoFlushes => {
                self.release();
                let (a, b) = rt.block_on(async {
                    let (a, b) = (self.obs.clone(), self.obs.clone());
                    let a = tokio::spawn(async move { a.flush(DEADLINE).await });
                    let b = tokio::spawn(async move { b.flush(DEADLINE).await });
                    (a.await.unwrap(), b.await.unwrap())
                });
                let mine: Vec<&Emitted> = self
                    .emitted
                    .iter()
                    .filter(|e| e.global == self.global)
                    .collect();
                let mut both = a.clone();
                let (ea, eb) = (a.exporter(NAME).unwrap(), b.exporter(NAME).unwrap());
                prop_assert!(ea.completed && eb.completed, "{a}\n{b}");
                let e = &mut both.exporters[0];
                e.delivered = ea.delivered + eb.delivered;
                for (r, n) in &eb.failed {
                    *e.failed.entry(*r).or_default() += n;
                }
                for (r, n) in &eb.dropped {
                    *e.dropped.entry(*r).or_default() += n;
                }
                for (r, n) in &b.pipeline_dropped {
                    *both.pipeline_dropped.entry(*r).or_default() += n;
                }
                self.check(&both, &mine, "two flushes")?;
                self.global_reports.push(a);
                self.global_reports.push(b);
                self.global += 1;
            }
            Op::FlushTrace { k } => {
                self.release();
                let Some(trace) = self.roots.get(k).map(Span::trace_id) else {
                    return Ok(());
                };
                let report = rt.block_on(self.obs.flush_trace(trace, DEADLINE));
                let interval = self.trace_intervals.get(&trace).copied().unwrap_or(0);
                let mine: Vec<&Emitted> = self
                    .emitted
                    .iter()
                    .filter(|e| e.trace == trace && e.trace_interval == interval)
                    .collect();
                self.check(&report, &mine, "flush_trace")?;
                self.trace_intervals.insert(trace, interval + 1);
            }
        }
        let stats = self.obs.stats();
        prop_assert!(
            stats.is_conserved(),
            "not conserved after {op:?}: {stats:?}"
        );
        Ok(())
    }

    /// The report covers exactly these events.
    fn check(
        &self,
        report: &FlushReport,
        mine: &[&Emitted],
        what: &str,
    ) -> Result<(), TestCaseError> {
        prop_assert!(report.completed, "{what} did not complete:\n{report}");
        let e = report.exporter(NAME).unwrap();
        let count = |fate: Fate| {
            mine.iter()
                .filter(|m| self.dest.fate(&m.identity) == fate)
                .count() as u64
        };
        let (delivered, refused, dropped) = (
            count(Fate::Delivered),
            count(Fate::Refused),
            count(Fate::Dropped),
        );
        prop_assert_eq!(e.delivered, delivered, "{} delivered:\n{}", what, report);
        prop_assert_eq!(
            e.failed
                .get(&DropReason::PermanentError)
                .copied()
                .unwrap_or(0),
            refused,
            "{} refused:\n{}",
            what,
            report
        );
        prop_assert_eq!(
            e.dropped.get(&DropReason::QueueFull).copied().unwrap_or(0),
            dropped,
            "{} dropped (queue full):\n{}",
            what,
            report
        );
        prop_assert_eq!(e.pending, 0, "{}:\n{}", what, report);
        prop_assert_eq!(report.lost(), refused + dropped, "{}:\n{}", what, report);
        prop_assert_eq!(
            report.is_success(),
            refused + dropped == 0,
            "{}:\n{}",
            what,
            report
        );
        Ok(())
    }

    /// Shutdown, then: the global reports add up to the totals.
    fn finish(mut self, rt: &tokio::runtime::Runtime) -> Result<(), TestCaseError> {
        self.release();
        for (_, mut root) in self.roots.drain() {
            root.end();
        }
        let report = rt.block_on(self.obs.shutdown(DEADLINE));
        prop_assert!(report.completed, "{}", report);
        self.global_reports.push(report);
        let stats = self.obs.stats();
        let s = stats.exporter(NAME).unwrap();
        let sum = |f: &dyn Fn(&aiobs_core::ExporterFlushReport) -> u64| {
            self.global_reports
                .iter()
                .map(|r| r.exporter(NAME).map_or(0, f))
                .sum::<u64>()
        };
        prop_assert_eq!(sum(&|e| e.delivered), s.delivered);
        prop_assert_eq!(
            sum(&|e| e.failed.values().sum::<u64>() + e.dropped.values().sum::<u64>()),
            s.failed_total() + s.dropped_total()
        );
        prop_assert!(stats.is_conserved());
        prop_assert_eq!(s.pending, 0);
        Ok(())
    }
}

proptest! {
    // Bounded to a few seconds: each case is a fresh pipeline and a short history.
    #![proptest_config(ProptestConfig {
        cases: 128,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_report_covers_exactly_its_own_events(
        inline in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut model = Model::new(inline);
        for op in &ops {
            model.step(&rt, op)?;
        }
        model.finish(&rt)?;
    }
}
