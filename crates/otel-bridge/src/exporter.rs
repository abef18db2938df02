//! [`OtelExporter`]: the pipeline's worker calls an OpenTelemetry
//! `SpanExporter` directly — no `BatchSpanProcessor` in between — so the
//! answer of every request is the answer of `export`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, ExportedSpan, Exporter,
    ExporterContext, ItemRejection, ObservabilityEvent, RetryPolicy, Signals, SpanEventKind,
};
use aiobs_http::{BatchResults, HttpClientConfig, HttpReply, HttpTransport, SendError, send_split};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message;
use tokio::sync::Mutex;

use crate::config::{OtelBuildError, OtelExporterBuilder, OtlpProtocol, Resolved};
use crate::mapping::Mapper;
use crate::metrics::GenAiMetrics;
use crate::offload;
use crate::transport::{self, OtlpTransport};

/// The exporter's default name (and its metadata key, `metadata.otel`).
pub const NAME: &str = "otel";

/// Sends aiobs spans to any OpenTelemetry backend: mapped to `SpanData` with
/// the GenAI semantic conventions (see `docs/exporters.md`), handed to an
/// `opentelemetry_sdk` [`SpanExporter`] — by default `opentelemetry-otlp`'s
/// OTLP/HTTP exporter, configured by [`OtelExporter::builder`] and the
/// standard `OTEL_EXPORTER_OTLP_*` variables — straight from the pipeline's
/// worker.
///
/// Why no `BatchSpanProcessor`: it drops spans when its queue is full while
/// `force_flush` still returns `Ok`. Here the worker batches, retries and
/// accounts, and `export` returns only when the backend answered:
///
/// | answer | what happens |
/// |---|---|
/// | 2xx | delivered; an OTLP `partial_success` with `rejected_spans = n` counts `n` spans as permanently failed (OTLP does not say which: the last `n` of the request) |
/// | 429, 503 | retried after `Retry-After` (seconds or HTTP date), else with backoff |
/// | 408, other 5xx, timeouts, refused or reset connections | retried with backoff |
/// | 413 | the request is split in halves down to single spans; a span alone too large fails permanently |
/// | 401, 403 | the exporter is disabled with one error; its spans are counted dropped |
/// | other 4xx, 3xx | failed permanently, counted |
///
/// The answers are read through aiobs-http's client and classifier
/// (`opentelemetry-otlp` itself would only say "InternalFailure"), and
/// `opentelemetry-otlp`'s own retries are off: the worker is the one place
/// that retries. With a `SpanExporter` of your own ([`OtelExporterBuilder::build_with`])
/// only its result is known: `Ok` is delivered, a timeout or internal
/// failure is retried, an exporter already shut down fails permanently.
///
/// ```no_run
/// use std::time::Duration;
/// use aiobs_core::{Observability, SpanOptions, SpanType};
/// use aiobs_otel_bridge::OtelExporter;
///
/// // OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318, OTEL_SERVICE_NAME=weather-agent, ...
/// let obs = Observability::builder().exporter(OtelExporter::from_env()?).build()?;
/// obs.start_span(SpanOptions::new("weather-agent", SpanType::AgentRun)).end();
/// let report = obs.flush_blocking(Duration::from_secs(10));
/// assert!(report.is_success(), "{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OtelExporter<E = opentelemetry_otlp::SpanExporter> {
    name: String,
    /// What `export` runs, off the pipeline's thread.
    delivery: Delivery<E>,
    service_name: Option<String>,
    resource_attributes: Vec<(String, String)>,
    traces_url: Option<String>,
    batch_policy: BatchPolicy,
    retry_policy: RetryPolicy,
    shut_down: AtomicBool,
    /// The pipeline's context, from `init` (blocking work goes through it).
    ctx: offload::Context,
}

#[derive(Debug, Clone, Copy)]
enum Answers {
    /// Requests go through [`OtlpTransport`]: every answer is classified.
    Classified(OtlpProtocol),
    /// A user-supplied `SpanExporter`: only its `OTelSdkResult` is known.
    ResultOnly,
}

impl<E> std::fmt::Debug for OtelExporter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelExporter")
            .field("name", &self.name)
            .field("traces_url", &self.traces_url)
            .field("service_name", &self.service_name)
            .field("metrics", &self.delivery.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl OtelExporter {
    /// A builder with the specification's defaults only; add
    /// [`OtelExporterBuilder::from_env`] to read the `OTEL_*` variables.
    pub fn builder() -> OtelExporterBuilder {
        OtelExporterBuilder::default()
    }

    /// The exporter configured by the standard `OTEL_*` variables alone.
    ///
    /// # Errors
    /// A malformed variable, an invalid endpoint or header.
    pub fn from_env() -> Result<Self, OtelBuildError> {
        Self::builder().from_env().build()
    }
}

impl OtelExporterBuilder {
    /// Builds the exporter on `opentelemetry-otlp`'s OTLP/HTTP span exporter.
    ///
    /// # Errors
    /// A malformed environment variable, an invalid endpoint or header, or an
    /// HTTP client that cannot be created.
    pub fn build(self) -> Result<OtelExporter, OtelBuildError> {
        let cfg = self.resolve()?;
        let transport = otlp_transport(&cfg)?;
        // Compression is the transport's (see `OtlpTransport`).
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(transport.clone())
            .with_endpoint(cfg.traces_url.clone())
            .with_protocol(cfg.otlp_protocol())
            .with_timeout(cfg.timeout)
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|e| OtelBuildError::Exporter(e.to_string()))?;
        let metrics = if self.genai_metrics {
            Some(Arc::new(GenAiMetrics::new(&cfg, transport)?))
        } else {
            None
        };
        Ok(self.assemble(
            exporter,
            &cfg,
            Answers::Classified(cfg.protocol),
            Some(cfg.traces_url.clone()),
            metrics,
        ))
    }

    /// Builds the exporter on a `SpanExporter` of your own (an in-memory
    /// exporter in tests, a gRPC exporter, a vendor's): the mapping, service
    /// name, resource, batching and retry settings apply; the OTLP transport
    /// settings (endpoint, headers, protocol, compression, timeout) and GenAI
    /// metrics do not.
    ///
    /// # Errors
    /// A malformed environment variable read by [`OtelExporterBuilder::from_env`].
    pub fn build_with<E: SpanExporter + 'static>(
        self,
        exporter: E,
    ) -> Result<OtelExporter<E>, OtelBuildError> {
        let cfg = self.resolve()?;
        Ok(self.assemble(exporter, &cfg, Answers::ResultOnly, None, None))
    }

    fn assemble<E>(
        self,
        exporter: E,
        cfg: &Resolved,
        answers: Answers,
        traces_url: Option<String>,
        metrics: Option<Arc<GenAiMetrics>>,
    ) -> OtelExporter<E> {
        OtelExporter {
            name: self.name,
            delivery: Delivery {
                exporter: Arc::new(Mutex::new(exporter)),
                mapper: Arc::new(Mapper::new(
                    aiobs_core::semconv::AttributeOptions::default()
                        .capture_content(cfg.capture_content)
                        .stability(cfg.stability),
                )),
                answers,
                metrics,
            },
            service_name: self.service_name,
            resource_attributes: cfg.resource.clone(),
            traces_url,
            batch_policy: self.batch_policy,
            retry_policy: cfg.retry_policy,
            shut_down: AtomicBool::new(false),
            ctx: offload::Context::new(),
        }
    }
}

/// The HTTP client `opentelemetry-otlp` sends through.
fn otlp_transport(cfg: &Resolved) -> Result<OtlpTransport, OtelBuildError> {
    let client = HttpClientConfig::new(NAME)
        .timeout(cfg.timeout)
        .env_proxy(cfg.env_proxy)
        .build()
        .map_err(|e| OtelBuildError::Exporter(e.to_string()))?;
    OtlpTransport::new(
        HttpTransport::new(client),
        &cfg.headers,
        cfg.compression == crate::config::OtlpCompression::Gzip,
    )
}

impl<E> OtelExporter<E> {
    /// The URL spans are sent to (`None` for a `SpanExporter` of your own).
    pub fn traces_url(&self) -> &str {
        self.traces_url.as_deref().unwrap_or_default()
    }

    /// The resource every span is sent with: `service.name` (configured, else
    /// the pipeline's `service_name`), the configured attributes, and
    /// `telemetry.sdk.*` naming aiobs.
    fn resource(&self, pipeline_service: &str) -> Resource {
        let service = self
            .service_name
            .clone()
            .unwrap_or_else(|| pipeline_service.to_owned());
        Resource::builder_empty()
            .with_attributes(
                self.resource_attributes
                    .iter()
                    .filter(|(k, _)| k != "service.name")
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .with_attributes([
                KeyValue::new("telemetry.sdk.name", "aiobs"),
                KeyValue::new("telemetry.sdk.language", "rust"),
                KeyValue::new("telemetry.sdk.version", env!("CARGO_PKG_VERSION")),
            ])
            .with_service_name(service)
            .build()
    }
}

/// Mapping, sending and reading the answers of one `export` call. Runs on
/// tokio's blocking pool, not the pipeline's thread: mapping and OTLP
/// encoding cost CPU (a few microseconds per span) that would otherwise
/// delay the pipeline's routing and every other exporter's worker.
struct Delivery<E> {
    exporter: Arc<Mutex<E>>,
    mapper: Arc<Mapper>,
    /// How answers are read: through our transport (classified), or only from `E`'s result.
    answers: Answers,
    metrics: Option<Arc<GenAiMetrics>>,
}

impl<E> Clone for Delivery<E> {
    fn clone(&self) -> Self {
        Self {
            exporter: self.exporter.clone(),
            mapper: self.mapper.clone(),
            answers: self.answers,
            metrics: self.metrics.clone(),
        }
    }
}

impl<E: SpanExporter + 'static> Delivery<E> {
    /// Exports the ended spans of `batch`: the result `Exporter::export` returns.
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let spans = ended_spans(batch);
        let indices: Vec<usize> = spans.iter().map(|(i, _)| *i).collect();
        let mut by_position: Vec<Option<&ExportedSpan>> = vec![None; batch.len()];
        for (i, s) in &spans {
            by_position[*i] = Some(*s);
        }
        // `send_split` only hands back positions taken from `indices`.
        let span_at = |i: usize| by_position.get(i).copied().flatten();
        // `SpanExporter::export` must not run concurrently: one call at a time.
        let exporter = self.exporter.lock().await;
        let mut results = BatchResults::new();
        send_split(&indices, &mut results, |part| {
            let data: Vec<SpanData> = part
                .iter()
                .filter_map(|&i| span_at(i))
                .map(|s| self.mapper.span_data(s))
                .collect();
            let exporter = &*exporter;
            async move {
                let out = self.send(exporter, data, part).await;
                if out.is_ok()
                    && let Some(m) = &self.metrics
                {
                    for s in part.iter().filter_map(|&i| span_at(i)) {
                        m.record(s);
                    }
                }
                out
            }
        })
        .await;
        results.into_outcome()
    }

    /// Sends one request's spans and reads the answer.
    async fn send(
        &self,
        exporter: &E,
        data: Vec<SpanData>,
        part: &[usize],
    ) -> Result<Vec<ItemRejection>, SendError> {
        match self.answers {
            Answers::Classified(protocol) => {
                let (result, mut answers) = transport::with_answers(exporter.export(data)).await;
                match (answers.pop(), result) {
                    (Some(Ok(reply)), Ok(())) => rejections(part, &Answer::of(&reply), protocol),
                    (Some(Ok(_)), Err(e)) => Err(ExportError::transient(format!(
                        "the OTLP exporter failed after a 2xx answer: {e}"
                    ))
                    .into()),
                    (Some(Err(e)), _) => Err(e),
                    (None, Ok(())) => Ok(Vec::new()),
                    (None, Err(e)) => Err(unsent(e)),
                }
            }
            Answers::ResultOnly => exporter
                .export(data)
                .await
                .map(|()| Vec::new())
                .map_err(|e| SendError::Export(sdk_error(e))),
        }
    }
}

/// A failure before any request went out (`opentelemetry-otlp` checks the
/// body size and encodes before sending).
fn unsent(e: OTelSdkError) -> SendError {
    let text = e.to_string();
    if text.contains("exceeding the configured limit") {
        return SendError::TooLarge(text);
    }
    match e {
        OTelSdkError::AlreadyShutdown => {
            ExportError::permanent("the OTLP exporter is already shut down").into()
        }
        OTelSdkError::Timeout(d) => {
            ExportError::transient(format!("the OTLP exporter timed out after {d:?}")).into()
        }
        other => {
            ExportError::permanent(format!("the OTLP exporter could not send: {other}")).into()
        }
    }
}

/// What a `SpanExporter` of the user's own said.
fn sdk_error(e: OTelSdkError) -> ExportError {
    match e {
        OTelSdkError::AlreadyShutdown => {
            ExportError::permanent("the span exporter is already shut down")
        }
        OTelSdkError::Timeout(d) => {
            ExportError::transient(format!("the span exporter timed out after {d:?}"))
        }
        other => ExportError::transient(format!("the span exporter failed: {other}")),
    }
}

/// What a 2xx answer said.
struct Answer<'a> {
    status: u16,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

impl<'a> Answer<'a> {
    fn of(reply: &'a HttpReply) -> Self {
        Self {
            status: reply.status,
            content_type: reply
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            body: &reply.body,
        }
    }
}

/// The spans of `part` a 2xx answer refused (OTLP `partial_success`).
fn rejections(
    part: &[usize],
    reply: &Answer<'_>,
    protocol: OtlpProtocol,
) -> Result<Vec<ItemRejection>, SendError> {
    let Some((n, why)) = partial_success(reply, protocol)? else {
        return Ok(Vec::new());
    };
    Ok(part
        .iter()
        .rev()
        .take(usize::try_from(n).unwrap_or(usize::MAX))
        .map(|&index| ItemRejection {
            index,
            class: ErrorClass::Permanent,
            message: format!(
                "the OTLP backend rejected {n} of {} spans (partial success; OTLP does not say which): {why}",
                part.len()
            ),
        })
        .collect())
}

/// `rejected_spans` and `error_message` of a 2xx body, when it reports a
/// partial success. An empty body, or one of either encoding with nothing
/// rejected, is a full success; an HTML page is not an OTLP answer at all.
fn partial_success(
    reply: &Answer<'_>,
    protocol: OtlpProtocol,
) -> Result<Option<(u64, String)>, SendError> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
    let body = reply.body;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let json = || -> Option<(u64, String)> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let p = v.as_object()?.get("partialSuccess")?;
        let n = &p["rejectedSpans"];
        let n = n
            .as_u64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        Some((n, p["errorMessage"].as_str().unwrap_or_default().to_owned()))
    };
    let proto = || -> Option<(u64, String)> {
        let r = ExportTraceServiceResponse::decode(body).ok()?;
        let p = r.partial_success?;
        Some((p.rejected_spans.max(0).unsigned_abs(), p.error_message))
    };
    let is_json = serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object());
    let read = match (protocol, is_json) {
        (_, true) => Some(json().unwrap_or((0, String::new()))),
        (OtlpProtocol::HttpProtobuf, false) => proto(),
        (_, false) => None,
    };
    match read {
        Some((0, _)) => Ok(None),
        Some(p) => Ok(Some(p)),
        None => {
            let html = reply.content_type.is_some_and(|t| t.contains("html"));
            if html {
                Err(ExportError::permanent(format!(
                    "the endpoint answered {} with an HTML page: it is not an OTLP/HTTP endpoint (check the URL; OTLP/HTTP listens on port 4318 at /v1/traces)",
                    reply.status
                ))
                .into())
            } else {
                // A 2xx whose body is not an ExportTraceServiceResponse: the
                // status acknowledged the spans; the body claims nothing else.
                Ok(None)
            }
        }
    }
}

/// The ended spans of a batch, with their positions.
fn ended_spans(batch: &ExportBatch) -> Vec<(usize, &ExportedSpan)> {
    batch
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &**e {
            ObservabilityEvent::Span {
                kind: SpanEventKind::Ended,
                span,
            } => Some((i, &**span)),
            _ => None,
        })
        .collect()
}

#[async_trait::async_trait]
impl<E: SpanExporter + 'static> Exporter for OtelExporter<E> {
    fn name(&self) -> &str {
        &self.name
    }

    fn signals(&self) -> Signals {
        // The ended span is complete: nothing else is needed.
        Signals::ENDED_SPANS
    }

    fn batch_policy(&self) -> BatchPolicy {
        self.batch_policy
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.retry_policy
    }

    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        let _first_init_wins = self.ctx.set(ctx.clone());
        let resource = self.resource(&ctx.service_name);
        self.delivery.exporter.lock().await.set_resource(&resource);
        if let Some(m) = &self.delivery.metrics {
            m.start(resource);
        }
        Ok(())
    }

    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ExportError::permanent(format!(
                "exporter {} is shut down",
                self.name
            )));
        }
        let delivery = self.delivery.clone();
        let events = batch.to_vec();
        offload::drive(&self.ctx, async move { delivery.export(&events).await }).await
    }

    async fn flush(&self, deadline: Instant) -> Result<(), ExportError> {
        // Nothing is buffered here; a SpanExporter of the user's own may buffer.
        let exporter = self.delivery.exporter.clone();
        let flushed = offload::run_blocking(
            &self.ctx,
            deadline,
            "SpanExporter::force_flush",
            move || exporter.blocking_lock().force_flush(),
        )
        .await?;
        flushed.map_err(sdk_error)?;
        if let Some(m) = &self.delivery.metrics {
            m.export(deadline).await?;
        }
        Ok(())
    }

    async fn shutdown(&self, deadline: Instant) -> Result<(), ExportError> {
        let flushed = self.flush(deadline).await;
        self.shut_down.store(true, Ordering::Release);
        let exporter = self.delivery.exporter.clone();
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let closed =
            offload::run_blocking(&self.ctx, deadline, "SpanExporter::shutdown", move || {
                exporter.blocking_lock().shutdown_with_timeout(left)
            })
            .await
            .and_then(|r| match r {
                Ok(()) | Err(OTelSdkError::AlreadyShutdown) => Ok(()),
                Err(e) => Err(sdk_error(e)),
            });
        if let Some(m) = &self.delivery.metrics {
            m.shutdown();
        }
        flushed.and(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<'a>(body: &'a [u8], content_type: &'a str) -> Answer<'a> {
        Answer {
            status: 200,
            content_type: Some(content_type),
            body,
        }
    }

    #[test]
    fn partial_success_in_either_encoding() {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let proto = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "bad span".into(),
            }),
        }
        .encode_to_vec();
        let part = [4, 5, 6];
        let r = rejections(
            &part,
            &reply(&proto, "application/x-protobuf"),
            OtlpProtocol::HttpProtobuf,
        )
        .unwrap();
        assert_eq!(r.iter().map(|x| x.index).collect::<Vec<_>>(), vec![6, 5]);
        assert!(r.iter().all(|x| x.class == ErrorClass::Permanent));
        assert!(r[0].message.contains("bad span"));

        let json = br#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"too old"}}"#;
        let r = rejections(
            &part,
            &reply(json, "application/json"),
            OtlpProtocol::HttpJson,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        for empty in [&b""[..], b"{}", b"{\"partialSuccess\":{}}"] {
            for p in [OtlpProtocol::HttpProtobuf, OtlpProtocol::HttpJson] {
                assert!(
                    rejections(&part, &reply(empty, "application/json"), p)
                        .unwrap()
                        .is_empty()
                );
            }
        }
        let html = rejections(
            &part,
            &reply(b"<html>login</html>", "text/html"),
            OtlpProtocol::HttpProtobuf,
        );
        assert!(matches!(html, Err(SendError::Export(e)) if e.class == ErrorClass::Permanent));
    }
}
