//! `LangfuseExporter`: maps a batch, sends it over the configured transport,
//! and reports per item what Langfuse acknowledged. Queueing, retries and
//! accounting are the pipeline worker's; this type only pushes one batch.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ItemRejection, ObservabilityEvent, RetryPolicy, Signal, Signals, SpanEventKind,
};
use aiobs_http::{
    Auth, BatchResults, Compression, HttpClientConfig, HttpTransport, ItemError, SendError,
    rejections_by_id, send_split,
};

use crate::config::{
    DeliveryMode, LangfuseBuildError, LangfuseConfig, LangfuseExporterBuilder, LangfuseTransport,
};
use crate::ingestion::{self, BatchMetadata, IngestionEncoder, IngestionEvent};
use crate::mapping::{MappedSpan, Mapper, ScoreBody};
use crate::otlp::{self, OtlpEncoder};
use crate::truncate;

/// The exporter's name, and the metadata key it reads (`metadata.langfuse`).
pub const NAME: &str = "langfuse";

/// The value of the `x-langfuse-sdk-name` header.
const SDK_NAME: &str = "aiobs-rust";

/// Sends spans, scores and feedback to Langfuse.
///
/// Build it with [`LangfuseExporter::builder`] or [`LangfuseExporter::from_env`].
/// It needs only `Ended` span events: each one carries the complete span, so
/// the output is correct when a span's start happened in another process or a
/// child ends before its parent.
#[derive(Debug)]
pub struct LangfuseExporter {
    config: LangfuseConfig,
    mapper: Mapper,
    /// gzip, for OTLP protobuf.
    otlp_http: HttpTransport,
    /// Uncompressed JSON, for the ingestion and scores APIs.
    json_http: HttpTransport,
    /// Set by `init` (the OTLP resource's `service.name`).
    service_name: OnceLock<String>,
    truncated_fields: AtomicU64,
}

/// What one batch turns into before it is encoded.
#[derive(Default)]
struct Prepared {
    spans: Vec<(usize, MappedSpan)>,
    scores: Vec<(usize, ScoreBody)>,
    results: BatchResults,
}

impl LangfuseExporter {
    /// A builder with defaults only (no environment variables read).
    pub fn builder() -> LangfuseExporterBuilder {
        LangfuseExporterBuilder::default()
    }

    /// An exporter configured from `LANGFUSE_*` variables
    /// (see [`LangfuseExporterBuilder::from_env`]).
    pub fn from_env() -> Result<Self, LangfuseBuildError> {
        LangfuseExporterBuilder::from_env().build()
    }

    pub(crate) fn new(config: LangfuseConfig) -> Result<Self, LangfuseBuildError> {
        let http_err = |e: aiobs_http::ClientError| LangfuseBuildError::Http(e.to_string());
        let client = HttpClientConfig::new(NAME)
            .timeout(config.timeout)
            .build()
            .map_err(http_err)?;
        let common = HttpTransport::new(client)
            .with_auth(Auth::basic(&config.public_key, &config.secret_key))
            .map_err(http_err)?
            .with_header("x-langfuse-sdk-name", SDK_NAME)
            .map_err(http_err)?
            .with_header("x-langfuse-sdk-version", env!("CARGO_PKG_VERSION"))
            .map_err(http_err)?
            .with_header("x-langfuse-public-key", &config.public_key)
            .map_err(http_err)?;
        let otlp_http = common
            .clone()
            // "include x-langfuse-ingestion-version=4 to enable real time
            // processing of exported spans" (Langfuse API docs).
            .with_header("x-langfuse-ingestion-version", "4")
            .map_err(http_err)?
            .with_compression(Compression::Gzip);
        let json_http = common.with_compression(Compression::None);
        Ok(Self {
            mapper: Mapper {
                release: config.release.clone(),
            },
            config,
            otlp_http,
            json_http,
            service_name: OnceLock::new(),
            truncated_fields: AtomicU64::new(0),
        })
    }

    /// Which endpoint this exporter sends to.
    pub fn transport(&self) -> LangfuseTransport {
        self.config.transport
    }

    /// The Langfuse server (base URL, without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// How many payload fields were truncated to fit Langfuse's per-event size limit.
    pub fn truncated_fields(&self) -> u64 {
        self.truncated_fields.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// Maps the batch; items that cannot be sent at all are rejected here.
    fn prepare(&self, batch: &ExportBatch) -> Prepared {
        let mut p = Prepared::default();
        let limit = self.config.max_event_bytes;
        for (i, event) in batch.iter().enumerate() {
            match &**event {
                ObservabilityEvent::Span {
                    kind: SpanEventKind::Ended,
                    span,
                } => {
                    let mut m = self.mapper.map_span(span);
                    let cut = truncate::fit_observation(&mut m.observation, limit)
                        + truncate::fit_trace(&mut m.trace, limit);
                    self.count_truncations(cut, &m);
                    p.spans.push((i, m));
                }
                ObservabilityEvent::Score(s) => match ScoreBody::from_score(s) {
                    Ok(b) => p.scores.push((i, b)),
                    Err(msg) => p.results.reject(i, ErrorClass::Permanent, msg),
                },
                ObservabilityEvent::Feedback(f) if self.config.feedback_as_scores => {
                    match ScoreBody::from_feedback(f) {
                        Ok(b) => p.scores.push((i, b)),
                        Err(msg) => p.results.reject(i, ErrorClass::Permanent, msg),
                    }
                }
                other => p.results.reject(
                    i,
                    ErrorClass::Permanent,
                    format!(
                        "the Langfuse exporter does not export {:?} events",
                        other.signal()
                    ),
                ),
            }
        }
        p
    }

    fn count_truncations(&self, cut: u32, m: &MappedSpan) {
        if cut == 0 {
            return;
        }
        let before = self
            .truncated_fields
            .fetch_add(u64::from(cut), Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(
                target: "aiobs",
                exporter = NAME,
                span = %m.observation.id,
                limit = self.config.max_event_bytes,
                "payload over Langfuse's per-event size limit: largest fields truncated with a marker (further truncations are counted in LangfuseExporter::truncated_fields)"
            );
        }
    }

    async fn send_otlp(&self, p: &mut Prepared) {
        let encoder = OtlpEncoder {
            public_key: self.config.public_key.clone(),
            environment: self.config.environment.clone(),
            release: self.config.release.clone(),
            service_name: self
                .service_name
                .get()
                .cloned()
                .unwrap_or_else(|| "unknown_service".into()),
        };
        let url = self.url("/api/public/otel/v1/traces");
        let spans = &p.spans;
        let indices: Vec<usize> = (0..spans.len()).collect();
        let mut span_results = BatchResults::new();
        send_split(&indices, &mut span_results, |part| {
            let chosen: Vec<MappedSpan> = part.iter().map(|&k| spans[k].1.clone()).collect();
            let body = encoder.encode(&chosen);
            let url = url.clone();
            async move {
                let reply = self
                    .otlp_http
                    .post(&url, "application/x-protobuf", body)
                    .await?;
                // A 2xx may still refuse some spans (OTLP partial success),
                // without saying which: the last ones are counted as refused.
                Ok(match otlp::partial_success(&reply.body) {
                    Some((n, why)) => part
                        .iter()
                        .rev()
                        .take(usize::try_from(n).unwrap_or(usize::MAX))
                        .map(|&k| ItemRejection {
                            index: k,
                            class: ErrorClass::Permanent,
                            message: format!(
                                "Langfuse refused {n} of {} spans (OTLP partial success; it does not say which): {why}",
                                part.len()
                            ),
                        })
                        .collect(),
                    None => Vec::new(),
                })
            }
        })
        .await;
        let all: Vec<usize> = spans.iter().map(|(i, _)| *i).collect();
        let disabled = merge(&mut p.results, span_results, &all, |k| spans[k].0);
        if let Some(e) = disabled {
            // The same credentials would be refused for the scores.
            let rest: Vec<usize> = p.scores.iter().map(|(i, _)| *i).collect();
            p.results.fail(&rest, e);
            return;
        }
        self.send_scores(p).await;
    }

    /// `POST /api/public/scores` (a JSON array), as SDK v5 does.
    async fn send_scores(&self, p: &mut Prepared) {
        let scores = &p.scores;
        if scores.is_empty() {
            return;
        }
        let url = self.url("/api/public/scores");
        let indices: Vec<usize> = (0..scores.len()).collect();
        let mut score_results = BatchResults::new();
        send_split(&indices, &mut score_results, |part| {
            let body: Vec<serde_json::Value> = part
                .iter()
                .map(|&k| {
                    serde_json::Value::Object(ingestion::score_json(
                        &scores[k].1,
                        &self.config.environment,
                    ))
                })
                .collect();
            let body = serde_json::to_vec(&body).unwrap_or_default();
            let url = url.clone();
            async move {
                let reply = self.json_http.post(&url, "application/json", body).await?;
                Ok(if reply.status == 207 {
                    score_rejections(part, scores, &reply.body)
                } else {
                    Vec::new()
                })
            }
        })
        .await;
        let all: Vec<usize> = scores.iter().map(|(i, _)| *i).collect();
        merge(&mut p.results, score_results, &all, |k| scores[k].0);
    }

    async fn send_ingestion(&self, p: &mut Prepared) {
        let encoder = IngestionEncoder {
            environment: self.config.environment.clone(),
        };
        // Events per batch item, with one `trace-create` per trace and request
        // batch (a root always sends its own: it alone knows the trace's name and payloads).
        let mut traces_seen = std::collections::HashSet::new();
        let mut items: Vec<(usize, Vec<IngestionEvent>, usize)> = Vec::new();
        for (i, m) in &p.spans {
            let first = traces_seen.insert(m.trace.id.clone());
            let origin = format!("span:{}:{}:ended", m.observation.trace_id, m.observation.id);
            let events = encoder.span_events(m, &origin, first);
            items.push((*i, events, 0));
        }
        for (i, s) in &p.scores {
            let events = vec![encoder.score_event(s, &format!("score:{}", s.id))];
            items.push((*i, events, 0));
        }
        // Encode each event once, to cut the batch into requests by size.
        let mut encoded: Vec<Vec<Vec<u8>>> = Vec::with_capacity(items.len());
        for (_, events, size) in &mut items {
            let e: Vec<Vec<u8>> = events
                .iter()
                .map(|ev| serde_json::to_vec(ev).unwrap_or_default())
                .collect();
            *size = e.iter().map(|b| b.len() + 1).sum();
            encoded.push(e);
        }
        let url = self.url("/api/public/ingestion");
        let groups = group_by_size(
            items.iter().map(|(_, _, s)| *s),
            self.config.max_request_bytes,
        );
        for group in groups {
            if let Some(e) = p.results.failure() {
                // The destination already failed as a whole: do not hammer it.
                let e = ExportError::new(e.class, e.message.clone());
                let rest: Vec<usize> = group.iter().map(|&k| items[k].0).collect();
                p.results.fail(&rest, e);
                continue;
            }
            let mut group_results = BatchResults::new();
            let items = &items;
            let encoded = &encoded;
            send_split(&group, &mut group_results, |part| {
                let body = ingestion_body(part, encoded, &self.config.public_key);
                let url = url.clone();
                async move {
                    let reply = self.json_http.post(&url, "application/json", body).await?;
                    ingestion_rejections(part, items, &reply)
                }
            })
            .await;
            let all: Vec<usize> = group.iter().map(|&k| items[k].0).collect();
            merge(&mut p.results, group_results, &all, |k| items[k].0);
        }
    }
}

/// Moves the results of a sub-list of the batch (spans, scores, a request
/// group) into the batch's results; `to_batch` translates sub-list indices,
/// `all` lists the sub-list's items by batch index. Returns a copy of the
/// error when the sub-list failed because the credentials were refused.
fn merge(
    into: &mut BatchResults,
    from: BatchResults,
    all: &[usize],
    to_batch: impl Fn(usize) -> usize,
) -> Option<ExportError> {
    let delivered = from.delivered_count();
    match from.into_outcome() {
        Ok(outcome) => {
            into.delivered(delivered);
            into.extend_rejections(outcome.rejected.into_iter().map(|r| ItemRejection {
                index: to_batch(r.index),
                ..r
            }));
            None
        }
        Err(e) => {
            // The whole sub-list failed the same way.
            let disabled = (e.class == ErrorClass::Disabled)
                .then(|| ExportError::new(e.class, e.message.clone()));
            into.fail(all, e);
            disabled
        }
    }
}

fn group_by_size(sizes: impl Iterator<Item = usize>, max: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (k, size) in sizes.enumerate() {
        if !current.is_empty() && bytes + size > max {
            groups.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(k);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn ingestion_body(part: &[usize], encoded: &[Vec<Vec<u8>>], public_key: &str) -> Vec<u8> {
    let events: Vec<&Vec<u8>> = part.iter().flat_map(|&k| encoded[k].iter()).collect();
    let metadata = BatchMetadata {
        batch_size: events.len(),
        sdk_integration: "aiobs",
        sdk_name: SDK_NAME,
        sdk_version: env!("CARGO_PKG_VERSION"),
        public_key,
    };
    let mut body = Vec::with_capacity(events.iter().map(|e| e.len() + 1).sum::<usize>() + 256);
    body.extend_from_slice(b"{\"batch\":[");
    for (n, e) in events.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.extend_from_slice(b"],\"metadata\":");
    body.extend_from_slice(&serde_json::to_vec(&metadata).unwrap_or_else(|_| b"{}".to_vec()));
    body.push(b'}');
    body
}

fn ingestion_rejections(
    part: &[usize],
    items: &[(usize, Vec<IngestionEvent>, usize)],
    reply: &aiobs_http::HttpReply,
) -> Result<Vec<ItemRejection>, SendError> {
    if reply.status != 207 {
        return Ok(Vec::new());
    }
    let Some(mut errors) = ingestion::multi_status_errors(&reply.body) else {
        return Err(SendError::Export(ExportError::transient(
            "Langfuse answered 207 with a body that is not {successes, errors}: results unknown, sending again",
        )));
    };
    // An item is retried if any of its events may succeed later.
    errors.sort_by_key(|e| !aiobs_http::item_status_class(e.status).is_retryable());
    let sent = part
        .iter()
        .flat_map(|&k| items[k].1.iter().map(move |ev| (k, ev.id.as_str())));
    Ok(rejections_by_id(
        sent,
        errors
            .into_iter()
            .map(|e| ItemError::new(e.id, e.status, e.message)),
    ))
}

/// Reads a `POST /api/public/scores` 207 (`{accepted, rejected, errors}`).
fn score_rejections(
    part: &[usize],
    scores: &[(usize, ScoreBody)],
    body: &[u8],
) -> Vec<ItemRejection> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let errors: Vec<&serde_json::Value> = v
        .get("errors")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let message = |e: &serde_json::Value| {
        e.get("message")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("refused")
            .to_owned()
    };
    // Errors that name the score they refuse.
    let named: Vec<ItemError> = errors
        .iter()
        .filter_map(|e| {
            let id = e.get("id").and_then(serde_json::Value::as_str)?;
            Some(ItemError::new(id, 400, message(e)))
        })
        .collect();
    if !named.is_empty() {
        let sent = part.iter().map(|&k| (k, scores[k].1.id.as_str()));
        return rejections_by_id(sent, named);
    }
    // Otherwise only a count: the last `rejected` scores are counted as refused.
    let n = v
        .get("rejected")
        .and_then(serde_json::Value::as_u64)
        .map_or(errors.len(), |n| usize::try_from(n).unwrap_or(usize::MAX));
    let why = errors
        .first()
        .map_or_else(|| "refused".to_owned(), |e| message(e));
    part.iter()
        .rev()
        .take(n)
        .map(|&k| ItemRejection {
            index: k,
            class: ErrorClass::Permanent,
            message: format!(
                "Langfuse refused {n} of {} scores (it does not say which): {why}",
                part.len()
            ),
        })
        .collect()
}

#[aiobs_core::async_trait]
impl Exporter for LangfuseExporter {
    fn name(&self) -> &str {
        NAME
    }

    fn signals(&self) -> Signals {
        let s = Signals::ENDED_SPANS.with(Signal::Score);
        if self.config.feedback_as_scores {
            s.with(Signal::Feedback)
        } else {
            s
        }
    }

    fn batch_policy(&self) -> BatchPolicy {
        let p = BatchPolicy::default()
            .with_max_events(500)
            .with_max_bytes(2_000_000);
        match self.config.mode {
            DeliveryMode::Batched => p.with_max_wait(Duration::from_secs(1)),
            DeliveryMode::Realtime => p.with_max_wait(Duration::from_millis(10)),
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .with_max_retries(4)
            .with_initial_backoff(Duration::from_millis(500))
            .with_max_backoff(Duration::from_secs(30))
            // One export may take a spans and a scores request.
            .with_attempt_timeout(self.config.timeout * 2 + Duration::from_secs(5))
    }

    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        // No request here: a bad key shows up as a 401 on the first export,
        // which disables the exporter with one clear error.
        let _already_set = self.service_name.set(ctx.service_name.clone());
        Ok(())
    }

    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut p = self.prepare(batch);
        match self.config.transport {
            LangfuseTransport::Otlp => self.send_otlp(&mut p).await,
            LangfuseTransport::Ingestion => self.send_ingestion(&mut p).await,
        }
        p.results.into_outcome().map_err(|e| self.explain(e))
    }

    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Nothing is buffered here: `export` returns only once Langfuse answered.
        Ok(())
    }

    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        // No background task or buffer to stop; the connection pool closes on drop.
        Ok(())
    }
}

impl LangfuseExporter {
    /// Makes a refused-credentials error say what to check.
    fn explain(&self, e: ExportError) -> ExportError {
        if e.class != ErrorClass::Disabled {
            return e;
        }
        ExportError::disabled(format!(
            "Langfuse refused the credentials of public key {} at {} ({}); check LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY and that LANGFUSE_BASE_URL is the project's region",
            self.config.public_key, self.config.base_url, e.message
        ))
    }
}

impl LangfuseExporterBuilder {
    /// Validates the configuration and builds the exporter.
    pub fn build(self) -> Result<LangfuseExporter, LangfuseBuildError> {
        LangfuseExporter::new(self.into_config()?)
    }
}
