//! The conformance kit: the kit's scripted server plays the cloud ingest, and
//! this decoder reads back the envelopes the exporter sent.

use aiobs_conformance::http::{CapturedRequest, ScriptedResponse};
use aiobs_conformance::{DeliveredItem, Harness, HarnessError, ItemKind, ItemRejectionPlan};
use aiobs_exporter_cloud::CloudExporter;
use serde_json::{Value, json};

fn exporter(url: &str) -> CloudExporter {
    CloudExporter::builder()
        .endpoint(url)
        .token("kit-token")
        .env_proxy(false)
        .build()
        .expect("valid configuration")
}

/// The item as the kit identifies it: the span id for spans, else the record id.
fn decode_item(kind: &str, item: &Value) -> Result<DeliveredItem, HarnessError> {
    let str_of = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| HarnessError::new(format!("{kind} item without {what}: {item}")))
    };
    Ok(match kind {
        "spans" => {
            let span = &item["span"];
            let parent = span["parent_span_id"]
                .as_str()
                .or(span["external_parent_span_id"].as_str());
            // The contract for ingest servers: the trace is named after the
            // span that began it, a root not marked as continuing another.
            let owns_trace = span["is_root"] == true && span["trace_context"]["continued"] != true;
            DeliveredItem::span(str_of(&span["span_id"], "span_id")?)
                .ended(item["event"] == "ended")
                .trace(str_of(&span["trace_id"], "trace_id")?)
                .parent(parent)
                .name(str_of(&span["name"], "name")?)
                .input(span.get("input").cloned())
                .output(span.get("output").cloned())
                .trace_claims(if owns_trace {
                    vec!["name", "input", "output"]
                } else {
                    Vec::new()
                })
        }
        "logs" => DeliveredItem::record(ItemKind::Log, str_of(&item["id"], "id")?),
        "metrics" => DeliveredItem::record(ItemKind::Metric, str_of(&item["id"], "id")?),
        "scores" => DeliveredItem::record(ItemKind::Score, str_of(&item["id"], "id")?)
            .trace(str_of(&item["trace_id"], "trace_id")?),
        "feedback" => DeliveredItem::record(ItemKind::Feedback, str_of(&item["id"], "id")?)
            .trace(str_of(&item["trace_id"], "trace_id")?),
        other => return Err(HarnessError::new(format!("unknown kind {other:?}"))),
    })
}

fn envelope(req: &CapturedRequest) -> Result<(String, Vec<Value>), HarnessError> {
    let body: Value = req.json().map_err(HarnessError::new)?;
    if body["schema_version"] != 1 {
        return Err(HarnessError::new(format!(
            "unexpected schema_version {}",
            body["schema_version"]
        )));
    }
    let kind = body["kind"]
        .as_str()
        .ok_or_else(|| HarnessError::new("envelope without kind"))?
        .to_owned();
    if req.path != format!("/v1/{kind}") {
        return Err(HarnessError::new(format!("{kind} sent to {}", req.path)));
    }
    let items = body["items"]
        .as_array()
        .cloned()
        .ok_or_else(|| HarnessError::new("envelope without items"))?;
    Ok((kind, items))
}

fn decode_request(req: &CapturedRequest) -> Result<Vec<DeliveredItem>, HarnessError> {
    let (kind, items) = envelope(req)?;
    items.iter().map(|i| decode_item(&kind, i)).collect()
}

/// A 207 refusing the planned items by their wire ids.
fn partial(req: &CapturedRequest, refuse: &[ItemRejectionPlan]) -> ScriptedResponse {
    let Ok((kind, items)) = envelope(req) else {
        return ScriptedResponse::bad_request();
    };
    let errors: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let decoded = decode_item(&kind, item).ok()?;
            let plan = refuse.iter().find(|r| r.id == decoded.id)?;
            Some(json!({"id": item["id"], "status": plan.status, "message": "refused by the kit"}))
        })
        .collect();
    ScriptedResponse::multi_status(&json!({ "errors": errors }))
}

fn harness() -> Harness {
    Harness::http(exporter)
        .named("CloudExporter")
        .decode_requests(decode_request)
        .partial_response(partial)
}

aiobs_conformance::conformance_tests!(harness);
