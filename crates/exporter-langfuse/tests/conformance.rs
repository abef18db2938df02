//! The conformance kit, for both transports: the kit's scripted server plays
//! Langfuse, and these decoders read back what the exporter sent.

mod common;

use aiobs_conformance::http::{CapturedRequest, ScriptedResponse};
use aiobs_conformance::{DeliveredItem, Harness, HarnessError, ItemKind, ItemRejectionPlan};
use aiobs_exporter_langfuse::{LangfuseExporter, LangfuseTransport};
use common::*;
use serde_json::{Value, json};

fn exporter(url: &str, transport: LangfuseTransport) -> LangfuseExporter {
    LangfuseExporter::builder()
        .public_key("pk-lf-kit")
        .secret_key("sk-lf-kit")
        .base_url(url)
        .environment("conformance")
        .transport(transport)
        .build()
        .expect("valid configuration")
}

/// A score or feedback as the scores API or a `score-create` carries it.
fn score_item(body: &Value) -> Result<DeliveredItem, HarnessError> {
    let id = body["id"]
        .as_str()
        .ok_or_else(|| HarnessError::new("score without id"))?;
    let kind = if body["metadata"]["aiobs_kind"] == "feedback" {
        ItemKind::Feedback
    } else {
        ItemKind::Score
    };
    let trace = body["traceId"]
        .as_str()
        .ok_or_else(|| HarnessError::new("score without traceId"))?;
    Ok(DeliveredItem::record(kind, id).trace(trace))
}

/// The trace-level fields Langfuse takes from an OTLP span: all three from a
/// span it treats as the trace's root (no parent, or marked `as_root`), the
/// name from `langfuse.trace.name` (its OTLP processor's rule).
fn otlp_claims(s: &NormSpan) -> Vec<&'static str> {
    let root =
        s.parent.is_none() || s.attributes.get("langfuse.internal.as_root") == Some(&json!(true));
    if root {
        vec!["name", "input", "output"]
    } else if s.attributes.contains_key("langfuse.trace.name") {
        vec!["name"]
    } else {
        Vec::new()
    }
}

fn decode_otlp_request(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    match req.path.as_str() {
        OTLP_PATH => Ok(our_spans(&decode_otlp(req))
            .into_iter()
            .map(|s| {
                DeliveredItem::span(&s.id)
                    .trace(&s.trace_id)
                    .parent(s.parent.clone())
                    .name(s.name.clone())
                    .input(s.attributes.get("langfuse.observation.input").cloned())
                    .output(s.attributes.get("langfuse.observation.output").cloned())
                    .trace_claims(otlp_claims(&s))
            })
            .collect()),
        SCORES_PATH => {
            let body: Value = req.json().map_err(HarnessError::new)?;
            body.as_array()
                .ok_or_else(|| HarnessError::new("scores body is not an array"))?
                .iter()
                .map(score_item)
                .collect()
        }
        other => Err(HarnessError::new(format!("unexpected request to {other}"))),
    }
}

fn decode_ingestion_request(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    let body: Value = req.json().map_err(HarnessError::new)?;
    let mut items = Vec::new();
    // The exporter sends a span's `trace-create` (an upsert of the trace's
    // fields) right before its observation.
    let mut claims: Vec<&str> = Vec::new();
    for e in body["batch"]
        .as_array()
        .ok_or_else(|| HarnessError::new("no batch"))?
    {
        let b = &e["body"];
        match e["type"].as_str() {
            Some("trace-create") => {
                claims = ["name", "input", "output"]
                    .into_iter()
                    .filter(|k| b.get(*k).is_some_and(|v| !v.is_null()))
                    .collect();
            }
            Some("score-create") => items.push(score_item(b)?),
            Some(_) => items.push(
                DeliveredItem::span(
                    b["id"]
                        .as_str()
                        .ok_or_else(|| HarnessError::new("observation without id"))?,
                )
                .trace(
                    b["traceId"]
                        .as_str()
                        .ok_or_else(|| HarnessError::new("observation without traceId"))?,
                )
                .parent(b["parentObservationId"].as_str())
                .name(b["name"].as_str().unwrap_or_default())
                .input(b.get("input").cloned())
                .output(b.get("output").cloned())
                .trace_claims(std::mem::take(&mut claims)),
            ),
            None => return Err(HarnessError::new("event without type")),
        }
    }
    Ok(items)
}

/// A Langfuse 207 refusing the planned observations and scores.
fn ingestion_207(req: &CapturedRequest, refuse: &[ItemRejectionPlan]) -> ScriptedResponse {
    let body: Value = req.json().unwrap_or(Value::Null);
    let (mut successes, mut errors) = (Vec::new(), Vec::new());
    for e in body["batch"].as_array().cloned().unwrap_or_default() {
        let entity = e["body"]["id"].as_str().unwrap_or_default();
        let refused = refuse
            .iter()
            .find(|r| r.id == entity && e["type"] != "trace-create");
        match refused {
            Some(r) => errors
                .push(json!({"id": e["id"], "status": r.status, "message": "refused by the kit"})),
            None => successes.push(json!({"id": e["id"], "status": 201})),
        }
    }
    ScriptedResponse::multi_status(&json!({"successes": successes, "errors": errors}))
}

fn otlp_harness() -> Harness {
    Harness::http(|url| exporter(url, LangfuseTransport::Otlp))
        .named("LangfuseExporter (OTLP)")
        .ingest_path(OTLP_PATH)
        .decode_requests(decode_otlp_request)
}

fn ingestion_harness() -> Harness {
    Harness::http(|url| exporter(url, LangfuseTransport::Ingestion))
        .named("LangfuseExporter (ingestion API)")
        .ingest_path(INGESTION_PATH)
        .setup_server(|server| {
            server
                .route(INGESTION_PATH)
                .respond_with(|req| ingestion_207(req, &[]));
        })
        .decode_requests(decode_ingestion_request)
        .partial_response(ingestion_207)
}

aiobs_conformance::conformance_tests!(otlp: otlp_harness);
aiobs_conformance::conformance_tests!(ingestion: ingestion_harness);
