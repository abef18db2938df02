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
    Auth, BatchResults, Compression, HttpClientConfig, HttpTransport, chunk_by_size, send_split,
};

use crate::config::{
    DeliveryMode, LangfuseBuildError, LangfuseConfig, LangfuseExporterBuilder, LangfuseTransport,
};
use crate::ingestion::{self, IngestionEncoder};
use crate::mapping::{MappedSpan, Mapper, ScoreBody};
use crate::otlp::{self, OtlpEncoder};
use crate::{scores_api, truncate};

/// The exporter's name, and the metadata key it reads (`metadata.langfuse`).
pub const NAME: &str = "langfuse";

/// The value of the `x-langfuse-sdk-name` header.
pub(crate) const SDK_NAME: &str = "aiobs-rust";

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
        Self::builder().from_env().build()
    }

    /// The exporter the environment asks for: `Ok(None)` when neither
    /// `LANGFUSE_PUBLIC_KEY` nor `LANGFUSE_SECRET_KEY` is set (not
    /// configured: nothing to do), the exporter when both are, and an error
    /// naming the missing one when only one is (misconfigured).
    pub fn configured_from_env() -> Result<Option<Self>, LangfuseBuildError> {
        if !crate::config::configured_by(aiobs_http::process_env)? {
            return Ok(None);
        }
        Self::from_env().map(Some)
    }

    pub(crate) fn new(config: LangfuseConfig) -> Result<Self, LangfuseBuildError> {
        let client = HttpClientConfig::new(NAME)
            .timeout(config.timeout)
            .build()?;
        let common = HttpTransport::new(client)
            .with_auth(Auth::basic(&config.public_key, config.secret_key.clone()))?
            .with_header("x-langfuse-sdk-name", SDK_NAME)?
            .with_header("x-langfuse-sdk-version", env!("CARGO_PKG_VERSION"))?
            .with_header("x-langfuse-public-key", &config.public_key)?;
        let otlp_http = common
            .clone()
            // "include x-langfuse-ingestion-version=4 to enable real time
            // processing of exported spans" (Langfuse API docs).
            .with_header("x-langfuse-ingestion-version", "4")?
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

    /// OTLP transport: the spans, then the scores (unless the keys were refused).
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
        let mut results = BatchResults::new();
        send_split(&positions(spans.len()), &mut results, |part| {
            let chosen: Vec<&MappedSpan> = part.iter().map(|&k| &spans[k].1).collect();
            let body = encoder.encode(&chosen);
            let url = url.clone();
            async move {
                let reply = self
                    .otlp_http
                    .post(&url, "application/x-protobuf", body)
                    .await?;
                otlp::answers(&reply.body).resolve(part.iter().map(|&k| (k, "")))
            }
        })
        .await;
        let all: Vec<usize> = spans.iter().map(|(i, _)| *i).collect();
        if let Some(refused) = merge(&mut p.results, results, &all, |k| spans[k].0) {
            // The same keys would be refused for the scores.
            let rest: Vec<usize> = p.scores.iter().map(|(i, _)| *i).collect();
            p.results.fail(&rest, refused);
            return;
        }

        let scores = &p.scores;
        let url = self.url("/api/public/scores");
        let environment = self.config.environment.as_deref();
        let mut results = BatchResults::new();
        send_split(&positions(scores.len()), &mut results, |part| {
            let body = scores_api::request_body(part.iter().map(|&k| &scores[k].1), environment);
            let url = url.clone();
            async move {
                let reply = self.json_http.post(&url, "application/json", body).await?;
                let answers = if reply.status == 207 {
                    scores_api::multi_status(&reply.body)
                } else {
                    aiobs_http::ItemAnswers::AllAccepted
                };
                answers.resolve(part.iter().map(|&k| (k, scores[k].1.id.as_str())))
            }
        })
        .await;
        let all: Vec<usize> = scores.iter().map(|(i, _)| *i).collect();
        merge(&mut p.results, results, &all, |k| scores[k].0);
    }

    /// Ingestion transport: every event in size-bounded requests, in order.
    async fn send_ingestion(&self, p: &mut Prepared) {
        let encoder = IngestionEncoder {
            environment: self.config.environment.clone(),
        };
        let items = encoder.outgoing(&p.spans, &p.scores);
        let url = self.url("/api/public/ingestion");
        for run in chunk_by_size(
            items.iter().map(|i| i.size()),
            self.config.max_request_bytes,
        ) {
            let group: Vec<usize> = run.collect();
            let all: Vec<usize> = group.iter().map(|&k| items[k].batch_index).collect();
            if let Some(e) = p.results.failure() {
                // Langfuse already failed as a whole: the rest shares the failure.
                let e = ExportError::new(e.class, e.message.clone());
                p.results.fail(&all, e);
                continue;
            }
            let mut results = BatchResults::new();
            let items = &items;
            send_split(&group, &mut results, |part| {
                let body = ingestion::request_body(part, items, &self.config.public_key);
                let url = url.clone();
                async move {
                    let reply = self.json_http.post(&url, "application/json", body).await?;
                    ingestion::rejections(part, items, &reply)
                }
            })
            .await;
            merge(&mut p.results, results, &all, |k| items[k].batch_index);
        }
    }

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

/// `0..n`, the positions of a sub-list.
fn positions(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Moves the results of a sub-list of the batch (its spans, its scores, one
/// request group) into the batch's results: `to_batch` translates sub-list
/// positions, `all` lists the sub-list's batch indices. Returns a copy of the
/// error when the whole sub-list failed because the keys were refused.
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
            let refused = (e.class == ErrorClass::Disabled)
                .then(|| ExportError::new(e.class, e.message.clone()));
            into.fail(all, e);
            refused
        }
    }
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

impl LangfuseExporterBuilder {
    /// Validates the configuration and builds the exporter.
    pub fn build(self) -> Result<LangfuseExporter, LangfuseBuildError> {
        LangfuseExporter::new(self.into_config()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exporter(b: LangfuseExporterBuilder) -> LangfuseExporter {
        b.public_key("pk").secret_key("sk").build().unwrap()
    }

    #[test]
    fn subscribes_to_ended_spans_scores_and_feedback() {
        let e = exporter(LangfuseExporter::builder());
        let s = e.signals();
        for sig in [Signal::SpanEnded, Signal::Score, Signal::Feedback] {
            assert!(s.contains(sig), "{sig:?}");
        }
        for sig in [
            Signal::SpanStarted,
            Signal::SpanUpdated,
            Signal::Log,
            Signal::Metric,
        ] {
            assert!(!s.contains(sig), "{sig:?}");
        }
        let no_feedback = exporter(LangfuseExporter::builder().feedback_as_scores(false));
        assert!(!no_feedback.signals().contains(Signal::Feedback));
    }

    #[test]
    fn realtime_sends_promptly_batched_waits_for_company() {
        let batched = exporter(LangfuseExporter::builder()).batch_policy();
        let realtime = exporter(LangfuseExporter::builder().realtime()).batch_policy();
        assert_eq!(batched.max_wait, Duration::from_secs(1));
        assert!(realtime.max_wait <= Duration::from_millis(10));
        assert_eq!(batched.max_events, realtime.max_events);
    }

    #[test]
    fn events_it_does_not_export_are_refused_not_lost() {
        use aiobs_core::{LogLevel, LogRecord};
        use std::sync::Arc;
        let e = exporter(LangfuseExporter::builder());
        let batch = [Arc::new(ObservabilityEvent::Log(LogRecord::new(
            LogLevel::Info,
            "x",
        )))];
        let p = e.prepare(&batch);
        let outcome = p.results.into_outcome().unwrap();
        assert_eq!(outcome.rejected.len(), 1);
        assert_eq!(outcome.rejected[0].class, ErrorClass::Permanent);
    }
}
