//! `DefaultExporter` through the real pipeline into real SQLite files:
//! strategies, defaults, durable replay, and failures as the flush report
//! shows them.

#![cfg(feature = "sqlite")]

use std::sync::Arc;
use std::time::Duration;

use aiobs_core::{
    BatchPolicy, DropReason, Exporter, FeedbackRecord, LogLevel, LogRecord, ModelAttributes,
    Observability, RetryPolicy, ScoreRecord, Signal, SpanOptions, SpanType, TracingOptions, Usage,
};
use aiobs_exporter_default::{
    ConfigError, DefaultExporter, PageRequest, SqliteConfig, SqliteStorage, Storage, Strategy,
    StrategySupport, TraceFilter, TraceStatus,
};

const FLUSH: Duration = Duration::from_secs(10);

fn store() -> (tempfile::TempDir, std::path::PathBuf, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aiobs.db");
    let s: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
    (dir, path, s)
}

fn pipeline(storage: &Arc<dyn Storage>, strategy: Strategy) -> Observability {
    let exporter = DefaultExporter::builder_shared(storage.clone())
        .strategy(strategy)
        .build()
        .unwrap();
    Observability::builder().exporter(exporter).build().unwrap()
}

async fn root_status(s: &dyn Storage) -> Option<TraceStatus> {
    let page = s
        .list_traces(&TraceFilter::new(), &PageRequest::default())
        .await
        .unwrap();
    page.traces.first().map(|t| t.status)
}

#[test]
fn defaults_follow_the_core_policies_and_the_storage_preference() {
    let (_d, _p, s) = store();
    let e = DefaultExporter::builder_shared(s.clone()).build().unwrap();
    assert_eq!(e.strategy(), Strategy::BatchWithUpdates);
    assert_eq!(e.name(), "sqlite");
    let b = e.batch_policy();
    assert_eq!(
        (b.max_events, b.max_wait, b.queue_capacity),
        (1000, Duration::from_secs(5), 10_000)
    );
    let r = e.retry_policy();
    assert_eq!(
        (r.max_retries, r.initial_backoff),
        (4, Duration::from_millis(500))
    );
    let all = [
        Signal::SpanStarted,
        Signal::SpanUpdated,
        Signal::SpanEnded,
        Signal::Log,
        Signal::Metric,
        Signal::Score,
        Signal::Feedback,
    ];
    assert!(all.iter().all(|s| e.signals().contains(*s)));

    let insert_only = DefaultExporter::builder_shared(s.clone())
        .strategy(Strategy::InsertOnly)
        .name("archive")
        .build()
        .unwrap();
    assert_eq!(insert_only.name(), "archive");
    assert!(!insert_only.signals().contains(Signal::SpanStarted));
    assert!(!insert_only.signals().contains(Signal::SpanUpdated));
    assert!(insert_only.signals().contains(Signal::SpanEnded));
    assert!(insert_only.signals().contains(Signal::Score));

    let realtime = DefaultExporter::builder_shared(s)
        .strategy(Strategy::Realtime)
        .batch_policy(BatchPolicy::default().with_max_events(10))
        .build()
        .unwrap();
    assert_eq!(realtime.batch_policy().max_wait, Duration::ZERO);
    assert_eq!(realtime.batch_policy().max_events, 10);
    assert!(realtime.signals().contains(Signal::SpanStarted));
}

/// A storage that supports only insert-only, to test strategy resolution.
#[derive(Debug)]
struct InsertOnlyStore(Arc<dyn Storage>);

#[aiobs_core::async_trait]
impl Storage for InsertOnlyStore {
    fn kind(&self) -> &'static str {
        "append-only"
    }
    fn strategies(&self) -> StrategySupport {
        let mut s = StrategySupport::all(Strategy::InsertOnly);
        s.supported = vec![Strategy::InsertOnly];
        s
    }
    async fn init(&self) -> Result<(), aiobs_exporter_default::StorageError> {
        self.0.init().await
    }
    async fn write(
        &self,
        b: aiobs_exporter_default::WriteBatch,
    ) -> Result<aiobs_exporter_default::WriteOutcome, aiobs_exporter_default::StorageError> {
        self.0.write(b).await
    }
    async fn flush(&self) -> Result<(), aiobs_exporter_default::StorageError> {
        self.0.flush().await
    }
    async fn get_trace(
        &self,
        t: aiobs_core::TraceId,
    ) -> Result<Option<aiobs_exporter_default::TraceRecord>, aiobs_exporter_default::StorageError>
    {
        self.0.get_trace(t).await
    }
    async fn list_traces(
        &self,
        f: &TraceFilter,
        p: &PageRequest,
    ) -> Result<aiobs_exporter_default::TracePage, aiobs_exporter_default::StorageError> {
        self.0.list_traces(f, p).await
    }
    async fn delete_older_than(
        &self,
        c: chrono::DateTime<chrono::Utc>,
    ) -> Result<aiobs_exporter_default::RetentionReport, aiobs_exporter_default::StorageError> {
        self.0.delete_older_than(c).await
    }
}

#[test]
fn auto_takes_the_storage_preference_and_unsupported_strategies_are_refused() {
    let (_d, _p, s) = store();
    let store = InsertOnlyStore(s);
    let e = DefaultExporter::builder(InsertOnlyStore(store.0.clone()))
        .build()
        .unwrap();
    assert_eq!(e.strategy(), Strategy::InsertOnly);
    let err = DefaultExporter::builder(store)
        .strategy(Strategy::Realtime)
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::UnsupportedStrategy { .. }));
    assert!(
        err.to_string()
            .contains("does not support the realtime strategy"),
        "{err}"
    );
}

#[tokio::test]
async fn batch_with_updates_shows_running_traces_and_completes_them() {
    let (_d, _p, s) = store();
    let obs = pipeline(&s, Strategy::BatchWithUpdates);
    let mut root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    root.child(SpanOptions::new("tool", SpanType::ToolCall))
        .end();
    assert!(obs.flush(FLUSH).await.is_success());
    assert_eq!(
        root_status(&*s).await,
        Some(TraceStatus::Running),
        "the started root is stored"
    );
    root.end();
    assert!(obs.flush(FLUSH).await.is_success());
    assert_eq!(root_status(&*s).await, Some(TraceStatus::Ok));
    let t = s.get_trace(root.trace_id()).await.unwrap().unwrap();
    assert_eq!(t.spans.len(), 2);
    assert!(t.spans.iter().all(|sp| sp.end_time.is_some()));
}

#[tokio::test]
async fn insert_only_stores_spans_when_they_end() {
    let (_d, _p, s) = store();
    let obs = pipeline(&s, Strategy::InsertOnly);
    let mut root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    root.child(SpanOptions::new("tool", SpanType::ToolCall))
        .end();
    assert!(obs.flush(FLUSH).await.is_success());
    assert_eq!(
        root_status(&*s).await,
        None,
        "a running root is not written"
    );
    assert_eq!(
        s.get_trace(root.trace_id())
            .await
            .unwrap()
            .unwrap()
            .spans
            .len(),
        1
    );
    root.end();
    let report = obs.flush(FLUSH).await;
    assert!(report.is_success(), "{report}");
    assert_eq!(root_status(&*s).await, Some(TraceStatus::Ok));
}

#[tokio::test]
async fn realtime_writes_without_waiting_for_a_batch() {
    let (_d, _p, s) = store();
    let obs = pipeline(&s, Strategy::Realtime);
    let mut root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    // No flush: the worker writes as soon as the event arrives.
    let mut seen = None;
    for _ in 0..200 {
        seen = root_status(&*s).await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some(TraceStatus::Running));
    root.end();
    assert!(obs.flush(FLUSH).await.is_success());
    assert_eq!(root_status(&*s).await, Some(TraceStatus::Ok));
}

#[tokio::test]
async fn a_whole_agent_run_with_records_lands_in_the_store() {
    let (_d, _p, s) = store();
    let obs = pipeline(&s, Strategy::Auto);
    let mut root = obs.start_span(
        SpanOptions::new("support-agent", SpanType::AgentRun).tracing(
            TracingOptions::new()
                .user_id("u-1")
                .session_id("s-1")
                .tag("demo"),
        ),
    );
    let mut llm = root.child(
        SpanOptions::new("chat", SpanType::ModelGeneration)
            .attributes(ModelAttributes::new("gpt-4o-mini", "openai")),
    );
    llm.set_usage(Usage::new(500, 40).with_cache_read(256));
    llm.end();
    let t = root.trace_id();
    obs.log(LogRecord::new(LogLevel::Info, "hello").in_span(t, root.span_id()));
    obs.score(ScoreRecord::new(t, "helpfulness", 0.9));
    obs.feedback(FeedbackRecord::new(t, "thumbs", 1));
    root.end();
    let report = obs.shutdown(FLUSH).await;
    assert!(report.is_success(), "{report}");
    let rec = s.get_trace(t).await.unwrap().unwrap();
    assert_eq!(rec.spans.len(), 2);
    assert_eq!(
        (rec.logs.len(), rec.scores.len(), rec.feedback.len()),
        (1, 1, 1)
    );
    assert_eq!(rec.usage_totals().cached_input_tokens, 256);
    let listed = s
        .list_traces(
            &TraceFilter::new().user_id("u-1").tag("demo"),
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(listed.traces.len(), 1);
    // Derived metrics were stored too (and are what retention counts).
    assert!(
        s.delete_older_than(chrono::Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap()
            .metrics
            >= 2
    );
}

#[tokio::test]
async fn a_span_started_in_one_process_and_ended_in_another_is_stored_once_complete() {
    let (_d, path, _s) = store();
    // Process 1: starts the step (insert-only: its start is never written), exports it, dies.
    let s1: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
    let obs1 = pipeline(&s1, Strategy::InsertOnly);
    let step = obs1.start_span(SpanOptions::new("durable-step", SpanType::WorkflowStep).input("x"));
    let exported = step.export().unwrap();
    std::mem::forget(step); // the process froze: no end, no drop
    assert!(obs1.shutdown(FLUSH).await.is_success());
    // Process 2: rebuilds it and ends it; the end event alone creates the row.
    let s2: Arc<dyn Storage> = Arc::new(SqliteStorage::open(&path).unwrap());
    let obs2 = pipeline(&s2, Strategy::BatchWithUpdates);
    let mut resumed = obs2.rebuild_span(exported.clone());
    resumed.end_with_output("done");
    assert!(obs2.shutdown(FLUSH).await.is_success());
    let rec = s2.get_trace(exported.trace_id).await.unwrap().unwrap();
    assert_eq!(rec.spans.len(), 1);
    assert_eq!(rec.spans[0].output, Some(serde_json::json!("done")));
    assert_eq!(rec.spans[0].start_time, exported.start_time);
}

#[tokio::test]
async fn a_locked_database_is_retried_until_delivered() {
    let (_d, path, _s) = store();
    let s: Arc<dyn Storage> = Arc::new(
        SqliteStorage::open_with(SqliteConfig::file(&path).busy_timeout(Duration::from_millis(20)))
            .unwrap(),
    );
    let exporter = DefaultExporter::builder_shared(s.clone())
        .retry_policy(RetryPolicy::default().with_initial_backoff(Duration::from_millis(100)))
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    let locker = rusqlite::Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        locker.execute_batch("COMMIT").unwrap();
    });
    let mut root = obs.start_span(SpanOptions::new("agent", SpanType::AgentRun));
    let t = root.trace_id();
    root.end();
    let report = obs.flush(FLUSH).await;
    release.join().unwrap();
    assert!(report.is_success(), "{report}");
    let e = report.exporter("sqlite").unwrap();
    assert!(
        e.totals.retries >= 1,
        "the lock should have cost a retry: {report}"
    );
    assert_eq!(s.get_trace(t).await.unwrap().unwrap().spans.len(), 1);
}

#[tokio::test]
async fn a_full_database_fails_visibly_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.db");
    let s: Arc<dyn Storage> = Arc::new(
        SqliteStorage::open_with(SqliteConfig::file(&path).max_size_bytes(128 * 1024)).unwrap(),
    );
    let exporter = DefaultExporter::builder_shared(s)
        .retry_policy(
            RetryPolicy::default()
                .with_max_retries(2)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .build()
        .unwrap();
    let obs = Observability::builder().exporter(exporter).build().unwrap();
    let big = "x".repeat(8 * 1024);
    for _ in 0..100 {
        obs.start_span(SpanOptions::new("agent", SpanType::AgentRun).input(&big))
            .end();
    }
    let report = obs.flush(FLUSH).await;
    assert!(!report.is_success(), "{report}");
    let e = report.exporter("sqlite").unwrap();
    assert!(
        e.failed
            .get(&DropReason::RetriesExhausted)
            .copied()
            .unwrap_or(0)
            > 0,
        "{report}"
    );
    assert!(e.totals.is_conserved());
    assert!(
        report.to_string().contains("database or disk is full"),
        "{report}"
    );
}

#[tokio::test]
async fn a_read_only_store_fails_permanently_without_retrying() {
    let (_d, path, _s) = store();
    let ro: Arc<dyn Storage> =
        Arc::new(SqliteStorage::open_with(SqliteConfig::file(&path).read_only()).unwrap());
    let obs = pipeline(&ro, Strategy::InsertOnly);
    obs.start_span(SpanOptions::new("agent", SpanType::AgentRun))
        .end();
    let report = obs.flush(FLUSH).await;
    let e = report.exporter("sqlite").unwrap();
    assert!(
        e.failed
            .get(&DropReason::PermanentError)
            .copied()
            .unwrap_or(0)
            >= 1,
        "{report}"
    );
    assert_eq!(
        e.totals.retries, 0,
        "a read-only store is not retried: {report}"
    );
    assert!(report.to_string().contains("read-only"), "{report}");
}

#[tokio::test]
async fn a_store_upgraded_by_a_newer_aiobs_disables_the_exporter() {
    let (_d, path, s) = store();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE aiobs_schema SET version = 7", [])
        .unwrap();
    let obs = pipeline(&s, Strategy::Auto);
    obs.start_span(SpanOptions::new("agent", SpanType::AgentRun))
        .end();
    let report = obs.flush(FLUSH).await;
    let e = report.exporter("sqlite").unwrap();
    assert!(e.totals.disabled, "{report}");
    assert!(
        e.dropped
            .get(&DropReason::ExporterDisabled)
            .copied()
            .unwrap_or(0)
            >= 1,
        "{report}"
    );
    assert!(
        e.totals
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("schema version 7"),
        "{report}"
    );
}
