//! The cases of the storage suite. Each takes a fresh, empty store.

use std::collections::HashSet;
use std::sync::Arc;

use aiobs_core::{SpanEventKind, SpanStatus, SpanType, TraceId};
use aiobs_exporter_default::{
    PageRequest, RetentionReport, Storage, Strategy, TraceFilter, TraceStatus, TraceSummary,
    UsageTotals, WriteBatch,
};
use serde_json::json;

use super::TestStore;
use super::data::*;

/// Writes a batch and checks the store kept every item.
pub(crate) async fn put(s: &dyn Storage, b: WriteBatch) {
    let out = s.write(b).await.unwrap();
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
}

async fn all_pages(s: &dyn Storage, filter: &TraceFilter, limit: usize) -> Vec<TraceSummary> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(limit);
    loop {
        let p = s.list_traces(filter, &page).await.unwrap();
        assert!(p.traces.len() <= limit, "page larger than its limit");
        out.extend(p.traces);
        match p.next_cursor {
            Some(c) => page = PageRequest::first(limit).after(c),
            None => return out,
        }
    }
}

async fn listed(s: &dyn Storage, filter: TraceFilter) -> HashSet<TraceId> {
    all_pages(s, &filter, 1000)
        .await
        .into_iter()
        .map(|t| t.trace_id)
        .collect()
}

fn ids(traces: &[&TraceId]) -> HashSet<TraceId> {
    traces.iter().map(|t| **t).collect()
}

/// Everything written comes back exactly as it went in.
pub(crate) async fn round_trip_keeps_every_field(store: &TestStore) {
    let s = &*store.storage;
    let t = rich_trace(0, "user-1", "session-1", &["prod", "beta"]);
    put(s, t.batch()).await;
    let got = s
        .get_trace(t.trace_id)
        .await
        .unwrap()
        .expect("trace stored");
    assert_eq!(got.trace_id, t.trace_id);
    assert_eq!(got.spans, t.spans, "spans differ after the round trip");
    assert_eq!(got.logs, vec![t.log.clone()]);
    assert_eq!(got.scores, vec![t.score.clone()]);
    assert_eq!(got.feedback, vec![t.feedback.clone()]);
    assert_eq!(got.status(), TraceStatus::Error);
    assert_eq!(got.roots().count(), 1);
}

/// An `Ended` event alone creates the span (its start never arrived); a
/// late `Started` or `Updated` never takes it back in time.
pub(crate) async fn end_alone_creates_the_span_and_late_states_never_regress(store: &TestStore) {
    let s = &*store.storage;
    let t = trace_id();
    let mut done = span(t, None, "durable-step", SpanType::WorkflowStep, 10, 300);
    done.output = Some(json!({"result": 42}));
    put(s, one(SpanEventKind::Ended, &done)).await;
    let got = s
        .get_trace(t)
        .await
        .unwrap()
        .expect("the end event alone created the span");
    assert_eq!(got.spans, vec![done.clone()]);

    let mut stale = done.clone();
    stale.name = "stale start".into();
    stale.end_time = None;
    stale.output = None;
    stale.status = SpanStatus::Running;
    put(s, one(SpanEventKind::Started, &stale)).await;
    put(s, one(SpanEventKind::Updated, &stale)).await;
    let got = s.get_trace(t).await.unwrap().unwrap();
    assert_eq!(
        got.spans,
        vec![done.clone()],
        "a late start/update overwrote the ended span"
    );
    let page = s
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 1);
    assert_eq!(page.traces[0].status, TraceStatus::Ok);
    assert_eq!(page.traces[0].name, "durable-step");
}

/// A started span is visible while running, an update changes it, the end completes it.
pub(crate) async fn running_span_is_visible_then_completed(store: &TestStore) {
    let s = &*store.storage;
    let t = trace_id();
    let full = span(t, None, "agent", SpanType::AgentRun, 20, 1000);
    let mut running = full.clone();
    running.end_time = None;
    running.status = SpanStatus::Running;
    put(s, one(SpanEventKind::Started, &running)).await;
    let page = s
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.traces[0].status, TraceStatus::Running);
    assert_eq!(page.traces[0].end_time, None);
    assert_eq!(
        listed(s, TraceFilter::new().status(TraceStatus::Running)).await,
        ids(&[&t])
    );

    running.input = Some(json!("hello"));
    put(s, one(SpanEventKind::Updated, &running)).await;
    let got = s.get_trace(t).await.unwrap().unwrap();
    assert_eq!(got.spans[0].input, Some(json!("hello")));
    assert_eq!(got.status(), TraceStatus::Running);

    let mut ended_span = full.clone();
    ended_span.input = Some(json!("hello"));
    put(s, one(SpanEventKind::Ended, &ended_span)).await;
    let got = s.get_trace(t).await.unwrap().unwrap();
    assert_eq!(got.spans, vec![ended_span]);
    assert_eq!(
        listed(s, TraceFilter::new().status(TraceStatus::Running)).await,
        HashSet::new()
    );
    assert_eq!(
        listed(s, TraceFilter::new().status(TraceStatus::Ok)).await,
        ids(&[&t])
    );
}

/// Ids are idempotency keys: a batch written twice (a retry after an
/// unacknowledged commit) stores every item once.
pub(crate) async fn rewriting_a_batch_stores_nothing_twice(store: &TestStore) {
    let s = &*store.storage;
    let t = rich_trace(30, "u", "s", &[]);
    let mut b = t.batch();
    b.push_metric(metric(31, 12.5));
    b.push_log(log(32, None));
    put(s, b.clone()).await;
    put(s, b).await;
    let got = s.get_trace(t.trace_id).await.unwrap().unwrap();
    assert_eq!(got.spans.len(), t.spans.len());
    assert_eq!(got.logs.len(), 1);
    assert_eq!(got.scores.len(), 1);
    assert_eq!(got.feedback.len(), 1);
    // Retention counts what it removes: one of each, not two.
    let removed = s.delete_older_than(at(10_000)).await.unwrap();
    assert_eq!(
        (
            removed.traces,
            removed.spans,
            removed.logs,
            removed.metrics,
            removed.scores,
            removed.feedback
        ),
        (1, t.spans.len() as u64, 2, 1, 1, 1),
        "{removed:?}"
    );
}

/// Newest first; pages of any size cover every trace exactly once, ties on
/// the start time included.
pub(crate) async fn listing_is_newest_first_and_cursor_pages_cover_everything_once(
    store: &TestStore,
) {
    let s = &*store.storage;
    let mut roots = Vec::new();
    for i in 0..7 {
        roots.push(span(
            trace_id(),
            None,
            &format!("run-{i}"),
            SpanType::AgentRun,
            100 + i,
            10,
        ));
    }
    // Two more starting at the very same instant as run-3.
    for k in 0..2 {
        let mut twin = span(
            trace_id(),
            None,
            &format!("twin-{k}"),
            SpanType::AgentRun,
            103,
            10,
        );
        twin.start_time = roots[3].start_time;
        roots.push(twin);
    }
    put(s, ended(&roots)).await;
    for limit in [1, 2, 3, 4, 50] {
        let listed = all_pages(s, &TraceFilter::new(), limit).await;
        let got: Vec<TraceId> = listed.iter().map(|t| t.trace_id).collect();
        let unique: HashSet<TraceId> = got.iter().copied().collect();
        assert_eq!(got.len(), roots.len(), "limit {limit}: {got:?}");
        assert_eq!(
            unique.len(),
            roots.len(),
            "limit {limit}: a trace was listed twice"
        );
        assert!(
            listed
                .windows(2)
                .all(|w| w[0].start_time >= w[1].start_time),
            "limit {limit}: not newest first"
        );
    }
    let first = s
        .list_traces(&TraceFilter::new(), &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(first.traces[0].name, "run-6");
    assert!(first.next_cursor.is_some());
    let cursor_text = first.next_cursor.unwrap().to_string();
    let again = s
        .list_traces(
            &TraceFilter::new(),
            &PageRequest::first(2).after(cursor_text.parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        again.traces[0].name, "run-4",
        "the cursor survives being shown as text"
    );
}

/// Each filter keeps exactly the traces it names.
pub(crate) async fn every_filter_narrows_the_listing(store: &TestStore) {
    let s = &*store.storage;
    let a = rich_trace(1000, "alice", "sess-a", &["prod", "beta"]); // error (failing tool), has tool + model
    let b = {
        let t = trace_id();
        let root = with_trace_fields(
            span(t, None, "nightly-ingest", SpanType::WorkflowRun, 2000, 50),
            "bob",
            "sess-b",
            &["prod"],
        );
        let child = with_trace_fields(
            span(
                t,
                Some(root.span_id),
                "Embed 100% of DOCS",
                SpanType::RagEmbedding,
                2000,
                20,
            ),
            "bob",
            "sess-b",
            &["prod"],
        );
        (t, vec![root, child])
    };
    let c = {
        let t = trace_id();
        let mut root = with_trace_fields(
            span(t, None, "support-agent", SpanType::AgentRun, 3000, 50),
            "alice",
            "sess-c",
            &["beta"],
        );
        root.end_time = None;
        root.status = SpanStatus::Running;
        (t, root)
    };
    put(s, a.batch()).await;
    put(s, ended(&b.1)).await;
    put(s, one(SpanEventKind::Started, &c.1)).await;
    let (ta, tb, tc) = (&a.trace_id, &b.0, &c.0);

    let cases: Vec<(&str, TraceFilter, HashSet<TraceId>)> = vec![
        ("none", TraceFilter::new(), ids(&[ta, tb, tc])),
        ("trace id", TraceFilter::new().trace_id(*tb), ids(&[tb])),
        (
            "after",
            TraceFilter::new().started_after(at(2000)),
            ids(&[tb, tc]),
        ),
        (
            "before",
            TraceFilter::new().started_before(at(2000)),
            ids(&[ta]),
        ),
        (
            "range",
            TraceFilter::new()
                .started_after(at(1500))
                .started_before(at(2500)),
            ids(&[tb]),
        ),
        (
            "root name",
            TraceFilter::new().root_name("support-agent"),
            ids(&[ta, tc]),
        ),
        (
            "root name is exact",
            TraceFilter::new().root_name("support"),
            ids(&[]),
        ),
        (
            "span type (a child)",
            TraceFilter::new().span_type(SpanType::ToolCall),
            ids(&[ta]),
        ),
        (
            "span type (a root)",
            TraceFilter::new().span_type(SpanType::WorkflowRun),
            ids(&[tb]),
        ),
        (
            "entity id",
            TraceFilter::new().entity_id("support-agent"),
            ids(&[ta]),
        ),
        (
            "entity name",
            TraceFilter::new().entity_name("Support Agent"),
            ids(&[ta]),
        ),
        ("user", TraceFilter::new().user_id("alice"), ids(&[ta, tc])),
        (
            "session",
            TraceFilter::new().session_id("sess-b"),
            ids(&[tb]),
        ),
        ("one tag", TraceFilter::new().tag("prod"), ids(&[ta, tb])),
        (
            "all tags",
            TraceFilter::new().tag("prod").tag("beta"),
            ids(&[ta]),
        ),
        ("unknown tag", TraceFilter::new().tag("nope"), ids(&[])),
        (
            "status error",
            TraceFilter::new().status(TraceStatus::Error),
            ids(&[ta]),
        ),
        (
            "status ok",
            TraceFilter::new().status(TraceStatus::Ok),
            ids(&[tb]),
        ),
        (
            "status running",
            TraceFilter::new().status(TraceStatus::Running),
            ids(&[tc]),
        ),
        (
            "text, any span, any case",
            TraceFilter::new().name_contains("TRACKING"),
            ids(&[ta]),
        ),
        (
            "text with a literal %",
            TraceFilter::new().name_contains("100%"),
            ids(&[tb]),
        ),
        (
            "% is not a wildcard",
            TraceFilter::new().name_contains("%"),
            ids(&[tb]),
        ),
        (
            "_ is not a wildcard",
            TraceFilter::new().name_contains("_"),
            ids(&[ta]),
        ),
        (
            "combined",
            TraceFilter::new()
                .user_id("alice")
                .status(TraceStatus::Running),
            ids(&[tc]),
        ),
    ];
    for (what, filter, want) in cases {
        assert_eq!(listed(s, filter).await, want, "filter {what}");
    }
}

/// A listing line carries counts, status and the usage of top-level model spans.
pub(crate) async fn summaries_count_spans_errors_and_top_level_tokens(store: &TestStore) {
    let s = &*store.storage;
    let t = rich_trace(4000, "carol", "sess-9", &["prod"]);
    put(s, t.batch()).await;
    let page = s
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    let sum = &page.traces[0];
    let root = t.root();
    assert_eq!(sum.trace_id, t.trace_id);
    assert_eq!(sum.root_span_id, root.span_id);
    assert_eq!(sum.name, "support-agent");
    assert_eq!(sum.span_type, SpanType::AgentRun);
    assert_eq!(sum.status, TraceStatus::Error);
    assert_eq!(sum.span_count, 5);
    assert_eq!(sum.error_count, 1);
    assert_eq!(sum.start_time, root.start_time);
    assert_eq!(sum.end_time, root.end_time);
    assert_eq!(sum.duration(), Some(std::time::Duration::from_millis(900)));
    assert_eq!(sum.user_id.as_deref(), Some("carol"));
    assert_eq!(sum.session_id.as_deref(), Some("sess-9"));
    assert_eq!(sum.tags, vec!["prod".to_string()]);
    let entity = sum.entity.as_ref().expect("root entity");
    assert_eq!(
        (entity.entity_type.as_str(), entity.id.as_str()),
        ("agent", "support-agent")
    );
    // The generation's usage counts; the step inside it does not count again.
    let mut want = UsageTotals::default();
    want.input_tokens = 1200;
    want.output_tokens = 80;
    want.cached_input_tokens = 1024;
    want.cost_usd = Some(0.0015 + 0.0005);
    assert_eq!(sum.usage, want);
    let record = s.get_trace(t.trace_id).await.unwrap().unwrap();
    assert_eq!(
        record.usage_totals(),
        want,
        "list and show agree on token totals"
    );

    // No reported cost is an unknown cost, not a zero one.
    let plain = span(trace_id(), None, "plain", SpanType::AgentRun, 5000, 10);
    put(s, ended(std::slice::from_ref(&plain))).await;
    let page = s
        .list_traces(
            &TraceFilter::new().trace_id(plain.trace_id),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 1);
    assert_eq!(page.traces[0].usage.cost_usd, None);
}

/// A trace continued in another process has a second root (a span whose
/// parent is external): the trace is still one line of the listing, through
/// its first root, counting every span of both processes.
pub(crate) async fn a_continued_trace_is_listed_once_with_all_its_spans(store: &TestStore) {
    let s = &*store.storage;
    let t = rich_trace(6000, "dana", "sess-c", &["prod"]);
    let tool = t.spans[3].span_id;
    let mut continued = span(
        t.trace_id,
        None,
        "durable step",
        SpanType::WorkflowStep,
        6000,
        20,
    );
    continued.start_time += chrono::Duration::milliseconds(200);
    continued.external_parent_span_id = Some(tool);
    let mut inner = span(
        t.trace_id,
        Some(continued.span_id),
        "inner",
        SpanType::Generic,
        6000,
        5,
    );
    inner.start_time += chrono::Duration::milliseconds(201);
    inner.status = SpanStatus::Error;
    put(s, t.batch()).await;
    put(s, ended(&[continued, inner])).await;
    for limit in [1, 50] {
        let lines = all_pages(s, &TraceFilter::new(), limit).await;
        assert_eq!(lines.len(), 1, "one line per trace (pages of {limit})");
        let line = &lines[0];
        assert_eq!(
            line.root_span_id,
            t.root().span_id,
            "through its first root"
        );
        assert_eq!((line.span_count, line.error_count), (7, 2));
        assert_eq!(line.status, TraceStatus::Error);
    }
}

pub(crate) async fn unknown_trace_is_none(store: &TestStore) {
    let s = &*store.storage;
    put(s, rich_trace(0, "u", "s", &[]).batch()).await;
    assert!(s.get_trace(trace_id()).await.unwrap().is_none());
}

/// Retention removes traces whole, only when every span is older than the
/// cutoff, with their records; and reports exactly what it removed.
pub(crate) async fn retention_removes_whole_old_traces_only(store: &TestStore) {
    let s = &*store.storage;
    let old = rich_trace(0, "u", "s", &[]); // 5 spans, log, score (t=1), feedback (t=2)
    let straddling = {
        let t = trace_id();
        let root = span(t, None, "long-run", SpanType::AgentRun, 50, 200_000);
        let late = span(
            t,
            Some(root.span_id),
            "late-step",
            SpanType::WorkflowStep,
            150,
            10,
        );
        vec![root, late]
    };
    let new = span(trace_id(), None, "new-run", SpanType::AgentRun, 500, 10);
    let mut b = old.batch();
    for sp in straddling.iter().chain([&new]) {
        b.push_span(SpanEventKind::Ended, Arc::new(sp.clone()));
    }
    b.push_log(log(10, None)); // old, no trace
    b.push_log(log(400, None)); // new
    b.push_metric(metric(10, 1.0));
    b.push_metric(metric(20, 2.0));
    b.push_metric(metric(400, 3.0));
    let mut old_score_on_kept = aiobs_core::ScoreRecord::new(straddling[0].trace_id, "q", 1.0);
    old_score_on_kept.timestamp = at(60);
    b.push_score(old_score_on_kept);
    put(s, b).await;

    let removed = s.delete_older_than(at(100)).await.unwrap();
    assert_eq!(
        removed,
        expected_report(1, 5, 2, 2, 1, 1),
        "only the old trace goes (with its log, score, feedback), plus the old unrelated log and metrics"
    );
    assert!(s.get_trace(old.trace_id).await.unwrap().is_none());
    let kept = s
        .get_trace(straddling[0].trace_id)
        .await
        .unwrap()
        .expect("straddling trace kept whole");
    assert_eq!(kept.spans.len(), 2);
    assert_eq!(kept.scores.len(), 1, "a kept trace keeps its scores");
    assert!(s.get_trace(new.trace_id).await.unwrap().is_some());
    // Nothing left to remove at the same cutoff.
    assert_eq!(
        s.delete_older_than(at(100)).await.unwrap(),
        RetentionReport::default()
    );
}

fn expected_report(
    traces: u64,
    spans: u64,
    logs: u64,
    metrics: u64,
    scores: u64,
    feedback: u64,
) -> RetentionReport {
    let mut r = RetentionReport::default();
    r.traces = traces;
    r.spans = spans;
    r.logs = logs;
    r.metrics = metrics;
    r.scores = scores;
    r.feedback = feedback;
    r
}

/// NUL characters, control characters, emoji and large payloads are stored
/// and read back intact; filters still work on such traces.
pub(crate) async fn hostile_strings_round_trip(store: &TestStore) {
    let s = &*store.storage;
    let t = trace_id();
    let mut root = with_trace_fields(
        span(
            t,
            None,
            "nul\u{0}name 🤖 \u{7}\u{1b}[31m",
            SpanType::AgentRun,
            50,
            10,
        ),
        "user\u{0}x",
        "sess",
        &["tag\u{0}nul", "ünïcødé"],
    );
    root.input =
        Some(json!({"big": "x".repeat(300_000), "nul": "a\u{0}b", "nested": [[[["deep"]]]]}));
    root.metadata.insert("k\u{0}ey".into(), json!("v"));
    let mut l = log(51, Some(t));
    l.message = "line\u{0}with nul".into();
    let mut b = ended(std::slice::from_ref(&root));
    b.push_log(l.clone());
    put(s, b).await;
    let got = s.get_trace(t).await.unwrap().unwrap();
    assert_eq!(got.spans, vec![root]);
    assert_eq!(got.logs, vec![l]);
    assert_eq!(
        listed(s, TraceFilter::new().tag("ünïcødé")).await,
        ids(&[&t])
    );
    assert_eq!(
        listed(s, TraceFilter::new().name_contains("🤖")).await,
        ids(&[&t])
    );
}

/// Several handles (as several processes would) write at once, partly to
/// the same spans: every trace ends up stored, every span ended.
pub(crate) async fn concurrent_writers_through_separate_handles_lose_nothing(store: &TestStore) {
    const WRITERS: usize = 4;
    const TRACES: usize = 25;
    let mut traces = Vec::new();
    for i in 0..WRITERS * TRACES {
        let t = trace_id();
        let root = span(
            t,
            None,
            &format!("run-{i}"),
            SpanType::AgentRun,
            5000 + i as i64,
            10,
        );
        let child = span(
            t,
            Some(root.span_id),
            "tool",
            SpanType::ToolCall,
            5000 + i as i64,
            5,
        );
        traces.push(vec![root, child]);
    }
    let traces = Arc::new(traces);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let handle = store.another().await;
        let traces = traces.clone();
        tasks.push(tokio::spawn(async move {
            for (i, spans) in traces.iter().enumerate() {
                let mut b = WriteBatch::new();
                if i % WRITERS == w {
                    // This writer owns the trace: it writes the ends.
                    for sp in spans {
                        b.push_span(SpanEventKind::Ended, Arc::new(sp.clone()));
                    }
                } else if i % WRITERS == (w + 1) % WRITERS {
                    // Its neighbour races with late starts of the same spans.
                    for sp in spans {
                        let mut started = sp.clone();
                        started.end_time = None;
                        started.status = SpanStatus::Running;
                        b.push_span(SpanEventKind::Started, Arc::new(started));
                    }
                } else {
                    continue;
                }
                put(&*handle, b).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = &*store.storage;
    let all = all_pages(s, &TraceFilter::new(), 30).await;
    assert_eq!(all.len(), WRITERS * TRACES);
    assert!(
        all.iter()
            .all(|t| t.status == TraceStatus::Ok && t.span_count == 2),
        "a late start won a race"
    );
}

/// JSON has no NaN: a non-finite metric is still stored (and counted by retention).
pub(crate) async fn non_finite_metrics_are_stored(store: &TestStore) {
    let s = &*store.storage;
    let mut b = WriteBatch::new();
    b.push_metric(metric(10, f64::NAN));
    b.push_metric(metric(11, f64::INFINITY));
    b.push_metric(metric(12, 1.5));
    put(s, b).await;
    assert_eq!(s.delete_older_than(at(100)).await.unwrap().metrics, 3);
}

pub(crate) async fn strategies_and_lifecycle(store: &TestStore) {
    let s = &*store.storage;
    let st = s.strategies();
    assert!(!st.supported.contains(&Strategy::Auto));
    assert!(st.supported.contains(&st.preferred));
    s.init().await.unwrap();
    s.init().await.unwrap();
    put(s, WriteBatch::new()).await;
    s.flush().await.unwrap();
    let empty = s
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    assert!(empty.traces.is_empty() && empty.next_cursor.is_none());
}
