//! A trace laid out as a waterfall: its spans in tree order (depth first,
//! siblings by start time), each with its depth and its place on the time axis.

use std::collections::HashMap;

use aiobs_core::{ExportedSpan, FeedbackRecord, ScoreRecord, SpanId, SpanStatus, SpanType, Usage};
use aiobs_exporter_default::{TraceRecord, TraceStatus, UsageTotals};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why a span is drawn where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Placement {
    /// A root: no parent, or an external parent that is not in the store.
    Root,
    /// Under its parent in the same process.
    Child,
    /// Under its external parent: it continues, in another process (a
    /// durable step, a downstream service), a span that is in the store.
    Continued,
    /// Its in-process parent is not in the store (not written yet, or lost):
    /// drawn as a root.
    Detached,
}

/// One waterfall row: the span's skeleton, without its payloads (those come
/// from the span endpoint when the span is selected).
#[derive(Debug, Serialize)]
pub(crate) struct SpanRow<'a> {
    pub(crate) span_id: SpanId,
    /// The span this row is drawn under (`None` for roots).
    pub(crate) drawn_under: Option<SpanId>,
    pub(crate) placement: Placement,
    pub(crate) depth: usize,
    /// Rows drawn directly under this one.
    pub(crate) children: usize,
    pub(crate) name: &'a str,
    pub(crate) span_type: SpanType,
    pub(crate) status: SpanStatus,
    pub(crate) is_event: bool,
    /// Milliseconds from the trace's first start to this span's start.
    pub(crate) offset_ms: f64,
    /// Milliseconds; `None` while running.
    pub(crate) duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<&'a Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<&'a str>,
}

/// `GET /api/traces/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct TraceView<'a> {
    pub(crate) trace_id: String,
    /// The first root's name.
    pub(crate) name: &'a str,
    pub(crate) status: TraceStatus,
    pub(crate) start_time: DateTime<Utc>,
    /// The last end; `None` while a span runs.
    pub(crate) end_time: Option<DateTime<Utc>>,
    /// From the first start to the last end (or last start, while running).
    pub(crate) duration_ms: f64,
    pub(crate) span_count: usize,
    pub(crate) error_count: usize,
    pub(crate) usage: UsageTotals,
    pub(crate) user_id: Option<&'a str>,
    pub(crate) session_id: Option<&'a str>,
    pub(crate) tags: &'a [String],
    pub(crate) spans: Vec<SpanRow<'a>>,
    pub(crate) scores: &'a [ScoreRecord],
    pub(crate) feedback: &'a [FeedbackRecord],
    pub(crate) log_count: usize,
}

fn ms(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().map_or(0.0, |us| us as f64 / 1000.0)
}

/// Where each span is drawn: `(parent index, placement)`.
fn placements(spans: &[ExportedSpan]) -> Vec<(Option<usize>, Placement)> {
    let index: HashMap<SpanId, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id, i))
        .collect();
    spans
        .iter()
        .map(|s| match (s.parent_span_id, s.external_parent_span_id) {
            (Some(p), _) => match index.get(&p) {
                Some(&i) => (Some(i), Placement::Child),
                None => (None, Placement::Detached),
            },
            (None, Some(p)) => match index.get(&p) {
                Some(&i) => (Some(i), Placement::Continued),
                None => (None, Placement::Root),
            },
            (None, None) => (None, Placement::Root),
        })
        .collect()
}

/// The spans' indices in drawing order, with their depths. Linear; a cycle
/// in the parent links (bad data) is cut where it closes, its spans drawn
/// as detached roots.
fn order(spans: &[ExportedSpan], place: &mut [(Option<usize>, Placement)]) -> Vec<(usize, usize)> {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    // `spans` is sorted by start time, so children lists are too.
    for (i, (parent, _)) in place.iter().enumerate() {
        match parent {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let mut seen = vec![false; spans.len()];
    let mut out = Vec::with_capacity(spans.len());
    let visit = |root: usize, seen: &mut Vec<bool>, out: &mut Vec<(usize, usize)>| {
        let mut stack = vec![(root, 0usize)];
        while let Some((i, depth)) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            out.push((i, depth));
            stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
        }
    };
    for r in roots {
        visit(r, &mut seen, &mut out);
    }
    // Spans only reachable through a cycle: draw each unvisited one as a root.
    for i in 0..spans.len() {
        if !seen[i] {
            place[i] = (None, Placement::Detached);
            visit(i, &mut seen, &mut out);
        }
    }
    out
}

/// The waterfall rows of `spans` (sorted by start time, as the store returns
/// them), offsets measured from `start`.
pub(crate) fn rows(spans: &[ExportedSpan], start: DateTime<Utc>) -> Vec<SpanRow<'_>> {
    let mut place = placements(spans);
    let order = order(spans, &mut place);
    let mut rows: Vec<SpanRow<'_>> = order
        .iter()
        .map(|&(i, depth)| {
            let s = &spans[i];
            SpanRow {
                span_id: s.span_id,
                drawn_under: place[i].0.map(|p| spans[p].span_id),
                placement: place[i].1,
                depth,
                children: 0,
                name: &s.name,
                span_type: s.span_type,
                status: s.status,
                is_event: s.is_event,
                offset_ms: ms(s.start_time - start),
                duration_ms: s.end_time.map(|e| ms(e - s.start_time).max(0.0)),
                model: s.attributes.model().and_then(|m| m.model.as_deref()),
                usage: s.attributes.usage(),
                error: s.error.as_ref().map(|e| e.message.as_str()),
            }
        })
        .collect();
    let mut counts: HashMap<SpanId, usize> = HashMap::new();
    for r in &rows {
        if let Some(p) = r.drawn_under {
            *counts.entry(p).or_default() += 1;
        }
    }
    for r in &mut rows {
        r.children = counts.get(&r.span_id).copied().unwrap_or(0);
    }
    rows
}

impl<'a> TraceView<'a> {
    /// Lays out `trace`.
    pub(crate) fn new(trace: &'a TraceRecord) -> Self {
        let spans = &trace.spans;
        let start = spans
            .iter()
            .map(|s| s.start_time)
            .min()
            .unwrap_or_else(Utc::now);
        let running = spans.iter().any(|s| s.end_time.is_none());
        let last = spans
            .iter()
            .map(|s| s.end_time.unwrap_or(s.start_time))
            .max()
            .unwrap_or(start);
        let rows = rows(spans, start);
        let first = rows
            .first()
            .and_then(|r| spans.iter().find(|s| s.span_id == r.span_id));
        Self {
            trace_id: trace.trace_id.to_string(),
            name: first.map_or("", |s| &s.name),
            status: trace.status(),
            start_time: start,
            end_time: (!running).then_some(last),
            duration_ms: ms(last - start).max(0.0),
            span_count: spans.len(),
            error_count: spans
                .iter()
                .filter(|s| s.status == SpanStatus::Error)
                .count(),
            usage: trace.usage_totals(),
            user_id: first.and_then(|s| s.user_id.as_deref()),
            session_id: first.and_then(|s| s.session_id.as_deref()),
            tags: first.map_or(&[], |s| &s.tags),
            spans: rows,
            scores: &trace.scores,
            feedback: &trace.feedback,
            log_count: trace.logs.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiobs_core::TraceId;

    fn span(id: u64, parent: Option<u64>, external: Option<u64>, start_ms: i64) -> ExportedSpan {
        let t = TraceId::from_u128(1).unwrap();
        let mut s = ExportedSpan::new(
            t,
            SpanId::from_u64(id).unwrap(),
            format!("s{id}"),
            SpanType::Generic,
        );
        s.parent_span_id = parent.and_then(SpanId::from_u64);
        s.external_parent_span_id = external.and_then(SpanId::from_u64);
        s.start_time = DateTime::UNIX_EPOCH + chrono::TimeDelta::milliseconds(start_ms);
        s.end_time = Some(s.start_time + chrono::TimeDelta::milliseconds(10));
        s.status = SpanStatus::Ok;
        s
    }

    fn layout(spans: Vec<ExportedSpan>) -> Vec<(String, usize, Placement)> {
        rows(&spans, DateTime::UNIX_EPOCH)
            .iter()
            .map(|r| (r.name.to_owned(), r.depth, r.placement))
            .collect()
    }

    #[test]
    fn continued_span_nests_under_its_external_parent() {
        use Placement::*;
        let rows = layout(vec![
            span(1, None, None, 0),
            span(2, Some(1), None, 1),
            // Continued in another process under span 2; its own child.
            span(3, None, Some(2), 2),
            span(4, Some(3), None, 3),
            span(5, Some(1), None, 4),
            // Continues a span that is not in the store: a root.
            span(6, None, Some(99), 5),
            // Its parent was never written: detached.
            span(7, Some(98), None, 6),
        ]);
        assert_eq!(
            rows,
            [
                ("s1".into(), 0, Root),
                ("s2".into(), 1, Child),
                ("s3".into(), 2, Continued),
                ("s4".into(), 3, Child),
                ("s5".into(), 1, Child),
                ("s6".into(), 0, Root),
                ("s7".into(), 0, Detached),
            ]
        );
    }

    #[test]
    fn a_parent_cycle_is_cut_and_every_span_drawn_once() {
        let rows = layout(vec![
            span(1, None, None, 0),
            span(2, Some(3), None, 1),
            span(3, Some(2), None, 2),
        ]);
        let mut names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["s1", "s2", "s3"]);
        assert_eq!(rows[1].2, Placement::Detached);
    }

    #[test]
    fn a_deep_chain_does_not_recurse() {
        let spans: Vec<ExportedSpan> = (1..=50_000)
            .map(|i| span(i, (i > 1).then(|| i - 1), None, i as i64))
            .collect();
        let rows = layout(spans);
        assert_eq!(rows.len(), 50_000);
        assert_eq!(rows[49_999].1, 49_999);
    }
}
