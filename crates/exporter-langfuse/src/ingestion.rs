//! Encoding for the legacy ingestion API (`POST /api/public/ingestion`):
//! a JSON batch of typed events, answered per event with a 207 multi-status
//! (see `wire/langfuse/v2-ingestion`).
//!
//! Entity ids are the trace and span ids, so both transports address the same
//! Langfuse objects. Event ids are derived from the aiobs event and the
//! ingestion event type: unique per event, and the *same* when a failed event
//! is sent again, so the server's de-duplication by event id makes retries safe.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use aiobs_core::ItemRejection;
use aiobs_http::{HttpReply, ItemAnswers, ItemError, SendError};

use crate::mapping::{MappedSpan, Observation, ObservationType, ScoreBody, TraceFields};
use crate::otlp::iso_time;

/// A fixed namespace for the v5 UUIDs of event ids.
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1f_0f9e_3a2b_4d5c_9e8f_a1b2_c3d4_e5f6);

/// One event of an ingestion batch.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct IngestionEvent {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) timestamp: String,
    pub(crate) body: Value,
}

impl IngestionEvent {
    fn new(origin: &str, kind: &'static str, at: DateTime<Utc>, body: Map<String, Value>) -> Self {
        let name = format!("{origin}/{kind}");
        Self {
            id: uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string(),
            kind,
            timestamp: iso_time(at),
            body: Value::Object(body),
        }
    }
}

/// The `metadata` of a batch (informational, as the official SDK sends it).
#[derive(Debug, Serialize)]
struct BatchMetadata<'a> {
    batch_size: usize,
    sdk_integration: &'static str,
    sdk_name: &'static str,
    sdk_version: &'static str,
    public_key: &'a str,
}

/// The ingestion events of one item of the export batch, encoded once.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// The item's index in the export batch.
    pub(crate) batch_index: usize,
    events: Vec<IngestionEvent>,
    encoded: Vec<Vec<u8>>,
}

impl Outgoing {
    fn new(batch_index: usize, events: Vec<IngestionEvent>) -> Self {
        // Serialising a `Value`-bodied event cannot fail.
        let encoded = events
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap_or_default())
            .collect();
        Self {
            batch_index,
            events,
            encoded,
        }
    }

    /// Encoded size, separators included.
    pub(crate) fn size(&self) -> usize {
        self.encoded.iter().map(|e| e.len() + 1).sum()
    }
}

/// Builds ingestion events; `environment` goes on every entity.
#[derive(Debug, Clone)]
pub(crate) struct IngestionEncoder {
    pub(crate) environment: Option<String>,
}

struct Body(Map<String, Value>);

impl Body {
    fn new() -> Self {
        Self(Map::new())
    }
    fn put(&mut self, k: &str, v: impl Into<Value>) -> &mut Self {
        self.0.insert(k.to_owned(), v.into());
        self
    }
    fn opt(&mut self, k: &str, v: Option<impl Into<Value>>) -> &mut Self {
        if let Some(v) = v {
            self.put(k, v);
        }
        self
    }
}

impl IngestionEncoder {
    /// The events of a batch's spans and scores. Each trace gets one
    /// `trace-create` per batch from its first span (a root always sends its
    /// own: it alone knows the trace's name and payloads).
    pub(crate) fn outgoing(
        &self,
        spans: &[(usize, MappedSpan)],
        scores: &[(usize, ScoreBody)],
    ) -> Vec<Outgoing> {
        let mut traces_seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(spans.len() + scores.len());
        for (i, m) in spans {
            let first = traces_seen.insert(m.trace.id.as_str());
            let origin = format!("span:{}:{}:ended", m.observation.trace_id, m.observation.id);
            out.push(Outgoing::new(*i, self.span_events(m, &origin, first)));
        }
        for (i, s) in scores {
            let origin = format!("score:{}", s.id);
            out.push(Outgoing::new(*i, vec![self.score_event(s, &origin)]));
        }
        out
    }

    /// The events for one ended span. `origin` identifies the aiobs event
    /// (stable across retries); `with_trace` adds the `trace-create` carrying
    /// the span's trace-level fields (always for a root, once per trace and
    /// batch otherwise).
    pub(crate) fn span_events(
        &self,
        m: &MappedSpan,
        origin: &str,
        with_trace: bool,
    ) -> Vec<IngestionEvent> {
        let mut out = Vec::with_capacity(2);
        if with_trace || m.trace.is_root {
            out.push(self.trace_event(&m.trace, origin));
        }
        out.push(self.observation_event(&m.observation, origin));
        out
    }

    fn trace_event(&self, t: &TraceFields, origin: &str) -> IngestionEvent {
        let mut b = Body::new();
        b.put("id", t.id.as_str())
            .put("timestamp", iso_time(t.timestamp))
            .opt("name", t.name.as_deref())
            .opt("userId", t.user_id.as_deref())
            .opt("sessionId", t.session_id.as_deref())
            .opt("release", t.release.as_deref())
            .opt("version", t.version.as_deref())
            .opt("public", t.public)
            .opt("environment", self.environment.as_deref())
            .opt("input", t.input.clone())
            .opt("output", t.output.clone());
        if !t.tags.is_empty() {
            b.put("tags", t.tags.clone());
        }
        if !t.metadata.is_empty() {
            b.put("metadata", Value::Object(t.metadata.clone()));
        }
        IngestionEvent::new(origin, "trace-create", t.timestamp, b.0)
    }

    fn observation_event(&self, o: &Observation, origin: &str) -> IngestionEvent {
        let mut b = Body::new();
        b.put("id", o.id.as_str())
            .put("traceId", o.trace_id.as_str())
            .opt("parentObservationId", o.parent_id.as_deref())
            .put("name", o.name.as_str())
            .put("startTime", iso_time(o.start_time))
            .opt("environment", self.environment.as_deref())
            .opt("input", o.input.clone())
            .opt("output", o.output.clone())
            .opt("version", o.version.as_deref());
        let mut metadata = o.metadata.clone();
        let kind = match o.kind {
            ObservationType::Generation => "generation-create",
            ObservationType::Event => "event-create",
            ObservationType::Span => "span-create",
            typed => {
                // The ingestion API has no agent/tool/... events: keep the
                // type visible in metadata.
                metadata
                    .entry("observation_type")
                    .or_insert_with(|| Value::from(typed.as_str()));
                "span-create"
            }
        };
        if o.kind != ObservationType::Event {
            b.opt("endTime", o.end_time.map(iso_time));
        }
        if !metadata.is_empty() {
            b.put("metadata", Value::Object(metadata));
        }
        if o.level != crate::mapping::Level::Default {
            b.put("level", o.level.as_str());
        }
        b.opt("statusMessage", o.status_message.as_deref());
        if let Some(g) = &o.generation {
            b.opt("model", g.model.as_deref())
                .opt("completionStartTime", g.completion_start_time.map(iso_time));
            if !g.model_parameters.is_empty() {
                b.put(
                    "modelParameters",
                    Value::Object(model_parameters(&g.model_parameters)),
                );
            }
            if !g.usage_details.is_empty() {
                let u: Map<String, Value> = g
                    .usage_details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect();
                b.put("usageDetails", Value::Object(u));
            }
            if !g.cost_details.is_empty() {
                let c: Map<String, Value> = g
                    .cost_details
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                    .collect();
                b.put("costDetails", Value::Object(c));
            }
            if let Some(p) = &g.prompt {
                b.put("promptName", p.name.as_str())
                    .put("promptVersion", p.version);
            }
        }
        let at = o.end_time.unwrap_or(o.start_time);
        IngestionEvent::new(origin, kind, at, b.0)
    }

    /// The `score-create` event of one score.
    pub(crate) fn score_event(&self, s: &ScoreBody, origin: &str) -> IngestionEvent {
        // The event's own timestamp carries the score's time here.
        let mut body = s.to_json(self.environment.as_deref());
        body.remove("timestamp");
        IngestionEvent::new(origin, "score-create", s.timestamp, body)
    }
}

/// Langfuse accepts model parameter values that are strings, numbers,
/// booleans, string arrays or string maps; anything else is sent as its JSON text.
fn model_parameters(p: &Map<String, Value>) -> Map<String, Value> {
    p.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let ok = match v {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
                Value::Array(a) => a.iter().all(Value::is_string),
                Value::Object(o) => o.values().all(Value::is_string),
                Value::Null => false,
            };
            let v = if ok {
                v.clone()
            } else {
                Value::from(v.to_string())
            };
            (k.clone(), v)
        })
        .collect()
}

/// The request body carrying the events of `part` (indices into `items`).
pub(crate) fn request_body(part: &[usize], items: &[Outgoing], public_key: &str) -> Vec<u8> {
    let events: Vec<&Vec<u8>> = part.iter().flat_map(|&k| &items[k].encoded).collect();
    let metadata = BatchMetadata {
        batch_size: events.len(),
        sdk_integration: "aiobs",
        sdk_name: crate::exporter::SDK_NAME,
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

/// The items of `part` (indices into `items`) a 2xx answer refused. Langfuse
/// answers 207 with per-event results; an item is refused when any of its
/// events is, and re-sent when any of them may succeed later.
pub(crate) fn rejections(
    part: &[usize],
    items: &[Outgoing],
    reply: &HttpReply,
) -> Result<Vec<ItemRejection>, SendError> {
    let answers = if reply.status == 207 {
        multi_status(&reply.body)
    } else {
        ItemAnswers::AllAccepted
    };
    let sent = part
        .iter()
        .flat_map(|&k| items[k].events.iter().map(move |ev| (k, ev.id.as_str())));
    answers.resolve(sent)
}

/// Reads a 207 body: `{"successes": [...], "errors": [{"id", "status",
/// "message", "error"}]}`. A body of another shape says nothing readable.
pub(crate) fn multi_status(body: &[u8]) -> ItemAnswers {
    let Some(errors) = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").and_then(Value::as_array).cloned())
    else {
        return ItemAnswers::Unreadable(
            "Langfuse answered 207 with a body that is not {successes, errors}".into(),
        );
    };
    ItemAnswers::Refused(
        errors
            .iter()
            .map(|e| {
                let message = [e.get("message"), e.get("error")]
                    .into_iter()
                    .flatten()
                    .map(|m| match m {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(": ");
                ItemError::new(
                    // An error naming no event leaves the answer ambiguous.
                    e.get("id").and_then(Value::as_str).unwrap_or_default(),
                    e.get("status")
                        .and_then(Value::as_u64)
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(500),
                    message,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_ids_are_unique_per_event_and_stable_across_retries() {
        let body = Map::new();
        let t = Utc::now();
        let a = IngestionEvent::new("span:1:ended", "trace-create", t, body.clone());
        let b = IngestionEvent::new("span:1:ended", "span-create", t, body.clone());
        let again = IngestionEvent::new("span:1:ended", "trace-create", t, body);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id, again.id);
        assert_eq!(
            uuid::Uuid::parse_str(&a.id).map(|u| u.get_version_num()),
            Ok(5)
        );
    }

    #[test]
    fn reads_207_errors() {
        let body = json!({
            "successes": [{"id": "a", "status": 201}],
            "errors": [
                {"id": "b", "status": 400, "message": "Invalid request data", "error": "bad"},
                {"id": "c", "status": 500, "message": "boom"}
            ]
        })
        .to_string();
        assert_eq!(
            multi_status(body.as_bytes()),
            ItemAnswers::Refused(vec![
                ItemError::new("b", 400, "Invalid request data: bad"),
                ItemError::new("c", 500, "boom"),
            ])
        );
        assert!(matches!(
            multi_status(b"not json"),
            ItemAnswers::Unreadable(_)
        ));
        // An error naming no event: no event of the request is known delivered.
        let unnamed = json!({"errors": [{"status": 500}]}).to_string();
        assert!(matches!(
            multi_status(unnamed.as_bytes()).resolve([(0, "a")]),
            Err(SendError::Ambiguous(_))
        ));
    }

    #[test]
    fn request_body_is_the_batch_of_the_chosen_items() {
        let t = Utc::now();
        let ev = |origin: &str| IngestionEvent::new(origin, "span-create", t, Map::new());
        let items = [
            Outgoing::new(3, vec![ev("a"), ev("b")]),
            Outgoing::new(7, vec![ev("c")]),
        ];
        let body: Value = serde_json::from_slice(&request_body(&[1], &items, "pk")).unwrap();
        assert_eq!(body["batch"].as_array().map(Vec::len), Some(1));
        assert_eq!(body["batch"][0]["id"], json!(items[1].events[0].id));
        assert_eq!(body["metadata"]["batch_size"], 1);
        assert_eq!(body["metadata"]["public_key"], "pk");
        let all: Value = serde_json::from_slice(&request_body(&[0, 1], &items, "pk")).unwrap();
        assert_eq!(all["batch"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn model_parameters_are_made_acceptable() {
        let p = json!({"temperature": 0.2, "stop": ["a"], "tools": [{"x": 1}], "none": null});
        let out = model_parameters(p.as_object().unwrap());
        assert_eq!(
            Value::Object(out),
            json!({"temperature": 0.2, "stop": ["a"], "tools": "[{\"x\":1}]"})
        );
    }
}
