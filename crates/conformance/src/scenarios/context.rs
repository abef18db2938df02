//! What applies to a whole trace: privacy that survives a durable rebuild,
//! and a continued trace that claims nothing of the trace it joins.

use std::time::Duration;

use aiobs_core::{ExportedSpan, Span, SpanOptions, SpanType, TracingOptions};
use serde_json::json;

use super::emit::ExpectedSpan;
use super::ordering::elsewhere;
use super::{Run, Step, check};
use crate::harness::{DeliveredItem, ItemKind};
use crate::instrument::Tuning;

const DEADLINE: Duration = Duration::from_secs(10);

/// A payload the trace hides: it must never reach the destination.
const HIDDEN: &str = "aiobs-conformance-hidden-payload";

/// The serialised round trip a durable engine makes.
fn persisted(run: &Run<'_>, span: &Span) -> Step<ExportedSpan> {
    let data = span
        .export()
        .ok_or_else(|| run.fail("expected span.export() of a running span but observed None"))?;
    let text = serde_json::to_string(&data).map_err(|e| {
        run.fail(format!(
            "expected the exported span to serialise but observed: {e}"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        run.fail(format!(
            "expected the serialised span to deserialise but observed: {e}"
        ))
    })
}

/// A trace that hides inputs and outputs is checkpointed in one process and
/// resumed in another, where every way of recording a payload is tried on
/// the rebuilt spans and on a new child: no hidden payload may reach the
/// destination, and every span must.
pub(crate) async fn privacy_after_rebuild(run: &Run<'_>) -> Step {
    let pipe = run.pipe(Tuning::default())?;
    run.require_spans(&pipe)?;
    let first = elsewhere(run)?;
    let root = first.start_span(
        SpanOptions::new("private-workflow", SpanType::WorkflowRun)
            .input(json!({"document": HIDDEN}))
            .tracing(TracingOptions::new().hide_input().hide_output()),
    );
    let step = root.child(SpanOptions::new("private-step", SpanType::ToolCall).input(HIDDEN));
    let (root_data, step_data) = (persisted(run, &root)?, persisted(run, &step)?);
    // The first process dies with both running.
    std::mem::forget(step);
    std::mem::forget(root);

    let mut root = pipe.obs.rebuild_span(root_data);
    let mut step = pipe.obs.rebuild_span(step_data);
    step.set_input(HIDDEN);
    step.set_output(json!({"result": HIDDEN}));
    let mut late =
        step.child(SpanOptions::new("private-generation", SpanType::ModelGeneration).input(HIDDEN));
    late.set_output(HIDDEN);
    let expected = [
        ExpectedSpan::of(&root, None, "private-workflow"),
        ExpectedSpan::of(&step, Some(&root), "private-step"),
        ExpectedSpan::of(&late, Some(&step), "private-generation"),
    ];
    late.end();
    step.end_with_output(HIDDEN);
    root.end_with_output(json!({"answer": HIDDEN}));
    let report = pipe.obs.flush(DEADLINE).await;
    check::flushed(run, &pipe, &report, "after the rebuilt trace ended")?;
    check::no_losses(run, &pipe, "after the rebuilt trace ended")?;
    check::spans_at_destination(run, &expected, &[], "after the rebuilt trace ended").await?;
    check::never_sent(
        run,
        HIDDEN,
        "a payload the trace hides (hide_input/hide_output)",
    )
    .await?;
    let report = pipe.obs.shutdown(DEADLINE).await;
    check::flushed(run, &pipe, &report, "at shutdown")
}

/// Process A records a trace; process B continues it — by `traceparent`
/// and by trace id alone — with roots of its own that have their own
/// names, inputs and outputs. The destination must keep A's root as the
/// trace's: no span of B claims the trace's name, input or output.
pub(crate) async fn continuation(run: &Run<'_>) -> Step {
    let upstream = run.pipe(Tuning::default())?;
    run.require_spans(&upstream)?;
    let mut root = upstream.obs.start_span(
        SpanOptions::new("upstream-root", SpanType::AgentRun).input(json!("upstream input")),
    );
    let header = root.traceparent().to_string();
    let trace_id = root.trace_id();
    let root_expected = ExpectedSpan::of(&root, None, "upstream-root").with_payload(
        Some(json!("upstream input")),
        Some(json!("upstream output")),
    );
    root.end_with_output("upstream output");
    let report = upstream.obs.flush(DEADLINE).await;
    check::flushed(run, &upstream, &report, "in the upstream process")?;

    let downstream = run.pipe(Tuning::default())?;
    let mut joined = downstream.obs.start_span(
        SpanOptions::new("continued-root", SpanType::AgentRun)
            .input(json!("downstream input"))
            .tracing(TracingOptions::new().traceparent(&header)),
    );
    let mut child = joined.child(SpanOptions::new("continued-child", SpanType::ToolCall));
    let mut by_id = downstream.obs.start_span(
        SpanOptions::new("continued-by-trace-id", SpanType::WorkflowRun)
            .input(json!("by-id input"))
            .tracing(TracingOptions::new().trace_id(trace_id)),
    );
    let mut joined_expected = ExpectedSpan::of(&joined, None, "continued-root").with_payload(
        Some(json!("downstream input")),
        Some(json!("downstream output")),
    );
    // Its parent is the upstream root, in another process.
    joined_expected.parent = Some(root_expected.id);
    let child_expected = ExpectedSpan::of(&child, Some(&joined), "continued-child");
    let by_id_id = by_id.span_id().to_string();
    child.end();
    joined.end_with_output("downstream output");
    by_id.end_with_output("by-id output");
    let report = downstream.obs.flush(DEADLINE).await;
    check::flushed(run, &downstream, &report, "in the downstream process")?;
    check::no_losses(run, &downstream, "in the downstream process")?;
    check::spans_at_destination(
        run,
        &[
            root_expected.clone(),
            joined_expected.clone(),
            child_expected.clone(),
        ],
        &[],
        "after both processes flushed",
    )
    .await?;

    let Some(items) = run.delivered().await? else {
        return Ok(());
    };
    let ended = |id: &str| -> Vec<&DeliveredItem> {
        items
            .iter()
            .filter(|i| i.kind == ItemKind::Span && i.ended && i.id == id)
            .collect()
    };
    if ended(&by_id_id).len() != 1 {
        return Err(run.fail(format!(
            "expected the span continuing by trace id ({by_id_id}) at the destination once \
             but observed {} copies",
            ended(&by_id_id).len()
        )));
    }
    let continued = [
        (joined_expected.id.to_string(), "continued-root"),
        (child_expected.id.to_string(), "continued-child"),
        (by_id_id, "continued-by-trace-id"),
    ];
    let mut decoded = false;
    for (id, name) in &continued {
        for item in ended(id) {
            let Some(claims) = &item.trace_claims else {
                continue;
            };
            decoded = true;
            if !claims.is_empty() {
                return Err(run.fail(format!(
                    "expected span {id} (`{name}`), which continues an upstream trace, to set no \
                     trace-level field at the destination but observed it sets {}",
                    claims.join(", ")
                )));
            }
        }
    }
    let upstream_id = root_expected.id.to_string();
    for item in ended(&upstream_id) {
        if let Some(claims) = &item.trace_claims {
            decoded = true;
            if !claims.iter().any(|c| c == "name") {
                return Err(run.fail(format!(
                    "expected span {upstream_id} (`upstream-root`), which began the trace, to name \
                     it at the destination but observed it sets {}",
                    if claims.is_empty() {
                        "nothing".to_owned()
                    } else {
                        claims.join(", ")
                    }
                )));
            }
        }
    }
    if !decoded {
        run.note(
            "the probe decodes no trace-level claims (DeliveredItem::trace_claims): the \
             continued spans' delivery was checked, not what they claim",
        );
    }
    let report = downstream.obs.shutdown(DEADLINE).await;
    check::flushed(run, &downstream, &report, "at the downstream shutdown")?;
    let report = upstream.obs.shutdown(DEADLINE).await;
    check::flushed(run, &upstream, &report, "at the upstream shutdown")
}
