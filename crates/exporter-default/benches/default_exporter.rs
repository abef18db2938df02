//! The default exporter against a bare insert loop, in one process.
//!
//! Writes N spans (5-span traces: agent run > generation > 2 tool calls +
//! a workflow step, ~300 bytes of attributes each) through `DefaultExporter`
//! (batch-with-updates: every span's start and end) into SQLite, and the same
//! rows through a bare rusqlite prepared-statement loop (1000 rows per
//! transaction) into the same schema; prints spans/s and
//! `ratio_raw_over_exporter` (target ≤ 1.5). With a PostgreSQL URL, the same
//! against a bare multi-row INSERT. Then times `get_trace` on a 1000-span
//! trace and `list_traces` over everything written.
//!
//! ```text
//! cargo bench -p aiobs-exporter-default --bench default_exporter -- --spans 1000000 [--rounds 3] [--postgres URL]
//! ```
//! The bare loop and the exporter run in alternating rounds (default 3), each
//! into an empty store; the ratio printed is the median of the rounds' ratios.
//! Or `AIOBS_BENCH_SPANS` / `AIOBS_BENCH_POSTGRES_URL`. The last line is JSON.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiobs_core::{
    ExportedSpan, ModelAttributes, Observability, OverflowPolicy, SpanEventKind, SpanId,
    SpanOptions, SpanStatus, SpanType, TraceId, Usage,
};
use aiobs_exporter_default::{
    DefaultExporter, PageRequest, PostgresConfig, PostgresStorage, SqliteStorage, Storage,
    Strategy, TraceFilter, TraceStatus, WriteBatch,
};
use chrono::Utc;
use serde_json::{Map, Value, json};

const SPANS_PER_TRACE: usize = 5;
const ROWS_PER_TXN: usize = 1000;

struct Options {
    spans: usize,
    rounds: usize,
    postgres: Option<String>,
}

fn options() -> Options {
    let mut spans = std::env::var("AIOBS_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut rounds = 3;
    let mut postgres = std::env::var("AIOBS_BENCH_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let args: Vec<String> = std::env::args().collect();
    // The value after a flag, parsed; what does not parse keeps the default.
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--spans" => spans = value(i).unwrap_or(spans),
            "--rounds" => rounds = value(i).unwrap_or(rounds),
            "--postgres" => postgres = args.get(i + 1).cloned(),
            _ => {
                i += 1; // cargo bench passes `--bench`
                continue;
            }
        }
        i += 2;
    }
    Options {
        spans: spans.max(SPANS_PER_TRACE) / SPANS_PER_TRACE * SPANS_PER_TRACE,
        rounds: rounds.max(1),
        postgres,
    }
}

/// ~300 bytes of metadata, in 4 entries, like a real span's attributes.
fn attributes(i: usize) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("request_id".into(), json!(format!("req-{i:012}")));
    m.insert(
        "prompt_template".into(),
        json!(
            "You are a support agent for an online shop. Answer briefly and cite the order status."
        ),
    );
    m.insert(
        "retrieval".into(),
        json!({"index": "orders-v3", "top_k": 5, "scores": [0.91, 0.88, 0.73, 0.52, 0.31]}),
    );
    m.insert("customer_tier".into(), json!("gold"));
    m
}

const NAMES: [(&str, SpanType); SPANS_PER_TRACE] = [
    ("support-agent", SpanType::AgentRun),
    ("chat gpt-4o-mini", SpanType::ModelGeneration),
    ("lookup_order", SpanType::ToolCall),
    ("get_tracking", SpanType::ToolCall),
    ("refund-policy", SpanType::WorkflowStep),
];

fn options_for(i: usize, k: usize) -> SpanOptions {
    let (name, t) = NAMES[k];
    let mut o = SpanOptions::new(name, t);
    for (key, v) in attributes(i) {
        o = o.metadata(key, v);
    }
    o
}

/// One trace through the span API: the root, a generation, two tools, a step.
fn emit_trace(obs: &Observability, i: usize) {
    let mut root = obs.start_span(options_for(i, 0));
    for k in 1..SPANS_PER_TRACE {
        let mut child = root.child(options_for(i, k));
        if k == 1 {
            child.set_attributes(
                ModelAttributes::new("gpt-4o-mini", "openai")
                    .with_usage(Usage::new(1200, 80).with_cache_read(1024)),
            );
        }
        child.end();
    }
    root.end();
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn through_exporter(storage: Arc<dyn Storage>, spans: usize) -> Duration {
    let exporter = DefaultExporter::builder_shared(storage)
        .strategy(Strategy::BatchWithUpdates)
        .build()
        .expect("exporter");
    let obs = Observability::builder()
        .exporter(exporter)
        // Back-pressure instead of drops: the comparison needs every row written.
        .overflow(OverflowPolicy::Block {
            timeout: Duration::from_secs(600),
        })
        // Smaller than the exporter queue (10 000): with `Block`, core waits for
        // room for a whole routed chunk, and a chunk larger than the queue
        // never fits (reported to the core's owner).
        .ingress_capacity(8192)
        .derive_metrics(false)
        .build()
        .expect("pipeline");
    let start = Instant::now();
    let emitter = std::thread::spawn({
        let obs = obs.clone();
        move || {
            for i in 0..spans / SPANS_PER_TRACE {
                emit_trace(&obs, i);
            }
        }
    });
    emitter.join().expect("emitter");
    let report = obs.shutdown(Duration::from_secs(3600)).await;
    let elapsed = start.elapsed();
    let e = &report.exporters[0];
    assert!(report.is_success(), "the exporter lost events:\n{report}");
    assert_eq!(e.totals.delivered, 2 * spans as u64, "{report}");
    elapsed
}

/// The row the raw loops insert: what the span API would have produced.
fn raw_span(trace: TraceId, root: SpanId, i: usize, k: usize) -> ExportedSpan {
    let (name, t) = NAMES[k];
    let id = if k == 0 { root } else { SpanId::random() };
    let mut s = ExportedSpan::new(trace, id, Cow::Borrowed(name), t);
    s.parent_span_id = (k > 0).then_some(root);
    s.is_root = k == 0;
    s.metadata = attributes(i);
    s.start_time = Utc::now();
    s.end_time = Some(Utc::now());
    s.status = SpanStatus::Ok;
    if k == 1 {
        s.attributes = ModelAttributes::new("gpt-4o-mini", "openai")
            .with_usage(Usage::new(1200, 80).with_cache_read(1024))
            .into();
    }
    s
}

const SQLITE_INSERT: &str = "INSERT INTO aiobs_spans (trace_id, span_id, parent_span_id, phase, name, \
    span_type, status, is_root, start_time, end_time, user_id, session_id, entity_type, entity_id, \
    entity_name, tags, input_tokens, output_tokens, cached_tokens, data) \
    VALUES (?1, ?2, ?3, 2, ?4, ?5, 'ok', ?6, ?7, ?8, NULL, NULL, NULL, NULL, NULL, NULL, ?9, ?10, ?11, ?12)";

fn sqlite_raw(path: &std::path::Path, spans: usize) -> Duration {
    drop(SqliteStorage::open(path).expect("schema")); // the same schema and indexes
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    conn.pragma_update(None, "cache_size", -16384)
        .expect("cache");
    let start = Instant::now();
    let mut buf = Vec::with_capacity(2048);
    let mut done = 0;
    while done < spans {
        let tx = conn.transaction().expect("txn");
        {
            let mut st = tx.prepare_cached(SQLITE_INSERT).expect("prepare");
            let mut in_txn = 0;
            while in_txn < ROWS_PER_TXN && done < spans {
                let i = done / SPANS_PER_TRACE;
                let trace = TraceId::random();
                let root = SpanId::random();
                for k in 0..SPANS_PER_TRACE {
                    let s = raw_span(trace, root, i, k);
                    buf.clear();
                    serde_json::to_writer(&mut buf, &s).expect("json");
                    let usage = s.attributes.usage();
                    st.execute(rusqlite::params![
                        &s.trace_id.to_bytes()[..],
                        s.span_id.to_u64() as i64,
                        s.parent_span_id.map(|p| p.to_u64() as i64),
                        &*s.name,
                        s.span_type.as_str(),
                        s.is_root,
                        s.start_time.timestamp_micros(),
                        s.end_time.map(|t| t.timestamp_micros()),
                        usage.map(|u| u.input_tokens as i64),
                        usage.map(|u| u.output_tokens as i64),
                        usage
                            .and_then(|u| u.input_details.cache_read)
                            .map(|c| c as i64),
                        std::str::from_utf8(&buf).expect("utf8"),
                    ])
                    .expect("insert");
                }
                in_txn += SPANS_PER_TRACE;
                done += SPANS_PER_TRACE;
            }
        }
        tx.commit().expect("commit");
    }
    start.elapsed()
}

async fn pg_client(url: &str, schema: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .expect("search_path");
    c
}

async fn postgres_raw(url: &str, schema: &str, spans: usize) -> Duration {
    drop(
        PostgresStorage::connect(PostgresConfig::new(url).schema(schema))
            .await
            .expect("schema"),
    );
    let mut c = pg_client(url, schema).await;
    let cols = 12;
    let values: Vec<String> = (0..ROWS_PER_TXN)
        .map(|r| {
            let p: Vec<String> = (1..=cols).map(|j| format!("${}", r * cols + j)).collect();
            format!(
                "({}, {}, {}, 2, {}, {}, 'ok', {}, {}, {}, {}, {}, {}, {})",
                p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO aiobs_spans (trace_id, span_id, parent_span_id, phase, name, span_type, status, \
         is_root, start_time, end_time, input_tokens, output_tokens, cached_tokens, data) VALUES {}",
        values.join(", ")
    );
    let full = c.prepare(&sql).await.expect("prepare");
    let start = Instant::now();
    let mut done = 0;
    while done < spans {
        let n = ROWS_PER_TXN.min(spans - done);
        let mut rows: Vec<ExportedSpan> = Vec::with_capacity(n);
        while rows.len() < n {
            let trace = TraceId::random();
            let root = SpanId::random();
            for k in 0..SPANS_PER_TRACE {
                rows.push(raw_span(
                    trace,
                    root,
                    (done + rows.len()) / SPANS_PER_TRACE,
                    k,
                ));
            }
        }
        let trace: Vec<Vec<u8>> = rows
            .iter()
            .map(|s| s.trace_id.to_bytes().to_vec())
            .collect();
        let id: Vec<i64> = rows.iter().map(|s| s.span_id.to_u64() as i64).collect();
        let parent: Vec<Option<i64>> = rows
            .iter()
            .map(|s| s.parent_span_id.map(|p| p.to_u64() as i64))
            .collect();
        let usage: Vec<_> = rows.iter().map(|s| s.attributes.usage().cloned()).collect();
        let input: Vec<Option<i64>> = usage
            .iter()
            .map(|u| u.as_ref().map(|u| u.input_tokens as i64))
            .collect();
        let output: Vec<Option<i64>> = usage
            .iter()
            .map(|u| u.as_ref().map(|u| u.output_tokens as i64))
            .collect();
        let cached: Vec<Option<i64>> = usage
            .iter()
            .map(|u| {
                u.as_ref()
                    .and_then(|u| u.input_details.cache_read)
                    .map(|c| c as i64)
            })
            .collect();
        let data: Vec<String> = rows
            .iter()
            .map(|s| serde_json::to_string(s).expect("json"))
            .collect();
        let names: Vec<&str> = rows.iter().map(|s| &*s.name).collect();
        let types: Vec<&str> = rows.iter().map(|s| s.span_type.as_str()).collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            Vec::with_capacity(n * cols);
        for (r, s) in rows.iter().enumerate() {
            params.push(&trace[r]);
            params.push(&id[r]);
            params.push(&parent[r]);
            params.push(&names[r]);
            params.push(&types[r]);
            params.push(&s.is_root);
            params.push(&s.start_time);
            params.push(&s.end_time);
            params.push(&input[r]);
            params.push(&output[r]);
            params.push(&cached[r]);
            params.push(&data[r]);
        }
        let tx = c.transaction().await.expect("txn");
        if n == ROWS_PER_TXN {
            tx.execute(&full, &params).await.expect("insert");
        } else {
            let partial = sql.split(", (").take(n).collect::<Vec<_>>().join(", (");
            tx.execute(&partial, &params).await.expect("insert");
        }
        tx.commit().await.expect("commit");
        done += n;
    }
    start.elapsed()
}

/// The same rows through `Storage::write` directly (no pipeline), in batches
/// of 1000 ended spans: separates the storage's cost from the pipeline's.
async fn storage_direct(storage: &dyn Storage, spans: usize) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < spans {
        let mut batch = WriteBatch::new();
        let mut n = 0;
        while n < ROWS_PER_TXN && done + n < spans {
            let trace = TraceId::random();
            let root = SpanId::random();
            for k in 0..SPANS_PER_TRACE {
                let s = raw_span(trace, root, (done + n) / SPANS_PER_TRACE, k);
                batch.push_span(SpanEventKind::Ended, Arc::new(s));
            }
            n += SPANS_PER_TRACE;
        }
        let out = storage.write(batch).await.expect("write");
        assert!(out.rejected.is_empty());
        done += n;
    }
    start.elapsed()
}

/// Median of `runs` timings of `f`.
async fn median<F, Fut, T>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        std::hint::black_box(f().await);
        times.push(t.elapsed());
    }
    times.sort();
    times[runs / 2]
}

/// Writes one 1000-span trace, then times the queries the CLI runs.
async fn query_times(storage: Arc<dyn Storage>) -> Vec<(&'static str, Duration)> {
    let obs = Observability::builder()
        .exporter(
            DefaultExporter::builder_shared(storage.clone())
                .build()
                .expect("exporter"),
        )
        .derive_metrics(false)
        .build()
        .expect("pipeline");
    let mut root = obs.start_span(SpanOptions::new("big-trace", SpanType::AgentRun));
    let big = root.trace_id();
    for i in 0..999 {
        root.child(options_for(i, 2)).end();
    }
    root.end();
    assert!(obs.shutdown(Duration::from_secs(600)).await.is_success());
    let s = &*storage;
    let page = PageRequest::first(20);
    let mut out = vec![
        (
            "traces show (get_trace, 1000 spans)",
            median(5, || async {
                s.get_trace(big)
                    .await
                    .expect("get")
                    .expect("there")
                    .spans
                    .len()
            })
            .await,
        ),
        (
            "traces list (first page of 20)",
            median(5, || async {
                s.list_traces(&TraceFilter::new(), &page)
                    .await
                    .expect("list")
            })
            .await,
        ),
        (
            "traces list --status error (none match: full scan)",
            median(3, || async {
                s.list_traces(&TraceFilter::new().status(TraceStatus::Error), &page)
                    .await
                    .expect("list")
            })
            .await,
        ),
        (
            "traces list --user nobody (index)",
            median(5, || async {
                s.list_traces(&TraceFilter::new().user_id("nobody"), &page)
                    .await
                    .expect("list")
            })
            .await,
        ),
        (
            "traces list --search tracking (first page)",
            median(5, || async {
                s.list_traces(&TraceFilter::new().name_contains("tracking"), &page)
                    .await
                    .expect("list")
            })
            .await,
        ),
    ];
    // A page deep in the listing, reached by cursor.
    let mut cursor = None;
    for _ in 0..50 {
        let mut p = PageRequest::first(20);
        p.cursor = cursor;
        cursor = s
            .list_traces(&TraceFilter::new(), &p)
            .await
            .expect("list")
            .next_cursor;
    }
    let mut deep = PageRequest::first(20);
    deep.cursor = cursor;
    out.push((
        "traces list (page 51, by cursor)",
        median(5, || async {
            s.list_traces(&TraceFilter::new(), &deep)
                .await
                .expect("list")
        })
        .await,
    ));
    out
}

fn print_queries(backend: &str, q: &[(&str, Duration)]) {
    for (what, d) in q {
        println!(
            "{backend:<8} {what:<52} {:>9.2} ms",
            d.as_secs_f64() * 1000.0
        );
    }
}

/// Bare-loop and exporter timings of alternating rounds, each into an empty
/// store: drift of a shared machine (page cache, other load) hits both sides
/// of a round alike, and the median round ratio is the figure.
#[derive(Default)]
struct Rounds {
    raw: Vec<Duration>,
    exporter: Vec<Duration>,
}

impl Rounds {
    fn push(&mut self, raw: Duration, exporter: Duration) {
        self.raw.push(raw);
        self.exporter.push(exporter);
    }

    fn ratios(&self) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .raw
            .iter()
            .zip(&self.exporter)
            .map(|(raw, exp)| exp.as_secs_f64() / raw.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    fn ratio(&self) -> f64 {
        let r = self.ratios();
        r[r.len() / 2]
    }

    fn median_rate(n: usize, times: &[Duration]) -> f64 {
        let mut t = times.to_vec();
        t.sort();
        rate(n, t[t.len() / 2])
    }

    fn print(&self, backend: &str, raw_label: &str, n: usize) {
        let list = |ts: &[Duration]| {
            ts.iter()
                .map(|t| format!("{:.0}", rate(n, *t)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{backend:<8} {raw_label:<30} {:>10.0} spans/s  (rounds: {})",
            Self::median_rate(n, &self.raw),
            list(&self.raw)
        );
        println!(
            "{backend:<8} {:<30} {:>10.0} spans/s  (rounds: {})",
            "DefaultExporter",
            Self::median_rate(n, &self.exporter),
            list(&self.exporter)
        );
        let ratios: Vec<String> = self.ratios().iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "{backend:<8} ratio_raw_over_exporter {:.2} (median of {}; sorted: {}; target <= 1.5)",
            self.ratio(),
            ratios.len(),
            ratios.join(", ")
        );
    }

    fn json(&self, n: usize, direct: Duration) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "raw_spans_per_s".into(),
            json!(Self::median_rate(n, &self.raw).round()),
        );
        m.insert(
            "exporter_spans_per_s".into(),
            json!(Self::median_rate(n, &self.exporter).round()),
        );
        m.insert(
            "storage_write_spans_per_s".into(),
            json!(rate(n, direct).round()),
        );
        m.insert(
            "ratio_raw_over_exporter".into(),
            json!((self.ratio() * 100.0).round() / 100.0),
        );
        m.insert(
            "round_ratios".into(),
            json!(
                self.ratios()
                    .iter()
                    .map(|r| (r * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            ),
        );
        m
    }
}

fn query_json(q: &[(&str, Duration)]) -> Value {
    Value::Object(
        q.iter()
            .map(|(w, d)| {
                (
                    w.to_string(),
                    json!((d.as_secs_f64() * 1e5).round() / 100.0),
                )
            })
            .collect(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = options();
    let n = opts.spans;
    println!(
        "default exporter benchmark: {n} spans ({} traces of {SPANS_PER_TRACE}), batch-with-updates, \
         derived metrics off, {} alternating rounds",
        n / SPANS_PER_TRACE,
        opts.rounds
    );
    let dir = std::env::temp_dir().join(format!("aiobs-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut json = Map::new();

    // SQLite: each round the bare loop, then the exporter, each into a fresh file.
    let mut rounds = Rounds::default();
    let mut storage = None;
    for r in 0..opts.rounds {
        let raw = sqlite_raw(&dir.join(format!("raw-{r}.db")), n);
        let _gone = std::fs::remove_file(dir.join(format!("raw-{r}.db")));
        let s: Arc<dyn Storage> =
            Arc::new(SqliteStorage::open(dir.join(format!("exporter-{r}.db"))).expect("open"));
        rounds.push(raw, through_exporter(s.clone(), n).await);
        if let Some(old) = storage.replace(s) {
            drop(old);
            let _gone = std::fs::remove_file(dir.join(format!("exporter-{}.db", r - 1)));
        }
    }
    rounds.print("sqlite", "raw prepared-statement loop", n);
    let direct_store = SqliteStorage::open(dir.join("direct.db")).expect("open");
    let direct = storage_direct(&direct_store, n).await;
    drop(direct_store);
    println!(
        "sqlite   Storage::write, no pipeline    {:>10.0} spans/s",
        rate(n, direct),
    );
    let q = query_times(storage.expect("one round")).await;
    print_queries("sqlite", &q);
    let mut sqlite = rounds.json(n, direct);
    sqlite.insert("queries_ms".into(), query_json(&q));
    json.insert("sqlite".into(), Value::Object(sqlite));

    if let Some(url) = &opts.postgres {
        let id = format!("{:08x}", fastrand::u32(..));
        let admin = pg_client(url, "public").await;
        let mut rounds = Rounds::default();
        let mut last_schema = None;
        for r in 0..opts.rounds {
            let (raw_schema, exp_schema) = (
                format!("aiobs_bench_raw_{id}_{r}"),
                format!("aiobs_bench_exp_{id}_{r}"),
            );
            let raw = postgres_raw(url, &raw_schema, n).await;
            admin
                .batch_execute(&format!("DROP SCHEMA {raw_schema} CASCADE"))
                .await
                .expect("drop");
            let storage: Arc<dyn Storage> = Arc::new(
                PostgresStorage::connect(PostgresConfig::new(url.clone()).schema(&exp_schema))
                    .await
                    .expect("postgres"),
            );
            rounds.push(raw, through_exporter(storage.clone(), n).await);
            if let Some((old, _)) = last_schema.replace((exp_schema, storage)) {
                admin
                    .batch_execute(&format!("DROP SCHEMA {old} CASCADE"))
                    .await
                    .expect("drop");
            }
        }
        rounds.print("postgres", "raw multi-row INSERT", n);
        let direct_schema = format!("aiobs_bench_direct_{id}");
        let direct_store =
            PostgresStorage::connect(PostgresConfig::new(url.clone()).schema(&direct_schema))
                .await
                .expect("postgres");
        let direct = storage_direct(&direct_store, n).await;
        drop(direct_store);
        admin
            .batch_execute(&format!("DROP SCHEMA {direct_schema} CASCADE"))
            .await
            .expect("drop");
        println!(
            "postgres Storage::write, no pipeline    {:>10.0} spans/s",
            rate(n, direct),
        );
        let (exp_schema, storage) = last_schema.expect("one round");
        // Right after a bulk load the planner has no statistics yet; autovacuum
        // gathers them within a minute or so. Both are shown.
        let cold = query_times(storage.clone()).await;
        print_queries("pg-cold", &cold);
        pg_client(url, &exp_schema)
            .await
            .batch_execute("ANALYZE")
            .await
            .expect("analyze");
        let q = query_times(storage).await;
        print_queries("postgres", &q);
        let mut pg = rounds.json(n, direct);
        pg.insert("queries_ms_before_analyze".into(), query_json(&cold));
        pg.insert("queries_ms".into(), query_json(&q));
        json.insert("postgres".into(), Value::Object(pg));
        admin
            .batch_execute(&format!("DROP SCHEMA {exp_schema} CASCADE"))
            .await
            .expect("drop");
    } else {
        println!("postgres skipped (pass --postgres URL or set AIOBS_BENCH_POSTGRES_URL)");
    }
    let _cleanup = std::fs::remove_dir_all(&dir);
    json.insert("spans".into(), json!(n));
    json.insert("rounds".into(), json!(opts.rounds));
    println!("{}", Value::Object(json));
}
