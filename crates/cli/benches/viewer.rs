//! The viewer on a big store: how long the first page of the trace list and
//! a 1,000-span trace take, through the API and in Chromium, against the
//! store's own query in the same process as the baseline.
//!
//! ```text
//! cargo bench -p aiobs-cli --bench viewer -- [--spans 1000000] [--postgres URL]
//! ```
//!
//! Fills a fresh store (SQLite in a temporary directory, or a schema of its
//! own on the PostgreSQL server at URL, dropped afterwards) with `--spans`
//! spans in 5-span traces spread over 30 days, plus one 1,000-span trace,
//! the newest (so the first page carries it: the worst case for the list's
//! per-trace totals). Then starts `aiobs serve` on it and measures, as
//! medians:
//!
//! - `store_list_ms`: `Storage::list_traces`, first page of 50, called here;
//! - `api_list_ms`: `GET /api/traces?limit=50` (target < 100 ms);
//! - `store_trace_ms` / `api_trace_ms`: `Storage::get_trace` and
//!   `GET /api/traces/{id}` of the 1,000-span trace;
//! - `page_list_ms`: Chromium, navigation start to the list drawn;
//! - `page_trace_ms`: Chromium, navigation start to the 1,000-span waterfall
//!   drawn with its first span's details shown (target < 1,000 ms).
//!
//! The last line printed is JSON.

#[path = "../tests/viewer/mod.rs"]
mod viewer;

use std::sync::Arc;
use std::time::Instant;

use aiobs_core::{
    Cost, ExportedSpan, ModelAttributes, SpanEventKind, SpanId, SpanStatus, SpanType,
    ToolAttributes, TraceId, Usage,
};
use aiobs_exporter_default::{
    PageRequest, PostgresConfig, PostgresStorage, SqliteStorage, Storage, TraceFilter, WriteBatch,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

const SPANS_PER_TRACE: usize = 5;
const BIG_TRACE: usize = 1000;

struct Options {
    spans: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        spans: value("--spans")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000),
        postgres: value("--postgres").filter(|v| !v.is_empty()),
    }
}

fn payload(i: usize) -> serde_json::Value {
    json!({
        "request_id": format!("req-{i:012}"),
        "question": "Where is my order #1234, and can I still change the delivery address?",
        "retrieval": {"index": "orders-v3", "top_k": 5, "scores": [0.91, 0.88, 0.73, 0.52, 0.31]},
    })
}

fn span(
    trace: TraceId,
    parent: Option<SpanId>,
    name: &str,
    t: SpanType,
    start: DateTime<Utc>,
    ms: i64,
    i: usize,
) -> ExportedSpan {
    let mut s = ExportedSpan::new(trace, SpanId::random(), name.to_owned(), t);
    s.parent_span_id = parent;
    s.is_root = parent.is_none();
    s.start_time = start;
    s.end_time = Some(start + TimeDelta::milliseconds(ms));
    s.status = SpanStatus::Ok;
    s.user_id = Some(Arc::from(format!("user-{}", i % 1000)));
    s.session_id = Some(Arc::from(format!("session-{}", i / 4)));
    s.input = Some(payload(i));
    s.output = Some(json!(
        "Your order ships tomorrow; the address can be changed until 18:00."
    ));
    if t == SpanType::ModelGeneration {
        s.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(
                Usage::new(1200, 80)
                    .with_cache_read(1024)
                    .with_cost(Cost::new(0.00018, 0.000048)),
            )
            .into();
    } else if t == SpanType::ToolCall {
        s.attributes = ToolAttributes::new("lookup_order").into();
    }
    s
}

/// Trace `i` of 5 spans: agent > generation, two tools, a workflow step.
fn small_trace(i: usize, start: DateTime<Utc>) -> Vec<ExportedSpan> {
    let t = TraceId::random();
    let root = span(t, None, "support-agent", SpanType::AgentRun, start, 900, i);
    let p = Some(root.span_id);
    let at = |ms| start + TimeDelta::milliseconds(ms);
    vec![
        span(
            t,
            p,
            "chat gpt-4o-mini",
            SpanType::ModelGeneration,
            at(10),
            500,
            i,
        ),
        span(t, p, "lookup_order", SpanType::ToolCall, at(520), 80, i),
        span(t, p, "get_tracking", SpanType::ToolCall, at(610), 90, i),
        span(
            t,
            p,
            "refund-policy",
            SpanType::WorkflowStep,
            at(710),
            150,
            i,
        ),
        root,
    ]
}

/// One trace of 1,000 spans: an agent running 333 turns of a generation
/// followed by a tool call that runs a step.
fn big_trace(start: DateTime<Utc>) -> (TraceId, Vec<ExportedSpan>) {
    let t = TraceId::random();
    let root = span(t, None, "long-agent", SpanType::AgentRun, start, 60_000, 7);
    let mut spans = Vec::with_capacity(BIG_TRACE);
    let turns = (BIG_TRACE - 1) / 3;
    for k in 0..turns {
        let at = start + TimeDelta::milliseconds(10 + k as i64 * 180);
        let g = span(
            t,
            Some(root.span_id),
            "chat gpt-4o-mini",
            SpanType::ModelGeneration,
            at,
            100,
            k,
        );
        let tool = span(
            t,
            Some(root.span_id),
            "lookup_order",
            SpanType::ToolCall,
            at + TimeDelta::milliseconds(110),
            60,
            k,
        );
        let step = span(
            t,
            Some(tool.span_id),
            "parse",
            SpanType::WorkflowStep,
            at + TimeDelta::milliseconds(120),
            40,
            k,
        );
        spans.extend([g, tool, step]);
    }
    spans.push(root);
    (t, spans)
}

async fn fill(store: &dyn Storage, spans: usize) -> TraceId {
    let traces = spans / SPANS_PER_TRACE;
    let now = Utc::now() - TimeDelta::hours(1);
    let step = TimeDelta::days(30).num_milliseconds() / traces.max(1) as i64;
    let mut batch = WriteBatch::new();
    let started = Instant::now();
    for i in 0..traces {
        let start = now - TimeDelta::days(30) + TimeDelta::milliseconds(i as i64 * step);
        for s in small_trace(i, start) {
            batch.push_span(SpanEventKind::Ended, Arc::new(s));
        }
        if batch.spans().len() >= 5000 {
            let b = std::mem::take(&mut batch);
            let out = store.write(b).await.expect("a batch written");
            assert!(out.rejected.is_empty(), "{:?}", out.rejected);
        }
    }
    let (big, big_spans) = big_trace(now);
    for s in big_spans {
        batch.push_span(SpanEventKind::Ended, Arc::new(s));
    }
    let out = store.write(batch).await.expect("the last batch written");
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    eprintln!(
        "filled {} spans in {:.1} s",
        traces * SPANS_PER_TRACE + BIG_TRACE,
        started.elapsed().as_secs_f64()
    );
    big
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn time_ms<F: std::future::Future<Output = ()>>(mut f: impl FnMut() -> F) -> f64 {
    let t = Instant::now();
    f().await;
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = options();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, db, schema): (Arc<dyn Storage>, String, Option<String>) = match &opts.postgres {
        Some(url) => {
            let schema = format!("aiobs_viewer_bench_{:08x}", fastrand::u32(..));
            let store =
                PostgresStorage::new(PostgresConfig::new(url.clone()).schema(schema.clone()))
                    .expect("PostgreSQL");
            store.init().await.expect("the schema");
            let sep = if url.contains('?') { '&' } else { '?' };
            let db = format!("{url}{sep}options=-c%20search_path%3D{schema}");
            (Arc::new(store), db, Some(schema))
        }
        None => {
            let path = dir.path().join("big.db");
            let store = SqliteStorage::open(&path).expect("SQLite");
            (Arc::new(store), path.to_string_lossy().into_owned(), None)
        }
    };
    let big = fill(&*store, opts.spans).await;
    if let Some(schema) = &schema {
        // What autovacuum does on its own after a bulk load.
        run_sql(
            opts.postgres.as_deref().unwrap_or(""),
            &format!("ANALYZE {schema}.aiobs_spans"),
        )
        .await;
    }

    let server = viewer::Viewer::start(&db);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let get = |path: String| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let r = client.get(url).send().await.expect("the viewer answers");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("a body");
        }
    };
    let first = PageRequest::first(50);
    let filter = TraceFilter::new();
    // Warm both sides (page cache, prepared statements, connections).
    for _ in 0..3 {
        store.list_traces(&filter, &first).await.expect("list");
        get("/api/traces?limit=50".into()).await;
    }
    let mut store_list = Vec::new();
    let mut api_list = Vec::new();
    for _ in 0..30 {
        store_list.push(
            time_ms(|| async {
                store.list_traces(&filter, &first).await.expect("list");
            })
            .await,
        );
        api_list.push(time_ms(|| get("/api/traces?limit=50".into())).await);
    }
    let mut store_trace = Vec::new();
    let mut api_trace = Vec::new();
    for _ in 0..10 {
        store_trace.push(
            time_ms(|| async {
                store.get_trace(big).await.expect("get").expect("found");
            })
            .await,
        );
        api_trace.push(time_ms(|| get(format!("/api/traces/{big}"))).await);
    }

    let (mut page_list, mut page_trace) = (Vec::new(), Vec::new());
    if let Some(chromium) = viewer::browser::chromium() {
        let chrome = viewer::browser::Chrome::launch(chromium).await;
        for round in 0..6 {
            let page = chrome.open(&format!("{}/", server.url)).await;
            let ms = viewer::browser::wait_for(
                &page,
                "the list",
                "(performance.getEntriesByName('aiobs:list-ready')[0] || {}).startTime",
            )
            .await;
            let page2 = chrome.open(&format!("{}/traces/{big}", server.url)).await;
            let ms2 = viewer::browser::wait_for(
                &page2,
                "the trace",
                "(performance.getEntriesByName('aiobs:trace-ready')[0] || {}).startTime",
            )
            .await;
            let rows =
                viewer::browser::eval(&page2, "document.querySelectorAll('.rows .row').length")
                    .await;
            assert_eq!(rows, BIG_TRACE as u64, "every span drawn");
            if round > 0 {
                // Round 0 warms the browser's and the server's caches.
                page_list.push(ms.as_f64().unwrap_or(f64::NAN));
                page_trace.push(ms2.as_f64().unwrap_or(f64::NAN));
            }
            page.close().await.ok();
            page2.close().await.ok();
        }
        chrome.close().await;
    }
    drop(server);
    if let (Some(url), Some(schema)) = (&opts.postgres, &schema) {
        run_sql(url, &format!("DROP SCHEMA {schema} CASCADE")).await;
    }

    let r = |v: f64| (v * 100.0).round() / 100.0;
    let (sl, al, st, at) = (
        median(store_list),
        median(api_list),
        median(store_trace),
        median(api_trace),
    );
    let pl = if page_list.is_empty() {
        f64::NAN
    } else {
        median(page_list)
    };
    let pt = if page_trace.is_empty() {
        f64::NAN
    } else {
        median(page_trace)
    };
    println!(
        "backend: {}",
        if schema.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    );
    println!(
        "first page of the list: store {sl:.2} ms, API {al:.2} ms (x{:.2}), page drawn {pl:.0} ms",
        al / sl
    );
    println!(
        "1,000-span trace: store {st:.2} ms, API {at:.2} ms (x{:.2}), page interactive {pt:.0} ms",
        at / st
    );
    println!(
        "{}",
        json!({
            "backend": if schema.is_some() { "postgres" } else { "sqlite" },
            "spans": opts.spans + BIG_TRACE,
            "store_list_ms": r(sl), "api_list_ms": r(al), "ratio_api_over_store_list": r(al / sl),
            "store_trace_ms": r(st), "api_trace_ms": r(at), "ratio_api_over_store_trace": r(at / st),
            "page_list_ms": r(pl), "page_trace_ms": r(pt),
        })
    );
}

async fn run_sql(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a PostgreSQL connection");
    tokio::spawn(conn);
    client.batch_execute(sql).await.expect("the statement");
}
