//! The scenarios and the machinery that runs one: a fresh destination, the
//! exporter from the harness wrapped by the kit, a real `Observability`.

mod capacity;
mod check;
mod context;
mod delivery;
mod emit;
mod faults;
mod hostile;
mod isolation;
mod lifecycle;
mod ordering;
mod reports;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use aiobs_core::{ErrorClass, Exporter, Observability, Signal, Signals};

use crate::fakes::{Decision, ExportCall, FaultyExporter};
use crate::harness::{DeliveredItem, Destination, DestinationKind, Harness, IntoHarness};
use crate::http::ScriptedResponse;
use crate::instrument::{CallLog, Instrumented, Tuning};
use crate::report::{ConformanceReport, Outcome, ScenarioReport};

/// One conformance scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// Every span and record delivered exactly once, payloads and parents intact.
    AlwaysSucceed,
    /// 5xx and connection resets, then success: all delivered, attempts counted.
    TransientErrors,
    /// A 400: counted failed, never retried; the exporter keeps working.
    PermanentErrors,
    /// 429 + Retry-After honoured; a long Retry-After is cut by the flush deadline.
    Throttled,
    /// A partial success (207): only refused items retried or counted failed.
    PartialAcceptance,
    /// A full exporter queue: exact accounting of what was dropped and delivered.
    QueueFull,
    /// Flush delivers what waits for its batch, also through `Arc` and `Box<dyn Exporter>`.
    FlushDrains,
    /// A destination that never answers: flush returns on time reporting
    /// pending, and the hung request does not live forever.
    HungDestination,
    /// Shutdown with nothing, twice, and events after shutdown.
    Lifecycle,
    /// End without start, child before parent, late child after its root ended.
    OutOfOrder,
    /// A span started in one `Observability`, rebuilt and ended in a fresh one.
    DurableReplay,
    /// 64 tasks emitting many traces at once.
    Concurrency,
    /// Deep nesting, huge strings, NaN/∞, lone surrogates, control characters,
    /// values that fail to serialise.
    HostilePayloads,
    /// A neighbour exporter that blocks its thread in every call: this
    /// exporter's deliveries and every flush, `flush_trace` and shutdown
    /// deadline are unaffected.
    NeighbourBlocks,
    /// Requests flushing their own traces while others flush everything, all
    /// at once, with a queue that overflowed: each report covers exactly its
    /// own events.
    ConcurrentFlushers,
    /// A trace hiding inputs and outputs, rebuilt in a fresh `Observability`:
    /// no hidden payload reaches the destination, every span does.
    PrivacyAfterRebuild,
    /// A trace continued from another process (by `traceparent` and by trace
    /// id): the continuing spans claim no trace-level field (name, input, output).
    Continuation,
}

impl Scenario {
    /// Every scenario, in the order `run_all` runs them.
    pub const ALL: [Scenario; 17] = [
        Self::AlwaysSucceed,
        Self::TransientErrors,
        Self::PermanentErrors,
        Self::Throttled,
        Self::PartialAcceptance,
        Self::QueueFull,
        Self::FlushDrains,
        Self::HungDestination,
        Self::Lifecycle,
        Self::OutOfOrder,
        Self::DurableReplay,
        Self::Concurrency,
        Self::HostilePayloads,
        Self::NeighbourBlocks,
        Self::ConcurrentFlushers,
        Self::PrivacyAfterRebuild,
        Self::Continuation,
    ];

    /// The snake_case name (also the test name the macro generates).
    pub fn name(self) -> &'static str {
        match self {
            Self::AlwaysSucceed => "always_succeed",
            Self::TransientErrors => "transient_errors",
            Self::PermanentErrors => "permanent_errors",
            Self::Throttled => "throttled",
            Self::PartialAcceptance => "partial_acceptance",
            Self::QueueFull => "queue_full",
            Self::FlushDrains => "flush_drains",
            Self::HungDestination => "hung_destination",
            Self::Lifecycle => "lifecycle",
            Self::OutOfOrder => "out_of_order",
            Self::DurableReplay => "durable_replay",
            Self::Concurrency => "concurrency",
            Self::HostilePayloads => "hostile_payloads",
            Self::NeighbourBlocks => "neighbour_blocks",
            Self::ConcurrentFlushers => "concurrent_flushers",
            Self::PrivacyAfterRebuild => "privacy_after_rebuild",
            Self::Continuation => "continuation",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs one scenario against the harness's exporter.
///
/// Needs a tokio runtime with the time driver (`#[tokio::test]` gives one).
pub async fn run_scenario(scenario: Scenario, harness: &Harness) -> ScenarioReport {
    let started = Instant::now();
    let outcome = match Destination::new(scenario.name(), harness.kind) {
        Err(e) => Outcome::Failed(format!(
            "scenario {scenario}: expected a destination but observed an error starting it: {e}"
        )),
        Ok(dest) => {
            if let Some(setup) = harness.server_setup()
                && let Some(server) = dest.server()
            {
                setup(server);
            }
            let run = Run::new(scenario, harness, dest);
            match run.execute().await {
                Ok(notes) => Outcome::Passed { notes },
                Err(Stop::Failed(m)) => Outcome::Failed(m),
                Err(Stop::NotApplicable(why)) => Outcome::NotApplicable(why),
            }
        }
    };
    ScenarioReport {
        scenario,
        harness: harness.name.clone(),
        outcome,
        elapsed: started.elapsed(),
    }
}

/// Runs every scenario, one after the other.
pub async fn run_all(harness: &Harness) -> ConformanceReport {
    let mut scenarios = Vec::new();
    for s in Scenario::ALL {
        scenarios.push(run_scenario(s, harness).await);
    }
    ConformanceReport { scenarios }
}

/// Runs one scenario on a runtime of its own (two worker threads): what
/// the tests generated by [`conformance_tests!`](crate::conformance_tests) call.
pub fn run_scenario_blocking(scenario: Scenario, harness: impl IntoHarness) -> ScenarioReport {
    let harness = harness.into_harness();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(run_scenario(scenario, &harness)),
        Err(e) => ScenarioReport {
            scenario,
            harness: harness.name.clone(),
            outcome: Outcome::Failed(format!(
                "scenario {scenario}: expected a tokio runtime but observed: {e}"
            )),
            elapsed: Duration::ZERO,
        },
    }
}

/// Why a scenario stopped early.
#[derive(Debug)]
pub(crate) enum Stop {
    Failed(String),
    NotApplicable(String),
}

pub(crate) type Step<T = ()> = Result<T, Stop>;

/// A fault the kit injects, in destination-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fault {
    /// HTTP 503 without Retry-After; locally a transient error.
    ServerError,
    /// HTTP: the connection is reset; locally a transient error.
    Reset,
    /// HTTP 429 with Retry-After; locally `Throttled(Some(after))`.
    Throttled(Duration),
    /// HTTP 400; locally a permanent error.
    Permanent,
    /// No answer at all.
    Hang,
}

impl Fault {
    fn response(self) -> ScriptedResponse {
        match self {
            Self::ServerError => ScriptedResponse::service_unavailable(None),
            Self::Reset => ScriptedResponse::reset(),
            Self::Throttled(after) => ScriptedResponse::too_many_requests(Some(after)),
            Self::Permanent => ScriptedResponse::bad_request(),
            Self::Hang => ScriptedResponse::hang(),
        }
    }
    fn decision(self) -> Decision {
        match self {
            Self::ServerError | Self::Reset => Decision::transient(),
            Self::Throttled(after) => Decision::throttled(Some(after)),
            Self::Permanent => Decision::permanent(),
            Self::Hang => Decision::Hang,
        }
    }
    /// How the destination's answer reads in failure messages.
    pub(crate) fn describe(self, kind: DestinationKind) -> String {
        match (kind, self) {
            (DestinationKind::Http, Self::ServerError) => "HTTP 503".into(),
            (DestinationKind::Http, Self::Reset) => "a connection reset".into(),
            (DestinationKind::Http, Self::Throttled(d)) => {
                format!("HTTP 429 with Retry-After: {}", d.as_secs())
            }
            (DestinationKind::Http, Self::Permanent) => "HTTP 400".into(),
            (_, f) => format!("an injected {f:?}"),
        }
    }
}

/// Items the destination refuses in a partial success: span id → per-item
/// status (500 retryable, 400 permanent). Each is refused once.
#[derive(Debug, Default)]
pub(crate) struct PartialPlan {
    pub(crate) refuse: HashMap<String, u16>,
    pub(crate) refused: HashSet<String>,
}

/// One `Observability` with the exporter under test.
pub(crate) struct Pipe {
    pub(crate) obs: Observability,
    pub(crate) log: Arc<CallLog>,
    pub(crate) name: String,
    pub(crate) signals: Signals,
    faulty: Option<FaultyExporter<Arc<dyn Exporter>>>,
}

impl Pipe {
    /// The exporter's stats now.
    pub(crate) fn stats(&self) -> aiobs_core::ExporterStats {
        self.obs
            .stats()
            .exporter(&self.name)
            .cloned()
            .unwrap_or_default()
    }
    /// Events per span this exporter receives: its start (if subscribed) and end.
    pub(crate) fn events_per_span(&self) -> u64 {
        u64::from(self.signals.contains(Signal::SpanStarted))
            + u64::from(self.signals.contains(Signal::SpanEnded))
    }
}

/// How the exporter is handed to the pipeline in `flush_drains`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrapping {
    Plain,
    Arc,
    BoxDyn,
}

/// The state of one scenario run.
pub(crate) struct Run<'h> {
    pub(crate) scenario: Scenario,
    pub(crate) harness: &'h Harness,
    pub(crate) dest: Destination,
    notes: Mutex<Vec<String>>,
    /// HTTP: request seq → item ids the kit refused in it.
    refused: Arc<Mutex<HashMap<usize, Vec<String>>>>,
    partial: Arc<Mutex<PartialPlan>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'h> Run<'h> {
    fn new(scenario: Scenario, harness: &'h Harness, dest: Destination) -> Self {
        Self {
            scenario,
            harness,
            dest,
            notes: Mutex::default(),
            refused: Arc::default(),
            partial: Arc::default(),
        }
    }

    async fn execute(&self) -> Step<Vec<String>> {
        match self.scenario {
            Scenario::AlwaysSucceed => delivery::always_succeed(self).await?,
            Scenario::TransientErrors => faults::transient_errors(self).await?,
            Scenario::PermanentErrors => faults::permanent_errors(self).await?,
            Scenario::Throttled => faults::throttled(self).await?,
            Scenario::PartialAcceptance => faults::partial_acceptance(self).await?,
            Scenario::QueueFull => capacity::queue_full(self).await?,
            Scenario::FlushDrains => delivery::flush_drains(self).await?,
            Scenario::HungDestination => faults::hung_destination(self).await?,
            Scenario::Lifecycle => lifecycle::lifecycle(self).await?,
            Scenario::OutOfOrder => ordering::out_of_order(self).await?,
            Scenario::DurableReplay => ordering::durable_replay(self).await?,
            Scenario::Concurrency => delivery::concurrency(self).await?,
            Scenario::HostilePayloads => hostile::hostile_payloads(self).await?,
            Scenario::NeighbourBlocks => isolation::neighbour_blocks(self).await?,
            Scenario::ConcurrentFlushers => reports::concurrent_flushers(self).await?,
            Scenario::PrivacyAfterRebuild => context::privacy_after_rebuild(self).await?,
            Scenario::Continuation => context::continuation(self).await?,
        }
        Ok(std::mem::take(&mut *lock(&self.notes)))
    }

    /// A failure: "scenario X: expected … but observed …".
    pub(crate) fn fail(&self, message: impl fmt::Display) -> Stop {
        Stop::Failed(format!(
            "scenario {} ({}): {message}",
            self.scenario, self.harness.name
        ))
    }

    pub(crate) fn not_applicable(&self, why: impl Into<String>) -> Stop {
        Stop::NotApplicable(why.into())
    }

    /// Records something the scenario could not verify.
    pub(crate) fn note(&self, note: impl Into<String>) {
        let note = note.into();
        let mut notes = lock(&self.notes);
        if !notes.contains(&note) {
            notes.push(note);
        }
    }

    pub(crate) fn kind(&self) -> DestinationKind {
        self.harness.kind
    }

    /// A fresh `Observability` with a fresh exporter from the harness.
    pub(crate) fn pipe(&self, tuning: Tuning) -> Step<Pipe> {
        self.pipe_wrapped(tuning, Wrapping::Plain)
    }

    pub(crate) fn pipe_wrapped(&self, tuning: Tuning, wrapping: Wrapping) -> Step<Pipe> {
        self.pipe_beside(tuning, wrapping, None)
    }

    /// Like [`Run::pipe_wrapped`], with a second exporter beside the one
    /// under test (in the same `Observability`).
    pub(crate) fn pipe_beside(
        &self,
        tuning: Tuning,
        wrapping: Wrapping,
        neighbour: Option<Arc<dyn Exporter>>,
    ) -> Step<Pipe> {
        let made = self.harness.make(&self.dest).map_err(|e| {
            self.fail(format!(
                "expected the harness to make an exporter but observed an error: {e}"
            ))
        })?;
        let (exporter, faulty) = match self.kind() {
            DestinationKind::Http => (made, None),
            _ => {
                let faulty =
                    FaultyExporter::wrap(made).decide_with(local_partial(self.partial.clone()));
                (Arc::new(faulty.clone()) as Arc<dyn Exporter>, Some(faulty))
            }
        };
        let instrumented = Instrumented::new(exporter, tuning);
        let log = instrumented.log();
        let name = instrumented.name().to_owned();
        let signals = instrumented.signals();
        let builder = Observability::builder()
            .service_name("aiobs-conformance")
            .derive_metrics(false);
        let builder = match wrapping {
            Wrapping::Plain => builder.exporter(instrumented),
            Wrapping::Arc => builder.exporter(Arc::new(instrumented)),
            Wrapping::BoxDyn => builder.exporter(Box::new(instrumented) as Box<dyn Exporter>),
        };
        let builder = match neighbour {
            Some(n) => builder.exporter_arc(n),
            None => builder,
        };
        let obs = builder.build().map_err(|e| {
            self.fail(format!(
                "expected an Observability but observed a build error: {e}"
            ))
        })?;
        Ok(Pipe {
            obs,
            log,
            name,
            signals,
            faulty,
        })
    }

    /// The scenario needs ended spans; exporters that do not take them skip it.
    pub(crate) fn require_spans(&self, pipe: &Pipe) -> Step {
        if pipe.signals.contains(Signal::SpanEnded) {
            Ok(())
        } else {
            Err(self.not_applicable(format!(
                "exporter `{}` does not subscribe to ended spans",
                pipe.name
            )))
        }
    }

    /// Makes the next export attempts meet these faults, in order.
    pub(crate) fn inject(&self, pipe: &Pipe, faults: &[Fault]) {
        match (&pipe.faulty, self.dest.server()) {
            (Some(f), _) => {
                for fault in faults {
                    f.push(fault.decision());
                }
            }
            (None, Some(server)) => {
                for fault in faults {
                    match self.harness.ingest_path_str() {
                        Some(path) => {
                            server.route(path).push(fault.response());
                        }
                        None => {
                            server.push(fault.response());
                        }
                    }
                }
            }
            (None, None) => {}
        }
    }

    /// Refuses these span ids (with these per-item statuses) the first time
    /// each reaches the destination. `Err` when the harness cannot express it.
    pub(crate) fn refuse_items(&self, refuse: HashMap<String, u16>) -> Step {
        lock(&self.partial).refuse = refuse;
        let Some(server) = self.dest.server() else {
            return Ok(()); // local: the FaultyExporter consults the plan
        };
        let (Some(decode), Some(respond)) = (
            self.harness.decoder().cloned(),
            self.harness.partial().cloned(),
        ) else {
            return Err(self.not_applicable(
                "the HTTP harness gives no `decode_requests` and `partial_response`, \
                 so the kit cannot script a partial success",
            ));
        };
        let plan = self.partial.clone();
        let refused = self.refused.clone();
        let responder = move |req: &crate::http::CapturedRequest| {
            let items = decode(req).unwrap_or_default();
            let mut plan = lock(&plan);
            let mut rejections = Vec::new();
            for item in items.iter().filter(|i| i.ended) {
                if let Some(status) = plan.refuse.get(&item.id).copied()
                    && !plan.refused.contains(&item.id)
                {
                    rejections.push(crate::harness::ItemRejectionPlan {
                        id: item.id.clone(),
                        status,
                    });
                }
            }
            for r in &rejections {
                plan.refused.insert(r.id.clone());
            }
            if !rejections.is_empty() {
                lock(&refused).insert(req.seq, rejections.iter().map(|r| r.id.clone()).collect());
            }
            respond(req, &rejections)
        };
        match self.harness.ingest_path_str() {
            Some(path) => {
                server.route(path).respond_with(responder);
            }
            None => {
                server.respond_with(responder);
            }
        }
        Ok(())
    }

    /// What the destination holds now; `None` (with a note) without a probe.
    pub(crate) async fn delivered(&self) -> Step<Option<Vec<DeliveredItem>>> {
        if !self.harness.has_probe() {
            self.note(
                "the harness has no probe: the destination's content was not verified, \
                 only the accounting",
            );
            return Ok(None);
        }
        let refused = lock(&self.refused).clone();
        match self.harness.delivered(&self.dest, &refused).await {
            None => {
                self.note("the probe could not read this destination");
                Ok(None)
            }
            Some(Ok(items)) => Ok(Some(items)),
            Some(Err(e)) => Err(self.fail(format!(
                "expected the probe to read the destination but observed an error: {e}"
            ))),
        }
    }

    /// Items refused by the kit so far (span ids).
    pub(crate) fn refused_ids(&self) -> HashSet<String> {
        lock(&self.partial).refused.clone()
    }
}

/// The local half of `refuse_items`: a decision function for the FaultyExporter.
fn local_partial(
    plan: Arc<Mutex<PartialPlan>>,
) -> impl Fn(&ExportCall<'_>) -> Decision + Send + Sync + 'static {
    move |call| {
        let mut plan = lock(&plan);
        if plan.refuse.is_empty() {
            return Decision::Deliver;
        }
        let mut rejections = Vec::new();
        for (i, event) in call.batch.iter().enumerate() {
            let Some((id, true)) = emit::span_identity(&event.identity()) else {
                continue;
            };
            if let Some(status) = plan.refuse.get(&id).copied()
                && !plan.refused.contains(&id)
            {
                plan.refused.insert(id);
                let class = if status >= 500 {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Permanent
                };
                rejections.push((i, class));
            }
        }
        if rejections.is_empty() {
            Decision::Deliver
        } else {
            Decision::Reject(rejections)
        }
    }
}
