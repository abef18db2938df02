//! A complete, small HTTP exporter and its conformance hooks: what a third
//! party writes. It POSTs each batch as a gzip'd JSON array of events to
//! `<base>/v1/ingest`; the server answers 2xx, or 207 with
//! `{"rejected": [{"index": 3, "status": 500}]}` for items it refused.

use std::time::{Duration, Instant};

use aiobs_conformance::http::{CapturedRequest, ScriptedResponse};
use aiobs_conformance::{DeliveredItem, HarnessError, ItemKind, ItemRejectionPlan};
use aiobs_core::{
    BatchPolicy, ErrorClass, ExportBatch, ExportError, ExportOutcome, Exporter, ExporterContext,
    ItemRejection, RetryPolicy, Signal, Signals, async_trait,
};
use serde_json::{Value, json};

/// The ingest path.
pub const INGEST_PATH: &str = "/v1/ingest";

/// Deliberate bugs, for showing that the kit catches them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flaws {
    /// Return `Ok` whatever the server answered (events silently lost).
    pub swallow_errors: bool,
    /// Classify 429 without reading `Retry-After`.
    pub ignore_retry_after: bool,
    /// Treat every failure as transient (retry 400s).
    pub everything_transient: bool,
}

/// Sends events to a JSON ingest endpoint.
#[derive(Debug, Clone)]
pub struct JsonHttpExporter {
    client: reqwest::Client,
    url: String,
    flaws: Flaws,
}

impl JsonHttpExporter {
    /// Sends to `<base_url>/v1/ingest`.
    pub fn new(base_url: &str) -> Result<Self, reqwest::Error> {
        Self::with_flaws(base_url, Flaws::default())
    }

    /// With deliberate bugs.
    pub fn with_flaws(base_url: &str, flaws: Flaws) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            client,
            url: format!("{}{INGEST_PATH}", base_url.trim_end_matches('/')),
            flaws,
        })
    }

    fn classify(&self, status: u16, retry_after: Option<Duration>) -> ErrorClass {
        if self.flaws.everything_transient {
            return ErrorClass::Transient;
        }
        match status {
            401 | 403 => ErrorClass::Disabled,
            429 | 503 if self.flaws.ignore_retry_after => ErrorClass::Throttled(None),
            429 | 503 => ErrorClass::Throttled(retry_after),
            408 | 500..=599 => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }

    async fn send(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        let json = serde_json::to_vec(batch)
            .map_err(|e| ExportError::permanent("batch does not serialise").with_source(e))?;
        let body = gzip(&json).map_err(|e| ExportError::permanent("gzip failed").with_source(e))?;
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
            .await
            .map_err(|e| ExportError::transient("request failed").with_source(e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status == 207 {
            let bytes = response
                .bytes()
                .await
                .map_err(|e| ExportError::transient("unreadable 207 body").with_source(e))?;
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            return Ok(ExportOutcome::partial(self.rejections(&body, batch.len())));
        }
        if (200..300).contains(&status) {
            return Ok(ExportOutcome::all_delivered());
        }
        Err(ExportError::new(
            self.classify(status, retry_after),
            format!("ingest answered HTTP {status}"),
        ))
    }

    fn rejections(&self, body: &Value, len: usize) -> Vec<ItemRejection> {
        let listed = body["rejected"].as_array().cloned().unwrap_or_default();
        listed
            .iter()
            .filter_map(|r| {
                let index = usize::try_from(r["index"].as_u64()?).ok()?;
                let status = u16::try_from(r["status"].as_u64()?).ok()?;
                (index < len).then(|| ItemRejection {
                    index,
                    class: self.classify(status, None),
                    message: format!("item refused with {status}"),
                })
            })
            .collect()
    }
}

#[async_trait]
impl Exporter for JsonHttpExporter {
    fn name(&self) -> &str {
        "json-http"
    }
    fn signals(&self) -> Signals {
        Signals::ENDED_SPANS
            .with(Signal::Log)
            .with(Signal::Score)
            .with(Signal::Feedback)
    }
    fn batch_policy(&self) -> BatchPolicy {
        BatchPolicy::default().with_max_events(500)
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    async fn init(&self, _ctx: &ExporterContext) -> Result<(), ExportError> {
        Ok(())
    }
    async fn export(&self, batch: &ExportBatch) -> Result<ExportOutcome, ExportError> {
        match self.send(batch).await {
            Err(_) if self.flaws.swallow_errors => Ok(ExportOutcome::all_delivered()),
            other => other,
        }
    }
    async fn flush(&self, _deadline: Instant) -> Result<(), ExportError> {
        // Nothing is buffered here: every export is acknowledged before it returns.
        Ok(())
    }
    async fn shutdown(&self, _deadline: Instant) -> Result<(), ExportError> {
        Ok(())
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes)?;
    enc.finish()
}

/// The conformance decoder: the items one captured request carried.
/// Reads the JSON loosely (as `Value`), the way a destination would.
pub fn decode(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    if req.path != INGEST_PATH {
        return Ok(Vec::new());
    }
    let events: Vec<Value> = req.json()?;
    Ok(events
        .iter()
        .map(decode_event)
        .collect::<Result<_, String>>()?)
}

/// One JSON event (as `ObservabilityEvent` serialises) → the item it is.
pub fn decode_event(e: &Value) -> Result<DeliveredItem, String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let kind = e["type"].as_str().ok_or("event without type")?;
    Ok(match kind {
        "span" => {
            let span = &e["span"];
            let id = text(&span["span_id"]).ok_or("span without span_id")?;
            let parent =
                text(&span["parent_span_id"]).or_else(|| text(&span["external_parent_span_id"]));
            DeliveredItem::span(id)
                .ended(e["kind"] == "ended")
                .trace(text(&span["trace_id"]).unwrap_or_default())
                .parent(parent)
                .name(text(&span["name"]).unwrap_or_default())
                .input(span.get("input").cloned())
                .output(span.get("output").cloned())
        }
        "log" => DeliveredItem::record(ItemKind::Log, text(&e["id"]).unwrap_or_default()),
        "score" => DeliveredItem::record(ItemKind::Score, text(&e["id"]).unwrap_or_default()),
        "feedback" => DeliveredItem::record(ItemKind::Feedback, text(&e["id"]).unwrap_or_default()),
        "metric" => DeliveredItem::record(ItemKind::Metric, text(&e["id"]).unwrap_or_default()),
        other => return Err(format!("unknown event type {other}")),
    })
}

/// The conformance partial-response builder: a 207 refusing these items.
pub fn partial_response(req: &CapturedRequest, refuse: &[ItemRejectionPlan]) -> ScriptedResponse {
    let items = decode(req).unwrap_or_default();
    let rejected: Vec<Value> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let plan = refuse.iter().find(|r| r.id == item.id && item.ended)?;
            Some(json!({"index": index, "status": plan.status}))
        })
        .collect();
    if rejected.is_empty() {
        ScriptedResponse::ok()
    } else {
        ScriptedResponse::multi_status(&json!({ "rejected": rejected }))
    }
}

/// The harness for this exporter, with optional flaws.
pub fn harness_with(flaws: Flaws) -> aiobs_conformance::Harness {
    aiobs_conformance::Harness::try_http(move |url| JsonHttpExporter::with_flaws(url, flaws))
        .ingest_path(INGEST_PATH)
        .decode_requests(decode)
        .partial_response(partial_response)
        .named("JsonHttpExporter")
}
