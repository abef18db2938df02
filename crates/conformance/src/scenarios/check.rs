//! The checks every scenario ends with, and their "expected … but observed …" messages.

use std::collections::HashMap;

use aiobs_core::FlushReport;
use serde_json::Value;

use super::emit::ExpectedSpan;
use super::{Pipe, Run, Step};
use crate::harness::{DeliveredItem, ItemKind};

/// At most this many offending ids are named in one message.
const NAMED: usize = 5;

/// The conservation invariant, for the pipeline and the exporter.
pub(crate) fn conserved(run: &Run<'_>, pipe: &Pipe, when: &str) -> Step {
    let stats = pipe.obs.stats();
    let p = &stats.pipeline;
    if !p.is_conserved() {
        return Err(run.fail(format!(
            "{when}: expected pipeline accepted == routed + dropped + pending but observed \
             accepted {} != routed {} + dropped {} + pending {}",
            p.accepted,
            p.routed,
            p.dropped_total(),
            p.pending
        )));
    }
    for e in &stats.exporters {
        if !e.is_conserved() {
            return Err(run.fail(format!(
                "{when}: expected accepted == delivered + failed + dropped + pending for exporter \
                 `{}` but observed accepted {} != delivered {} + failed {} + dropped {} + pending {}",
                e.name,
                e.accepted,
                e.delivered,
                e.failed_total(),
                e.dropped_total(),
                e.pending
            )));
        }
    }
    Ok(())
}

/// The flush completed and nothing is pending anywhere; then conservation.
pub(crate) fn flushed(run: &Run<'_>, pipe: &Pipe, report: &FlushReport, when: &str) -> Step {
    if !report.completed || report.pending() > 0 {
        return Err(run.fail(format!(
            "{when}: expected the flush to complete with nothing pending but observed \
             completed={} pending={} after {:?}:\n{report}",
            report.completed,
            report.pending(),
            report.elapsed
        )));
    }
    let stats = pipe.obs.stats();
    let pending = stats.pipeline.pending + stats.exporters.iter().map(|e| e.pending).sum::<u64>();
    if pending > 0 {
        return Err(run.fail(format!(
            "{when}: expected pending 0 after the flush returned but observed pending {pending} in stats()"
        )));
    }
    conserved(run, pipe, when)
}

/// Nothing failed or was dropped at the exporter.
pub(crate) fn no_losses(run: &Run<'_>, pipe: &Pipe, when: &str) -> Step {
    let s = pipe.stats();
    if s.failed_total() + s.dropped_total() > 0 {
        return Err(run.fail(format!(
            "{when}: expected no event failed or dropped at `{}` but observed failed {:?} dropped {:?} \
             (last error: {})",
            s.name,
            s.failed,
            s.dropped,
            s.last_error.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// The exporter delivered exactly `n` events.
pub(crate) fn delivered_count(run: &Run<'_>, pipe: &Pipe, n: u64, when: &str) -> Step {
    let s = pipe.stats();
    if s.delivered != n {
        return Err(run.fail(format!(
            "{when}: expected `{}` to count {n} events delivered but observed delivered {} \
             (accepted {}, failed {:?}, dropped {:?}, pending {})",
            s.name, s.delivered, s.accepted, s.failed, s.dropped, s.pending
        )));
    }
    Ok(())
}

/// Every expected span is at the destination exactly once with its end,
/// parent and payloads intact; every span of `absent` is not there.
pub(crate) async fn spans_at_destination(
    run: &Run<'_>,
    expected: &[ExpectedSpan],
    absent: &[ExpectedSpan],
    when: &str,
) -> Step {
    let Some(items) = run.delivered().await? else {
        return Ok(());
    };
    let mut ended: HashMap<&str, Vec<&DeliveredItem>> = HashMap::new();
    for item in items.iter().filter(|i| i.kind == ItemKind::Span && i.ended) {
        ended.entry(item.id.as_str()).or_default().push(item);
    }
    let total = ended.len();
    let mut missing = Vec::new();
    let mut problems = Vec::new();
    for e in expected {
        let id = e.id.to_string();
        match ended.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => missing.push(e.describe()),
            Some([one]) => {
                if let Some(p) = compare(e, one) {
                    problems.push(p);
                }
            }
            Some(many) => problems.push(format!(
                "expected {} delivered exactly once but observed {} copies",
                e.describe(),
                many.len()
            )),
        }
    }
    if !missing.is_empty() {
        return Err(run.fail(format!(
            "{when}: expected {} span(s) at the destination with their end, but observed {} missing \
             (the destination holds {total} ended span(s)): {}",
            expected.len(),
            missing.len(),
            name_some(&missing)
        )));
    }
    if !problems.is_empty() {
        return Err(run.fail(format!("{when}: {}", name_some(&problems))));
    }
    let present: Vec<String> = absent
        .iter()
        .filter(|e| ended.contains_key(e.id.to_string().as_str()))
        .map(ExpectedSpan::describe)
        .collect();
    if !present.is_empty() {
        return Err(run.fail(format!(
            "{when}: expected {} span(s) NOT at the destination (refused or dropped) but observed {} there: {}",
            absent.len(),
            present.len(),
            name_some(&present)
        )));
    }
    Ok(())
}

/// Every record id is at the destination exactly once.
pub(crate) async fn records_at_destination(
    run: &Run<'_>,
    records: &[(ItemKind, String)],
    when: &str,
) -> Step {
    if records.is_empty() {
        return Ok(());
    }
    let Some(items) = run.delivered().await? else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for (kind, id) in records {
        let n = items
            .iter()
            .filter(|i| i.kind == *kind && i.id == *id)
            .count();
        if n != 1 {
            problems.push(format!(
                "expected {kind:?} record {id} delivered exactly once but observed {n} copies"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(run.fail(format!("{when}: {}", name_some(&problems))))
    }
}

/// `needle` is nowhere at the destination: not in a payload the probe
/// decodes and, for HTTP destinations, not in any request body (decompressed).
pub(crate) async fn never_sent(run: &Run<'_>, needle: &str, what: &str) -> Step {
    if let Some(server) = run.dest.server() {
        for req in server.requests() {
            if req
                .body
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                return Err(run.fail(format!(
                    "expected {what} never sent but observed it in request #{} ({} {})",
                    req.seq, req.method, req.path
                )));
            }
        }
    }
    let Some(items) = run.delivered().await? else {
        return Ok(());
    };
    for item in &items {
        for (field, value) in [("input", &item.input), ("output", &item.output)] {
            if value
                .as_ref()
                .is_some_and(|v| v.to_string().contains(needle))
            {
                return Err(run.fail(format!(
                    "expected {what} never at the destination but observed it in the {field} \
                     of {:?} {}",
                    item.kind, item.id
                )));
            }
        }
    }
    Ok(())
}

fn compare(e: &ExpectedSpan, got: &DeliveredItem) -> Option<String> {
    let want_parent = e.parent.map(|p| p.to_string());
    if got.parent_id != want_parent {
        return Some(format!(
            "expected {} with parent {} but observed parent {}",
            e.describe(),
            want_parent.as_deref().unwrap_or("none (a root)"),
            got.parent_id.as_deref().unwrap_or("none")
        ));
    }
    if let Some(t) = &got.trace_id
        && *t != e.trace.to_string()
    {
        return Some(format!(
            "expected {} in trace {} but observed trace {t}",
            e.describe(),
            e.trace
        ));
    }
    for (what, want, have) in [
        ("input", &e.input, &got.input),
        ("output", &e.output, &got.output),
    ] {
        if let (Some(want), Some(have)) = (want, have)
            && !same_payload(want, have)
        {
            return Some(format!(
                "expected {} with {what} {want} but observed {what} {have}",
                e.describe()
            ));
        }
    }
    None
}

/// Equal, or the destination keeps the JSON as a string.
fn same_payload(want: &Value, have: &Value) -> bool {
    if want == have {
        return true;
    }
    match have {
        Value::String(s) => serde_json::from_str::<Value>(s).is_ok_and(|v| v == *want),
        _ => false,
    }
}

fn name_some(items: &[String]) -> String {
    let mut out: Vec<String> = items.iter().take(NAMED).cloned().collect();
    if items.len() > NAMED {
        out.push(format!("and {} more", items.len() - NAMED));
    }
    out.join("; ")
}
