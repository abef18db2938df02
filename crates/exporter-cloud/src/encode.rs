//! The wire format: a versioned JSON envelope of items, one endpoint per kind
//! of item. `docs/exporters.md` ("Cloud") documents it for ingest servers.

use std::ops::Range;

use aiobs_core::{ErrorClass, ExportBatch, ExportedSpan, ObservabilityEvent};
use aiobs_http::{BatchResults, chunk_by_size};
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::mapping::{ID_NAMESPACE, ItemKind, SpanItem, Truncated, span_item_id};

/// The version of the envelope's JSON schema, sent as `schema_version`.
/// Raised on any change an ingest server must know about.
pub const SCHEMA_VERSION: u32 = 1;

/// Bytes reserved for the envelope around the items (ids, timestamps, the
/// service name is added on top).
const ENVELOPE_OVERHEAD: usize = 512;

/// One serialised item.
struct Encoded {
    /// Position in the export batch.
    batch_index: usize,
    /// Idempotency key: the same event always gets the same id.
    id: String,
    /// Its JSON in [`EncodedItems::buf`].
    range: Range<usize>,
}

/// The items of one kind from one export batch, serialised once; requests
/// are assembled from them (and re-assembled from fewer when split).
pub(crate) struct EncodedItems {
    pub(crate) kind: ItemKind,
    buf: Vec<u8>,
    items: Vec<Encoded>,
    /// Most item bytes one request may carry.
    budget: usize,
}

impl EncodedItems {
    /// Serialises the events of `kind` at `indices`. Items that cannot be sent
    /// (too large even when truncated, not serialisable) are rejected into `results`.
    pub(crate) fn encode(
        kind: ItemKind,
        batch: &ExportBatch,
        indices: &[usize],
        max_body_bytes: usize,
        service: &str,
        results: &mut BatchResults,
    ) -> Self {
        let budget = max_body_bytes.saturating_sub(ENVELOPE_OVERHEAD + service.len() * 6);
        let mut out = Self {
            kind,
            buf: Vec::with_capacity(indices.len() * 512),
            items: Vec::with_capacity(indices.len()),
            budget,
        };
        for &index in indices {
            let Some(event) = batch.get(index) else {
                continue;
            };
            let start = out.buf.len();
            match write_item(&mut out.buf, event, budget) {
                Ok(id) => out.items.push(Encoded {
                    batch_index: index,
                    id,
                    range: start..out.buf.len(),
                }),
                Err(reason) => {
                    out.buf.truncate(start);
                    results.reject(index, ErrorClass::Permanent, reason);
                }
            }
        }
        out
    }

    /// The batch indices of the encoded items, cut into runs that each fit one request.
    pub(crate) fn chunks(&self) -> Vec<Vec<usize>> {
        // Each item costs its JSON plus a separating comma.
        chunk_by_size(self.items.iter().map(|i| i.range.len() + 1), self.budget)
            .into_iter()
            .map(|run| self.items[run].iter().map(|i| i.batch_index).collect())
            .collect()
    }

    fn item(&self, batch_index: usize) -> Option<&Encoded> {
        // Items are in ascending batch order: binary search, no map.
        self.items
            .binary_search_by_key(&batch_index, |i| i.batch_index)
            .ok()
            .map(|pos| &self.items[pos])
    }

    /// The `(batch index, id)` pairs of these batch indices, for 207 answers.
    pub(crate) fn ids<'a>(
        &'a self,
        indices: &'a [usize],
    ) -> impl Iterator<Item = (usize, &'a str)> {
        indices
            .iter()
            .filter_map(|&i| self.item(i).map(|it| (i, it.id.as_str())))
    }

    /// The JSON envelope carrying the items at these batch indices.
    pub(crate) fn envelope(&self, indices: &[usize], service: &str) -> Vec<u8> {
        let items: Vec<&Encoded> = indices.iter().filter_map(|&i| self.item(i)).collect();
        let item_bytes: usize = items.iter().map(|i| i.range.len() + 1).sum();
        let header = EnvelopeHeader {
            schema_version: SCHEMA_VERSION,
            kind: self.kind.as_str(),
            batch_id: batch_id(items.iter().map(|i| i.id.as_str())),
            sent_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            sdk: Sdk {
                name: "aiobs",
                version: env!("CARGO_PKG_VERSION"),
            },
            service,
        };
        let mut body = Vec::with_capacity(item_bytes + ENVELOPE_OVERHEAD + service.len());
        // The header fields, then `"items":[...]` appended to the same object.
        if serde_json::to_writer(&mut body, &header).is_err() {
            body.clear();
            body.extend_from_slice(b"{}");
        }
        body.pop(); // the closing brace
        body.extend_from_slice(b",\"items\":[");
        for (n, item) in items.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&self.buf[item.range.clone()]);
        }
        body.extend_from_slice(b"]}");
        body
    }

    /// How many items were encoded.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.items.len()
    }
}

#[derive(Serialize)]
struct EnvelopeHeader<'a> {
    schema_version: u32,
    kind: &'static str,
    batch_id: String,
    sent_at: String,
    sdk: Sdk,
    service: &'a str,
}

#[derive(Serialize)]
struct Sdk {
    name: &'static str,
    version: &'static str,
}

/// The same items always give the same batch id: a retried request is
/// recognisable as such (it is also sent as `Idempotency-Key`).
fn batch_id<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let mut joined = String::new();
    for id in ids {
        joined.push_str(id);
        joined.push('\n');
    }
    uuid::Uuid::new_v5(&ID_NAMESPACE, joined.as_bytes()).to_string()
}

/// Writes one item's JSON and returns its id, or why it cannot be sent.
fn write_item(
    buf: &mut Vec<u8>,
    event: &ObservabilityEvent,
    budget: usize,
) -> Result<String, String> {
    let start = buf.len();
    let serialised = |r: serde_json::Result<()>| {
        r.map_err(|e| format!("could not serialise {}: {e}", event.identity()))
    };
    let id = match event {
        ObservabilityEvent::Span { kind, span } => {
            let id = span_item_id(*kind, span);
            serialised(serde_json::to_writer(
                &mut *buf,
                &SpanItem::new(&id, *kind, span),
            ))?;
            let written = buf.len() - start;
            if written > budget {
                buf.truncate(start);
                let mut lean = ExportedSpan::clone(span);
                lean.input = None;
                lean.output = None;
                lean.metadata = serde_json::Map::new();
                let item = SpanItem {
                    truncated: Some(Truncated {
                        original_bytes: written,
                        removed: ["input", "output", "metadata"],
                    }),
                    ..SpanItem::new(&id, *kind, &lean)
                };
                serialised(serde_json::to_writer(&mut *buf, &item))?;
            }
            id
        }
        ObservabilityEvent::Log(r) => {
            serialised(serde_json::to_writer(&mut *buf, r))?;
            r.id.clone()
        }
        ObservabilityEvent::Metric(r) => {
            serialised(serde_json::to_writer(&mut *buf, r))?;
            r.id.clone()
        }
        ObservabilityEvent::Score(r) => {
            serialised(serde_json::to_writer(&mut *buf, r))?;
            r.id.clone()
        }
        ObservabilityEvent::Feedback(r) => {
            serialised(serde_json::to_writer(&mut *buf, r))?;
            r.id.clone()
        }
        other => {
            return Err(format!(
                "{} cannot be sent to the cloud ingest",
                other.identity()
            ));
        }
    };
    let written = buf.len() - start;
    if written > budget {
        return Err(format!(
            "{} is {written} bytes of JSON, over the {budget}-byte request budget (max_body_bytes){}",
            event.identity(),
            if matches!(event, ObservabilityEvent::Span { .. }) {
                " even without its input, output and metadata"
            } else {
                ""
            }
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aiobs_core::{LogLevel, LogRecord, SpanEventKind, SpanId, SpanType, TraceId};
    use serde_json::{Value, json};

    use super::*;

    fn span_event(kind: SpanEventKind, input: Value) -> Arc<ObservabilityEvent> {
        let mut span = ExportedSpan::new(
            "4bf92f3577b34da6a3ce929d0e0e4736"
                .parse::<TraceId>()
                .unwrap(),
            "00f067aa0ba902b7".parse::<SpanId>().unwrap(),
            "llm",
            SpanType::ModelGeneration,
        );
        span.input = Some(input);
        span.end_time = Some(Utc::now());
        Arc::new(ObservabilityEvent::Span {
            kind,
            span: Arc::new(span),
        })
    }

    #[test]
    fn envelope_is_valid_versioned_json_with_stable_ids() {
        let batch = vec![
            span_event(SpanEventKind::Ended, json!("hi")),
            Arc::new(ObservabilityEvent::Log(LogRecord::new(LogLevel::Info, "x"))),
        ];
        let mut results = BatchResults::new();
        let spans =
            EncodedItems::encode(ItemKind::Spans, &batch, &[0], 1 << 20, "svc", &mut results);
        let body: Value = serde_json::from_slice(&spans.envelope(&[0], "svc")).unwrap();
        assert_eq!(body["schema_version"], 1);
        assert_eq!(body["kind"], "spans");
        assert_eq!(body["service"], "svc");
        assert_eq!(body["sdk"]["name"], "aiobs");
        let item = &body["items"][0];
        assert_eq!(
            item["id"],
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:ended"
        );
        assert_eq!(item["event"], "ended");
        assert_eq!(item["span"]["input"], "hi");
        assert_eq!(item["span"]["span_type"], "model_generation");
        // The same items give the same batch id.
        let again: Value = serde_json::from_slice(&spans.envelope(&[0], "svc")).unwrap();
        assert_eq!(body["batch_id"], again["batch_id"]);
        let logs = EncodedItems::encode(ItemKind::Logs, &batch, &[1], 1 << 20, "svc", &mut results);
        let body: Value = serde_json::from_slice(&logs.envelope(&[1], "svc")).unwrap();
        assert_eq!(body["items"][0]["message"], "x");
        assert_ne!(body["batch_id"], again["batch_id"]);
        assert_eq!(results.into_outcome().unwrap().rejected.len(), 0);
    }

    #[test]
    fn different_updates_of_one_span_get_different_ids() {
        let a = span_event(SpanEventKind::Updated, json!("a"));
        let b = span_event(SpanEventKind::Updated, json!("b"));
        let (ObservabilityEvent::Span { span: sa, .. }, ObservabilityEvent::Span { span: sb, .. }) =
            (&*a, &*b)
        else {
            unreachable!()
        };
        let ia = span_item_id(SpanEventKind::Updated, sa);
        assert_ne!(ia, span_item_id(SpanEventKind::Updated, sb));
        assert_eq!(ia, span_item_id(SpanEventKind::Updated, sa));
    }

    #[test]
    fn oversized_span_is_truncated_and_chunks_respect_the_budget() {
        let big = "x".repeat(50_000);
        let batch: Vec<_> = (0..10)
            .map(|i| {
                span_event(
                    SpanEventKind::Ended,
                    json!(if i == 3 { big.clone() } else { "small".into() }),
                )
            })
            .collect();
        let idx: Vec<usize> = (0..10).collect();
        let mut results = BatchResults::new();
        let enc = EncodedItems::encode(ItemKind::Spans, &batch, &idx, 4096, "svc", &mut results);
        assert_eq!(enc.len(), 10);
        let body: Value = serde_json::from_slice(&enc.envelope(&[3], "svc")).unwrap();
        let item = &body["items"][0];
        assert!(item["span"].get("input").is_none());
        assert!(item["truncated"]["original_bytes"].as_u64().unwrap() > 50_000);
        for chunk in enc.chunks() {
            assert!(enc.envelope(&chunk, "svc").len() <= 4096);
        }
        assert_eq!(enc.chunks().concat(), idx);
    }

    #[test]
    fn unsendable_item_is_rejected_permanently() {
        let mut log = LogRecord::new(LogLevel::Info, "y".repeat(10_000));
        log.id = "log-1".into();
        let batch = vec![Arc::new(ObservabilityEvent::Log(log))];
        let mut results = BatchResults::new();
        let enc = EncodedItems::encode(ItemKind::Logs, &batch, &[0], 2048, "svc", &mut results);
        assert_eq!(enc.len(), 0);
        let out = results.into_outcome().unwrap();
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].class, ErrorClass::Permanent);
        assert!(
            out.rejected[0].message.contains("max_body_bytes"),
            "{}",
            out.rejected[0].message
        );
    }
}
