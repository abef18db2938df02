//! Text output: the trace tree, the listing table, sizes and durations.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aiobs_core::{ExportedSpan, SpanId, SpanStatus, Usage};
use aiobs_exporter_default::{TracePage, TraceRecord, TraceStatus, UsageTotals};

/// `412ms`, `2.05s`, `3m 07s`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m {:02}s", s / 60, s % 60)
    }
}

fn span_duration(s: &ExportedSpan) -> String {
    match s.duration() {
        Some(d) => duration(d),
        None => "running".into(),
    }
}

fn status(s: &ExportedSpan) -> &'static str {
    match s.status {
        SpanStatus::Ok => "ok",
        SpanStatus::Error => "ERROR",
        SpanStatus::Running => "running",
        SpanStatus::Dropped => "dropped (never ended)",
        _ => "unknown",
    }
}

pub(crate) fn usage(u: &Usage) -> String {
    let mut out = format!("tokens {} in", u.input_tokens);
    if let Some(c) = u.input_details.cache_read {
        out.push_str(&format!(" ({c} cached)"));
    }
    out.push_str(&format!(" / {} out", u.output_tokens));
    if let Some(r) = u.output_details.reasoning {
        out.push_str(&format!(" ({r} reasoning)"));
    }
    out
}

pub(crate) fn totals(u: &UsageTotals) -> String {
    if u.total() == 0 {
        return "-".into();
    }
    let mut out = format!("{} in", u.input_tokens);
    if u.cached_input_tokens > 0 {
        out.push_str(&format!(" ({} cached)", u.cached_input_tokens));
    }
    out.push_str(&format!(" / {} out", u.output_tokens));
    out
}

/// One line describing a span (no indentation).
fn span_line(s: &ExportedSpan) -> String {
    let mut line = format!(
        "{} [{}] {} {}",
        s.name,
        s.span_type.as_str(),
        span_duration(s),
        status(s)
    );
    if let Some(m) = s.attributes.model() {
        if let Some(model) = &m.model {
            line.push_str(&format!("  {model}"));
            if let Some(p) = &m.provider {
                line.push_str(&format!(" ({p})"));
            }
        }
        if let Some(u) = &m.usage {
            line.push_str(&format!("  {}", usage(u)));
        }
    }
    if let Some(e) = &s.error {
        let kind = e
            .kind
            .as_deref()
            .map(|k| format!("{k}: "))
            .unwrap_or_default();
        line.push_str(&format!("  {kind}{}", e.message));
    }
    line
}

/// The trace as an indented tree, with a header and its records.
pub(crate) fn trace(t: &TraceRecord) -> String {
    let mut out = String::new();
    let roots: Vec<&ExportedSpan> = t.roots().collect();
    let total = roots
        .iter()
        .filter_map(|r| r.duration())
        .max()
        .map(duration)
        .unwrap_or_else(|| "running".into());
    let status = match t.status() {
        TraceStatus::Error => "error",
        TraceStatus::Running => "running",
        _ => "ok",
    };
    out.push_str(&format!(
        "trace {}  {} spans  {status}  {total}  tokens {}",
        t.trace_id,
        t.spans.len(),
        totals(&t.usage_totals())
    ));
    out.push('\n');
    if let Some(r) = roots.first() {
        let mut who = Vec::new();
        if let Some(u) = &r.user_id {
            who.push(format!("user {u}"));
        }
        if let Some(s) = &r.session_id {
            who.push(format!("session {s}"));
        }
        if !r.tags.is_empty() {
            who.push(format!("tags {}", r.tags.join(", ")));
        }
        if !who.is_empty() {
            out.push_str(&who.join("  "));
            out.push('\n');
        }
    }
    let mut children: HashMap<SpanId, Vec<&ExportedSpan>> = HashMap::new();
    for s in &t.spans {
        if let Some(p) = s.parent_span_id {
            children.entry(p).or_default().push(s);
        }
    }
    let mut seen = HashSet::new();
    for r in &roots {
        out.push_str(&span_line(r));
        out.push('\n');
        branch(&mut out, r.span_id, &children, "", &mut seen);
    }
    for s in &t.scores {
        let mut line = format!("score {} = {}", s.name, s.value);
        if let Some(c) = &s.comment {
            line.push_str(&format!("  ({c})"));
        }
        if let Some(src) = &s.source {
            line.push_str(&format!("  by {src}"));
        }
        out.push_str(&line);
        out.push('\n');
    }
    for f in &t.feedback {
        out.push_str(&format!(
            "feedback {} = {}{}",
            f.key,
            f.value,
            f.comment
                .as_deref()
                .map(|c| format!("  ({c})"))
                .unwrap_or_default()
        ));
        out.push('\n');
    }
    for l in &t.logs {
        out.push_str(&format!(
            "log {} {:?} {}",
            l.timestamp.format("%H:%M:%S%.3f"),
            l.level,
            l.message
        ));
        out.push('\n');
    }
    out
}

fn branch(
    out: &mut String,
    parent: SpanId,
    children: &HashMap<SpanId, Vec<&ExportedSpan>>,
    prefix: &str,
    seen: &mut HashSet<SpanId>,
) {
    // A malformed store could hold a cycle of parents: print each span once.
    if !seen.insert(parent) {
        return;
    }
    let Some(kids) = children.get(&parent) else {
        return;
    };
    for (i, k) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let (joint, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        out.push_str(&format!("{prefix}{joint}{}", span_line(k)));
        out.push('\n');
        branch(out, k.span_id, children, &format!("{prefix}{indent}"), seen);
    }
}

/// The listing as a table, with the command for the next page.
pub(crate) fn page(p: &TracePage, next_command: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    if p.traces.is_empty() {
        out.push_str("no traces match\n");
        return out;
    }
    out.push_str(&format!(
        "{:<32}  {:<19}  {:>9}  {:<7}  {:>5}  {:>6}  {:<32}  NAME",
        "TRACE ID", "STARTED (UTC)", "DURATION", "STATUS", "SPANS", "ERRORS", "TOKENS"
    ));
    out.push('\n');
    for t in &p.traces {
        let mut name = t.name.clone();
        if let Some(u) = &t.user_id {
            name.push_str(&format!("  user={u}"));
        }
        if let Some(s) = &t.session_id {
            name.push_str(&format!("  session={s}"));
        }
        if !t.tags.is_empty() {
            name.push_str(&format!("  tags={}", t.tags.join(",")));
        }
        out.push_str(&format!(
            "{}  {}  {:>9}  {:<7}  {:>5}  {:>6}  {:<32}  {name}",
            t.trace_id,
            t.start_time.format("%Y-%m-%d %H:%M:%S"),
            t.duration().map(duration).unwrap_or_else(|| "-".into()),
            t.status.as_str(),
            t.span_count,
            t.error_count,
            totals(&t.usage),
        ));
        out.push('\n');
    }
    if let Some(c) = &p.next_cursor {
        out.push_str(&format!("next page: {}", next_command(&c.to_string())));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(412)), "412ms");
        assert_eq!(duration(Duration::from_millis(2050)), "2.05s");
        assert_eq!(duration(Duration::from_secs(187)), "3m 07s");
    }
}
