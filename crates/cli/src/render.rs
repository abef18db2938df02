//! Text output: a trace as an indented tree, a page of traces as a table.

// Writing into a `String` cannot fail: results are `.unwrap_or(())`.
use std::fmt::Write as _;

use aiobs_core::{ExportedSpan, SpanStatus};
use aiobs_exporter_default::{TracePage, TraceRecord};

fn ms(d: Option<std::time::Duration>) -> String {
    match d {
        Some(d) if d.as_secs_f64() >= 1.0 => format!("{:.2}s", d.as_secs_f64()),
        Some(d) => format!("{:.1}ms", d.as_secs_f64() * 1000.0),
        None => "running".into(),
    }
}

fn status(s: &ExportedSpan) -> &'static str {
    match s.status {
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "ERROR",
        SpanStatus::Dropped => "dropped",
        SpanStatus::Running => "running",
        _ => "?",
    }
}

/// The trace as a tree: one line per span with type, duration, status, usage, error.
pub(crate) fn trace_tree(trace: &TraceRecord) -> String {
    let mut out = String::new();
    let usage = trace.usage_totals();
    let first = trace.spans.first();
    writeln!(
        out,
        "trace {}  status {}  spans {}  tokens in {} (cached {}) out {}",
        trace.trace_id,
        trace.status(),
        trace.spans.len(),
        usage.input_tokens,
        usage.cached_input_tokens,
        usage.output_tokens
    )
    .unwrap_or(());
    if let Some(f) = first {
        let mut ctx = Vec::new();
        if let Some(u) = &f.user_id {
            ctx.push(format!("user {u}"));
        }
        if let Some(s) = &f.session_id {
            ctx.push(format!("session {s}"));
        }
        if !f.tags.is_empty() {
            ctx.push(format!("tags {}", f.tags.join(",")));
        }
        if !ctx.is_empty() {
            writeln!(out, "  {}", ctx.join("  ")).unwrap_or(());
        }
    }
    for root in trace.roots() {
        node(&mut out, trace, root, 0);
    }
    for s in &trace.scores {
        writeln!(
            out,
            "score {} = {}{}",
            s.name,
            s.value,
            s.comment
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        )
        .unwrap_or(());
    }
    out
}

fn node(out: &mut String, trace: &TraceRecord, span: &ExportedSpan, depth: usize) {
    let mut line = format!(
        "{}{} [{}] {} {}",
        "  ".repeat(depth + 1),
        span.name,
        span.span_type.as_str(),
        ms(span.duration()),
        status(span)
    );
    if let Some(m) = span.attributes.model() {
        if let Some(model) = &m.model {
            write!(line, "  model {model}").unwrap_or(());
        }
        if let Some(u) = &m.usage {
            write!(
                line,
                "  tokens in {} out {}",
                u.input_tokens, u.output_tokens
            )
            .unwrap_or(());
            if let Some(c) = u.input_details.cache_read {
                write!(line, " cached {c}").unwrap_or(());
            }
            if let Some(r) = u.output_details.reasoning {
                write!(line, " reasoning {r}").unwrap_or(());
            }
        }
    }
    if let Some(e) = &span.error {
        write!(line, "  error: {}", e.message).unwrap_or(());
    }
    writeln!(out, "{line}").unwrap_or(());
    // Recursion depth is bounded by the stored trace; guard against cycles anyway.
    if depth < 64 {
        for child in trace.children(span.span_id) {
            node(out, trace, child, depth + 1);
        }
    }
}

/// A page of traces as a table, with the cursor of the next page.
pub(crate) fn trace_table(page: &TracePage) -> String {
    let mut out = String::new();
    if page.traces.is_empty() {
        out.push_str("no traces\n");
        return out;
    }
    writeln!(
        out,
        "{:<32}  {:<20}  {:<7}  {:>5}  {:>9}  {:>8}  name",
        "trace", "started (UTC)", "status", "spans", "duration", "tokens"
    )
    .unwrap_or(());
    for t in &page.traces {
        writeln!(
            out,
            "{:<32}  {:<20}  {:<7}  {:>5}  {:>9}  {:>8}  {}",
            t.trace_id,
            t.start_time.format("%Y-%m-%d %H:%M:%S"),
            t.status.as_str(),
            t.span_count,
            ms(t.duration()),
            t.usage.total(),
            t.name
        )
        .unwrap_or(());
    }
    if let Some(c) = &page.next_cursor {
        writeln!(out, "more: --cursor {c}").unwrap_or(());
    }
    out
}
