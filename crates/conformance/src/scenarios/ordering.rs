//! Events out of their natural order, and spans that cross processes.

use std::time::Duration;

use aiobs_core::{DropReason, Observability, SpanOptions, SpanType};
use serde_json::json;

use super::emit::ExpectedSpan;
use super::{Run, Step, check};
use crate::instrument::Tuning;

const DEADLINE: Duration = Duration::from_secs(10);

/// An `Observability` without exporters: spans started there are never seen
/// by the exporter under test, like spans of another process.
pub(crate) fn elsewhere(run: &Run<'_>) -> Step<Observability> {
    Observability::builder()
        .derive_metrics(false)
        .build()
        .map_err(|e| {
            run.fail(format!(
                "expected a scratch Observability but observed: {e}"
            ))
        })
}

/// End without start; a child delivered before its parent; late children
/// after the root ended (one ended late, one started late).
pub(crate) async fn out_of_order(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let other = elsewhere(run)?;
    let mut expected = Vec::new();

    // 1. End without start: the exporter sees only the end of a span started elsewhere.
    let started_elsewhere = other.start_span(
        SpanOptions::new("end-without-start", SpanType::AgentRun).input(json!({"q": "orphan"})),
    );
    let Some(data) = started_elsewhere.export() else {
        return Err(run.fail("expected span.export() of a recording span but observed None"));
    };
    let mut orphan = pipe.obs.rebuild_span(data);
    expected.push(
        ExpectedSpan::of(&orphan, None, "end-without-start")
            .with_payload(Some(json!({"q": "orphan"})), Some(json!("done"))),
    );
    orphan.end_with_output("done");
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after an end without start")?;

    // 2. Child before parent: the child's end is delivered before the
    //    exporter has seen anything of its parent.
    let parent_elsewhere = other.start_span(SpanOptions::new("late-parent", SpanType::AgentRun));
    let child_elsewhere =
        parent_elsewhere.child(SpanOptions::new("early-child", SpanType::ToolCall));
    let (Some(parent_data), Some(child_data)) =
        (parent_elsewhere.export(), child_elsewhere.export())
    else {
        return Err(run.fail("expected span.export() of recording spans but observed None"));
    };
    let mut child = pipe.obs.rebuild_span(child_data);
    let mut parent = pipe.obs.rebuild_span(parent_data);
    expected.push(ExpectedSpan::of(&child, Some(&parent), "early-child"));
    expected.push(ExpectedSpan::of(&parent, None, "late-parent"));
    child.end();
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(
        run,
        &pipe,
        &report,
        "after a child ended before its parent started",
    )?;
    parent.end();
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after the parent ended")?;

    // 3. Late children: the root ends and is delivered first.
    let mut root = pipe
        .obs
        .start_span(SpanOptions::new("early-root", SpanType::WorkflowRun));
    let mut late_child = root.child(SpanOptions::new(
        "ends-after-root",
        SpanType::ModelGeneration,
    ));
    expected.push(ExpectedSpan::of(&root, None, "early-root"));
    expected.push(ExpectedSpan::of(
        &late_child,
        Some(&root),
        "ends-after-root",
    ));
    root.end();
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after the root ended")?;
    late_child.end();
    let mut later_child = root.child(SpanOptions::new("starts-after-root", SpanType::ToolCall));
    expected.push(ExpectedSpan::of(
        &later_child,
        Some(&root),
        "starts-after-root",
    ));
    later_child.end();
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after the late children")?;

    check::no_losses(run, &pipe, "after every out-of-order case")?;
    check::spans_at_destination(run, &expected, &[], "after every out-of-order case").await?;
    drop((started_elsewhere, parent_elsewhere, child_elsewhere));
    let report = pipe.obs.shutdown(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after shutdown")
}

/// A root and a child start in one `Observability` (the child ends there);
/// the process "dies" with the root running; the root is rebuilt in a fresh
/// `Observability` with a fresh exporter for the same destination, gets a
/// child and an output there, and ends: the destination has the complete
/// root, with the first process's input, and both children under it.
pub(crate) async fn durable_replay(run: &Run<'_>) -> Step {
    let first = run.pipe(Tuning::default())?;
    run.require_spans(&first)?;
    let input = json!({"order": 42, "step": "charge-card"});
    let root = first.obs.start_span(
        SpanOptions::new("durable-workflow", SpanType::WorkflowRun).input(input.clone()),
    );
    let mut step1 = root.child(SpanOptions::new("step-1", SpanType::WorkflowStep));
    let step1_expected = ExpectedSpan::of(&step1, Some(&root), "step-1");
    step1.end_with_output("charged");
    let report = first.obs.flush(DEADLINE).await;
    check::flushed(run, &first, &report, "in the first process")?;
    let Some(saved) = root.export() else {
        return Err(run.fail("expected span.export() of the running root but observed None"));
    };
    // The first process ends with the root still running: its end is never
    // delivered from there (counted after_shutdown).
    let report = first.obs.shutdown(DEADLINE).await;
    check::flushed(run, &first, &report, "at the first process's shutdown")?;
    let root_id = root.span_id();
    drop(root);
    let after = first
        .obs
        .stats()
        .pipeline
        .dropped
        .get(&DropReason::AfterShutdown)
        .copied()
        .unwrap_or(0);
    if after != 1 {
        return Err(run.fail(format!(
            "expected the first process's abandoned root {root_id} counted after_shutdown once but observed {after}"
        )));
    }
    check::conserved(run, &first, "in the first process")?;

    // The second process resumes the root from its serialised form.
    let second = run.pipe(Tuning::default())?;
    let serialised = serde_json::to_string(&saved).map_err(|e| {
        run.fail(format!(
            "expected the exported span to serialise but observed: {e}"
        ))
    })?;
    let restored = serde_json::from_str(&serialised).map_err(|e| {
        run.fail(format!(
            "expected the serialised span to deserialise but observed: {e}"
        ))
    })?;
    let mut resumed = second.obs.rebuild_span(restored);
    if resumed.span_id() != root_id {
        return Err(run.fail(format!(
            "expected the rebuilt span to keep id {root_id} but observed {}",
            resumed.span_id()
        )));
    }
    let mut step2 = resumed.child(SpanOptions::new("step-2", SpanType::WorkflowStep));
    let step2_expected = ExpectedSpan::of(&step2, Some(&resumed), "step-2");
    step2.end();
    let output = json!({"status": "shipped"});
    let root_expected = ExpectedSpan::of(&resumed, None, "durable-workflow")
        .with_payload(Some(input), Some(output.clone()));
    resumed.end_with_output(output);
    let report = second.obs.flush(DEADLINE).await;
    check::flushed(run, &second, &report, "in the second process")?;
    check::no_losses(run, &second, "in the second process")?;
    check::spans_at_destination(
        run,
        &[root_expected, step1_expected, step2_expected],
        &[],
        "after the replay",
    )
    .await?;
    let report = second.obs.shutdown(DEADLINE).await;
    check::flushed(run, &second, &report, "at the second process's shutdown")
}
