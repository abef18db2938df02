//! OTLP transport against the langfuse 5.0.4 recording: the same scenario,
//! built with the aiobs span API, must produce the same request, field by
//! field (ids and times aside). Every difference is listed below with its reason.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::Observability;
use aiobs_exporter_langfuse::LangfuseTransport;
use common::*;
use serde_json::{Value, json};

/// Attributes the recording has and we do not, per span name (`*` = every span).
/// Attributes the recording has and we do not send, with the reason.
const MISSING_ALLOWED: &[(&str, &str, &str)] = &[];

/// Attributes we send and the recording does not, with the reason.
const EXTRA_ALLOWED: &[(&str, &str, &str)] = &[];

/// Attributes we send on purpose with another value, with the reason and our value.
const DIFFERENT: &[(&str, &str, &str)] = &[(
    "llm: gpt-4o-mini",
    "langfuse.observation.usage_details",
    "the recorded script passed the provider's inclusive counts as given (input 120 of which 100 cached); Langfuse sums usage keys as exclusive buckets, so aiobs sends input = 120 - 100 = 20, as Langfuse's own server splits an OpenAI usage object",
)];

/// The usage the recorded generation should have had: exclusive buckets.
fn exclusive_usage() -> Value {
    json!({"input": 20, "input_cached_tokens": 100, "output": 30, "output_reasoning_tokens": 0, "total": 150})
}

fn allowed(list: &[(&str, &str, &str)], span: &str, key: &str) -> bool {
    list.iter()
        .any(|(s, k, _)| (*s == "*" || *s == span) && *k == key)
}

#[test]
fn otlp_request_matches_the_official_client_recording() {
    let server = ScriptedHttpServer::start().unwrap();
    server
        .route(SCORES_PATH)
        .set_default(ScriptedResponse::json(202, &json!({"message": "Accepted"})));
    let exporter = builder(&server, LangfuseTransport::Otlp).build().unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    let trace_id = weather_trace(&obs, false);
    let report = obs.flush_blocking(FLUSH);
    assert!(report.is_success(), "{report}");
    let stats = report.exporter("langfuse").unwrap();
    assert_eq!(stats.delivered, 5, "4 spans and 1 score: {report}");

    // Like the official client: one OTLP request and one scores request.
    let otlp = server.requests_to(OTLP_PATH);
    let scores = server.requests_to(SCORES_PATH);
    assert_eq!(
        (otlp.len(), scores.len()),
        (1, 1),
        "{:?}",
        server.requests()
    );
    let otlp = &otlp[0];

    // Headers.
    let recorded = recorded_headers(&fixture("v5_otel_request.json"));
    for h in [
        "content-type",
        "content-encoding",
        "authorization",
        "x-langfuse-public-key",
        "x-langfuse-ingestion-version",
    ] {
        assert_eq!(otlp.header(h), Some(recorded[h].as_str()), "header {h}");
    }
    assert_eq!(otlp.header("x-langfuse-sdk-name"), Some("aiobs-rust"));
    assert!(otlp.is_gzip());

    // Resource and scope.
    let decoded = fixture("v5_otel_decoded.json");
    let ours = decode_otlp(otlp);
    assert_eq!(ours.resource_spans.len(), 1);
    let rs = &ours.resource_spans[0];
    let resource: BTreeMap<String, Value> = rs
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| {
            let v = match &kv.value.as_ref().unwrap().value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    json!(s)
                }
                other => panic!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect();
    let rec_resource = recorded_resource(&decoded);
    for k in ["langfuse.environment", "langfuse.release"] {
        assert_eq!(resource.get(k), rec_resource.get(k), "resource {k}");
    }
    assert!(resource.contains_key("service.name"));
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        scope.name,
        decoded["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"]
    );
    assert_eq!(scope.attributes.len(), 1);
    assert_eq!(scope.attributes[0].key, "public_key");

    // Spans, by name.
    let mine = our_spans(&ours);
    let theirs = recorded_spans(&decoded);
    let names = |v: &[NormSpan]| v.iter().map(|s| s.name.clone()).collect::<BTreeSet<_>>();
    assert_eq!(names(&mine), names(&theirs));
    let by_name = |v: &[NormSpan]| -> BTreeMap<String, NormSpan> {
        v.iter().map(|s| (s.name.clone(), s.clone())).collect()
    };
    let (mine_by, theirs_by) = (by_name(&mine), by_name(&theirs));
    let name_of = |v: &BTreeMap<String, NormSpan>, id: &Option<String>| {
        id.as_ref().map(|id| {
            v.values()
                .find(|s| &s.id == id)
                .map(|s| s.name.clone())
                .unwrap()
        })
    };
    for t in ours.resource_spans[0].scope_spans[0].spans.iter() {
        assert_eq!(hex(&t.trace_id), trace_id.to_string());
    }

    let mut differences = Vec::new();
    for (name, r) in &theirs_by {
        let o = &mine_by[name];
        assert_eq!(o.kind, r.kind, "{name}: kind");
        assert_eq!(o.flags, r.flags, "{name}: flags");
        assert_eq!(o.status_code, r.status_code, "{name}: status code");
        assert_eq!(o.status_message, r.status_message, "{name}: status message");
        assert_eq!(
            name_of(&mine_by, &o.parent),
            name_of(&theirs_by, &r.parent),
            "{name}: parent"
        );
        for (k, v) in &r.attributes {
            match o.attributes.get(k) {
                Some(ov) if ov == v => {}
                Some(ov) if allowed(DIFFERENT, name, k) && *ov == exclusive_usage() => {}
                None if allowed(MISSING_ALLOWED, name, k) => {}
                other => differences.push(format!("{name}: {k}: recorded {v}, sent {other:?}")),
            }
        }
        for k in o.attributes.keys() {
            if !r.attributes.contains_key(k) && !allowed(EXTRA_ALLOWED, name, k) {
                differences.push(format!(
                    "{name}: unexpected attribute {k} = {}",
                    o.attributes[k]
                ));
            }
        }
        // Exception events: same type and message; the stack is our own.
        assert_eq!(o.events.len(), r.events.len(), "{name}: events");
        for ((on, oa), (rn, ra)) in o.events.iter().zip(&r.events) {
            assert_eq!(on, rn);
            for k in ["exception.type", "exception.message"] {
                assert_eq!(oa.get(k), ra.get(k), "{name}: event {k}");
            }
            assert!(oa.contains_key("exception.stacktrace"));
        }
    }
    assert!(
        differences.is_empty(),
        "differences:\n{}",
        differences.join("\n")
    );

    // The score.
    let score_req = &scores[0];
    let rec_req = fixture("v5_scores_request.json");
    let rec_h = recorded_headers(&rec_req);
    for h in ["content-type", "authorization", "x-langfuse-public-key"] {
        assert_eq!(
            score_req.header(h),
            Some(rec_h[h].as_str()),
            "score header {h}"
        );
    }
    let body: Value = score_req.json().unwrap();
    let (ours_s, rec_s) = (&body[0], &rec_req["body"][0]);
    assert_eq!(body.as_array().map(Vec::len), Some(1));
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(ours_s), keys(rec_s), "score fields");
    for k in ["name", "value", "comment", "environment"] {
        assert_eq!(ours_s[k], rec_s[k], "score {k}");
    }
    assert_eq!(ours_s["traceId"], json!(trace_id.to_string()));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
