//! Ingestion transport against the langfuse 2.60.10 recording: the events we
//! send, merged per entity as Langfuse merges them, must match the recorded
//! ones field by field (ids and times aside). Every difference is listed below
//! with its reason.

mod common;

use std::collections::BTreeSet;

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::Observability;
use aiobs_exporter_langfuse::LangfuseTransport;
use common::*;
use serde_json::{Value, json};

/// Fields that differ on every run.
const VOLATILE: &[&str] = &["id", "traceId", "timestamp", "startTime", "endTime"];

/// Metadata keys we send and the recording does not, with the reason.
const EXTRA_METADATA: &[(&str, &str, &str)] = &[(
    "*",
    "observation_type",
    "span-create has no type field: agent/tool/... types are kept in metadata (the recorded client did so for one tool)",
)];

/// Fields we send on purpose with another value than the recording, with the reason.
const DIFFERENT: &[(&str, &str, &str)] = &[(
    "llm: gpt-4o-mini",
    "usageDetails",
    "the recorded script passed the provider's inclusive counts as given (input 120 of which 100 cached); Langfuse sums usage keys as exclusive buckets, so aiobs sends input = 120 - 100 = 20, as Langfuse's own server splits an OpenAI usage object",
)];

/// The usage the recorded generation should have had: exclusive buckets.
fn exclusive_usage() -> Value {
    json!({"input": 20, "input_cached_tokens": 100, "output": 30, "output_reasoning_tokens": 0, "total": 150})
}

/// Fields the recording has and we do not.
const MISSING: &[(&str, &str, &str)] = &[(
    "get_forecast",
    "output",
    "the recorded script set an output on the failed tool; an errored aiobs span has none",
)];

fn extra_ok(entity: &str, key: &str) -> bool {
    EXTRA_METADATA
        .iter()
        .any(|(e, k, _)| (*e == "*" || *e == entity) && *k == key)
}

#[test]
fn ingestion_batch_matches_the_official_client_recording() {
    let server = ScriptedHttpServer::start().unwrap();
    // Langfuse answers 207 with per-event results even when all succeed.
    server.route(INGESTION_PATH).respond_with(|req| {
        let body: Value = req.json().unwrap_or(Value::Null);
        let successes: Vec<Value> = body["batch"]
            .as_array()
            .map(|b| {
                b.iter()
                    .map(|e| json!({"id": e["id"], "status": 201}))
                    .collect()
            })
            .unwrap_or_default();
        ScriptedResponse::multi_status(&json!({"successes": successes, "errors": []}))
    });
    let exporter = builder(&server, LangfuseTransport::Ingestion)
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    let trace_id = weather_trace(&obs, true);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    assert_eq!(
        report.exporter("langfuse").unwrap().delivered,
        6,
        "5 spans, 1 score"
    );

    let requests = server.requests_to(INGESTION_PATH);
    assert_eq!(requests.len(), 1, "one batch, like the recorded client");
    let req = &requests[0];
    let recorded = fixture("v2_ingestion_request.json");

    // Headers: same credentials and content type. (The v2 client's header
    // names have underscores, `x_langfuse_sdk_name`; we send the hyphenated
    // names current SDKs use.)
    let rec_h = recorded_headers(&recorded);
    for h in ["authorization", "content-type"] {
        assert_eq!(req.header(h), Some(rec_h[h].as_str()), "header {h}");
    }
    assert_eq!(req.header("x-langfuse-public-key"), Some("pk-lf-test"));
    assert!(
        !req.is_gzip(),
        "the ingestion API is sent uncompressed, as the official client does"
    );

    let body: Value = req.json().unwrap();
    let ours_events = body["batch"].as_array().unwrap().clone();
    let rec_events = recorded["body"]["batch"].as_array().unwrap().clone();

    // Batch metadata: same fields; counts and key are ours.
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(&body["metadata"]), keys(&recorded["body"]["metadata"]));
    assert_eq!(body["metadata"]["batch_size"], json!(ours_events.len()));
    assert_eq!(body["metadata"]["public_key"], json!("pk-lf-test"));

    // Event ids: unique UUIDs.
    let ids: BTreeSet<&str> = ours_events
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), ours_events.len(), "one fresh id per event");
    assert!(
        ids.iter()
            .all(|id| id.len() == 36 && id.matches('-').count() == 4)
    );

    let ours = merge_ingestion(&ours_events);
    let theirs = merge_ingestion(&rec_events);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same entities"
    );

    let mut differences = Vec::new();
    for (key, (rec_body, rec_kinds)) in &theirs {
        let (our_body, our_kinds) = &ours[key];
        let entity = key.1.as_str();
        // Observation kind: generation / span / event, whether created or updated.
        let family = |kinds: &[String]| {
            kinds
                .iter()
                .map(|k| k.split('-').next().unwrap_or("").to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            family(our_kinds),
            family(rec_kinds),
            "{entity}: event types"
        );
        if key.0 != "trace" {
            assert_eq!(
                our_body["traceId"],
                json!(trace_id.to_string()),
                "{entity}: traceId"
            );
        }
        let (o, r) = (our_body.as_object().unwrap(), rec_body.as_object().unwrap());
        for (k, rv) in r {
            if VOLATILE.contains(&k.as_str()) {
                assert!(o.contains_key(k), "{entity}: {k} missing");
                continue;
            }
            let ov = o.get(k);
            match (k.as_str(), ov) {
                (_, None) if MISSING.iter().any(|(e, f, _)| *e == entity && f == k) => {}
                ("metadata", Some(ov)) => {
                    let (om, rm) = (ov.as_object().unwrap(), rv.as_object().unwrap());
                    for (mk, mv) in rm {
                        if om.get(mk) != Some(mv) {
                            differences.push(format!(
                                "{entity}: metadata.{mk}: recorded {mv}, sent {:?}",
                                om.get(mk)
                            ));
                        }
                    }
                    for mk in om.keys().filter(|mk| !rm.contains_key(*mk)) {
                        if !extra_ok(entity, mk) {
                            differences
                                .push(format!("{entity}: unexpected metadata.{mk} = {}", om[mk]));
                        }
                    }
                }
                ("modelParameters", Some(ov)) => {
                    // The v2 client sent `temperature: "0.2"` (it stringified
                    // floats); we send the number, which the API also accepts.
                    assert_eq!(ov["temperature"], json!(0.2));
                    assert_eq!(rv["temperature"], json!("0.2"));
                    assert_eq!(ov["max_tokens"], rv["max_tokens"]);
                    assert_eq!(keys(ov), keys(rv));
                }
                (_, Some(ov)) if ov == rv => {}
                ("usageDetails", Some(ov))
                    if DIFFERENT.iter().any(|(e, f, _)| *e == entity && *f == k)
                        && *ov == exclusive_usage() => {}
                (_, ov) => differences.push(format!("{entity}: {k}: recorded {rv}, sent {ov:?}")),
            }
        }
        for k in o.keys().filter(|k| !r.contains_key(*k)) {
            // Our metadata on an entity whose recording had none is checked
            // key by key like above.
            if k == "metadata" {
                for mk in o[k].as_object().unwrap().keys() {
                    if !extra_ok(entity, mk) {
                        differences.push(format!("{entity}: unexpected metadata.{mk}"));
                    }
                }
                continue;
            }
            differences.push(format!("{entity}: unexpected field {k} = {}", o[k]));
        }
    }
    assert!(
        differences.is_empty(),
        "differences:\n{}",
        differences.join("\n")
    );
}
