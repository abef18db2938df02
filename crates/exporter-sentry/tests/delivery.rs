//! Delivery against the scripted Sentry: the application's own Sentry client
//! untouched; children that cannot join their root's transaction (open root at
//! flush, late child, durable replay) still delivered, as transactions of
//! their own under their parent; held spans pending, never delivered early;
//! 429/Retry-After, X-Sentry-Rate-Limits and 413 handled.

mod common;

use std::time::{Duration, Instant};

use aiobs_conformance::http::{ScriptedHttpServer, ScriptedResponse};
use aiobs_core::{DropReason, Observability, SpanError, SpanOptions, SpanType};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(10);

fn setup() -> (ScriptedHttpServer, Observability) {
    let server = ScriptedHttpServer::start().unwrap();
    server.set_default(ScriptedResponse::json(200, &json!({})));
    let obs = Observability::builder()
        .exporter(common::exporter(&server.url()))
        .build()
        .unwrap();
    (server, obs)
}

/// Every transaction sent so far.
fn transactions(server: &ScriptedHttpServer) -> Vec<Value> {
    server
        .acknowledged_requests()
        .iter()
        .flat_map(|r| {
            common::envelope_of(r)
                .payloads("transaction")
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

fn head(t: &Value) -> &Value {
    &t["contexts"]["trace"]
}

#[test]
fn the_applications_own_sentry_client_keeps_its_client_scope_and_events() {
    // The application's client, bound to this thread's Hub, with its own transport.
    let app_transport = sentry::test::TestTransport::new();
    let mut options = sentry::ClientOptions::new().dsn("https://app@app.example/7");
    options.release = Some("app@9".into());
    options.transport = Some(std::sync::Arc::new(app_transport.clone()));
    let app_client = std::sync::Arc::new(sentry::Client::from(options));
    let hub = sentry::Hub::current();
    hub.bind_client(Some(app_client.clone()));
    hub.configure_scope(|s| s.set_tag("app-tag", "mine"));

    let (server, obs) = setup();
    let run = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let mut tool = run.child(SpanOptions::new("tool", SpanType::ToolCall));
    tool.error(SpanError::new("boom").with_kind("ToolError"));
    drop(run);
    assert!(obs.flush_blocking(T).is_success());
    sentry::capture_message("from the app", sentry::Level::Info);

    // Our events went to our DSN only.
    assert_eq!(server.requests().len(), 2);
    // The application's client is the same object, with its settings and scope.
    let bound = hub.client().expect("the app's client is still bound");
    assert!(std::sync::Arc::ptr_eq(&bound, &app_client));
    assert_eq!(bound.options().release.as_deref(), Some("app@9"));
    let events = app_transport.fetch_and_clear_events();
    assert_eq!(
        events.len(),
        1,
        "only the application's own event: {events:?}"
    );
    assert_eq!(events[0].message.as_deref(), Some("from the app"));
    assert_eq!(
        events[0].tags.get("app-tag").map(String::as_str),
        Some("mine")
    );
    assert!(
        app_transport.fetch_and_clear_envelopes().is_empty(),
        "no transaction of ours reached the application's transport"
    );
}

#[test]
fn held_children_are_pending_until_their_root_ends() {
    let (server, obs) = setup();
    let root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    root.child(SpanOptions::new("step", SpanType::ToolCall))
        .end();
    std::thread::sleep(Duration::from_millis(1500)); // past the batch wait
    let s = &obs.stats().exporters[0];
    assert_eq!(
        (s.delivered, s.pending),
        (0, 1),
        "held, not delivered: {s:?}"
    );
    assert_eq!(server.request_count(), 0);
    drop(root);
    assert!(obs.flush_blocking(T).is_success());
    let txns = transactions(&server);
    assert_eq!(txns.len(), 1, "one transaction with the child inside");
    assert_eq!(txns[0]["spans"].as_array().unwrap().len(), 1);
}

#[test]
fn open_root_at_flush_and_late_child_are_sent_under_their_parent() {
    let (server, obs) = setup();
    let root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let root_id = root.span_id().to_string();
    root.child(SpanOptions::new("early", SpanType::ToolCall))
        .end();
    let late = root.child(SpanOptions::new("late", SpanType::ToolCall));
    let report = obs.flush_blocking(T);
    assert!(
        report.is_success(),
        "every ended span acknowledged: {report}"
    );
    let txns = transactions(&server);
    assert_eq!(txns.len(), 1);
    assert_eq!(head(&txns[0])["parent_span_id"], json!(root_id));
    assert_eq!(txns[0]["tags"]["aiobs.segment"], "detached:root_not_ended");
    assert_eq!(txns[0]["transaction"], "early");

    drop(root);
    assert!(obs.flush_blocking(T).is_success());
    drop(late);
    assert!(obs.flush_blocking(T).is_success());
    let txns = transactions(&server);
    assert_eq!(txns.len(), 3);
    assert_eq!(head(&txns[1])["span_id"], json!(root_id));
    assert_eq!(txns[2]["transaction"], "late");
    assert_eq!(head(&txns[2])["parent_span_id"], json!(root_id));
    assert_eq!(txns[2]["tags"]["aiobs.segment"], "detached:late_child");
    let s = &obs.stats().exporters[0];
    assert_eq!((s.accepted, s.delivered, s.pending), (3, 3, 0));
    common::assert_relay_accepts(&common::events_for_relay(&server.requests()));
}

#[test]
fn a_child_replayed_in_another_process_is_delivered_under_its_parent() {
    let (server, first) = setup();
    let root = first.start_span(SpanOptions::new("workflow", SpanType::WorkflowRun));
    let step = root.child(SpanOptions::new("step", SpanType::WorkflowStep));
    let exported = step.export().unwrap();
    drop(step); // this process dies with it: never ended here
    // A fresh process rebuilds and ends the step.
    let second = Observability::builder()
        .exporter(common::exporter(&server.url()))
        .build()
        .unwrap();
    second.rebuild_span(exported.clone()).end();
    let report = second.flush_blocking(T);
    assert!(report.is_success(), "{report}");
    let txns = transactions(&server);
    let replayed = txns
        .iter()
        .find(|t| head(t)["span_id"] == json!(exported.span_id.to_string()))
        .expect("the replayed step was sent");
    assert_eq!(
        head(replayed)["parent_span_id"],
        json!(root.span_id().to_string())
    );
    assert_eq!(
        head(replayed)["trace_id"],
        json!(exported.trace_id.to_string())
    );
    drop(root);
    assert!(first.flush_blocking(T).is_success(), "the root goes too");
}

#[test]
fn retry_after_is_waited_for_and_nothing_is_lost() {
    let (server, obs) = setup();
    server.push(ScriptedResponse::too_many_requests(Some(
        Duration::from_secs(1),
    )));
    let started = Instant::now();
    obs.start_span(SpanOptions::new("agent", SpanType::AgentRun))
        .end();
    let report = obs.flush_blocking(T);
    assert!(report.is_success(), "{report}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "one refused, one retry");
    assert!(
        reqs[1].received_at.duration_since(reqs[0].received_at) >= Duration::from_millis(950),
        "the retry waited for Retry-After"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(obs.stats().exporters[0].retries, 1);
}

#[test]
fn rate_limits_per_category_hold_back_that_category_only() {
    let (server, obs) = setup();
    // Sentry says: no error events for 60 s (on a 200).
    server.push(
        ScriptedResponse::json(200, &json!({}))
            .with_header("X-Sentry-Rate-Limits", "60:error:project:quota"),
    );
    obs.start_span(SpanOptions::new("first", SpanType::AgentRun))
        .end();
    assert!(obs.flush_blocking(T).is_success());
    assert_eq!(server.request_count(), 1);

    let mut run = obs.start_span(SpanOptions::new("second", SpanType::AgentRun));
    run.error(SpanError::new("boom"));
    let report = obs.flush_blocking(Duration::from_millis(1500));
    // The transaction went; the error event was not sent (no request past
    // the limit) and its span is still pending, not counted delivered.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "only the second transaction was sent");
    assert_eq!(
        common::envelope_of(&reqs[1]).items[0].0["type"],
        "transaction"
    );
    assert!(!report.is_success());
    let s = &obs.stats().exporters[0];
    assert_eq!(s.delivered, 1, "{s:?}");
    assert_eq!(s.pending + s.failed_total(), 1, "{s:?}");
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or("")
            .contains("X-Sentry-Rate-Limits"),
        "{s:?}"
    );
    assert!(s.is_conserved());
}

#[test]
fn too_large_splits_the_transaction_and_counts_what_cannot_fit() {
    let (server, obs) = setup();
    // The server takes envelopes up to 6 KB.
    server.respond_with(|req| {
        if req.body.len() > 6_000 {
            ScriptedResponse::payload_too_large()
        } else {
            ScriptedResponse::json(200, &json!({}))
        }
    });
    let root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    for i in 0..6 {
        root.child(
            SpanOptions::new(format!("step-{i}"), SpanType::Generic).input("x".repeat(1500)),
        )
        .end();
    }
    root.child(SpanOptions::new("huge", SpanType::Generic).input("y".repeat(20_000)))
        .end();
    drop(root);
    let report = obs.flush_blocking(T);
    let s = &obs.stats().exporters[0];
    assert_eq!(s.delivered, 7, "root and the six small children: {s:?}");
    assert_eq!(
        s.failed.get(&DropReason::PermanentError),
        Some(&1),
        "the huge child alone: {s:?}"
    );
    assert!(!report.is_success());
    let delivered: Vec<String> = transactions(&server)
        .iter()
        .flat_map(|t| t["spans"].as_array().cloned().unwrap_or_default())
        .map(|s| s["description"].as_str().unwrap_or_default().to_owned())
        .collect();
    for i in 0..6 {
        assert!(delivered.contains(&format!("step-{i}")), "{delivered:?}");
    }
}
