//! `SentryExporter`: `Tracking<T>` gathers each root's children; the batch is
//! mapped into transactions and error events; each goes to Sentry as its own
//! envelope over the shared HTTP layer, and `export` returns what Sentry
//! acknowledged, item by item. Queueing, retries and accounting stay in the
//! pipeline worker. No `sentry::Client`, no Hub: the application's own Sentry
//! setup is never touched (see `docs/adr/0001-sentry-envelopes-over-aiobs-http.md`).

use std::collections::HashSet;

use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    RetryPolicy, Signals, TrackedEvent, Tracking, TrackingExporter,
};
use aiobs_http::reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};
use aiobs_http::{
    BatchResults, Compression, HttpClientConfig, HttpTransport, SendError, classify_status,
    classify_transport_error, user_agent,
};
use sentry::transports::{RateLimiter, RateLimitingCategory};

use crate::config::{SentryBuildError, SentryConfig, SentryExporterBuilder};
use crate::encode;
use crate::mapping::{Document, Mapper, Payload};

/// The exporter's name, and the metadata key it reads (`metadata.sentry`).
pub const NAME: &str = "sentry";

/// Envelopes sent one after another by one `export` call: sending them
/// concurrently would let a refusal of the first arrive after later ones
/// were acknowledged, so a whole-batch retry would send those again.
const ENVELOPES_IN_FLIGHT: usize = 1;

/// The header carrying Sentry's per-category rate limits.
const RATE_LIMITS_HEADER: &str = "x-sentry-rate-limits";

/// Sends aiobs traces to Sentry as AI Agents transactions, with each failed
/// span as a linked error event.
///
/// Build it with [`SentryExporter::builder`] or [`SentryExporter::from_env`].
/// Children are held until their root ends and sent inside the root's
/// transaction; children whose root does not end here (still open at flush,
/// already sent, ended in another process) are sent as transactions of their
/// own under their parent span. Held spans are *pending* until Sentry
/// acknowledged them, so a flush report never counts them early.
#[derive(Debug)]
pub struct SentryExporter {
    tracking: Tracking<Envelopes>,
}

/// The vendor half: maps what `Tracking` hands over and sends envelopes.
#[derive(Debug)]
pub(crate) struct Envelopes {
    config: SentryConfig,
    mapper: Mapper,
    http: HttpTransport,
    url: String,
    limiter: Mutex<RateLimiter>,
    truncated: AtomicU64,
    envelopes_sent: AtomicU64,
}

impl SentryExporter {
    /// A builder with defaults only (no environment variables read).
    pub fn builder() -> SentryExporterBuilder {
        SentryExporterBuilder::default()
    }

    /// An exporter configured from `SENTRY_DSN`, `SENTRY_ENVIRONMENT` and
    /// `SENTRY_RELEASE` (see [`SentryExporterBuilder::from_env`]).
    ///
    /// # Errors
    /// [`SentryBuildError::MissingDsn`] when `SENTRY_DSN` is unset or empty,
    /// [`SentryBuildError::InvalidDsn`] when it cannot be parsed.
    pub fn from_env() -> Result<Self, SentryBuildError> {
        SentryExporterBuilder::from_env().build()
    }

    pub(crate) fn new(config: SentryConfig) -> Result<Self, SentryBuildError> {
        let client = HttpClientConfig::new(NAME)
            .timeout(config.timeout)
            .build()
            .map_err(|e| SentryBuildError::Http(e.to_string()))?;
        let limits = config.tracking;
        let envelopes = Envelopes {
            mapper: Mapper::new(&config),
            url: config.dsn.envelope_api_url().to_string(),
            http: HttpTransport::new(client).with_compression(Compression::Gzip),
            limiter: Mutex::new(RateLimiter::new()),
            truncated: AtomicU64::new(0),
            envelopes_sent: AtomicU64::new(0),
            config,
        };
        Ok(Self {
            tracking: Tracking::with_limits(envelopes, limits),
        })
    }

    /// The envelope endpoint (`{scheme}://{host}/api/{project}/envelope/`).
    pub fn envelope_url(&self) -> &str {
        &self.tracking.inner().url
    }

    /// How many data values were truncated to fit Sentry's event size limit.
    pub fn truncated_fields(&self) -> u64 {
        self.tracking.inner().truncated.load(Ordering::Relaxed)
    }

    /// How many envelopes Sentry acknowledged.
    pub fn envelopes_sent(&self) -> u64 {
        self.tracking.inner().envelopes_sent.load(Ordering::Relaxed)
    }

    /// How many child spans are held now, waiting for their root.
    pub fn held_spans(&self) -> usize {
        self.tracking.held_spans()
    }
}

impl SentryExporterBuilder {
    /// Validates the configuration and builds the exporter.
    ///
    /// # Errors
    /// A missing or malformed DSN, or an HTTP client that cannot be created.
    pub fn build(self) -> Result<SentryExporter, SentryBuildError> {
        SentryExporter::new(self.into_config()?)
    }
}

/// The rate-limit category of a document (Sentry's `error` / `transaction`).
fn category(doc: &Document) -> (fn() -> RateLimitingCategory, &'static str) {
    match doc.payload {
        Payload::Transaction(_) => (|| RateLimitingCategory::Transaction, "transaction"),
        Payload::Error(_) => (|| RateLimitingCategory::Error, "error"),
    }
}

impl Envelopes {
    fn limiter(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        self.limiter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one document; on 413 splits a transaction in two and sends the
    /// halves, down to single children. Returns each part's items, result,
    /// and whether a request was made (false: held back by a rate limit).
    async fn send_document(
        &self,
        doc: Document,
    ) -> Vec<(Vec<usize>, Result<(), ExportError>, bool)> {
        let mut out = Vec::new();
        let mut todo = vec![doc];
        while let Some(doc) = todo.pop() {
            let (cat, cat_name) = category(&doc);
            if let Some(wait) = self.limiter().is_disabled(cat()) {
                let e = ExportError::throttled(
                    Some(wait),
                    format!(
                        "Sentry rate limit (X-Sentry-Rate-Limits) for {cat_name} events in force for {:.0} s more; not sent",
                        wait.as_secs_f64().ceil()
                    ),
                );
                out.push((doc.items, Err(e), false));
                continue;
            }
            match self.send(&doc).await {
                Ok(()) => out.push((doc.items, Ok(()), true)),
                Err(SendError::TooLarge(msg)) => match encode::split(&doc) {
                    Some((a, b)) => {
                        todo.push(b);
                        todo.push(a);
                    }
                    None => out.push((
                        doc.items,
                        Err(ExportError::permanent(format!(
                            "Sentry refused the envelope as too large even alone (HTTP 413): {msg}"
                        ))),
                        true,
                    )),
                },
                Err(SendError::Export(e)) => out.push((doc.items, Err(e), true)),
                Err(other) => out.push((doc.items, Err(other.into()), true)),
            }
        }
        out
    }

    /// One envelope, POSTed gzip-compressed; its answer classified by the
    /// workspace's one classifier, the rate limits it announces recorded.
    async fn send(&self, doc: &Document) -> Result<(), SendError> {
        let (cat, _) = category(doc);
        let body = self.http.encode(&encode::envelope(doc));
        let auth = self.config.dsn.to_auth(Some(&user_agent(NAME))).to_string();
        let mut req = self
            .http
            .client()
            .post(&self.url)
            .headers(self.http.headers().clone())
            .header(CONTENT_TYPE, "application/x-sentry-envelope")
            .header("x-sentry-auth", auth);
        if let Some(enc) = self.http.compression().content_encoding() {
            req = req.header(CONTENT_ENCODING, enc);
        }
        let response = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Export(classify_transport_error(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.record_limits(&headers);
        let answer = response
            .bytes()
            .await
            .map_err(|e| SendError::Export(classify_transport_error(&e)))?;
        match classify_status(status, &headers, &answer, &self.url) {
            Ok(()) => {
                self.envelopes_sent.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            // A category limit may outlast the Retry-After: wait for the longer.
            Err(SendError::Export(e)) if matches!(e.class, ErrorClass::Throttled(_)) => {
                let limit = self.limiter().is_disabled(cat());
                let wait = match (e.class, limit) {
                    (ErrorClass::Throttled(Some(a)), Some(b)) => Some(a.max(b)),
                    (ErrorClass::Throttled(a), b) => a.or(b),
                    (_, b) => b,
                };
                Err(ExportError::throttled(wait, e.message).into())
            }
            Err(e) => Err(e),
        }
    }

    /// Records the per-category rate limits an answer announces
    /// (`X-Sentry-Rate-Limits`, on any status). A bare `429`/`503` with
    /// `Retry-After` is left to the pipeline worker, which waits it out
    /// before retrying (up to the retry policy's `max_backoff`, 60 s here).
    fn record_limits(&self, headers: &HeaderMap) {
        if let Some(v) = headers
            .get(RATE_LIMITS_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.limiter().update_from_sentry_header(v);
        }
    }

    fn count_truncations(&self, cut: u32) {
        if cut == 0 {
            return;
        }
        let before = self.truncated.fetch_add(u64::from(cut), Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(
                target: "aiobs",
                exporter = NAME,
                limit = self.config.max_event_bytes,
                "event over Sentry's size limit: longest data values truncated with a marker (further truncations are counted in SentryExporter::truncated_fields)"
            );
        }
    }
}

#[aiobs_core::async_trait]
impl TrackingExporter for Envelopes {
    fn name(&self) -> &str {
        NAME
    }

    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
    }

    fn batch_policy(&self) -> BatchPolicy {
        // Children wait for their root in `Tracking`, not in the batch: a
        // short wait sends each trace soon after its root ends.
        BatchPolicy::default()
            // One request per trace: a batch of 100 spans keeps an export
            // call short, so an attempt timeout rarely cuts one midway.
            .with_max_events(100)
            .with_max_bytes(8 * 1024 * 1024)
            .with_max_wait(Duration::from_secs(1))
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .with_max_retries(4)
            .with_initial_backoff(Duration::from_millis(500))
            // Sentry's default rate-limit window is 60 s: wait it out rather than cut it.
            .with_max_backoff(Duration::from_secs(60))
            // One export may carry many envelopes.
            .with_attempt_timeout(self.config.timeout * 6)
    }

    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        // No request: a refused DSN shows as a 401/403 on the first envelope,
        // which disables the exporter with one clear error.
        Ok(())
    }

    async fn export_tracked(&self, items: &[TrackedEvent]) -> Result<ExportOutcome, ExportError> {
        let (docs, unmappable) = self.mapper.map_batch(items);
        let mut results = BatchResults::new();
        let refused = unmappable.len();
        for i in unmappable {
            results.reject(
                i,
                ErrorClass::Permanent,
                "the Sentry exporter exports ended spans only",
            );
        }
        // One envelope per event is Sentry's rule, so a batch of many traces
        // is many requests, sent in order. As
        // `aiobs_http::send_split`: after a refused request, envelopes not yet
        // started share its failure unsent. A category held back by a rate
        // limit (nothing sent) does not stop the other categories.
        let stop: Mutex<Option<ExportError>> = Mutex::new(None);
        let stopped = || {
            stop.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|e| ExportError::new(e.class, e.message.clone()))
        };
        let answers: Vec<Vec<(Vec<usize>, Result<(), ExportError>, bool)>> =
            futures_util::stream::iter(docs.into_iter().map(|mut doc| {
                let (stop, stopped) = (&stop, &stopped);
                async move {
                    if let Some(e) = stopped() {
                        return vec![(doc.items, Err(e), false)];
                    }
                    let cut = encode::fit(&mut doc, self.config.max_event_bytes);
                    self.count_truncations(cut);
                    let out = self.send_document(doc).await;
                    for (_, r, sent) in &out {
                        if let (Err(e), true) = (r, sent) {
                            stop.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .get_or_insert_with(|| {
                                    ExportError::new(e.class, e.message.clone())
                                });
                        }
                    }
                    out
                }
            }))
            .buffered(ENVELOPES_IN_FLIGHT)
            .collect()
            .await;
        let mut failed: HashSet<usize> = HashSet::new();
        for (part, result, _) in answers.into_iter().flatten() {
            let Err(e) = result else { continue };
            let part: Vec<usize> = part.into_iter().filter(|i| failed.insert(*i)).collect();
            results.fail(&part, e);
        }
        let delivered = items.len() - failed.len() - refused;
        results.delivered(delivered);
        results.into_outcome().map_err(|e| self.explain(e))
    }

    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Nothing is buffered here: `export_tracked` returns once Sentry
        // answered; held children are `Tracking`'s, which flushes them first.
        Ok(())
    }

    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        // No client, no background thread: nothing to stop.
        Ok(())
    }
}

impl Envelopes {
    /// Makes a refused-DSN error say what to check.
    fn explain(&self, e: ExportError) -> ExportError {
        if e.class != ErrorClass::Disabled {
            return e;
        }
        ExportError::disabled(format!(
            "Sentry refused the DSN's public key {} for project {} ({}); check SENTRY_DSN",
            self.config.dsn.public_key(),
            self.config.dsn.project_id(),
            e.message
        ))
    }
}

#[aiobs_core::async_trait]
impl Exporter for SentryExporter {
    fn name(&self) -> &str {
        self.tracking.name()
    }
    fn signals(&self) -> Signals {
        self.tracking.signals()
    }
    fn batch_policy(&self) -> BatchPolicy {
        self.tracking.batch_policy()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.tracking.retry_policy()
    }
    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        self.tracking.init(ctx).await
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        self.tracking.export(batch).await
    }
    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        self.tracking.flush(deadline).await
    }
    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        self.tracking.shutdown(deadline).await
    }
}
