//! Sentry's own normaliser (Relay's `StoreNormalizer`, PyPI `sentry-relay`)
//! accepts every transaction and error event the exporter sends in the
//! conformance kit's scenarios — hostile payloads, durable replay, children
//! before parents and open roots included.

mod common;

use std::sync::{Arc, Mutex};

use aiobs_conformance::{Harness, Scenario, run_scenario_blocking};
use serde_json::Value;

#[test]
fn relay_normalises_every_event_of_the_conformance_scenarios() {
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = events.clone();
    let harness = Harness::http(common::exporter)
        .named("SentryExporter (Relay)")
        .ingest_path(common::ENVELOPE_PATH)
        .decode_requests(move |req| {
            sink.lock()
                .unwrap()
                .extend(common::events_for_relay(std::slice::from_ref(req)));
            common::decode_request(req)
        });
    for scenario in Scenario::ALL {
        run_scenario_blocking(scenario, harness.clone()).assert_passed();
    }
    let events = events.lock().unwrap().clone();
    let transactions = events.iter().filter(|e| e["type"] == "transaction").count();
    assert!(transactions > 20, "only {transactions} transactions seen");
    let normalised = common::assert_relay_accepts(&events);
    for n in &normalised {
        if n["type"] == "transaction" {
            // Relay keeps every span: none was dropped as invalid.
            assert!(n["contexts"]["trace"]["span_id"].is_string(), "{n}");
        }
    }
}
