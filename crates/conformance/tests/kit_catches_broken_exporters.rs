//! The kit's own proof that it can fail: deliberately broken exporters fail
//! the scenarios that describe their bug, with messages naming the events,
//! and pass the ones their bug does not touch.

mod support;

use std::time::Duration;

use aiobs_conformance::fakes::{Decision, FaultyExporter};
use aiobs_conformance::{
    Harness, Outcome, Scenario, ScenarioReport, in_memory_items, run_all, run_scenario,
};
use aiobs_core::{InMemoryExporter, Signals};
use support::buffering::{flush_not_forwarded, lazy_flush};
use support::json_http::{Flaws, JsonHttpExporter, harness_with};

async fn run(scenario: Scenario, harness: &Harness) -> ScenarioReport {
    let report = run_scenario(scenario, harness).await;
    eprintln!("{report}");
    report
}

#[track_caller]
fn assert_fails_with(report: &ScenarioReport, needles: &[&str]) {
    let Some(message) = report.failure() else {
        panic!(
            "expected {} to fail but it {:?}",
            report.scenario, report.outcome
        );
    };
    let prefix = format!("scenario {} (", report.scenario);
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.contains("expected") && message.contains("but observed"),
        "{message}"
    );
    for n in needles {
        assert!(message.contains(n), "expected {n:?} in: {message}");
    }
}

/// A 16-hex span id appears in the message.
#[track_caller]
fn names_a_span(message: &str) {
    let named = message
        .split(|c: char| !c.is_ascii_hexdigit())
        .any(|w| w.len() == 16);
    assert!(named, "expected a span id in: {message}");
}

#[tokio::test]
async fn a_flush_that_does_not_drain_fails_flush_drains_and_always_succeed() {
    let h = lazy_flush();
    let r = run(Scenario::AlwaysSucceed, &h).await;
    assert_fails_with(&r, &["after flush", "missing"]);
    names_a_span(r.failure().unwrap());
    let r = run(Scenario::FlushDrains, &h).await;
    assert_fails_with(&r, &["right after flush returned", "missing"]);
    names_a_span(r.failure().unwrap());
    // Its shutdown does drain: the scenario about shutdown delivering passes,
    // so the kit blames flush, not the exporter as a whole.
    assert!(run(Scenario::Lifecycle, &h).await.passed());
}

#[tokio::test]
async fn a_wrapper_that_does_not_forward_flush_fails_flush_drains() {
    let r = run(Scenario::FlushDrains, &flush_not_forwarded()).await;
    assert_fails_with(&r, &["through plain", "missing"]);
    names_a_span(r.failure().unwrap());
    // The same exporter, unwrapped, passes (tests/buffering_exporter.rs runs every scenario).
    assert!(
        run(Scenario::FlushDrains, &support::buffering::buffering())
            .await
            .passed()
    );
}

#[tokio::test]
async fn an_exporter_that_swallows_errors_fails_the_error_scenarios() {
    let h = harness_with(Flaws {
        swallow_errors: true,
        ..Flaws::default()
    });
    assert!(run(Scenario::AlwaysSucceed, &h).await.passed());
    assert_fails_with(
        &run(Scenario::TransientErrors, &h).await,
        &["attempt #1", "HTTP 503", "retryable", "Ok("],
    );
    assert_fails_with(
        &run(Scenario::PermanentErrors, &h).await,
        &["HTTP 400", "Permanent"],
    );
}

#[tokio::test]
async fn an_exporter_that_ignores_retry_after_fails_throttled() {
    let h = harness_with(Flaws {
        ignore_retry_after: true,
        ..Flaws::default()
    });
    assert_fails_with(
        &run(Scenario::Throttled, &h).await,
        &["Retry-After: 1", "Throttled(None)"],
    );
}

#[tokio::test]
async fn an_exporter_that_retries_permanent_errors_fails_permanent_errors() {
    let h = harness_with(Flaws {
        everything_transient: true,
        ..Flaws::default()
    });
    assert_fails_with(
        &run(Scenario::PermanentErrors, &h).await,
        &["Permanent", "Transient"],
    );
}

#[tokio::test]
async fn an_exporter_that_says_ok_but_drops_fails_always_succeed() {
    let h = Harness::local(|dest| {
        FaultyExporter::wrap(dest.shared(InMemoryExporter::new)).decide_with(|call| {
            if call.index % 2 == 0 {
                Decision::Discard
            } else {
                Decision::Deliver
            }
        })
    })
    .probe(|dest| Ok(in_memory_items(&dest.shared(InMemoryExporter::new))))
    .named("discarding");
    let r = run(Scenario::AlwaysSucceed, &h).await;
    assert_fails_with(&r, &["missing"]);
    names_a_span(r.failure().unwrap());
}

#[tokio::test]
async fn an_exporter_that_loses_parents_fails_always_succeed() {
    // The probe of a destination that stores every span as a root.
    let h = Harness::in_memory().probe(|dest| {
        let items = in_memory_items(&dest.shared(InMemoryExporter::new));
        Ok(items
            .into_iter()
            .map(|i| i.parent(None::<String>))
            .collect())
    });
    let r = run(Scenario::AlwaysSucceed, &h).await;
    assert_fails_with(&r, &["with parent", "observed parent none"]);
}

#[tokio::test]
async fn an_exporter_that_delivers_twice_fails_always_succeed() {
    let h = Harness::in_memory().probe(|dest| {
        let items = in_memory_items(&dest.shared(InMemoryExporter::new));
        let first_end = items.iter().find(|i| i.ended).cloned();
        Ok(items.into_iter().chain(first_end).collect())
    });
    assert_fails_with(
        &run(Scenario::AlwaysSucceed, &h).await,
        &["exactly once", "2 copies"],
    );
}

#[tokio::test]
async fn an_http_harness_without_partial_support_is_not_applicable_not_passed() {
    let h = Harness::try_http(JsonHttpExporter::new).decode_requests(support::json_http::decode);
    let r = run(Scenario::PartialAcceptance, &h).await;
    assert!(
        matches!(&r.outcome, Outcome::NotApplicable(why) if why.contains("partial_response")),
        "{r:?}"
    );
    assert!(!r.passed() && !r.failed());
    assert!(r.to_string().contains("NOT APPLICABLE"));
}

#[tokio::test]
async fn a_harness_without_probe_checks_accounting_and_says_so() {
    let h = Harness::local(|_| InMemoryExporter::new());
    let r = run(Scenario::AlwaysSucceed, &h).await;
    match &r.outcome {
        Outcome::Passed { notes } => {
            assert!(notes.iter().any(|n| n.contains("no probe")), "{notes:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_exporter_without_span_signals_is_not_applicable() {
    let h = Harness::local(|_| {
        InMemoryExporter::new().with_signals(Signals::NONE.with(aiobs_core::Signal::Log))
    });
    let r = run(Scenario::Concurrency, &h).await;
    assert!(
        matches!(&r.outcome, Outcome::NotApplicable(why) if why.contains("ended spans")),
        "{r:?}"
    );
}

#[tokio::test]
async fn run_all_reports_every_scenario_and_a_failing_factory() {
    let h = Harness::try_local(|_| Err::<InMemoryExporter, _>("no credentials in the environment"));
    let started = std::time::Instant::now();
    let report = run_all(&h).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.scenarios.len(), Scenario::ALL.len());
    for r in &report.scenarios {
        assert_fails_with(r, &["no credentials in the environment"]);
    }
    let panic = std::panic::catch_unwind(|| report.assert_all_passed()).unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    let all = Scenario::ALL.len();
    assert!(
        text.starts_with(&format!("{all} of {all} conformance scenarios failed")),
        "{text}"
    );
}
