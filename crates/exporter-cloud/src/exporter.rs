//! `CloudExporter`: pushes one batch to the ingest endpoints and reports what
//! was acknowledged. Queueing, retry and accounting are the pipeline worker's.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ItemRejection, RetryPolicy, Signals, async_trait,
};
use aiobs_http::{BatchResults, HttpTransport, ItemAnswers, ItemError, SendError, send_split};

use crate::config::{CloudBuildError, CloudExporterBuilder};
use crate::encode::EncodedItems;
use crate::mapping::ItemKind;

/// Sends spans, logs, metrics, scores and feedback as gzip JSON to an ingest
/// endpoint with a bearer token. See the crate docs and `docs/exporters.md`.
///
/// `export` returns only once the ingest answered 2xx for every item (or
/// reported which items it refused), so a returned `flush` means delivered.
/// The exporter buffers nothing itself: its `flush` has nothing left to send.
#[derive(Clone)]
pub struct CloudExporter {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    endpoint: String,
    /// `{endpoint}/v1/<kind>`, by [`ItemKind::ALL`] order.
    urls: [String; 5],
    transport: HttpTransport,
    signals: Signals,
    batch_policy: BatchPolicy,
    retry_policy: RetryPolicy,
    max_body_bytes: usize,
    /// The service name, known at `init`.
    service: OnceLock<String>,
}

impl fmt::Debug for CloudExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudExporter")
            .field("name", &self.inner.name)
            .field("endpoint", &self.inner.endpoint)
            .field("signals", &self.inner.signals)
            .field("max_body_bytes", &self.inner.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl CloudExporter {
    /// Starts configuring.
    pub fn builder() -> CloudExporterBuilder {
        CloudExporterBuilder::default()
    }

    /// An exporter configured from `AIOBS_CLOUD_ENDPOINT` and
    /// `AIOBS_CLOUD_TOKEN`; a missing one is a [`CloudBuildError`] naming it.
    pub fn from_env() -> Result<Self, CloudBuildError> {
        Self::builder().from_env().build()
    }

    /// The exporter the environment asks for: `Ok(None)` when neither
    /// `AIOBS_CLOUD_ENDPOINT` nor `AIOBS_CLOUD_TOKEN` is set (not
    /// configured: nothing to do), the exporter when both are, and an error
    /// naming the missing one when only one is (misconfigured).
    pub fn configured_from_env() -> Result<Option<Self>, CloudBuildError> {
        if !crate::config::configured_by(aiobs_http::process_env)? {
            return Ok(None);
        }
        Self::from_env().map(Some)
    }

    pub(crate) fn new(
        b: CloudExporterBuilder,
        endpoint: String,
        transport: HttpTransport,
        retry_policy: RetryPolicy,
    ) -> Self {
        let urls = ItemKind::ALL.map(|k| format!("{endpoint}/v1/{}", k.as_str()));
        Self {
            inner: Arc::new(Inner {
                name: b.name,
                endpoint,
                urls,
                transport,
                signals: b.signals,
                batch_policy: b.batch_policy,
                retry_policy,
                max_body_bytes: b.max_body_bytes,
                service: OnceLock::new(),
            }),
        }
    }

    /// The ingest base URL (without a trailing slash).
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    fn url(&self, kind: ItemKind) -> &str {
        let pos = ItemKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.inner.urls[pos]
    }

    fn service(&self) -> &str {
        self.inner.service.get().map_or("unknown", String::as_str)
    }

    /// POSTs the items at `indices` in one request; returns the rejections of a 207.
    async fn send(
        &self,
        items: &EncodedItems,
        indices: &[usize],
    ) -> Result<Vec<ItemRejection>, SendError> {
        let body = items.envelope(indices, self.service());
        let reply = self
            .inner
            .transport
            .post(self.url(items.kind), "application/json", body)
            .await?;
        let answers = if reply.status == 207 {
            multi_status(reply.json())
        } else {
            ItemAnswers::AllAccepted
        };
        answers.resolve(items.ids(indices))
    }
}

/// Reads a 207 body: `{"errors": [{"id", "status", "message"}]}`. Anything
/// else says nothing readable about which items failed.
fn multi_status(body: Option<serde_json::Value>) -> ItemAnswers {
    let Some(errors) = body
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
    else {
        return ItemAnswers::Unreadable("HTTP 207 without an `errors` list".into());
    };
    let named = errors
        .iter()
        .map(|e| {
            ItemError::new(
                // An error naming no item leaves the answer ambiguous (see
                // `ItemAnswers::resolve`): no item of the request is counted delivered.
                e.get("id").and_then(|i| i.as_str()).unwrap_or_default(),
                // Without a status the failure may pass: send the item again.
                e.get("status")
                    .and_then(|s| s.as_u64())
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(500),
                e.get("message").and_then(|m| m.as_str()).unwrap_or(""),
            )
        })
        .collect();
    ItemAnswers::Refused(named)
}

#[async_trait]
impl Exporter for CloudExporter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn signals(&self) -> Signals {
        self.inner.signals
    }

    fn batch_policy(&self) -> BatchPolicy {
        self.inner.batch_policy
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy
    }

    async fn init(&self, ctx: &ExporterContext) -> Result<(), ExportError> {
        // Credentials are checked by the first export: a probe request here
        // would cost every cold start a round trip.
        let _first_init_wins = self.inner.service.set(ctx.service_name.clone());
        Ok(())
    }

    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let mut results = BatchResults::new();
        let mut groups: Vec<(ItemKind, Vec<usize>)> = Vec::new();
        for (index, event) in batch.iter().enumerate() {
            match ItemKind::of(event) {
                Some(kind) => match groups.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, indices)) => indices.push(index),
                    None => groups.push((kind, vec![index])),
                },
                None => results.reject(
                    index,
                    ErrorClass::Permanent,
                    format!("{} has no cloud ingest endpoint", event.identity()),
                ),
            }
        }
        for (kind, indices) in groups {
            let items = EncodedItems::encode(
                kind,
                batch,
                &indices,
                self.inner.max_body_bytes,
                self.service(),
                &mut results,
            );
            for chunk in items.chunks() {
                // The destination is unreachable or refuses us: do not try the
                // remaining requests, they share the failure.
                if let Some(e) = results
                    .failure()
                    .filter(|e| e.class != ErrorClass::Permanent)
                {
                    let e = ExportError::new(e.class, e.message.clone());
                    results.fail(&chunk, e);
                    continue;
                }
                send_split(&chunk, &mut results, |part| self.send(&items, part)).await;
            }
        }
        results.into_outcome()
    }

    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Nothing is buffered here: every batch was sent by `export`.
        Ok(())
    }

    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        // No background task and no buffer; the connection pool closes on drop.
        Ok(())
    }
}
