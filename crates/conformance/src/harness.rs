//! How the kit gets an exporter to test and reads back what it delivered:
//! [`Harness`], [`Destination`], [`DeliveredItem`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use aiobs_core::{Exporter, InMemoryExporter, ObservabilityEvent, SpanEventKind};
use serde_json::Value;

use crate::http::{CapturedRequest, ScriptedHttpServer, ScriptedResponse};

/// Where the exporter under test sends its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestinationKind {
    /// A local destination (memory, a file, a database): the kit injects
    /// faults by wrapping the exporter in a [`FaultyExporter`](crate::fakes::FaultyExporter).
    Local,
    /// A remote HTTP destination: the kit starts a [`ScriptedHttpServer`] per
    /// scenario and injects faults there (5xx, resets, 429 + Retry-After, hangs),
    /// so the exporter's own error classification is tested.
    Http,
}

/// The destination of one scenario, handed to the harness's factory and probe.
///
/// Every exporter made for the same `Destination` must write to the same
/// place: the durable-replay scenario makes two (one per `Observability`)
/// and expects the second to complete what the first started.
pub struct Destination {
    scenario: &'static str,
    server: Option<ScriptedHttpServer>,
    dir: PathBuf,
    shared: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination")
            .field("scenario", &self.scenario)
            .field("server", &self.server)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Destination {
    pub(crate) fn new(scenario: &'static str, kind: DestinationKind) -> std::io::Result<Self> {
        let server = match kind {
            DestinationKind::Http => Some(ScriptedHttpServer::start()?),
            DestinationKind::Local => None,
        };
        let dir = std::env::temp_dir().join(format!(
            "aiobs-conformance-{scenario}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        Ok(Self {
            scenario,
            server,
            dir,
            shared: Mutex::default(),
        })
    }

    /// A local destination for a harness's own tests (no scripted server).
    pub fn local_for_tests(name: &'static str) -> Self {
        Self {
            scenario: name,
            server: None,
            dir: std::env::temp_dir().join(format!(
                "aiobs-conformance-{name}-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            )),
            shared: Mutex::default(),
        }
    }

    /// The kind of destination.
    pub fn kind(&self) -> DestinationKind {
        if self.server.is_some() {
            DestinationKind::Http
        } else {
            DestinationKind::Local
        }
    }

    /// The scenario's name (`always_succeed`, ...), e.g. to name a database.
    pub fn scenario(&self) -> &'static str {
        self.scenario
    }

    /// The scripted server's base URL (HTTP destinations only).
    pub fn url(&self) -> Option<String> {
        self.server.as_ref().map(ScriptedHttpServer::url)
    }

    /// The scripted server (HTTP destinations only).
    pub fn server(&self) -> Option<&ScriptedHttpServer> {
        self.server.as_ref()
    }

    /// A directory of this scenario's own, created on first call and removed
    /// when the scenario ends (e.g. for a SQLite file).
    pub fn scratch_dir(&self) -> std::io::Result<&Path> {
        std::fs::create_dir_all(&self.dir)?;
        Ok(&self.dir)
    }

    /// A value shared by everything made for this destination: created by
    /// `init` on the first call, cloned on every call. E.g. the in-memory
    /// store all exporters of a scenario write to:
    /// `dest.shared(InMemoryExporter::new)`.
    pub fn shared<T: Clone + Send + Sync + 'static>(&self, init: impl FnOnce() -> T) -> T {
        let mut map = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = map
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<T>())
        {
            return v.clone();
        }
        let value = init();
        map.insert(TypeId::of::<T>(), Box::new(value.clone()));
        value
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _best_effort = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What kind of item a [`DeliveredItem`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ItemKind {
    /// A span (its id is the 16-hex span id).
    Span,
    /// A log record.
    Log,
    /// A metric.
    Metric,
    /// A score.
    Score,
    /// Feedback.
    Feedback,
}

/// One item the destination holds, as the probe decoded it. The kit compares
/// what it emitted with these; fields left `None` are not checked, except
/// `parent_id` of spans, which must be filled.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeliveredItem {
    /// What it is.
    pub kind: ItemKind,
    /// Span id (16 lowercase hex) or record id.
    pub id: String,
    /// For spans: whether this item carries the span's end (the destination
    /// has the complete span). Start or update items are `false`.
    pub ended: bool,
    /// Trace id (32 lowercase hex), if decoded.
    pub trace_id: Option<String>,
    /// Parent span id (16 lowercase hex); `None` for a root.
    pub parent_id: Option<String>,
    /// Name, if decoded.
    pub name: Option<String>,
    /// Input payload, if decoded (a JSON string holding JSON also matches).
    pub input: Option<Value>,
    /// Output payload, if decoded.
    pub output: Option<Value>,
    /// For spans: the trace-level fields this item sets at the destination
    /// (`name`, `input`, `output`: what the destination shows for the whole
    /// trace), if decoded. A span that continues an upstream trace must set
    /// none; the `continuation` scenario checks it.
    pub trace_claims: Option<Vec<String>>,
}

impl DeliveredItem {
    /// A span item with this span id (hex), carrying the span's end.
    pub fn span(id: impl Into<String>) -> Self {
        Self::record(ItemKind::Span, id).ended(true)
    }

    /// A non-span item (log, metric, score, feedback) with this record id.
    pub fn record(kind: ItemKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into().to_ascii_lowercase(),
            ended: kind != ItemKind::Span,
            trace_id: None,
            parent_id: None,
            name: None,
            input: None,
            output: None,
            trace_claims: None,
        }
    }

    /// Sets `ended`.
    #[must_use]
    pub fn ended(mut self, ended: bool) -> Self {
        self.ended = ended;
        self
    }
    /// Sets the trace id.
    #[must_use]
    pub fn trace(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into().to_ascii_lowercase());
        self
    }
    /// Sets the parent span id.
    #[must_use]
    pub fn parent(mut self, parent_id: Option<impl Into<String>>) -> Self {
        self.parent_id = parent_id.map(|p| p.into().to_ascii_lowercase());
        self
    }
    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the input payload.
    #[must_use]
    pub fn input(mut self, input: Option<Value>) -> Self {
        self.input = input;
        self
    }
    /// Sets the output payload.
    #[must_use]
    pub fn output(mut self, output: Option<Value>) -> Self {
        self.output = output;
        self
    }
    /// Sets the trace-level fields the item sets at the destination (see
    /// [`DeliveredItem::trace_claims`]); an empty list: none.
    #[must_use]
    pub fn trace_claims<S: Into<String>>(mut self, claims: impl IntoIterator<Item = S>) -> Self {
        self.trace_claims = Some(claims.into_iter().map(Into::into).collect());
        self
    }

    /// The trace-level fields a destination that names a trace after the
    /// span that began it ([`ExportedSpan::is_trace_root`](aiobs_core::ExportedSpan::is_trace_root))
    /// takes from `span`: all three from that span, none from any other.
    pub fn claims_of(span: &aiobs_core::ExportedSpan) -> Vec<&'static str> {
        if span.is_trace_root() {
            vec!["name", "input", "output"]
        } else {
            Vec::new()
        }
    }

    /// The item an exporter that stores events as they are would hold.
    pub fn from_event(event: &ObservabilityEvent) -> Option<Self> {
        Some(match event {
            ObservabilityEvent::Span { kind, span } => Self::span(span.span_id.to_string())
                .ended(*kind == SpanEventKind::Ended)
                .trace(span.trace_id.to_string())
                .parent(span.effective_parent().map(|p| p.to_string()))
                .name(span.name.to_string())
                .input(span.input.clone())
                .output(span.output.clone())
                .trace_claims(Self::claims_of(span)),
            ObservabilityEvent::Log(l) => Self::record(ItemKind::Log, &l.id),
            ObservabilityEvent::Metric(m) => Self::record(ItemKind::Metric, &m.id),
            ObservabilityEvent::Score(s) => {
                Self::record(ItemKind::Score, &s.id).trace(s.trace_id.to_string())
            }
            ObservabilityEvent::Feedback(f) => {
                Self::record(ItemKind::Feedback, &f.id).trace(f.trace_id.to_string())
            }
            _ => return None,
        })
    }
}

/// Why a harness could not make an exporter or read the destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HarnessError(pub String);

impl HarnessError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        Self(message.to_string())
    }
}

impl From<String> for HarnessError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for HarnessError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<std::io::Error> for HarnessError {
    fn from(e: std::io::Error) -> Self {
        Self::new(e)
    }
}

impl From<serde_json::Error> for HarnessError {
    fn from(e: serde_json::Error) -> Self {
        Self::new(e)
    }
}

/// A boxed future, as returned by async probes.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type MakeFn = dyn Fn(&Destination) -> Result<Arc<dyn Exporter>, HarnessError> + Send + Sync;
type ProbeFn = dyn for<'a> Fn(&'a Destination) -> BoxFuture<'a, Result<Vec<DeliveredItem>, HarnessError>>
    + Send
    + Sync;
type DecodeFn = dyn Fn(&CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> + Send + Sync;
type PartialFn = dyn Fn(&CapturedRequest, &[ItemRejectionPlan]) -> ScriptedResponse + Send + Sync;
type SetupFn = dyn Fn(&ScriptedHttpServer) + Send + Sync;

/// One item the kit wants the destination to refuse in a partial response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemRejectionPlan {
    /// The item's id, as the harness's decoder reports it.
    pub id: String,
    /// The per-item HTTP status to report: 500 (retryable) or 400 (permanent).
    pub status: u16,
}

/// How the kit gets the exporter under test and reads back what it delivered.
///
/// - [`Harness::local`]: an exporter writing somewhere local; read back with
///   [`Harness::probe`] (or [`Harness::probe_async`] for a storage query).
/// - [`Harness::http`]: an exporter pointed at the scenario's
///   [`ScriptedHttpServer`]; read back by decoding the acknowledged requests
///   with [`Harness::decode_requests`] (the exporter crate's own decoder), and
///   tell the kit how to answer a partial success with
///   [`Harness::partial_response`].
///
/// Without a probe the kit still checks the accounting, and says in each
/// report that the destination's content was not verified.
///
/// ```
/// use aiobs_conformance::{Harness, DeliveredItem};
/// use aiobs_core::InMemoryExporter;
///
/// let harness = Harness::local(|dest| dest.shared(InMemoryExporter::new))
///     .probe(|dest| {
///         Ok(dest.shared(InMemoryExporter::new)
///             .events()
///             .iter()
///             .filter_map(|e| DeliveredItem::from_event(e))
///             .collect())
///     });
/// # let _ = harness;
/// ```
#[derive(Clone)]
pub struct Harness {
    pub(crate) name: String,
    pub(crate) kind: DestinationKind,
    make: Arc<MakeFn>,
    probe: Option<Arc<ProbeFn>>,
    decode: Option<Arc<DecodeFn>>,
    partial: Option<Arc<PartialFn>>,
    setup: Option<Arc<SetupFn>>,
    ingest_path: Option<String>,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("probe", &self.probe.is_some())
            .field("decode", &self.decode.is_some())
            .field("partial", &self.partial.is_some())
            .field("ingest_path", &self.ingest_path)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// An exporter writing to a local destination.
    pub fn local<E: Exporter>(make: impl Fn(&Destination) -> E + Send + Sync + 'static) -> Self {
        Self::try_local(move |d| Ok::<_, HarnessError>(make(d)))
    }

    /// Like [`Harness::local`], for a factory that can fail.
    pub fn try_local<E: Exporter, Err: fmt::Display>(
        make: impl Fn(&Destination) -> Result<E, Err> + Send + Sync + 'static,
    ) -> Self {
        Self::with_kind(DestinationKind::Local, make)
    }

    /// An exporter sending to a remote HTTP endpoint: `make` receives the
    /// scripted server's base URL (`http://127.0.0.1:<port>`).
    pub fn http<E: Exporter>(make: impl Fn(&str) -> E + Send + Sync + 'static) -> Self {
        Self::try_http(move |url| Ok::<_, HarnessError>(make(url)))
    }

    /// Like [`Harness::http`], for a factory that can fail.
    pub fn try_http<E: Exporter, Err: fmt::Display>(
        make: impl Fn(&str) -> Result<E, Err> + Send + Sync + 'static,
    ) -> Self {
        Self::with_kind(DestinationKind::Http, move |dest: &Destination| {
            let url = dest
                .url()
                .ok_or_else(|| HarnessError::new("HTTP harness without a scripted server"))
                .map_err(|e| e.0)?;
            make(&url).map_err(|e| e.to_string())
        })
    }

    fn with_kind<E: Exporter, Err: fmt::Display>(
        kind: DestinationKind,
        make: impl Fn(&Destination) -> Result<E, Err> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: "exporter under test".into(),
            kind,
            make: Arc::new(move |d| {
                make(d)
                    .map(|e| Arc::new(e) as Arc<dyn Exporter>)
                    .map_err(HarnessError::new)
            }),
            probe: None,
            decode: None,
            partial: None,
            setup: None,
            ingest_path: None,
        }
    }

    /// The kit's reference harness: core's [`InMemoryExporter`], one store
    /// per scenario, read back as it is.
    pub fn in_memory() -> Self {
        Self::local(|dest| dest.shared(InMemoryExporter::new))
            .probe(|dest| Ok(in_memory_items(&dest.shared(InMemoryExporter::new))))
            .named("InMemoryExporter")
    }

    /// Names the harness in reports.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads back everything the destination holds (synchronously).
    #[must_use]
    pub fn probe(
        self,
        probe: impl Fn(&Destination) -> Result<Vec<DeliveredItem>, HarnessError> + Send + Sync + 'static,
    ) -> Self {
        let probe = Arc::new(probe);
        self.probe_async(move |d| {
            let probe = probe.clone();
            Box::pin(async move { probe(d) })
        })
    }

    /// Reads back everything the destination holds, e.g. with an async
    /// storage query.
    #[must_use]
    pub fn probe_async(
        mut self,
        probe: impl for<'a> Fn(
            &'a Destination,
        ) -> BoxFuture<'a, Result<Vec<DeliveredItem>, HarnessError>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    /// HTTP destinations: decodes one captured request into the items it
    /// carried (one per event; an ended span as one item with `ended: true`
    /// even if the wire protocol splits it). The kit uses it on the requests
    /// the server acknowledged (2xx), leaving out items it refused in a
    /// partial response.
    #[must_use]
    pub fn decode_requests(
        mut self,
        decode: impl Fn(&CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.decode = Some(Arc::new(decode));
        self
    }

    /// HTTP destinations: builds the vendor's partial-success response (e.g.
    /// a Langfuse 207) refusing these items of the request, with these
    /// per-item statuses. Without it the partial-acceptance scenario is not
    /// applicable to an HTTP exporter.
    #[must_use]
    pub fn partial_response(
        mut self,
        respond: impl Fn(&CapturedRequest, &[ItemRejectionPlan]) -> ScriptedResponse
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.partial = Some(Arc::new(respond));
        self
    }

    /// HTTP destinations: prepares each scenario's scripted server before
    /// the exporter is made, e.g. the vendor's usual success body or an
    /// `/info` endpoint: `server.route("/info").set_default(...)`.
    #[must_use]
    pub fn setup_server(
        mut self,
        setup: impl Fn(&ScriptedHttpServer) + Send + Sync + 'static,
    ) -> Self {
        self.setup = Some(Arc::new(setup));
        self
    }

    /// HTTP destinations: the path events are sent to. The kit then scripts
    /// its faults on this path only, so other requests (an `/info` probe at
    /// init, say) keep their normal answers. Without it, faults apply to
    /// whatever request comes next.
    #[must_use]
    pub fn ingest_path(mut self, path: impl Into<String>) -> Self {
        self.ingest_path = Some(path.into());
        self
    }

    pub(crate) fn server_setup(&self) -> Option<&Arc<SetupFn>> {
        self.setup.as_ref()
    }

    pub(crate) fn ingest_path_str(&self) -> Option<&str> {
        self.ingest_path.as_deref()
    }

    pub(crate) fn make(&self, dest: &Destination) -> Result<Arc<dyn Exporter>, HarnessError> {
        (self.make)(dest)
    }

    pub(crate) fn has_probe(&self) -> bool {
        self.probe.is_some() || self.decode.is_some()
    }

    pub(crate) fn decoder(&self) -> Option<&Arc<DecodeFn>> {
        self.decode.as_ref()
    }

    pub(crate) fn partial(&self) -> Option<&Arc<PartialFn>> {
        self.partial.as_ref()
    }

    /// What the destination holds: the probe's answer, or the decoded
    /// acknowledged requests minus `refused` (request seq → refused item ids).
    pub(crate) async fn delivered(
        &self,
        dest: &Destination,
        refused: &HashMap<usize, Vec<String>>,
    ) -> Option<Result<Vec<DeliveredItem>, HarnessError>> {
        if let Some(p) = &self.probe {
            return Some(p(dest).await);
        }
        let decode = self.decode.as_ref()?;
        let server = dest.server()?;
        let mut items = Vec::new();
        for req in server.acknowledged_requests() {
            let decoded = match decode(&req) {
                Ok(d) => d,
                Err(e) => {
                    return Some(Err(HarnessError::new(format!(
                        "decoding request #{} ({} {}): {e}",
                        req.seq, req.method, req.path
                    ))));
                }
            };
            let skip = refused.get(&req.seq);
            items.extend(
                decoded
                    .into_iter()
                    .filter(|i| skip.is_none_or(|s| !s.contains(&i.id))),
            );
        }
        Some(Ok(items))
    }
}

/// The items an [`InMemoryExporter`] holds.
pub fn in_memory_items(memory: &InMemoryExporter) -> Vec<DeliveredItem> {
    memory
        .events()
        .iter()
        .filter_map(|e| DeliveredItem::from_event(e))
        .collect()
}

/// Turns a harness, or a function returning one, into a [`Harness`]
/// (what [`conformance_tests!`](crate::conformance_tests) accepts).
pub trait IntoHarness {
    /// The harness.
    fn into_harness(self) -> Harness;
}

impl IntoHarness for Harness {
    fn into_harness(self) -> Harness {
        self
    }
}

impl<F: FnOnce() -> Harness> IntoHarness for F {
    fn into_harness(self) -> Harness {
        self()
    }
}
